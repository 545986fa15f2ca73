"""`flask --app wsgi app-proxy-key APP_ID`: an application's signing key versions and
their states, with what its backend verifies with; `app-proxy-key rotate`: its next key
(app_proxy/keys.py)."""

from datetime import datetime, timedelta

import click
from flask import Blueprint
from flask.cli import AppGroup

from ..runtime import current_settings
from . import keys, signing

commands = Blueprint("app_proxy_commands", __name__, cli_group=None)


class _ListsUnlessAsked(AppGroup):
    """`app-proxy-key APP_ID` is `app-proxy-key list APP_ID`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@commands.cli.group("app-proxy-key", cls=_ListsUnlessAsked)
def app_proxy_key() -> None:
    """An application's app_proxy signing keys: `app-proxy-key APP_ID` lists them,
    `app-proxy-key rotate APP_ID` makes the next one."""


def _require_secret() -> None:
    if not current_settings().proxy_signing_key:
        raise click.ClickException(
            "APP_PROXY_SIGNING_KEY is not set: a key derived from nothing proves nothing."
        )


@app_proxy_key.command("list")
@click.argument("app_id", type=click.IntRange(min=1))
def list_keys(app_id: int) -> None:
    """List application APP_ID's key versions: keyid, algorithm, state, when it signs
    from and until, and the key its backend verifies with (an HMAC key in hex, an
    ed25519 public key as in the JWKS)."""
    _require_secret()
    if not keys.exists(app_id):
        raise click.ClickException(f"application {app_id} does not exist")
    for version in keys.read_versions(app_id):
        click.echo(_line(version))


@app_proxy_key.command("rotate")
@click.argument("app_id", type=click.IntRange(min=1), required=False)
@click.option("--all", "every", is_flag=True, help="Rotate every application's key.")
@click.option(
    "--grace",
    type=click.IntRange(1, keys.MAX_GRACE_HOURS),
    default=keys.DEFAULT_GRACE_HOURS,
    show_default=True,
    metavar="HOURS",
    help="How long the current key keeps signing beside the next one.",
)
@click.option("--now", "at_once", is_flag=True, help="Retire the current key at once (leaked).")
@click.option(
    "--algorithm",
    type=click.Choice(signing.ALGORITHMS),
    help="The next key's algorithm (the current key's by default).",
)
def rotate(
    app_id: int | None, every: bool, grace: int, at_once: bool, algorithm: str | None
) -> None:
    """Make application APP_ID's next key (or every application's, with --all): published
    now, signing 5 minutes later beside the current key, which retires after the grace
    period; with --now, signing at once and the current key retired."""
    _require_secret()
    if (app_id is None) == (not every):
        raise click.UsageError("give an APP_ID or --all, not both")
    refused = 0
    for each in keys.application_ids() if every else [app_id]:
        assert each is not None
        try:
            new, retiring = keys.rotate(each, timedelta(hours=grace), at_once, algorithm)
        except keys.RotationRefused as error:
            if not every:
                raise click.ClickException(str(error)) from None
            click.echo(f"not rotated: {error}", err=True)
            refused += 1
            continue
        old = ", ".join(
            f"{version.key_id} retires {_when(version.retires_at)}" for version in retiring
        )
        click.echo(f"{new.key_id} signs from {_when(new.signs_from)}; {old}", err=True)
        click.echo(_line(new))
    if refused:
        raise click.ClickException(f"{refused} applications not rotated")


def _line(version: keys.KeyVersion) -> str:
    key = version.key(keys.known_secrets(current_settings()))
    if key is None:
        shown = f"(its deployment secret, id {version.secret_id}, is not configured)"
    elif key.algorithm == signing.ED25519:
        shown = keys.jwk(key)["x"]
    else:
        shown = key.material.hex()
    state = version.state(keys.utcnow())
    return "  ".join(
        [
            f"{version.key_id:<20}",
            f"{version.algorithm:<11}",
            f"{state:<7}",
            f"from {_when(version.signs_from)}",
            f"until {_when(version.retires_at)}",
            shown,
        ]
    )


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-" * 20
    if moment == keys.EPOCH:
        return "its first use".ljust(20)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
