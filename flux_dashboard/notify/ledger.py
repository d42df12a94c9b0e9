"""The delivery ledger: every message recorded before it is sent, then claimed once.

A message is identified by (route, kind, sensor, subject): the digest of sensor 54
for 2026-12-05 to route "soc" is one row, whoever computes it and however often.

1. ``record`` inserts the rows as ``pending`` (``INSERT … ON CONFLICT DO NOTHING``:
   two workers that both decide a digest is due make one row).
2. ``claim`` moves a row from ``pending`` to ``sending`` in one conditional UPDATE:
   the one worker whose UPDATE changed the row sends it. A row left ``sending`` by a
   worker that was killed after claiming it is claimable again after ``LEASE``.
3. ``attempt_failed`` counts a failed try and keeps its (URL-free) error; ``finish``
   marks the rows ``sent`` or ``failed``.

A worker killed between 1 and 2 leaves a pending row: the next cycle of any worker
sends it, late. The only window for a duplicate is a kill between the channel's
acceptance and ``finish`` (milliseconds), after ``LEASE``; a lost message would be
worse for an alerting tool than a rare repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flux_dashboard.triage.store import _aware, _plain_errors, _utc
from flux_dashboard.triage.tables import deliveries as T

LEASE = timedelta(minutes=10)  # a claim older than this was made by a worker now gone
KINDS = ("daily", "alert", "silent", "back", "test")
MAX_ERROR = 500
DELIVERY_SCHEMA = pl.Schema({
    "id": pl.Int64, "route": pl.String, "kind": pl.String, "sensor": pl.Int64,
    "subject": pl.String, "batch": pl.String, "title": pl.String, "late": pl.Boolean,
    "status": pl.String, "attempts": pl.Int64, "last_error": pl.String,
    "created_at": pl.Datetime("us", "UTC"), "claimed_at": pl.Datetime("us", "UTC"),
    "claimed_by": pl.String, "sent_at": pl.Datetime("us", "UTC")})
_TIMES = ("created_at", "claimed_at", "sent_at")


class Ledger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert

    @_plain_errors
    def record(self, items: Sequence[dict], now: datetime) -> None:
        """Record messages (dicts of route, kind, sensor, subject and optionally batch)
        as pending; those already recorded are left as they are."""
        if not items:
            return
        at = _utc(now)
        rows = [{"route": i["route"], "kind": i["kind"], "sensor": int(i["sensor"]),
                 "subject": str(i["subject"]), "batch": i.get("batch"), "late": False,
                 "status": "pending", "attempts": 0, "created_at": at} for i in items]
        with self.engine.begin() as conn:
            conn.execute(self._insert(T).values(rows).on_conflict_do_nothing(
                index_elements=["route", "kind", "sensor", "subject"]))

    @_plain_errors
    def claim(self, ids: Iterable[int], worker: str, now: datetime) -> list[int]:
        """The ids among ``ids`` this worker now owns (pending, or claimed by a worker
        whose lease ran out)."""
        at, stale = _utc(now), _utc(now - LEASE)
        won = []
        with self.engine.begin() as conn:
            for i in ids:
                done = conn.execute(T.update().where(
                    T.c.id == i,
                    sa.or_(T.c.status == "pending",
                           sa.and_(T.c.status == "sending", T.c.claimed_at < stale)))
                    .values(status="sending", claimed_at=at, claimed_by=worker[:80]))
                if done.rowcount == 1:
                    won.append(i)
        return won

    @_plain_errors
    def attempt_failed(self, ids: Sequence[int], error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(T.update().where(T.c.id.in_(list(ids))).values(
                attempts=T.c.attempts + 1, last_error=error[:MAX_ERROR]))

    @_plain_errors
    def release(self, ids: Sequence[int]) -> None:
        """Claimed rows that could not be built or sent now: pending again."""
        with self.engine.begin() as conn:
            conn.execute(T.update().where(T.c.id.in_(list(ids)), T.c.status == "sending")
                         .values(status="pending", claimed_at=None, claimed_by=None))

    @_plain_errors
    def finish(self, ids: Sequence[int], sent: bool, now: datetime,
               error: str | None = None, status: str = "failed", late: bool = False) -> None:
        """Mark claimed rows sent (``late``: a digest past its time), or ``status``
        (failed; dropped: an alert whose finding was triaged before it went out) with
        ``error``."""
        values = ({"status": "sent", "sent_at": _utc(now), "attempts": T.c.attempts + 1,
                   "late": late}
                  if sent else {"status": status, "last_error": (error or "")[:MAX_ERROR]})
        with self.engine.begin() as conn:
            conn.execute(T.update().where(T.c.id.in_(list(ids)),
                                          T.c.status == "sending").values(**values))

    # ------------------------------------------------------------------ reads

    @_plain_errors
    def find(self, route: str, kind: str, sensor: int, subjects: Sequence[str]
             ) -> dict[str, dict]:
        """The recorded rows of these subjects, by subject."""
        if not subjects:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T).where(
                T.c.route == route, T.c.kind == kind, T.c.sensor == int(sensor),
                T.c.subject.in_([str(s) for s in subjects]))).mappings().all()
        return {r["subject"]: dict(r) for r in rows}

    @_plain_errors
    def latest_subject(self, route: str, kind: str, sensor: int) -> str | None:
        """The greatest subject recorded (ISO days and hours sort as text)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(T.c.subject)).where(
                T.c.route == route, T.c.kind == kind, T.c.sensor == int(sensor))).scalar()

    @_plain_errors
    def unsent(self, route: str, now: datetime) -> list[dict]:
        """Rows of ``route`` still to send: pending, or claimed by a worker now gone."""
        stale = _utc(now - LEASE)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T).where(
                T.c.route == route,
                sa.or_(T.c.status == "pending",
                       sa.and_(T.c.status == "sending", T.c.claimed_at < stale)))
                .order_by(T.c.id)).mappings().all()
        return [dict(r) for r in rows]

    @_plain_errors
    def recent(self, route: str | None = None, limit: int = 50) -> pl.DataFrame:
        q = sa.select(T).order_by(T.c.id.desc()).limit(limit)
        if route is not None:
            q = q.where(T.c.route == route)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        for r in rows:
            for c in _TIMES:
                r[c] = _aware(r[c])
        return pl.DataFrame(rows, schema=DELIVERY_SCHEMA, orient="row")

    @_plain_errors
    def count(self, **where) -> int:
        q = sa.select(sa.func.count()).select_from(T)
        for k, v in where.items():
            q = q.where(T.c[k] == v)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)
