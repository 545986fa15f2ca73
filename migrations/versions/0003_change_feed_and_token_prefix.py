"""change notifications for the caches (PostgreSQL); token prefix and last use

On PostgreSQL, every write to users, tokens or applications NOTIFYs
`applications_api_changes` with its topic ("auth" or "applications"), so each worker
forgets what it cached from them at once (applications_api/cache.py). A token's
`last_used` is left out: the service updates it as tokens are used. SQLite needs no
trigger: workers there read PRAGMA data_version.

Tokens gain `prefix` (the key's first 8 characters, to name a token without its key;
null for tokens made before this revision) and `last_used`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGGERS = {
    "users": ("auth", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    "tokens": ("auth", "INSERT OR DELETE OR TRUNCATE OR UPDATE OF key_digest, user_id"),
    "applications": ("applications", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
}


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("prefix", sa.String(8), nullable=True))
        batch.add_column(sa.Column("last_used", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tokens_prefix", ["prefix"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION applications_api_notify_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('applications_api_changes', TG_ARGV[0]);
            RETURN NULL;
        END $$
    """)
    for table, (topic, events) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify_change AFTER {events} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION applications_api_notify_change('{topic}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS applications_api_notify_change()")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_prefix")
        batch.drop_column("last_used")
        batch.drop_column("prefix")
