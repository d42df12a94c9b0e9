"""deliveries: each notification recorded before it is sent (exactly once)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("sensor", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("batch", sa.String(40)),
        sa.Column("title", sa.String(300)),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("claimed_by", sa.String(80)),
        sa.Column("sent_at", sa.DateTime()),
        sa.UniqueConstraint("route", "kind", "sensor", "subject", name="uq_deliveries_item"),
    )
    op.create_index("ix_deliveries_route_id", "deliveries", ["route", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_route_id", "deliveries")
    op.drop_table("deliveries")
