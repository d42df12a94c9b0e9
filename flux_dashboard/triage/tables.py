"""The findings database's tables (SQLAlchemy Core), as the latest migration leaves them.

``findings``: one row per finding (``findings.FINDINGS_SCHEMA``'s evidence, keyed by
its stable ``key``) with its triage state: ``status``, ``reason`` (a false
positive's), ``assignee``, ``rule_id`` (the expected-behaviour rule that matched
it), when it was first detected and last seen, who changed it last and when, and
``version``, which every change increments (optimistic concurrency).
``finding_events``: the append-only history (never updated or deleted).
``rules``: expected-behaviour rules; a deleted rule keeps its row (``deleted_at``).
Times are UTC, stored without a zone (``timestamp``) so both databases compare them the
same way whatever the session time zone; ``store`` makes them aware again.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

findings = sa.Table(
    "findings", metadata,
    sa.Column("key", sa.String(20), primary_key=True),
    sa.Column("sensor", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("day", sa.Date),
    sa.Column("ip0", sa.String(64)),
    sa.Column("device_name", sa.String(200)),
    sa.Column("mac_address", sa.String(32)),
    sa.Column("is_critical", sa.Boolean, nullable=False, default=False),
    sa.Column("ip1", sa.String(64)),
    sa.Column("owner", sa.String(200)),
    sa.Column("country_code", sa.String(8)),
    sa.Column("country", sa.String(100)),
    sa.Column("first_contact", sa.DateTime()),
    sa.Column("last_contact", sa.DateTime()),
    sa.Column("flows", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("hours", sa.BigInteger, nullable=False, default=0),
    sa.Column("threats", sa.String(500)),
    sa.Column("critical", sa.Boolean, nullable=False, default=False),
    sa.Column("deviation", sa.Float),
    sa.Column("regularity", sa.Float),
    sa.Column("note", sa.Text),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("assignee", sa.String(320)),
    sa.Column("rule_id", sa.Integer),
    sa.Column("first_detected", sa.DateTime(), nullable=False),
    sa.Column("last_seen", sa.DateTime(), nullable=False),
    sa.Column("detections", sa.Integer, nullable=False, default=1),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("updated_by", sa.String(320), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Index("ix_findings_sensor_status", "sensor", "status"),
    sa.Index("ix_findings_status_severity", "status", "severity"),
)

finding_events = sa.Table(
    "finding_events", metadata,
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
    sa.Index("ix_finding_events_key", "key", "id"),
)

rules = sa.Table(
    "rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("sensor", sa.BigInteger),  # null: any sensor
    sa.Column("ip0", sa.String(64)),  # null: any device
    sa.Column("ip1", sa.String(64)),  # null: any remote (or the owner below)
    sa.Column("owner", sa.String(200)),  # the remote's organisation, instead of its IP
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("expires", sa.Date),  # last day it applies (local), null: never
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("updated_at", sa.DateTime()),
    sa.Column("updated_by", sa.String(320)),
    sa.Column("deleted_at", sa.DateTime()),
    sa.Column("deleted_by", sa.String(320)),
)

# Notifications (``flux_dashboard.notify``): one row per message a route must receive,
# recorded under its unique (route, kind, sensor, subject) before it is sent, then
# claimed by one worker, then marked sent or failed. ``subject``: the local day of a
# digest, the finding key of an alert, the silence's last data hour, a test's id.
# Alerts grouped into one message share a ``batch``.
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # daily, alert, silent, back, test
    sa.Column("sensor", sa.BigInteger, nullable=False),  # 0: none (a test message)
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("batch", sa.String(40)),
    sa.Column("title", sa.String(300)),
    sa.Column("late", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending, sending, sent, failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("claimed_at", sa.DateTime()),
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("sent_at", sa.DateTime()),
    sa.UniqueConstraint("route", "kind", "sensor", "subject", name="uq_deliveries_item"),
    sa.Index("ix_deliveries_route_id", "route", "id"),
)
