"""app_proxy's signing key versions

One row per version of an application's signing key (app_proxy/keys.py): its
algorithm, the id of the deployment secret it is derived from (no key material), and
when it signs. On PostgreSQL every write NOTIFYs the "applications" topic (migration
0003's function), so each worker forgets the versions it cached at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "application_id",
            sa.Integer(),
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("secret_id", sa.String(16), nullable=False),
        sa.Column("created_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signs_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "application_id", "version", name="uq_signing_keys_application_id_version"
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER signing_keys_notify_change "
            "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys "
            "FOR EACH STATEMENT EXECUTE FUNCTION applications_api_notify_change('applications')"
        )


def downgrade() -> None:
    op.drop_table("signing_keys")  # (its trigger goes with it)
