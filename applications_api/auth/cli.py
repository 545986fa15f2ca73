import click
from flask import Blueprint

from .tokens import issue_token

commands = Blueprint("auth_commands", __name__, cli_group=None)


@commands.cli.command("create-token")
@click.argument("username")
@click.option("--staff", is_flag=True, help="Allow the user to create, update and delete.")
def create_token(username, staff):
    """Create USERNAME when missing and print a new API key (the last line)."""
    username = username.strip()
    if not 1 <= len(username) <= 150:
        raise click.BadParameter("must be 1 to 150 characters", param_hint="USERNAME")
    key = issue_token(username, staff=staff)
    click.echo(f"Token for {username}{' (staff)' if staff else ''}:")
    click.echo(key)
