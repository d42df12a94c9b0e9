"""Detection runs: the findings of a sensor's flows, detected and stored.

Both the sync worker (after each cycle, over each synced sensor's settled
window) and the dashboard (the range being viewed) go through
``detect_loaded`` and ``record``: the same keys, the same idempotent upsert.
``store_for(settings)`` is the process's store on ``FLUX_DATABASE_URL`` (else
SQLite in the cache directory), migrated on first use; when the database is
unavailable it raises ``DatabaseUnavailableError`` again on each call (a
database that comes back is picked up), and flows keep working.

In the embedded demo, ``record`` pre-marks one ordinary finding false positive
(``DEMO_ACTOR``, a reason and a comment) the first time it stores findings, so
a customer sees a triaged one next to the planted incident's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard import findings as F
from flux_dashboard.geo import enrich
from flux_dashboard.hours import sensor_hno, sensor_zone
from flux_dashboard.triage import db
from flux_dashboard.triage.store import FindingsStore, Upserted

DETECTOR = "detector"  # the actor of detection events
DEMO_ACTOR = "demo@flux.example"
DEMO_COMMENT = ("Demo: an example of a triaged finding. Checked with IT: a scheduled "
                "job of a known application, nothing to do.")
WORKER_DAYS = 7  # the worker detects over the last days of its window …
BASELINE_DAYS = 7  # … against the days before them (within the window: no extra request)

RETRY_AFTER_S = 30.0
_stores: dict[str, FindingsStore] = {}
_failures: dict[str, tuple[float, E.DatabaseUnavailableError]] = {}
_lock = threading.Lock()
log = logging.getLogger(__name__)


def store_for(settings) -> FindingsStore:
    """This process's store for ``settings`` (one engine per database URL). After a
    failure the same error comes back at once for ``RETRY_AFTER_S`` seconds: pages
    that show statuses do not each wait for a connection timeout."""
    url = db.database_url(settings)
    with _lock:
        if url in _stores:
            return _stores[url]
        failed = _failures.get(url)
        if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_S:
            raise failed[1]
        try:
            _stores[url] = FindingsStore(db.connect(url))
        except E.DatabaseUnavailableError as exc:
            _failures[url] = (time.monotonic(), exc)
            raise
        _failures.pop(url, None)
        return _stores[url]


def prepare_in_background(settings) -> None:
    """Apply the migrations at start-up without holding up the first page (the app
    calls this once per process; a failure is logged and retried on first use)."""
    def work() -> None:
        try:
            store_for(settings)
        except E.DatabaseUnavailableError as exc:
            log.warning("%s", exc)

    threading.Thread(target=work, name="findings-db-upgrade", daemon=True).start()


def detect_loaded(frame: pl.DataFrame, baseline: pl.DataFrame, sensor: Mapping,
                  settings: F.DetectSettings | None = None) -> pl.DataFrame:
    """``findings.detect`` on loaded (unmasked) flows, with the remotes' owner and
    country, in the sensor's own time zone and working hours."""
    return F.detect(enrich(frame, "ip1"), enrich(baseline, "ip1"), int(sensor["id"]),
                    sensor_zone(sensor), sensor_hno(sensor), settings)


def record(store: FindingsStore, found: pl.DataFrame, now: datetime,
           demo: bool = False) -> Upserted:
    done = store.upsert(found, now, actor=DETECTOR)
    if demo:
        demo_false_positive(store, found, now)
    return done


def demo_false_positive(store: FindingsStore, found: pl.DataFrame, now: datetime) -> str | None:
    """Once per demo database: the mildest finding without any threat (off-hours, then
    upload, then first-seen; by key) is marked false positive. Returns its key, or None."""
    if found.height == 0 or store.acted(DEMO_ACTOR):
        return None
    calm_kinds = ["off_hours", "upload_anomaly", "first_seen"]
    calm = found.filter((pl.col("threats").is_null() | (pl.col("threats") == ""))
                        & pl.col("kind").is_in(calm_kinds))
    if calm.height == 0:
        return None
    pick = calm.sort(
        pl.col("severity").replace_strict(F.SEVERITIES, list(range(len(F.SEVERITIES))),
                                          return_dtype=pl.Int8),
        pl.col("kind").replace_strict(calm_kinds, [0, 1, 2], return_dtype=pl.Int8), "key",
        descending=[True, False, False]).row(0, named=True)
    got = store.get(pick["key"])
    if got is None or got["status"] != "new":
        return None
    store.change(pick["key"], got["version"], DEMO_ACTOR, "false_positive",
                 reason="known_application", comment=DEMO_COMMENT, now=now)
    return pick["key"]


def worker_windows(start: datetime, end: datetime
                   ) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """(range, baseline) the worker detects over inside its synced window
    ``[start, end)``: the last ``WORKER_DAYS`` days, against up to ``BASELINE_DAYS``
    days before them (never before ``start``: the worker spends no request here)."""
    begin = max(start, end - timedelta(days=WORKER_DAYS))
    return (begin, end), (max(start, begin - timedelta(days=BASELINE_DAYS)), begin)
