"""`flask --app wsgi app-proxy-key APP_ID`: an application's signing key, for its backend."""

import click
from flask import Blueprint

from ..runtime import current_settings
from . import signing

commands = Blueprint("app_proxy_commands", __name__, cli_group=None)


@commands.cli.command("app-proxy-key")
@click.argument("app_id", type=click.IntRange(min=1))
def app_proxy_key(app_id: int) -> None:
    """Print the key application APP_ID's backend verifies app_proxy signatures with."""
    secret = current_settings().proxy_signing_key
    if not secret:
        raise click.ClickException(
            "APP_PROXY_SIGNING_KEY is not set: a key derived from nothing proves nothing."
        )
    click.echo(f"keyid: {signing.key_id(app_id)}", err=True)
    click.echo(signing.application_key(secret, app_id).hex())
