"""``Loader``: one load from the call to its result, and what loads share.

- **Memory and single flight.** A finished load is kept in memory
  (``memory_ttl_s``); a second caller of the very same window waits for the
  running load's result instead of fetching it again.
- **One fetch per sensor-day across loads and processes.** Before reading
  the cache, a load takes the locks of the sensor-days it may fetch (days of
  settled hours not all on disk, from file metadata), in sorted order so two
  loads never deadlock: ``shared.LocalLocks`` in one process, Redis locks with
  a renewed time-to-live with ``FLUX_REDIS_URL`` (shared by replicas, the sync
  worker and the CLI, taken over when a holder dies). A load that waited reads
  the cache its predecessor filled and fetches only the hours still missing.
  Open hours take no lock (they are never cached).
- **Cache.** Complete settled hours come from and go to the ``Store``; only
  missing hours are requested, so a warm revisit makes no flux request and an
  extended range fetches just the new hours; the open hour (and any hour not
  yet settled) is always fetched again and never written to disk. Batches are
  written as they complete (``fetch``), under the store's per-file lock; a
  cache that cannot be written does not fail the load.
- **The result.** Cached and fetched rows become one frame, checked for rows
  twice; what stopped the load becomes a plain error carrying the hours not
  loaded and the partial frame (``results``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
from cachetools import TTLCache

from flux_dashboard import clock as clock_mod
from flux_dashboard import errors as E
from flux_dashboard.client import Client
from flux_dashboard.hours import HOUR, SETTLE, ceil_hour, floor_hour, hours_between
from flux_dashboard.loader.cost import predict_planned, predict_walk
from flux_dashboard.loader.estimate import (
    ESTIMATE_TTL_S,
    ESTIMATE_WAIT_S,
    SHAPE_TTL_S,
    estimate_window,
)
from flux_dashboard.loader.fetch import Accumulator
from flux_dashboard.loader.gate import FATAL, Gate, Stop, gate_client
from flux_dashboard.loader.recheck import RECHECK_EVERY, recheck
from flux_dashboard.loader.results import (
    Estimate,
    LoadResult,
    Progress,
    ProgressFn,
    incomplete_message,
    stop_message,
)
from flux_dashboard.loader.segments import fetch_segments, segments_of
from flux_dashboard.schema import NATURAL_KEY, empty_frame
from flux_dashboard.schema import compact as compact_frame
from flux_dashboard.shared import LOCAL_LOCKS, LockWaitCancelled
from flux_dashboard.store import Store, filters_key

log = logging.getLogger(__name__)


class Loader:
    # Planned sumFlux windows (``segments``); False: the keyset walk alone (the bench's
    # "before").
    planning = True

    def __init__(self, client: Client, store: Store | None = None, *, per_page: int = 1000,
                 max_concurrency: int = 8, clock: Callable[[], datetime] | None = None,
                 memory_ttl_s: float = 300.0, memory_max_bytes: int = 2_000_000_000,
                 recheck_hours: int | None = None,
                 recheck_every: timedelta = RECHECK_EVERY, locks=None,
                 compact: bool = False) -> None:
        self.client = client
        # The dashboard's loader returns compact frames (``schema.compact``: repeated
        # strings as categoricals, each cached day cast as it is read); the CLI and
        # the tests keep FLOW_SCHEMA's Strings.
        self._form: Callable[[pl.DataFrame], pl.DataFrame] = (
            compact_frame if compact else (lambda df: df))
        # Single flight per sensor-day: shared.LocalLocks or RedisLocks.
        self.locks = locks or LOCAL_LOCKS
        self.store = store
        self.per_page = per_page
        self.max_concurrency = max(1, max_concurrency)
        self.clock = clock or clock_mod.real
        self.source_id = client.settings.source_id
        self.recheck_hours = (client.settings.recheck_hours if recheck_hours is None
                              else recheck_hours)
        self.recheck_every = recheck_every
        # (sensor, filters) -> when a recheck last failed: do not retry before recheck_every.
        self._recheck_failed: dict[tuple[int, str], datetime] = {}
        self._memory: TTLCache = TTLCache(maxsize=memory_max_bytes, ttl=memory_ttl_s,
                                          getsizeof=lambda r: max(1, r.frame.estimated_size()))
        self._memory_cond = threading.Condition()
        self._inflight: set[tuple] = set()
        # Estimates by (source, sensor, filters, start, end), dropped when a load of
        # that sensor and filters may have changed the cache; daily profiles by
        # (source, sensor, filters). Both small: a few numbers per entry.
        self._estimates: TTLCache = TTLCache(maxsize=512, ttl=ESTIMATE_TTL_S)
        self._estimating: dict[tuple, threading.Event] = {}  # estimates being computed
        self._shapes: TTLCache = TTLCache(maxsize=256, ttl=SHAPE_TTL_S)
        self._estimates_lock = threading.Lock()
        self._granted_page: int | None = None  # meta.per_page of the last full page asked
        # When /flux-hour-sensor last failed or answered nonsense: not asked again
        # for SHAPE_TTL (planned windows, segments.plan_rest).
        self._hint_failed_at: datetime | None = None

    # ------------------------------------------------------------------ public
    def load(self, sensor_id: int, start: datetime, end: datetime, *,
             server_filters: Mapping[str, object] | None = None,
             progress: ProgressFn | None = None, refresh: bool | str = False,
             cancel: threading.Event | None = None,
             max_requests: int | None = None) -> LoadResult:
        """All rows with ``start <= start_of_hour < end`` (see module docstring).

        ``refresh``: ``False`` may answer from memory; ``True`` or ``"open"``
        bypasses memory (the disk cache of settled hours is still used: only the
        open hours are fetched again); ``"range"`` fetches every hour of the
        range again, ignoring the disk cache, and rewrites it.

        ``cancel``: once set, no further flux request is made and
        ``LoadCancelledError`` is raised (what completed is cached).
        ``max_requests``: at most this many flux requests, retries included;
        ``BudgetExceededError`` if the window is not complete by then. ``0``
        reads the cache only: no request at all, not even for the open hours
        (returned in ``open_hours`` without rows) or a late-data recheck.
        Both errors carry the hours not loaded and the ``partial`` frame.
        """
        start, end, params = self._window(start, end, server_filters)
        if refresh not in (False, True, "open", "range"):
            raise E.ConfigError(f"refresh must be False, 'open' or 'range', not {refresh!r}.")
        if max_requests is not None and max_requests < 0:
            raise E.ConfigError("max_requests must be 0 or more.")
        cache_only = max_requests == 0
        key = (self.source_id, int(sensor_id), filters_key(params), start, end)
        registered = False
        with self._memory_cond:
            while True:
                hit = None if refresh else self._memory.get(key)
                if hit is not None:
                    return replace(hit, flux_requests=0, from_memory=True)
                if cache_only or (cancel is not None and cancel.is_set()):
                    break  # makes no request: neither waits for nor holds up another load
                if key not in self._inflight:
                    self._inflight.add(key)
                    registered = True
                    break
                # Someone else is loading this very window: wait for their result
                # (waking up now and then to notice a cancellation).
                self._memory_cond.wait(0.2 if cancel is not None else None)
        try:
            try:
                result = self._load(int(sensor_id), start, end, params, progress,
                                    whole_range=refresh == "range",
                                    gate=Gate(cancel, max_requests), cache_only=cache_only)
            except E.FluxError as exc:
                if getattr(exc, "partial", None) is not None:
                    exc.partial = self._form(exc.partial)
                raise
            result = replace(result, frame=self._form(result.frame))
            # A cache-only result skipped the open hours and the recheck: never
            # let it stand in for a full load.
            if not cache_only:
                with self._memory_cond:
                    try:
                        self._memory[key] = result
                    except ValueError:  # larger than the whole cache: just don't keep it
                        pass
            return result
        finally:
            if not cache_only:
                self._forget_estimates(int(sensor_id), key[2])
            if registered:
                with self._memory_cond:
                    self._inflight.discard(key)
                    self._memory_cond.notify_all()

    @staticmethod
    def _window(start: datetime, end: datetime, server_filters: Mapping[str, object] | None
                ) -> tuple[datetime, datetime, dict]:
        if start.tzinfo is None or end.tzinfo is None:
            raise E.ConfigError("Start and end must carry a time zone.")
        start, end = ceil_hour(start), ceil_hour(end)
        if end <= start:
            raise E.ConfigError("The end of the range must be after its start.")
        return start, end, dict(server_filters or {})

    def holds(self, sensor_id: int, start: datetime, end: datetime,
              server_filters: Mapping[str, object] | None = None) -> bool:
        """Whether this window's last load is in memory (``load`` returns it at once)."""
        start, end, params = self._window(start, end, server_filters)
        with self._memory_cond:
            return (self.source_id, int(sensor_id), filters_key(params), start,
                    end) in self._memory

    def expected_rows(self, sensor_id: int, start: datetime, end: datetime,
                      server_filters: Mapping[str, object] | None = None) -> int | None:
        """About how many rows the window holds, from the disk cache's metadata: the
        cached hours as written, the others at the cached hours' average. None when
        no hour of it is cached (nothing to go by). No request, no row read."""
        if self.store is None:
            return None
        start, end, params = self._window(start, end, server_filters)
        past = [h for h in hours_between(start, end) if h <= floor_hour(self.clock())]
        rows, covered = self.store.rows_in(self.source_id, sensor_id, filters_key(params),
                                           past)
        if not covered:
            return None
        return round(rows + rows / covered * (len(past) - covered))

    def cached_coverage(self, sensor_id: int, start: datetime, end: datetime,
                        server_filters: Mapping[str, object] | None = None) -> float:
        """Share of the settled hours of ``[start, end)`` already on disk (0..1)."""
        start, end = ceil_hour(start), ceil_hour(end)
        key = (self.source_id, int(sensor_id), filters_key(server_filters), start, end)
        if key in self._memory:
            return 1.0
        settled = [h for h in hours_between(start, end) if h + HOUR + SETTLE <= self.clock()]
        if not settled or self.store is None:
            return 0.0
        # Metadata only: this runs on every Streamlit rerun of a toxic-only view.
        covered = self.store.covered(self.source_id, sensor_id, filters_key(server_filters),
                                     settled)
        return len(covered) / len(settled)

    def estimate(self, sensor_id: int, start: datetime, end: datetime, *,
                 server_filters: Mapping[str, object] | None = None) -> Estimate:
        """What ``load`` of this window would cost now (``estimate``).

        Counts the missing hours with ``per_page=1`` requests (``spent``), through
        the same client and rate limiter as loads; nothing when only open hours
        are missing. Reused for ``ESTIMATE_TTL_S`` per window and filters, until a
        load of that sensor and filters changes the cache. An API failure gives a
        cautious estimate (``exact=False``); only errors a load would stop on too
        (key refused, sensor forbidden or unknown, request refused) are raised.
        """
        start, end, params = self._window(start, end, server_filters)
        sensor_id = int(sensor_id)
        key = (self.source_id, sensor_id, filters_key(params), start, end)
        if key in self._memory:
            return Estimate(requests=0, missing_hours=0, rows=0)
        with self._estimates_lock:
            hit = self._estimates.get(key)
            flight = self._estimating.get(key) if hit is None else None
            mine = hit is None and flight is None
            if mine:  # single flight: sessions opening one cold range price it once
                flight = self._estimating[key] = threading.Event()
        if hit is not None:
            return replace(hit, spent=0)
        if not mine:
            flight.wait(ESTIMATE_WAIT_S)
            with self._estimates_lock:
                hit = self._estimates.get(key)
            if hit is not None:
                return replace(hit, spent=0)
        try:  # (the other estimate failed or is slow: this one prices it itself)
            result = estimate_window(self, sensor_id, start, end, params)
            with self._estimates_lock:
                self._estimates[key] = result
        finally:
            if mine:
                with self._estimates_lock:
                    self._estimating.pop(key, None)
                flight.set()
        return result

    def refetch_estimate(self, sensor_id: int, start: datetime, end: datetime, *,
                         server_filters: Mapping[str, object] | None = None) -> Estimate:
        """What ``load(refresh="range")`` would cost: every hour fetched again. The
        cached hours are priced from their cached row counts (no request), the
        others as ``estimate`` prices them."""
        base = self.estimate(sensor_id, start, end, server_filters=server_filters)
        start, end, params = self._window(start, end, server_filters)
        if self.store is None:
            return base
        hours = hours_between(start, end)
        have = self.store.hourly_rows(self.source_id, int(sensor_id), filters_key(params),
                                      sorted({h.date() for h in hours}))
        cached = [[float(have[h]) for h in hours if h in have]]
        if not cached[0]:
            return base
        page = self._granted_page or self.per_page
        again = (predict_planned if self.planning else predict_walk)(cached, page,
                                                                  self.max_concurrency)
        return replace(base, requests=base.requests + again, missing_hours=len(hours),
                       rows=None if base.rows is None else base.rows + int(sum(cached[0])))

    def _forget_estimates(self, sensor_id: int, fkey: str) -> None:
        prefix = (self.source_id, sensor_id, fkey)
        with self._estimates_lock:
            for key in [k for k in self._estimates if k[:3] == prefix]:
                self._estimates.pop(key, None)

    def _day_locks(self, sensor_id: int, fkey: str, settled: list[datetime],
                   whole_range: bool) -> list[str]:
        """Names of the sensor-days this load may fetch: the days of its
        settled hours not all on disk (metadata only). Open hours are never cached,
        so never shared: they take no lock."""
        if self.store is None or not settled:
            return []
        todo = settled if whole_range else sorted(
            set(settled) - self.store.covered(self.source_id, sensor_id, fkey, settled))
        src = hashlib.blake2b(self.source_id.encode(), digest_size=8).hexdigest()
        return [f"{src}:{sensor_id}:{fkey}:{d}" for d in sorted({h.date() for h in todo})]

    def _load(self, sensor_id: int, start: datetime, end: datetime, params: dict,
              progress: ProgressFn | None, whole_range: bool = False,
              gate: Gate | None = None, cache_only: bool = False) -> LoadResult:
        gate = gate or Gate()
        gate_client(self.client)
        now = self.clock()
        open_from = floor_hour(now - SETTLE)  # hours from here on may still change
        past = [h for h in hours_between(start, end) if h <= floor_hour(now)]
        settled = [h for h in past if h < open_from]
        names = [] if cache_only else self._day_locks(sensor_id, filters_key(params),
                                                      settled, whole_range)
        try:
            with self.locks.hold(names, gate.cancel):
                # Read the cache only now: a load of the same days that held the
                # locks before us (here or in another process) has just filled it.
                return self._load_held(sensor_id, start, end, params, progress, whole_range,
                                       gate, cache_only, now, open_from, past, settled)
        except LockWaitCancelled:
            missing = sorted(set(past) - (self.store.covered(
                self.source_id, sensor_id, filters_key(params), settled)
                if self.store is not None else set()))
            partial = (self.store.read(self.source_id, sensor_id, filters_key(params),
                                       settled)[0] if self.store is not None else None)
            raise E.LoadCancelledError(
                stop_message(missing, True, gate.limit) if missing else
                "The load was cancelled while it waited for another load of the same days.",
                hours=missing, partial=partial) from None

    def _load_held(self, sensor_id: int, start: datetime, end: datetime, params: dict,
                   progress: ProgressFn | None, whole_range: bool, gate: Gate,
                   cache_only: bool, now: datetime, open_from: datetime,
                   past: list[datetime], settled: list[datetime]) -> LoadResult:
        """The load once its sensor-days are held: cache, recheck, fetch, result."""
        fkey = filters_key(params)
        cached = empty_frame()
        covered: set[datetime] = set()
        if self.store is not None and settled and not whole_range:
            cached, covered = self.store.read(self.source_id, sensor_id, fkey, settled,
                                              transform=self._form)
        acc = Accumulator(self._saver(sensor_id, fkey, open_from, now))

        def report() -> None:
            if progress:
                done = gate.used
                progress(Progress(done, max(done, acc.planned), cached.height + acc.rows,
                                  len(covered) + len(acc.hours), len(past),
                                  self.client.limiter.per_minute))

        rechecked, late = 0, []
        error: BaseException | None = None
        if covered and not cache_only:
            try:
                cached, covered, rechecked, late = recheck(
                    self, sensor_id, params, fkey, cached, covered, now, report, gate)
            except Stop as stop:  # cancelled while counting: the cache is as it was
                error = stop
        missing = [h for h in past if h not in covered]
        if missing and error is None and not cache_only:
            report()
            try:
                fetch_segments(self, sensor_id, segments_of(missing), params, acc, report,
                               open_from, gate)
            except BaseException as exc:  # cached what completed before re-raising
                error = exc
        frame = self._assemble(cached, acc)
        incomplete = sorted(set(missing) - acc.hours)
        if cache_only and all(h >= open_from for h in incomplete):
            incomplete = []  # only the open hours: not refreshed, listed in open_hours
        self._raise_unless_complete(incomplete, error, cache_only, gate, frame, report)
        report()
        return LoadResult(frame=frame, start=start, end=end, server_filters=params,
                          flux_requests=gate.used,
                          cached_hours=len(covered), fetched_hours=len(acc.hours),
                          open_hours=[h for h in past if h >= open_from], loaded_at=now,
                          rechecked_hours=rechecked, late_hours=late)

    def _saver(self, sensor_id: int, fkey: str, open_from: datetime, now: datetime
               ) -> Callable[[pl.DataFrame, set[datetime]], None]:
        """Where accepted batches go: their settled hours to disk at once, so that an
        interrupted load resumes from them. A cache that cannot be written (disk
        full...) costs refetching later, never this load."""
        store = self.store
        unwritable: list[str] = []

        def save(frame: pl.DataFrame, hours: set[datetime]) -> None:
            settled_hours = {h for h in hours if h < open_from}
            if store is None or not settled_hours:
                return
            try:
                store.write(self.source_id, sensor_id, fkey, settled_hours, frame,
                            checked_at=now)
            except OSError as exc:
                if not unwritable:
                    log.warning("cannot write the cache of sensor %s (%s); loading goes on",
                                sensor_id, exc.__class__.__name__)
                unwritable.append(exc.__class__.__name__)

        return save

    def _assemble(self, cached: pl.DataFrame, acc: Accumulator) -> pl.DataFrame:
        """Cached and fetched rows as one frame sorted by hour; a row twice fails the load."""
        fetched = pl.concat(acc.frames) if acc.frames else empty_frame()
        # A row twice means the load went wrong. The cache holds no such thing (each
        # write replaces the hours it names, from one verified window, and the store
        # refuses a frame with a key twice); the rows returned must not either.
        dup = fetched.height - fetched.select(pl.struct(NATURAL_KEY).n_unique()).item()
        if dup:
            raise E.IncompleteDataError(f"{dup} rows came back twice; the load was discarded. "
                                        "Try again.", hours=[], partial=None)
        frames = [self._form(f) for f in (cached, *acc.frames) if f.height]
        frame = pl.concat(frames or [self._form(empty_frame())], rechunk=True)
        if not frame.get_column("start_of_hour").is_sorted():  # cached days come sorted
            frame = frame.sort("start_of_hour", maintain_order=True)
        return frame

    @staticmethod
    def _raise_unless_complete(incomplete: list[datetime], error: BaseException | None,
                               cache_only: bool, gate: Gate, frame: pl.DataFrame,
                               report: Callable[[], None]) -> None:
        """What stopped the load, as the error it raises (with the partial frame)."""
        if error is not None and isinstance(error, FATAL):
            raise error
        if incomplete and (cache_only or isinstance(error, Stop)):
            report()
            cancelled = isinstance(error, Stop) and error.cancelled
            cls = E.LoadCancelledError if cancelled else E.BudgetExceededError
            raise cls(stop_message(incomplete, cancelled, gate.limit), hours=incomplete,
                      partial=frame)
        if isinstance(error, Stop):
            error = None  # stopped once nothing was missing any more
        if incomplete:
            raise E.IncompleteDataError(
                incomplete_message(incomplete, error), hours=incomplete, partial=frame,
                cause=error)
        if error is not None:
            raise error
