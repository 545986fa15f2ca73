"""Managing access from the command line: `flask --app wsgi COMMAND`.

Every change commits at once and every worker of every server honours it on its next
request (the caches hear of it: applications_api/cache.py).
"""

from datetime import datetime
from pathlib import Path

import click
from flask import Blueprint
from sqlalchemy import delete, select

from ..database import db
from .models import Token, User
from .tokens import issue_token, key_digest

commands = Blueprint("auth_commands", __name__, cli_group=None)


@commands.cli.command("create-token")
@click.argument("username")
@click.option("--staff", is_flag=True, help="Allow the user to create, update and delete.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reuse the key kept in this file while it still authenticates USERNAME (as "
    "staff with --staff); else keep the new key there (readable by its owner only).",
)
def create_token(username: str, staff: bool, key_file: Path | None) -> None:
    """Create USERNAME when missing and print a new API key (the last line)."""
    username = username.strip()
    if not 1 <= len(username) <= 150:
        raise click.BadParameter("must be 1 to 150 characters", param_hint="USERNAME")
    kept = key_file.read_text().strip() if key_file and key_file.is_file() else ""
    if kept and _authenticates(kept, username, staff):
        key = kept
    else:
        key = issue_token(username, staff=staff)
        if key_file:
            key_file.touch(mode=0o600)
            key_file.write_text(key + "\n")
    click.echo(f"Token for {username}{' (staff)' if staff else ''}:")
    click.echo(key)


def _authenticates(key: str, username: str, staff: bool) -> bool:
    """Whether `key` is a token of the active user `username` (a staff one if `staff`)."""
    user = db.session.scalar(
        select(User)
        .join(Token, Token.user_id == User.id)
        .where(Token.key_digest == key_digest(key), User.username == username)
    )
    return user is not None and user.is_active and (user.is_staff or not staff)


@commands.cli.command("list-tokens")
@click.argument("username", required=False)
def list_tokens(username: str | None) -> None:
    """List tokens (of USERNAME, or everyone's): prefix, user, created, last used."""
    query = (
        select(
            Token.prefix,
            User.username,
            User.is_active,
            User.is_staff,
            Token.created_date,
            Token.last_used,
        )
        .join(User, Token.user_id == User.id)
        .order_by(Token.created_date, Token.id)
    )
    if username:
        query = query.where(User.username == _user(username).username)
    rows = db.session.execute(query).all()
    click.echo(f"{'PREFIX':<9} {'USER':<24} {'CREATED':<26} LAST USED")
    for prefix, name, active, staff, created, last_used in rows:
        flags = "".join((" (staff)" if staff else "", " (inactive)" if not active else ""))
        click.echo(
            f"{prefix or '-':<9} {name + flags:<24} {_when(created):<26} "
            f"{_when(last_used) if last_used else 'never'}"
        )


@commands.cli.command("revoke-token")
@click.argument("prefix")
def revoke_token(prefix: str) -> None:
    """Delete the token whose key starts with PREFIX (as list-tokens shows it)."""
    matching = db.session.scalars(select(Token.id).where(Token.prefix == prefix)).all()
    if len(matching) != 1:
        raise click.ClickException(
            f"no token has the prefix {prefix!r}"
            if not matching
            else f"{len(matching)} tokens have the prefix {prefix!r}: none revoked"
        )
    db.session.execute(delete(Token).where(Token.id == matching[0]))
    db.session.commit()
    click.echo(f"Revoked token {prefix}.")


@commands.cli.command("deactivate-user")
@click.argument("username")
def deactivate_user(username: str) -> None:
    """Refuse USERNAME's tokens from now on (401), keeping the user and its tokens."""
    _set(username, is_active=False)


@commands.cli.command("activate-user")
@click.argument("username")
def activate_user(username: str) -> None:
    """Accept USERNAME's tokens again."""
    _set(username, is_active=True)


@commands.cli.command("set-staff")
@click.argument("username")
@click.option(
    "--on/--off",
    "staff",
    default=None,
    help="Whether USERNAME may create, update and delete applications.",
)
def set_staff(username: str, staff: bool | None) -> None:
    """Promote USERNAME to staff (--on) or demote it to reader (--off)."""
    if staff is None:
        raise click.UsageError(
            "say --on (USERNAME may create, update and delete) or --off (reads only)"
        )
    _set(username, is_staff=staff)


def _user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"no user is named {username!r}")
    return user


def _set(username: str, **values: bool) -> None:
    user = _user(username)
    for name, value in values.items():
        setattr(user, name, value)
    db.session.commit()
    click.echo(f"{username}: " + ", ".join(f"{name}={value}" for name, value in values.items()))


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
