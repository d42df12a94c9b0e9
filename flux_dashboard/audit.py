"""The audit trail: one JSON line per event, appended to a file, read back as a frame.

Events: ``sign_in``, ``sign_out``, ``page_view`` (page, sensor, range,
filters), ``export`` and ``evidence_pack`` (what was downloaded, rows),
``denied`` (what was refused and why), ``load_started``/``load_finished``/
``load_cancelled`` (with the request cost), ``budget_refused``. Each line has
the time (UTC), the user and role. Lines are written with one ``write`` on a
file opened for appending, under an exclusive ``flock``, so concurrent
sessions and processes never interleave. The API key never reaches the file:
``AuditLog`` is given the key and scrubs it from every line as a last line of
defence (nothing records it on purpose). Values are data, never markup: the
activity page shows them as table cells, filtered by ``read`` with the
choices it offers (``choices``: the users and sensors seen; ``PERIODS``).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flux_dashboard import clock as clock_mod
from flux_dashboard.errors import redact

EVENTS = ("sign_in", "sign_out", "page_view", "export", "evidence_pack", "denied",
          "load_started", "load_finished", "load_cancelled", "budget_refused",
          # findings: a triage action (before it is written), one refused as stale,
          # expected-behaviour rules
          "triage", "triage_refused", "rule_created", "rule_edited", "rule_deleted",
          # a digest, alert or test message sent (or failed) to a notification route
          "notification")
COLUMNS = {"ts": pl.Datetime("us", "UTC"), "event": pl.String, "user": pl.String,
           "role": pl.String, "sensor": pl.Int64, "page": pl.String, "requests": pl.Int64,
           "detail": pl.String}
# The activity page's periods: how far back from now each one reads (None: everything).
PERIODS: dict[str, timedelta | None] = {
    "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30), "All": None}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class AuditLog:
    """Appends events to ``path`` (created with mode 0600 on first write)."""

    def __init__(self, path: Path, *, secret: str | None = None,
                 clock: Callable[[], datetime] = clock_mod.real) -> None:
        self.path = path
        self.clock = clock
        self._secret = secret
        self._lock = threading.Lock()

    def record(self, event: str, *, user: str, role: str, now: datetime | None = None,
               **fields: Any) -> dict:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        entry = {"ts": (now or self.clock()).astimezone(UTC).isoformat(),
                 "event": event, "user": user, "role": role,
                 **{k: _plain(v) for k, v in fields.items()}}
        line = redact(json.dumps(entry, ensure_ascii=False, sort_keys=False), self._secret)
        data = (line + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, data)
            finally:
                os.close(fd)  # releases the lock
        return entry


def read(path: Path, *, user: str | None = None, sensor: int | None = None,
         event: str | None = None, since: datetime | None = None,
         until: datetime | None = None) -> pl.DataFrame:
    """The events of ``path`` matching every given filter, newest first.

    ``detail`` holds the fields other than the common columns, as JSON. A
    damaged line (a crash mid-write on a full disk) is skipped, not fatal.
    """
    rows: list[dict] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                    ts = datetime.fromisoformat(entry["ts"])
                except (ValueError, KeyError, TypeError):
                    continue
                if not isinstance(entry, dict):
                    continue
                sid = entry.get("sensor")
                row = {"ts": ts, "event": str(entry.get("event", "")),
                       "user": str(entry.get("user", "")), "role": str(entry.get("role", "")),
                       "sensor": sid if isinstance(sid, int) and not isinstance(sid, bool)
                       else None,
                       "page": entry.get("page") if isinstance(entry.get("page"), str) else None,
                       "requests": entry.get("requests")
                       if isinstance(entry.get("requests"), int) else None,
                       "detail": json.dumps({k: v for k, v in entry.items()
                                             if k not in COLUMNS}, ensure_ascii=False)}
                rows.append(row)
    except FileNotFoundError:
        pass
    df = pl.DataFrame(rows, schema=COLUMNS)
    if user:
        df = df.filter(pl.col("user") == user)
    if sensor is not None:
        df = df.filter(pl.col("sensor") == sensor)
    if event:
        df = df.filter(pl.col("event") == event)
    if since is not None:
        df = df.filter(pl.col("ts") >= since)
    if until is not None:
        df = df.filter(pl.col("ts") < until)
    return df.sort("ts", descending=True, maintain_order=True)


def choices(events: pl.DataFrame) -> tuple[list[str], list[int]]:
    """The users and the sensors that ``events`` name, sorted: the activity page's
    filter choices (events without a user or a sensor add none)."""
    users = sorted(u for u in events["user"].unique().to_list() if u)
    sensors = sorted(s for s in events["sensor"].unique().to_list() if s is not None)
    return users, sensors
