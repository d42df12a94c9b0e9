"""findings, their append-only events and expected-behaviour rules

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("key", sa.String(20), primary_key=True),
        sa.Column("sensor", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("day", sa.Date),
        sa.Column("ip0", sa.String(64)),
        sa.Column("device_name", sa.String(200)),
        sa.Column("mac_address", sa.String(32)),
        sa.Column("is_critical", sa.Boolean, nullable=False),
        sa.Column("ip1", sa.String(64)),
        sa.Column("owner", sa.String(200)),
        sa.Column("country_code", sa.String(8)),
        sa.Column("country", sa.String(100)),
        sa.Column("first_contact", sa.DateTime()),
        sa.Column("last_contact", sa.DateTime()),
        sa.Column("flows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("hours", sa.BigInteger, nullable=False),
        sa.Column("threats", sa.String(500)),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("deviation", sa.Float),
        sa.Column("regularity", sa.Float),
        sa.Column("note", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("assignee", sa.String(320)),
        sa.Column("rule_id", sa.Integer),
        sa.Column("first_detected", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("detections", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_findings_sensor_status", "findings", ["sensor", "status"])
    op.create_index("ix_findings_status_severity", "findings", ["status", "severity"])
    op.create_table(
        "finding_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(20), sa.ForeignKey("findings.key"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20)),
        sa.Column("assignee", sa.String(320)),
        sa.Column("reason", sa.String(40)),
        sa.Column("rule_id", sa.Integer),
        sa.Column("comment", sa.Text),
    )
    op.create_index("ix_finding_events_key", "finding_events", ["key", "id"])
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sensor", sa.BigInteger),
        sa.Column("ip0", sa.String(64)),
        sa.Column("ip1", sa.String(64)),
        sa.Column("owner", sa.String(200)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("expires", sa.Date),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("updated_by", sa.String(320)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("deleted_by", sa.String(320)),
    )


def downgrade() -> None:
    op.drop_table("rules")
    op.drop_index("ix_finding_events_key", "finding_events")
    op.drop_table("finding_events")
    op.drop_index("ix_findings_status_severity", "findings")
    op.drop_index("ix_findings_sensor_status", "findings")
    op.drop_table("findings")
