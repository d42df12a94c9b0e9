"""Findings that persist: idempotent upserts of detections, triage with history,
optimistic concurrency and expected-behaviour rules (SQLAlchemy Core; SQLite or
PostgreSQL, the same statements).

- ``upsert(found, now)``: the rows of ``findings.detect``. A new key is inserted
  (status ``new``, or ``expected`` with the id of the first active rule that
  matches it) with a ``detected`` event. A known key keeps one row: its evidence
  grows (first contact the earliest, last contact the latest, counts and
  deviation the largest one detection saw, severity the highest), ``last_seen``
  and ``detections`` move on; its triage is untouched, except that a
  ``resolved`` finding with a newer last contact than it had is reopened
  (status ``new``, a ``reopened`` event). Two processes upserting the same rows
  at once leave one row per key and one ``detected`` event (``INSERT … ON
  CONFLICT DO NOTHING`` decides who created it).
- ``change(key, version, actor, action, …)``: one triage action. ``version`` is
  the one the actor saw; when the row has another, nothing is written and
  ``TriageConflictError`` says who changed it and when. Every change is an
  event (who, when, from, to, assignee, reason, comment); events are never
  updated or deleted.
- Rules: ``add_rule`` (analysts, from a finding), ``edit_rule`` (reason,
  expiry), ``delete_rule`` (admins; the row stays, marked deleted, and the
  findings it matched keep their status and rule id).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flux_dashboard import errors as E
from flux_dashboard.findings import FINDINGS_SCHEMA, SEVERITIES
from flux_dashboard.triage.tables import finding_events, findings, rules

STATUSES: tuple[str, ...] = ("new", "acknowledged", "investigating", "resolved",
                             "false_positive", "expected")
OPEN: tuple[str, ...] = ("new", "acknowledged", "investigating")
# A false positive's reason: a fixed list (code, label).
REASONS: dict[str, str] = {
    "legitimate": "Legitimate activity", "known_application": "Known application",
    "authorised_user": "Authorised user", "too_sensitive": "Detection too sensitive",
    "other": "Other"}
# action -> the status it sets (None: the status stays)
ACTIONS: dict[str, str | None] = {
    "acknowledge": "acknowledged", "investigate": "investigating", "resolve": "resolved",
    "false_positive": "false_positive", "reopen": "new", "assign": None, "comment": None,
    "expect": "expected"}  # expect: by a rule made from this finding (``rule_id``)
SEARCHED = ("ip0", "device_name", "mac_address", "ip1", "owner")  # list(search=...)
TRIAGE_SCHEMA = pl.Schema({
    **FINDINGS_SCHEMA, "status": pl.String, "reason": pl.String, "assignee": pl.String,
    "rule_id": pl.Int64, "first_detected": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"), "detections": pl.Int64,
    "updated_at": pl.Datetime("us", "UTC"), "updated_by": pl.String, "version": pl.Int64})
EVENT_SCHEMA = pl.Schema({
    "id": pl.Int64, "key": pl.String, "at": pl.Datetime("us", "UTC"), "actor": pl.String,
    "action": pl.String, "from_status": pl.String, "to_status": pl.String,
    "assignee": pl.String, "reason": pl.String, "rule_id": pl.Int64, "comment": pl.String})
RULE_SCHEMA = pl.Schema({
    "id": pl.Int64, "kind": pl.String, "sensor": pl.Int64, "ip0": pl.String,
    "ip1": pl.String, "owner": pl.String, "reason": pl.String, "expires": pl.Date,
    "created_at": pl.Datetime("us", "UTC"), "created_by": pl.String,
    "updated_at": pl.Datetime("us", "UTC"), "updated_by": pl.String,
    "deleted_at": pl.Datetime("us", "UTC"), "deleted_by": pl.String})
MAX_COMMENT = 2000


def _plain_errors(method):
    """A database that fails in the middle of a call (gone, restarted, out of space)
    comes out as ``DatabaseUnavailableError`` naming host and port: the page says
    "triage is unavailable", never a traceback. Constraint errors are bugs: raised."""
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            from flux_dashboard.triage.db import where

            raise E.DatabaseUnavailableError(
                f"The findings database ({where(self.engine.url.render_as_string())}) "
                f"failed ({type(exc.orig).__name__}). Flows still work; try again in a "
                "moment.") from None
    return wrapper


@dataclass(frozen=True)
class Upserted:
    new: int = 0
    expected: int = 0
    updated: int = 0
    reopened: int = 0


def _utc(t: datetime | None) -> datetime | None:
    """UTC, naive: what both SQLite and PostgreSQL store and compare the same way."""
    if t is None:
        return None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _rank(col: sa.ColumnElement) -> sa.ColumnElement:
    return sa.case({s: i for i, s in enumerate(SEVERITIES)}, value=col, else_=len(SEVERITIES))


def _greatest(col: sa.ColumnElement, value: Any) -> sa.ColumnElement:
    return sa.case((col.is_(None), value), (sa.literal(value) > col, value), else_=col) \
        if value is not None else col


def _least(col: sa.ColumnElement, value: Any) -> sa.ColumnElement:
    return sa.case((col.is_(None), value), (sa.literal(value) < col, value), else_=col) \
        if value is not None else col


def _clean_comment(comment: str | None) -> str | None:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise ValueError(f"A comment holds at most {MAX_COMMENT:,} characters "
                         f"(this one has {len(text):,}).")
    return text or None


def check_change(action: str, *, comment: str | None = None, reason: str | None = None,
                 rule_id: int | None = None, **_: Any) -> str | None:
    """The comment of a valid triage action (stripped, None when empty), or a
    ``ValueError`` that says what is missing: checked before anything is written."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}: one of {', '.join(ACTIONS)}.")
    comment = _clean_comment(comment)
    if action == "false_positive" and reason not in REASONS:
        raise ValueError("A false positive needs a reason: " + ", ".join(REASONS.values()) + ".")
    if action == "comment" and not comment:
        raise ValueError("Write a comment first.")
    if action == "expect" and rule_id is None:
        raise ValueError("A finding becomes expected through a rule.")
    return comment


