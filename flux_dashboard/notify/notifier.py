"""The notifier: decides what is due, records it, then sends it exactly once.

It lives in the sync worker (``python -m flux_dashboard sync``, the one process
that is always on) as its own thread: ``run`` wakes every minute and whenever the
worker has detected a sensor's findings, so a slow channel never holds up syncing
and a long sync never delays a digest. Each ``cycle``:

1. ``plan``: for every route and each of its sensors, what is due now, recorded in
   the ledger (``ledger.Ledger``) under its unique key before anything is sent:
   * the **daily digest** of the sensor's last local day, once the route's local time
     (``daily_at``) has passed and the day has settled; days missed while no worker
     ran are caught up (at most ``CATCH_UP_DAYS``) and say "late";
   * **alerts**: findings still ``new`` (never ``expected`` or already triaged) at or
     above the route's severity, first detected in the last day and active in the last
     week (``ALERT_DETECTED``, ``ALERT_ACTIVE``), each once per route;
     those of one cycle share a batch, sent as one message;
   * **silence**: a sensor whose cached hours have had no flow for more than
     ``silent_after_hours`` (hours the worker fetched and found empty: an API that is
     down is not a silent sensor), once per silence, and "back" once when data returns.
2. ``send``: every unsent row of the route (this cycle's, a killed worker's, a
   failed build's) is claimed, its message built from the data at that moment (an
   alert whose finding was triaged meanwhile is dropped), and sent through Apprise:
   HTML to e-mail, Markdown to chat, text elsewhere, as each service prefers. A failed
   try is retried with backoff (``attempts``, ``backoff_s``) and then reported; routes
   are sent in parallel threads, so one failing channel never delays another.

Every send is audited (route, kind, sensor, status): never a URL, which holds tokens.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard.findings import SEVERITIES
from flux_dashboard.hours import (
    HOUR,
    SETTLE,
    hours_between,
    local_datetime,
    local_day_window,
    sensor_zone,
)
from flux_dashboard.notify import content as C
from flux_dashboard.notify.ledger import Ledger
from flux_dashboard.notify.routes import Route, Routes
from flux_dashboard.store import filters_key
from flux_dashboard.triage.store import OPEN

log = logging.getLogger("flux_dashboard.notify")

CATCH_UP_DAYS = 3  # digests missed while no worker ran: sent late, at most this many days
LATE_AFTER = timedelta(hours=1)  # a digest sent this long after its time says "late"
INCOMPLETE_WAIT = timedelta(hours=6)  # a day with missing hours waits this long for them
# Alerts: findings first detected within the last day (a route added later does not
# alert the database's past) and active within the worker's detection window.
ALERT_DETECTED = timedelta(hours=24)
ALERT_ACTIVE = timedelta(days=7)
WAKE_EVERY_S = 60.0
ATTEMPTS = 4  # one try and three retries
BACKOFF_S = 2.0  # waits 2, 4, 8 s between tries (FLUX_NOTIFY_BACKOFF_S)


@dataclass(frozen=True)
class Outcome:
    route: str
    kind: str
    sensor: int
    subjects: tuple[str, ...]
    status: str  # sent, failed, dropped (an alert triaged before it went out), waiting
    attempts: int = 0
    error: str | None = None
    title: str = ""


def _backoff() -> float:
    raw = os.environ.get("FLUX_NOTIFY_BACKOFF_S")
    try:
        return max(0.0, float(raw)) if raw else BACKOFF_S
    except ValueError:
        return BACKOFF_S


def scrub(text: str, urls: Sequence[str]) -> str:
    """``text`` (a library's log) without any part of ``urls`` that could be a secret:
    whole URLs, user names, passwords, path parts and query values."""
    out = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "[url]", text)
    for url in sorted(urls, key=len, reverse=True):
        parts = urlsplit(url)
        pieces = [parts.username, parts.password, *parts.path.split("/"),
                  *(v for _, v in parse_qsl(parts.query)),
                  *(k for k, _ in parse_qsl(parts.query))]
        if parts.hostname and not parts.hostname.replace(".", "").isdigit() \
                and "." not in parts.hostname:
            pieces.append(parts.hostname)  # a token in the host's place (slack://T…/…)
        for p in sorted({p for p in pieces if p and len(p) >= 4}, key=len, reverse=True):
            out = out.replace(p, "[redacted]")
    return out


def deliver(urls: Sequence[str], message: C.Message, all_urls: Sequence[str] = ()
            ) -> tuple[list[str], str]:
    """Send ``message`` to each URL in the format its service prefers. Returns the URLs
    that failed and what went wrong (scrubbed of every URL's secrets)."""
    import apprise

    failed, errors = [], []
    for url in urls:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            failed.append(url)
            errors.append("an Apprise URL this version cannot read")
            continue
        fmts = plugin.notify_format if isinstance(plugin.notify_format, tuple) \
            else (plugin.notify_format,)
        fmt = fmts[0]
        body = {apprise.NotifyFormat.HTML: message.as_html,
                apprise.NotifyFormat.MARKDOWN: message.as_markdown}.get(fmt, message.as_text)()
        with apprise.LogCapture(level=logging.WARNING) as logs:
            try:
                ok = plugin.notify(body=body, title=message.title, body_format=fmt)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is one failed delivery
                logging.getLogger("apprise").warning("%s in the plugin", type(exc).__name__)
                ok = False
        if not ok:
            failed.append(url)
            said = " ".join(logs.getvalue().split())[-300:] or "the service refused it"
            name = C.one_line(getattr(plugin, "service_name", "channel"), 30)
            errors.append(f"{name}: {scrub(said, [*urls, *all_urls])}")
    return failed, "; ".join(errors)


class Notifier:
    def __init__(self, service, routes: Routes, *, stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None, worker_id: str | None = None,
                 public_url: str | None = None, audit=None, attempts: int = ATTEMPTS,
                 backoff_s: float | None = None, detect: bool = False) -> None:
        self.service = service
        self.settings = service.settings
        self.routes = routes
        self.stop = stop or threading.Event()
        self.clock = clock or self.settings.now
        self.worker = worker_id or \
            f"{os.uname().nodename[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.public_url = (public_url or os.environ.get("FLUX_PUBLIC_URL")
                           or C.DEFAULT_PUBLIC_URL)
        self.audit = audit
        self.attempts = max(1, attempts)
        self.backoff_s = _backoff() if backoff_s is None else backoff_s
        self.detect = detect  # detect a digest's day first (previews; the worker already did)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._meta: dict[int, dict] = {}
        self._masker = None

    # ------------------------------------------------------------------ context

    def store(self):
        from flux_dashboard.triage import run

        return run.store_for(self.settings)

    def ledger(self) -> Ledger:
        return Ledger(self.store().engine)

    def sensors(self, known: Mapping[int, Mapping] | None = None) -> dict[int, dict]:
        if known:
            self._meta = {int(k): dict(v) for k, v in known.items()}
        elif not self._meta:
            try:
                self._meta = {int(s["id"]): s for s in self.service.client.sensors()
                              if str(s.get("id", "")).isdigit()}
            except E.FluxError as exc:
                log.warning("notify: cannot list the sensors: %s", str(exc).splitlines()[0])
        return self._meta

    def meta(self, sensor: int) -> dict:
        return self._meta.get(int(sensor), {"id": int(sensor)})

    def tz(self, sensor: int) -> str:
        return sensor_zone(self.meta(sensor))

    def masker(self):
        if self._masker is None:
            from flux_dashboard.masking import settings_masker

            self._masker = settings_masker(self.settings.cache_dir)
        return self._masker

    def view(self, route: Route) -> tuple[C.Links, C.Shown]:
        mask = self.masker() if route.masked else None
        return C.Links(self.public_url, route.masked, mask), C.Shown(mask)

    def sensor_ids(self, route: Route, synced: Sequence[int] | None) -> list[int]:
        pool = list(synced) if synced is not None else sorted(self._meta)
        return [s for s in pool if route.covers(s)]

    # ------------------------------------------------------------------ loop

    def wake(self) -> None:
        self._wake.set()

    def run(self, context: Callable[[], tuple[Sequence[int] | None, Mapping[int, Mapping]]]
            = lambda: (None, {})) -> None:
        """Cycle until stopped: every minute, and when woken (by the worker after a
        detection, or to stop). ``context``: the worker's synced sensors and their
        metadata."""
        while not self.stop.is_set():
            try:
                self.cycle(*context())
            except Exception:  # noqa: BLE001 - the thread must outlive any bad cycle
                log.exception("notify: the cycle failed; retrying in a minute")
            self._wake.wait(WAKE_EVERY_S)
            self._wake.clear()

    def start(self, context: Callable[[], tuple[Sequence[int] | None, Mapping[int, Mapping]]]
              ) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(context,), name="notifier",
                                  daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def close(self, timeout: float = 3.0) -> None:
        """Stop the thread: a send in progress is finished and recorded (bounded wait;
        a retry's backoff is cut short by the stop)."""
        self.stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def cycle(self, synced: Sequence[int] | None = None,
              known: Mapping[int, Mapping] | None = None) -> list[Outcome]:
        """Plan and send everything due now. ``synced``: the sensors the worker syncs
        (a route's "*"); ``known``: their metadata (time zone, name)."""
        if not len(self.routes):
            return []
        self.sensors(known)
        try:
            self.plan(synced)
        except E.FluxError as exc:
            log.warning("notify: nothing planned this cycle: %s", str(exc).splitlines()[0])
        return self.send()

    # ------------------------------------------------------------------ plan

    def plan(self, synced: Sequence[int] | None = None) -> int:
        """Record everything due now; returns how many rows were due (new or not)."""
        now = self.clock()
        ledger, store = self.ledger(), self.store()
        items: list[dict] = []
        silences = {}
        for route in self.routes:
            ids = self.sensor_ids(route, synced)
            if "daily" in route.receives:
                for s in ids:
                    items += self._due_digests(ledger, route, s, now)
            if "alerts" in route.receives:
                items += self._due_alerts(ledger, store, route, ids, now)
                for s in ids:
                    if s not in silences:
                        silences[s] = self.silence_state(s, now)
                    items += self._due_silence(ledger, route, s, silences[s])
        ledger.record(items, now)
        return len(items)

    def due_day(self, route: Route, sensor: int, now: datetime) -> date:
        """The last local day whose digest is due at ``now`` (yesterday after daily_at)."""
        zone = ZoneInfo(self.tz(sensor))
        local = now.astimezone(zone)
        today = local.date()
        due = local_datetime(today, route.daily_at.hour, zone).replace(
            minute=route.daily_at.minute)
        return today - timedelta(days=1 if now >= due else 2)

    def digest_time(self, route: Route, sensor: int, day: date) -> datetime:
        zone = ZoneInfo(self.tz(sensor))
        return local_datetime(day + timedelta(days=1), route.daily_at.hour, zone).replace(
            minute=route.daily_at.minute)

    def _due_digests(self, ledger: Ledger, route: Route, sensor: int, now: datetime
                     ) -> list[dict]:
        last = self.due_day(route, sensor, now)
        if local_day_window(last, self.tz(sensor))[1] + SETTLE > now:
            last -= timedelta(days=1)  # a digest time before the day settled: wait
        sent = ledger.latest_subject(route.name, "daily", sensor)
        first = last
        if sent is not None:
            first = max(date.fromisoformat(sent) + timedelta(days=1),
                        last - timedelta(days=CATCH_UP_DAYS - 1))
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        return [{"route": route.name, "kind": "daily", "sensor": sensor,
                 "subject": d.isoformat()} for d in days]

    def _due_alerts(self, ledger: Ledger, store, route: Route, ids: Sequence[int],
                    now: datetime) -> list[dict]:
        if not ids:
            return []
        wanted = [s for s in SEVERITIES if route.alerts_on(s)]
        rows = store.list(ids, statuses=["new"], severities=wanted,
                          last_contact_since=now - ALERT_ACTIVE,
                          detected_since=now - ALERT_DETECTED)
        if rows.height == 0:
            return []
        batch = uuid.uuid4().hex
        out = []
        for (sensor,), part in rows.group_by("sensor"):
            keys = part["key"].to_list()
            known = ledger.find(route.name, "alert", int(sensor), keys)
            out += [{"route": route.name, "kind": "alert", "sensor": int(sensor),
                     "subject": k, "batch": batch} for k in keys if k not in known]
        return out

    def silence_state(self, sensor: int, now: datetime) -> tuple[datetime, datetime] | None:
        """(end of the last hour with flows, end of the newest cached hour) of the
        sensor's synced cache, or None when nothing is cached."""
        loader = self.service.loader
        hours = loader.store.hourly_rows(loader.source_id, sensor, filters_key(None), newest=8)
        if not hours:
            return None
        newest = max(hours) + HOUR
        with_data = [h for h, n in hours.items() if n > 0]
        last = (max(with_data) + HOUR) if with_data else min(hours)
        return last, newest

    def _due_silence(self, ledger: Ledger, route: Route, sensor: int,
                     state: tuple[datetime, datetime] | None) -> list[dict]:
        if state is None:
            return []
        last, newest = state
        limit = timedelta(hours=self.routes.silent_after_hours)
        episode = last.strftime("%Y-%m-%dT%H:%MZ")
        base = {"route": route.name, "sensor": sensor}
        if newest - last > limit:
            return [{**base, "kind": "silent", "subject": episode}]
        latest = ledger.latest_subject(route.name, "silent", sensor)
        if latest is not None and latest < episode:
            return [{**base, "kind": "back", "subject": latest}]
        return []

    # ------------------------------------------------------------------ send

    def send(self) -> list[Outcome]:
        """Send every unsent row of every route, the routes in parallel."""
        results: dict[str, list[Outcome]] = {}

        def work(route: Route) -> None:
            try:
                results[route.name] = self.send_route(route)
            except E.FluxError as exc:
                log.warning("notify %s: %s", route.name, str(exc).splitlines()[0])
                results[route.name] = []

        threads = [threading.Thread(target=work, args=(r,), name=f"notify-{r.name}",
                                    daemon=True) for r in self.routes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [o for r in self.routes for o in results.get(r.name, [])]

    def send_route(self, route: Route) -> list[Outcome]:
        ledger = self.ledger()
        rows = ledger.unsent(route.name, self.clock())
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["batch"] or f"row-{r['id']}", []).append(r)
        out = []
        for group in groups.values():
            if self.stop.is_set():
                break
            won = set(ledger.claim([r["id"] for r in group], self.worker, self.clock()))
            mine = [r for r in group if r["id"] in won]
            if mine:
                out.append(self._send_group(ledger, route, mine))
        return out

    def _send_group(self, ledger: Ledger, route: Route, rows: list[dict],
                    actor: str = "notifier") -> Outcome:
        kind, sensor = rows[0]["kind"], int(rows[0]["sensor"])
        subjects = tuple(r["subject"] for r in rows)
        ids = [r["id"] for r in rows]
        try:
            built = self.build(route, kind, sensor, rows)
        except E.FluxError as exc:  # data or database unavailable: back to pending
            ledger.release(ids)
            log.warning("notify %s: %s of sensor %s waits: %s", route.name, kind, sensor,
                        str(exc).splitlines()[0][:200])
            return Outcome(route.name, kind, sensor, subjects, "waiting",
                           error=str(exc).splitlines()[0][:200])
        if isinstance(built, tuple):  # (message, the ids it covers) for alerts
            message, keep = built
            dropped = [i for i in ids if i not in keep]
            if dropped:
                ledger.finish(dropped, False, self.clock(), status="dropped",
                              error="triaged or no longer new before it was sent")
            ids = [i for i in ids if i in keep]
            if message is None:
                return Outcome(route.name, kind, sensor, subjects, "dropped")
        elif built is None:
            ledger.release(ids)
            return Outcome(route.name, kind, sensor, subjects, "waiting")
        else:
            message = built
        pending = list(route.urls)
        error = ""
        tries = 0
        while pending and tries < self.attempts:
            if tries:
                if self.stop.wait(self.backoff_s * 2 ** (tries - 1)):
                    break
            tries += 1
            pending, error = deliver(pending, message, route.urls)
            if pending:
                ledger.attempt_failed(ids, f"attempt {tries}: {error}")
                log.warning("notify %s: %s of sensor %s failed (attempt %d of %d): %s",
                            route.name, kind, sensor, tries, self.attempts, error)
        ok = not pending
        if ok:
            ledger.finish(ids, True, self.clock(), late=message.title.startswith("[late]"))
        elif self.stop.is_set() and tries < self.attempts:
            ledger.release(ids)  # stopping: the next worker tries again
        else:
            n = len(route.urls)
            ledger.finish(ids, False, self.clock(), error=(
                f"{len(pending)} of {n} channel{'s' * (n > 1)} failed after {tries} tries: "
                f"{error}"))
        status = "sent" if ok else "failed"
        log.info("notify %s: %s of sensor %s %s (%s)", route.name, kind, sensor, status,
                 ", ".join(route.targets()))
        self._audit(route, kind, sensor, subjects, status, tries, actor)
        return Outcome(route.name, kind, sensor, subjects, status, tries,
                       None if ok else error, message.title)

    def _audit(self, route: Route, kind: str, sensor: int, subjects: Sequence[str],
               status: str, attempts: int, actor: str) -> None:
        if self.audit is None:
            return
        try:
            self.audit.record("notification", user=actor,
                              role="system" if actor == "notifier" else "admin",
                              sensor=sensor or None, route=route.name, kind=kind,
                              status=status, attempts=attempts, items=len(subjects),
                              detail=f"{kind} {subjects[0] if kind == 'daily' else ''}"
                              f" to {', '.join(route.targets())}".strip())
        except OSError as exc:
            log.warning("notify: the audit trail cannot be written: %s", exc.strerror)

    # ------------------------------------------------------------------ messages

    def build(self, route: Route, kind: str, sensor: int, rows: list[dict]):
        now = self.clock()
        links, shown = self.view(route)
        if kind == "test":
            return C.test_message(route.name, now)
        if kind == "daily":
            day = date.fromisoformat(rows[0]["subject"])
            late = now > self.digest_time(route, sensor, day) + LATE_AFTER
            return self.digest(sensor, day, route=route, late=late, now=now)
        if kind == "alert":
            keys = [r["subject"] for r in rows]
            found = self.store().list([sensor], keys=keys, statuses=["new"])
            keep = {r["id"] for r in rows if r["subject"] in set(found["key"].to_list())}
            if found.height == 0:
                return None, keep
            return C.alert(found, self._meta, self.tz, links=links, show=shown), keep
        if kind in ("silent", "back"):
            last = datetime.fromisoformat(rows[0]["subject"].replace("Z", "+00:00"))
            return C.silence(self.meta(sensor), self.tz(sensor), last, now, kind == "back",
                             links=links, show=shown, hours=self.routes.silent_after_hours)
        raise ValueError(f"unknown delivery kind {kind!r}")

    def digest(self, sensor: int, day: date, *, route: Route | None = None,
               masked: bool = False, late: bool = False, now: datetime | None = None,
               cache_only: bool = False) -> C.Message | None:
        """The digest of ``sensor``'s local ``day`` (None: the day's hours are still
        missing and it may wait). ``cache_only``: no request (IncompleteDataError when
        the flows are not all cached: the dashboard's preview)."""
        from flux_dashboard.triage import run

        now = now or self.clock()
        tz = self.tz(sensor)
        start, end = local_day_window(day, tz)
        week_start, week_end = local_day_window(day - timedelta(days=7), tz)
        loader = self.service.loader
        most = 0 if cache_only else None
        if self.detect:
            (a, b), (c, d) = run.worker_windows(end - timedelta(days=14), end)
            frame = loader.load(sensor, a, b, cancel=self.stop, max_requests=most).frame
            base = loader.load(sensor, c, d, cancel=self.stop, max_requests=most).frame
            found = run.detect_loaded(frame, base, self.meta(sensor))
            run.record(self.store(), found, now, demo=self.settings.demo)
        flows = loader.load(sensor, start, end, cancel=self.stop, max_requests=most)
        before = loader.load(sensor, week_start, week_end, cancel=self.stop,
                             max_requests=most).frame
        covered = len(loader.store.covered(loader.source_id, sensor, filters_key(None),
                                           hours_between(start, end)))
        coverage = covered / max(1, len(hours_between(start, end)))
        if coverage < 0.999 and route is not None \
                and now < self.digest_time(route, sensor, day) + INCOMPLETE_WAIT:
            return None
        store = self.store()
        new = store.list([sensor], first_contact=(start, end))
        counts = store.counts([sensor])
        open_counts = {s: int(counts.filter(pl.col("status") == s)["findings"].sum())
                       for s in OPEN}
        events = store.events(sensors=[sensor], between=(start, end))
        from flux_dashboard.triage.run import DETECTOR

        triaged = events.filter(pl.col("actor") != DETECTOR)
        links, shown = (self.view(route) if route is not None else
                        self.view(Route("preview", None, (), masked=masked)))
        return C.daily(self.meta(sensor), day, tz, flows.frame, before, new, open_counts,
                       triaged, links=links, show=shown, g_per_gb=self.settings.carbon_g_per_gb,
                       late=late, coverage=coverage)

    def send_test(self, route: Route, actor: str = "notifier") -> Outcome:
        """Record and send one test message to ``route`` (its own ledger row)."""
        now = self.clock()
        ledger = self.ledger()
        subject = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        ledger.record([{"route": route.name, "kind": "test", "sensor": 0,
                        "subject": subject}], now)
        row = ledger.find(route.name, "test", 0, [subject])[subject]
        if not ledger.claim([row["id"]], self.worker, now):
            return Outcome(route.name, "test", 0, (subject,), "waiting")
        return self._send_group(ledger, route, [row], actor)
