"""`flask --app wsgi prune-history --older-than DAYS`: the history's retention."""

from datetime import timedelta
from typing import Any, cast

import click
from flask import Blueprint
from sqlalchemy import CursorResult, delete

from ..database import db
from ..db_types import utcnow
from .models import ApplicationChange

commands = Blueprint("application_commands", __name__, cli_group=None)


@commands.cli.command("prune-history")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    required=True,
    metavar="DAYS",
    help="Delete history entries older than this many days.",
)
def prune_history(days: int) -> None:
    """Delete application history entries older than DAYS days."""
    cutoff = utcnow() - timedelta(days=days)
    result = cast(  # (a DELETE's is a CursorResult; Session.execute says only Result)
        CursorResult[Any],
        db.session.execute(
            delete(ApplicationChange).where(ApplicationChange.created_date < cutoff)
        ),
    )
    db.session.commit()
    click.echo(f"Deleted {result.rowcount} history entries older than {days} days.")