def rule_matches(rule: Mapping, finding: Mapping, today: date) -> bool:
    """Whether an active ``rule`` covers ``finding`` on ``today`` (local day of the
    detection): same kind; its sensor, device and remote (IP, or the remote's owner,
    compared without case) when it names them; not deleted, not expired."""
    if rule.get("deleted_at") is not None or rule["kind"] != finding["kind"]:
        return False
    if rule.get("expires") is not None and today > rule["expires"]:
        return False
    if rule.get("sensor") is not None and int(rule["sensor"]) != int(finding["sensor"]):
        return False
    if rule.get("ip0") and rule["ip0"] != finding.get("ip0"):
        return False
    if rule.get("ip1") and rule["ip1"] != finding.get("ip1"):
        return False
    owner = (rule.get("owner") or "").strip().casefold()
    return not owner or owner == (finding.get("owner") or "").strip().casefold()


class FindingsStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name

    # ------------------------------------------------------------------ detections

    def _insert(self) -> Any:
        return (postgresql if self._dialect == "postgresql" else sqlite).insert(findings)

    @_plain_errors
    def upsert(self, found: pl.DataFrame, now: datetime, actor: str = "detector",
               today: date | None = None) -> Upserted:
        """Store the findings of one detection (``findings.FINDINGS_SCHEMA``)."""
        if found.height == 0:
            return Upserted()
        at, today = _utc(now), today or now.date()
        active = [r for r in self.rules().to_dicts() if r["deleted_at"] is None]
        rows = found.sort("key").to_dicts()  # one lock order for every writer: no deadlock
        for attempt in range(3):
            try:
                return self._upsert(rows, at, actor, today, active)
            except sa.exc.OperationalError as exc:  # PostgreSQL: deadlock, serialization
                if getattr(exc.orig, "sqlstate", "") not in ("40P01", "40001") or attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _upsert(self, rows: list[dict], at: datetime, actor: str, today: date,
                active: list[dict]) -> Upserted:
        new = expected = updated = reopened = 0
        with self.engine.begin() as conn:
            for row in rows:
                rule = next((r for r in active if rule_matches(r, row, today)), None)
                values = {c: (_utc(row[c]) if isinstance(row[c], datetime) else row[c])
                          for c in FINDINGS_SCHEMA.names()}
                status = "expected" if rule else "new"
                stmt = self._insert().values(
                    **values, status=status, rule_id=rule["id"] if rule else None,
                    first_detected=at, last_seen=at, detections=1, updated_at=at,
                    updated_by=actor, version=1,
                ).on_conflict_do_nothing(index_elements=["key"]).returning(findings.c.key)
                if conn.execute(stmt).first() is not None:
                    conn.execute(finding_events.insert().values(
                        key=row["key"], at=at, actor=actor, action="detected",
                        to_status=status, rule_id=rule["id"] if rule else None,
                        comment=f"Matched rule #{rule['id']}: {rule['reason']}" if rule
                        else None))
                    new += status == "new"
                    expected += status == "expected"
                    continue
                reopened += self._reopen(conn, values, at, actor)
                conn.execute(self._grow(values, at))
                updated += 1
        return Upserted(new=new, expected=expected, updated=updated, reopened=reopened)

    def _reopen(self, conn: sa.Connection, values: dict, at: datetime, actor: str) -> int:
        last = values["last_contact"]
        if last is None:
            return 0
        done = conn.execute(
            findings.update()
            .where(findings.c.key == values["key"], findings.c.status == "resolved",
                   sa.or_(findings.c.last_contact.is_(None), findings.c.last_contact < last))
            .values(status="new", version=findings.c.version + 1, updated_at=at,
                    updated_by=actor)).rowcount
        if done:
            conn.execute(finding_events.insert().values(
                key=values["key"], at=at, actor=actor, action="reopened",
                from_status="resolved", to_status="new",
                comment=f"Detected again: last contact {last:%Y-%m-%d %H:%M} UTC, after it "
                        "was resolved."))
        return done

    def _grow(self, v: dict, at: datetime) -> sa.Update:
        c = findings.c
        new_rank = SEVERITIES.index(v["severity"]) if v["severity"] in SEVERITIES else 9
        return findings.update().where(c.key == v["key"]).values(
            first_contact=_least(c.first_contact, v["first_contact"]),
            last_contact=_greatest(c.last_contact, v["last_contact"]),
            flows=_greatest(c.flows, v["flows"]), bytes=_greatest(c.bytes, v["bytes"]),
            hours=_greatest(c.hours, v["hours"]),
            deviation=_greatest(c.deviation, v["deviation"]),
            regularity=_greatest(c.regularity, v["regularity"]),
            severity=sa.case((_rank(c.severity) > new_rank, v["severity"]), else_=c.severity),
            threats=sa.func.coalesce(v["threats"], c.threats) if v["threats"] else c.threats,
            critical=sa.or_(c.critical, sa.literal(bool(v["critical"]))),
            device_name=sa.func.coalesce(v["device_name"], c.device_name),
            owner=sa.func.coalesce(v["owner"], c.owner),
            country=sa.func.coalesce(v["country"], c.country),
            country_code=sa.func.coalesce(v["country_code"], c.country_code),
            note=v["note"] if v["note"] else c.note,
            last_seen=at, detections=c.detections + 1)

    # ------------------------------------------------------------------ reading

    def _where(self, q: sa.Select, sensors: Iterable[int] | None, *,
               statuses: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
               severities: Sequence[str] | None = None, device: str | None = None,
               assignee: str | None = None, keys: Sequence[str] | None = None,
               search: str | None = None, among: Mapping[str, Iterable[str]] | None = None,
               first_contact: tuple[datetime, datetime] | None = None,
               last_contact_since: datetime | None = None,
               detected_since: datetime | None = None) -> sa.Select:
        c = findings.c
        if detected_since is not None:
            q = q.where(c.first_detected >= _utc(detected_since))
        if first_contact is not None:  # [start, end): the evidence began in this span
            q = q.where(c.first_contact >= _utc(first_contact[0]),
                        c.first_contact < _utc(first_contact[1]))
        if last_contact_since is not None:
            q = q.where(c.last_contact >= _utc(last_contact_since))
        if sensors is not None:
            q = q.where(c.sensor.in_(sorted({int(s) for s in sensors})))
        for col, wanted in ((c.status, statuses), (c.kind, kinds), (c.severity, severities),
                            (c.key, keys)):
            if wanted is not None:
                q = q.where(col.in_(list(wanted)))
        if device:
            q = q.where(sa.or_(c.ip0 == device, c.device_name == device,
                               c.mac_address == device))
        if assignee is not None:
            q = q.where(c.assignee.is_(None) if assignee == "" else c.assignee == assignee)
        if search:  # a part of an identifier, any case, % and _ taken literally
            q = q.where(sa.or_(*(c[n].icontains(search, autoescape=True)
                                 for n in SEARCHED)))
        if among is not None:  # the real values whose masked aliases matched a search
            q = q.where(sa.or_(sa.false(), *(c[n].in_(sorted(v)) for n, v in among.items()
                                             if v)))
        return q

    @_plain_errors
    def list(self, sensors: Iterable[int] | None = None, *,
             statuses: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
             severities: Sequence[str] | None = None, device: str | None = None,
             assignee: str | None = None, keys: Sequence[str] | None = None,
             search: str | None = None, among: Mapping[str, Iterable[str]] | None = None,
             first_contact: tuple[datetime, datetime] | None = None,
             last_contact_since: datetime | None = None,
             detected_since: datetime | None = None,
             limit: int | None = None, offset: int = 0) -> pl.DataFrame:
        """Findings (``TRIAGE_SCHEMA``): open ones first, then by severity, the latest
        last contact, the key (``sort``'s order, in SQL). ``sensors`` None: every sensor
        (callers pass the grant's); ``search``: a part of the device's IP, name or MAC,
        the remote's IP or owner; ``limit``/``offset``: one page of that order."""
        c = findings.c
        q = self._where(sa.select(*[c[n] for n in TRIAGE_SCHEMA.names()]), sensors,
                        statuses=statuses, kinds=kinds, severities=severities, device=device,
                        assignee=assignee, keys=keys, search=search, among=among,
                        first_contact=first_contact, last_contact_since=last_contact_since,
                        detected_since=detected_since)
        q = q.order_by(sa.case((c.status.in_(OPEN), 0), else_=1), _rank(c.severity),
                       c.last_contact.desc().nulls_last(), c.key)
        if limit is not None:
            q = q.limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return pl.DataFrame(rows, schema=TRIAGE_SCHEMA, orient="row")

    @_plain_errors
    def count(self, sensors: Iterable[int] | None = None, **where: Any) -> int:
        """How many findings ``list`` would return with these filters."""
        q = self._where(sa.select(sa.func.count()).select_from(findings), sensors, **where)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    @_plain_errors
    def distinct(self, sensors: Iterable[int] | None, columns: Sequence[str]
                 ) -> dict[str, set[str]]:
        """The distinct values of identifier ``columns`` among ``sensors``' findings."""
        out = {}
        with self.engine.connect() as conn:
            for name in columns:
                q = self._where(sa.select(findings.c[name]).distinct(), sensors)
                out[name] = {v for (v,) in conn.execute(q) if v is not None}
        return out

    def get(self, key: str) -> dict | None:
        got = self.list(keys=[key])
        return got.row(0, named=True) if got.height else None

    @_plain_errors
    def counts(self, sensors: Iterable[int] | None = None) -> pl.DataFrame:
        """(status, kind, severity, findings) of ``sensors``: the inbox's counters."""
        c = findings.c
        q = sa.select(c.status, c.kind, c.severity, sa.func.count().label("findings")) \
            .group_by(c.status, c.kind, c.severity)
        if sensors is not None:
            q = q.where(c.sensor.in_(sorted({int(s) for s in sensors})))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return pl.DataFrame(rows, schema={"status": pl.String, "kind": pl.String,
                                          "severity": pl.String, "findings": pl.Int64},
                            orient="row")

    @_plain_errors
    def events(self, keys: Sequence[str] | None = None,
               sensors: Iterable[int] | None = None,
               between: tuple[datetime, datetime] | None = None) -> pl.DataFrame:
        """The history of ``keys`` (of every finding of ``sensors``; of every finding
        when both are None), oldest first; ``between``: events in [start, end) only."""
        q = sa.select(*[finding_events.c[n] for n in EVENT_SCHEMA.names()]) \
            .order_by(finding_events.c.id)
        if between is not None:
            q = q.where(finding_events.c.at >= _utc(between[0]),
                        finding_events.c.at < _utc(between[1]))
        if keys is not None:
            q = q.where(finding_events.c.key.in_(list(keys)))
        if sensors is not None:
            q = q.where(finding_events.c.key.in_(sa.select(findings.c.key).where(
                findings.c.sensor.in_(sorted({int(s) for s in sensors})))))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")

    @_plain_errors
    def acted(self, actor: str) -> bool:
        """Whether ``actor`` ever wrote an event."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(finding_events.c.id).where(
                finding_events.c.actor == actor).limit(1)).first() is not None

    @_plain_errors
    def sensors(self) -> list[int]:
        with self.engine.connect() as conn:
            return [int(s) for (s,) in conn.execute(
                sa.select(findings.c.sensor).distinct().order_by(findings.c.sensor))]

    # ------------------------------------------------------------------ triage

    @_plain_errors
    def change(self, key: str, version: int, actor: str, action: str, *,
               comment: str | None = None, reason: str | None = None,
               assignee: str | None = None, rule_id: int | None = None,
               now: datetime) -> dict:
        """Apply one triage ``action`` (``ACTIONS``) to ``key`` as ``actor``, who saw
        ``version``. Returns the finding as it is now; raises ``TriageConflictError``
        when someone changed it since, ``ValueError`` on a bad action or reason."""
        comment = check_change(action, comment=comment, reason=reason, rule_id=rule_id)
        at = _utc(now)
        c = findings.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(c.status, c.assignee, c.version, c.updated_by,
                                         c.updated_at).where(c.key == key)).first()
            if row is None:
                raise ValueError("This finding does not exist (any more).")
            to = ACTIONS[action] or row.status
            values: dict[str, Any] = {"version": c.version + 1, "updated_at": at,
                                      "updated_by": actor, "status": to}
            if action == "false_positive":
                values["reason"] = reason
            elif ACTIONS[action] is not None:
                values["reason"] = None
            if action == "assign":
                values["assignee"] = assignee or None
            if action == "expect":
                values["rule_id"] = rule_id
            done = conn.execute(findings.update().where(c.key == key, c.version == version)
                                .values(**values)).rowcount
            if not done:
                raise E.TriageConflictError(
                    f"Not saved: this finding was changed by {row.updated_by} at "
                    f"{_aware(row.updated_at):%Y-%m-%d %H:%M} UTC since you opened it. "
                    "Its current state is shown; apply your change again if it still holds.",
                    key=key, who=row.updated_by, at=_aware(row.updated_at))
            conn.execute(finding_events.insert().values(
                key=key, at=at, actor=actor, action=action, from_status=row.status,
                to_status=to, assignee=values.get("assignee", row.assignee),
                reason=values.get("reason"), rule_id=values.get("rule_id"), comment=comment))
        return self.get(key) or {}

    def bulk(self, items: Sequence[tuple[str, int]], actor: str, action: str, *,
             now: datetime, **kw: Any) -> tuple[list[str], list[E.TriageConflictError]]:
        """``change`` on each (key, version) with one comment: (keys done, conflicts)."""
        done, conflicts = [], []
        for key, version in items:
            try:
                self.change(key, version, actor, action, now=now, **kw)
                done.append(key)
            except E.TriageConflictError as exc:
                conflicts.append(exc)
        return done, conflicts

    # ------------------------------------------------------------------ rules

    @_plain_errors
    def add_rule(self, *, kind: str, actor: str, reason: str, now: datetime,
                 sensor: int | None = None, ip0: str | None = None, ip1: str | None = None,
                 owner: str | None = None, expires: date | None = None) -> int:
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("A rule needs a reason: why this is expected.")
        if len(reason) > MAX_COMMENT:
            raise ValueError(f"A reason holds at most {MAX_COMMENT:,} characters.")
        if ip1 and owner:
            raise ValueError("A rule names the remote's IP or its owner, not both.")
        with self.engine.begin() as conn:
            return int(conn.execute(rules.insert().values(
                kind=kind, sensor=sensor, ip0=ip0 or None, ip1=ip1 or None,
                owner=(owner or "").strip() or None, reason=reason, expires=expires,
                created_at=_utc(now), created_by=actor).returning(rules.c.id)).scalar_one())

    @_plain_errors
    def edit_rule(self, rule_id: int, *, actor: str, now: datetime, reason: str,
                  expires: date | None) -> None:
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("A rule needs a reason: why this is expected.")
        with self.engine.begin() as conn:
            done = conn.execute(rules.update().where(rules.c.id == rule_id,
                                                     rules.c.deleted_at.is_(None))
                                .values(reason=reason, expires=expires, updated_at=_utc(now),
                                        updated_by=actor)).rowcount
        if not done:
            raise ValueError(f"Rule #{rule_id} does not exist or was deleted.")

    @_plain_errors
    def delete_rule(self, rule_id: int, *, actor: str, now: datetime) -> None:
        """Marks the rule deleted: it stops matching; what it matched keeps its status."""
        with self.engine.begin() as conn:
            done = conn.execute(rules.update().where(rules.c.id == rule_id,
                                                     rules.c.deleted_at.is_(None))
                                .values(deleted_at=_utc(now), deleted_by=actor)).rowcount
        if not done:
            raise ValueError(f"Rule #{rule_id} does not exist or was already deleted.")

    @_plain_errors
    def rules(self, include_deleted: bool = True) -> pl.DataFrame:
        q = sa.select(*[rules.c[n] for n in RULE_SCHEMA.names()]).order_by(rules.c.id)
        if not include_deleted:
            q = q.where(rules.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return pl.DataFrame(rows, schema=RULE_SCHEMA, orient="row")

