"""The sync worker: keep the last N days of chosen sensors complete in the cache.

``python -m flux_dashboard sync [--sensors all|ID,...] [--days 30] [--share 0.5]
[--once]`` runs beside the dashboard (a second process or container, same cache
directory, same ``FLUX_REDIS_URL``). Each cycle, for each sensor:

* the window is the last ``days`` days up to the last *settled* hour (an hour
  is final 15 minutes after it ends), so the worker never fetches an open hour;
* which hours are missing is read from the cache's metadata; the load then
  covers only the stretch from the first missing hour, or from the start of
  the late-data recheck horizon (``FLUX_RECHECK_HOURS``, 48 h), whichever is
  earlier, so a warm sensor costs one count per 15 minutes and no re-read of
  its month;
* the load goes through the same ``Loader`` as the dashboard: every row once,
  saved as it goes, day locks shared with the replicas (a day an analyst is
  loading is waited for, then read from the cache, never fetched twice);
* its rate limiter is a *background* one: at most ``share`` of the key's
  request slots, and only when no interactive request waits (``shared.py``).

Faults: an API error, a 429 storm or an incomplete load is logged for that
sensor and retried next cycle; everything completed is already on disk, so a
restarted worker resumes where it stopped. SIGTERM / Ctrl-C stop it between
requests. One log line per sensor and cycle: hours fetched, requests, rows,
coverage, time left in the cycle. The state (last success, synced-up-to hour,
coverage, last error per sensor) is written atomically to
``<cache dir>/sync-status.json``, which the dashboard reads for its "synced up
to 14:00, 30 days warm" line.

Findings: after a sensor's window is complete, the worker detects over its last
7 days against the 7 before them (``triage.run.worker_windows``, both read
from the cache it just filled: no request) and upserts them in the findings
database, the same keys and rules as the dashboard's detection. A database that
is unavailable is logged and retried next cycle; syncing goes on.

Hourly totals: after a sensor's flows, its hourly totals (``hourly.py``) over the
same window: one request for a cold month, none when warm but the late-data
recheck's; a failure there is logged and never fails the sensor's cycle.

Notifications: with routes configured (``FLUX_NOTIFY_FILE``), the worker runs the
notifier (``notify.notifier``) in its own thread, woken after each detection: the
daily digests, alerts and silence of the sensors it syncs (no second daemon).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flux_dashboard import errors as E
from flux_dashboard.hours import HOUR, SETTLE, floor_hour, hours_between
from flux_dashboard.store import filters_key

log = logging.getLogger("flux_dashboard.sync")

STATUS_FILE = "sync-status.json"
CYCLE_EVERY = timedelta(minutes=15)  # new hours settle hourly; rechecks are due every 15 min


@dataclass(frozen=True)
class SensorStatus:
    sensor: int
    days: int
    synced_to: str | None  # ISO UTC: end of the newest cached hour of the window
    coverage: float  # share of the window's hours in the cache after the cycle
    last_success: str | None  # ISO UTC of the last cycle that completed the window
    last_error: str | None = None
    requests: int = 0  # flux requests of the last cycle
    rows: int = 0  # rows fetched in the last cycle
    updated: str | None = None


class StatusFile:
    """``sync-status.json``: the worker's state per data source and sensor."""

    def __init__(self, cache_dir: Path, source_id: str) -> None:
        import hashlib

        self.path = Path(cache_dir) / STATUS_FILE
        # Never the source id itself (it names the API URL): a hash of it.
        self.source = hashlib.blake2b(source_id.encode(), digest_size=8).hexdigest()

    def _read_all(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def read(self) -> dict[int, SensorStatus]:
        """The recorded state of this source's sensors (unreadable entries skipped)."""
        out: dict[int, SensorStatus] = {}
        entries = self._read_all().get(self.source)
        if not isinstance(entries, dict):
            return out
        for raw in entries.values():
            try:
                st = SensorStatus(**raw)
                out[int(st.sensor)] = st
            except (TypeError, ValueError):
                continue
        return out

    def write(self, status: SensorStatus) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read_all()
            data.setdefault(self.source, {})[str(status.sensor)] = asdict(status)
            tmp_fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sync-")
            with os.fdopen(tmp_fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)


def describe(status: SensorStatus | None, tz, now: datetime) -> str | None:
    """'Synced up to 14:00 · 30 days warm' (sensor's time zone), or None."""
    if status is None or status.synced_to is None:
        return None
    try:
        upto = datetime.fromisoformat(status.synced_to).astimezone(tz)
    except (ValueError, TypeError):
        return None
    when = f"{upto:%H:%M}" if upto.date() == now.astimezone(tz).date() else f"{upto:%d %b %H:%M}"
    warm = (f"{status.days} days warm" if status.coverage >= 0.999
            else f"{status.coverage:.0%} of {status.days} days warm")
    text = f"Synced up to {when} · {warm}"
    if status.last_error:
        text += " · last cycle failed, retrying"
    return text


def window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The last ``days`` days up to the last settled hour (end exclusive)."""
    end = floor_hour(now - SETTLE)
    return end - timedelta(days=days), end


class Worker:
    def __init__(self, service, *, sensors: Sequence[int] | None, days: int,
                 stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None,
                 on_cycle: Callable[[list[SensorStatus]], None] | None = None,
                 findings: bool = True, notifier=None) -> None:
        self.service = service
        self.loader = service.loader
        self.sensors = list(sensors) if sensors else None  # None: every sensor of the key
        self.days = days
        self.stop = stop or threading.Event()
        self.clock = clock or service.settings.now  # the one clock (clock.py)
        self.status = StatusFile(service.settings.cache_dir, service.settings.source_id)
        self.on_cycle = on_cycle
        self.findings = findings
        self.notifier = notifier  # notify.notifier.Notifier: woken after each detection
        from flux_dashboard.hourly import HourlyLoader

        # The sensors' hourly totals (the Sensors page, first views), kept warm too.
        self.hourly = HourlyLoader(service.client, service.settings.cache_dir,
                                   clock=self.clock)
        self._meta: dict[int, dict] = {}  # sensor id -> its metadata (time zone, hours)

    def _sensor_ids(self) -> list[int]:
        try:
            listed = self.service.client.sensors()
        except E.FluxError:
            if self.sensors is None:
                raise
            listed = []  # chosen sensors sync without their metadata (findings in UTC)
        self._meta = {int(s["id"]): s for s in listed if isinstance(s.get("id"), int | str)
                      and str(s.get("id")).isascii() and str(s.get("id")).isdigit()}
        return self.sensors if self.sensors is not None else list(self._meta)

    def detect(self, sensor: int, status: SensorStatus) -> Any:
        """Detect findings over the complete window just synced and store them (None
        when the window is not complete, detection is off or the database is down)."""
        if not self.findings or status.last_error or status.coverage < 0.999:
            return None
        from flux_dashboard.triage import run

        now = self.clock()
        (a, b), (c, d) = run.worker_windows(*window(now, self.days))
        try:
            store = run.store_for(self.service.settings)
            frame = self.loader.load(sensor, a, b, cancel=self.stop).frame
            base = (self.loader.load(sensor, c, d, cancel=self.stop).frame if c < d
                    else frame.clear())
            found = run.detect_loaded(frame, base, self._meta.get(sensor, {"id": sensor}))
            done = run.record(store, found, now, demo=self.service.settings.demo)
        except E.FluxError as exc:
            log.warning("findings of sensor %s not detected: %s", sensor,
                        str(exc).splitlines()[0][:300])
            return None
        log.info("findings of sensor %s: %d detected (%d new, %d expected by a rule, "
                 "%d reopened)", sensor, found.height, done.new, done.expected, done.reopened)
        if self.notifier is not None:
            self.notifier.wake()  # alerts go out now, not at the notifier's next minute
        return done

    def context(self) -> tuple[list[int] | None, dict[int, dict]]:
        """The sensors this worker syncs and their metadata (for the notifier)."""
        return (list(self.sensors) if self.sensors is not None else list(self._meta) or None,
                dict(self._meta))

    def sync_sensor(self, sensor: int) -> SensorStatus:
        now = self.clock()
        start, end = window(now, self.days)
        hours = hours_between(start, end)
        store, src, fkey = self.loader.store, self.loader.source_id, filters_key(None)
        covered = store.covered(src, sensor, fkey, hours)
        missing = [h for h in hours if h not in covered]
        horizon = max(start, end - self.loader.recheck_hours * HOUR)
        load_from = min([horizon, *missing[:1]])
        previous = self.status.read().get(sensor)
        error, rows = None, 0
        sent = self.service.client.flux_request_count  # failed attempts count too
        if load_from < end:
            try:
                result = self.loader.load(sensor, load_from, end, refresh="open",
                                          cancel=self.stop)
                if result.fetched_hours:
                    rows = result.frame.filter(
                        ~result.frame.get_column("start_of_hour").is_in(sorted(covered))).height
            except E.FluxError as exc:
                error = str(exc).splitlines()[0][:300]
        if error is None and not self.stop.is_set():
            try:  # one request for a cold month, none when warm (rechecks aside)
                self.hourly.load(sensor, start, end, cancel=self.stop)
            except E.FluxError as exc:
                log.warning("hourly totals of sensor %s not synced: %s", sensor,
                            str(exc).splitlines()[0][:300])
        requests = self.service.client.flux_request_count - sent
        covered = store.covered(src, sensor, fkey, hours)
        coverage = len(covered) / len(hours) if hours else 1.0
        complete = error is None and coverage >= 0.999
        synced_to = end if complete else _newest_end(hours, covered)
        status = SensorStatus(
            sensor=sensor, days=self.days,
            synced_to=synced_to.isoformat() if synced_to else None, coverage=coverage,
            last_success=now.isoformat() if complete else
            (previous.last_success if previous else None),
            last_error=error, requests=requests, rows=rows,
            updated=self.clock().isoformat())
        self.status.write(status)
        return status

    def cycle(self) -> list[SensorStatus]:
        began = time.monotonic()
        try:
            ids = self._sensor_ids()
        except E.FluxError as exc:
            log.warning("sync: cannot list the sensors: %s", exc)
            return []
        out = []
        for i, sensor in enumerate(ids):
            if self.stop.is_set():
                break
            t0 = time.monotonic()
            st = self.sync_sensor(sensor)
            out.append(st)
            self.detect(sensor, st)
            spent = time.monotonic() - began
            left = spent / (i + 1) * (len(ids) - i - 1)
            log.info("sync sensor %s: %d requests, %s rows fetched, %.0f%% of %d days warm, "
                     "synced up to %s, %.1fs%s; ~%.0fs left in this cycle",
                     sensor, st.requests, f"{st.rows:,}", 100 * st.coverage, st.days,
                     (st.synced_to or "-")[:16], time.monotonic() - t0,
                     f", error: {st.last_error}" if st.last_error else "", left)
        if self.on_cycle:
            self.on_cycle(out)
        return out

    def run(self, once: bool = False, every: timedelta = CYCLE_EVERY) -> int:
        if self.notifier is not None and not once:
            self.notifier.start(self.context)
        while True:
            states = self.cycle()
            if once and self.notifier is not None:
                self.notifier.cycle(*self.context())
            if once or self.stop.is_set():
                return 0 if states and all(s.last_error is None for s in states) else 3
            self.stop.wait(every.total_seconds())
            if self.stop.is_set():
                return 0


class RequestTally:
    """The worker's requests into the team's quota meter, one booking per cycle.

    A meter that cannot be reached (Redis restarting) must not stop the worker: the
    cycle's requests are kept and booked with the next cycle's, so none is lost.
    """

    def __init__(self, meter, user: str = "sync-worker") -> None:
        self.meter, self.user = meter, user
        self.pending = 0

    def __call__(self, states: Sequence[SensorStatus]) -> None:
        self.pending += sum(s.requests for s in states)
        if not self.pending:
            return
        try:
            self.meter.add(self.user, self.pending)
        except E.FluxError as exc:
            log.warning("%d requests not counted yet (booked with the next cycle): %s",
                        self.pending, str(exc).splitlines()[0][:300])
            return
        self.pending = 0


def _newest_end(hours: list[datetime], covered: set[datetime]) -> datetime | None:
    """End of the newest cached hour of the window (gaps show in the coverage)."""
    done = [h for h in hours if h in covered]
    return done[-1] + HOUR if done else None
