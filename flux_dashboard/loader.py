"""Load every flux row of a sensor for ``[start, end)`` exactly once.

The contract: for one sensor, a set of server-side filters and a half-open
range on ``start_of_hour``, return every row exactly once, or raise
``IncompleteDataError`` naming the hours that could not be completed.

Why not just page through? The API pages with LIMIT/OFFSET over a sort key
that is never unique (hundreds of rows share an hour), and rows that tie come
back in a different order on each request, so offset pages can return some
rows twice and others never. What *is* stable is which key occupies which
position: if a group of rows sharing a key lies entirely inside one page, that
page holds the whole group, whatever the order of ties. The strategy builds on
that and never trusts tie order:

1. **Keyset by hour.** Ask for a window of hours sorted by ``startOfHour``
   ascending, page 1 only. If ``meta.total`` fits in the page, the window is
   complete. Otherwise every hour in the page except the last one is complete
   (the page starts at position 0 and is full), so we keep those and move the
   cursor to the last hour. No page 2 is ever requested at this level. Window
   sizes adapt to the observed rows per hour, aiming at 90% of a page.
2. **Dense hours.** An hour that alone fills a page is split on a second key
   (``ip0``, then ``ip1``, ``dir``, ``protocol``, ``port``): page 1 ascending
   plus page 1 descending cover any group of up to two pages; a key group that
   lies wholly inside one of them is complete. A group that straddles both (or,
   beyond two pages, any page boundary) is fetched again on its own with the
   key as a filter, one level down. Beyond two pages, middle pages are fetched
   and judged the same way.
3. **Verification.** Every window checks its distinct natural keys against
   ``meta.total`` (complete windows) or the page size (keyset pages), and each
   contiguous segment checks its final count against the total announced for
   it. ``from`` and ``to`` are each sent one second early (before the window's
   first hour, before its end) so the answer is the same whether the API treats
   either bound as inclusive or exclusive; rows outside the window are trimmed
   anyway. Rows with a natural key twice fail the load. (On disk an hour's rows
   always come from one verified window: a write replaces the hours it names.)
4. **Concurrency and cost.** After the first request of a segment reveals
   its size, the rest is cut into chunks that run in parallel (at most
   ``max_concurrency``), all behind the process-wide rate limiter. Keyset pages
   waste only the partial last hour, so evenly spread rows cost about
   rows / (0.9 × page) requests plus one per chunk. But a window holds whole
   hours only, so an hour of more than 0.45 page costs a request of its own
   however few rows it has: a sensor whose working hours hold half a page to a
   page each costs up to about 2 × rows / page (a week of sensor 54 in the
   simulator: 39k rows, 81 requests where the even spread would take 57). Dense
   hours cost two per hour up to two pages of rows; overall within
   2 × ceil(rows / page) + 10. That is the walk alone (``Loader.planning =
   False``, and the fallback of point 10); big segments are planned instead.
5. **Cache.** Complete past hours come from / go to the ``Store`` (as they
   complete: point 9); only missing hours are requested, so a warm revisit
   makes no flux request, an extended range fetches just the new hours, and the
   open hour (and any hour not yet settled) is always fetched again and never
   written to disk.
6. **Late data.** A sensor that loses its link uploads its buffered rows later,
   into hours already cached as final. So cached hours younger than
   ``recheck_hours`` (default 48) are re-counted, at most every
   ``recheck_every`` (15 min; the store records when each hour was last checked,
   fetching counts, so reruns and new processes do not ask again): one request
   with ``per_page=1`` per run of contiguous due hours, whose ``meta.total`` is
   compared with the cached rows. A run that differs is halved, counting the
   left half and deducing the right one from the run's total, down to single
   hours; only the hours that differ are refetched whole and replace their
   cached rows. Cost: one request per 15 minutes per sensor and filter set when
   nothing changed; about 1 + log2(run length) per changed stretch otherwise,
   plus the refetch. Counting cannot see rows that grew without a new row
   appearing (an outage cutting through an hour whose flows already had a row):
   ``refresh="range"`` refetches the whole range, ignoring the cache.
7. **Estimate.** ``estimate`` says what a load would cost before it starts:
   nothing asked when only open hours are missing (one request per run of
   them), else one ``per_page=1`` count per missing segment (or over their
   span, less the rows cached inside it, beyond three segments), the first
   time a full page instead, whose ``meta.per_page`` shows the page size the
   server grants. The cost depends on how rows spread over hours (point 4), so
   the counted rows are laid over the missing hours along the sensor's
   working-day profile of rows per hour, the weekend taking the rest, and the
   requests are those the walk of points 1, 2 and 4 makes over them (with
   ``planning`` on: the head, one hourly count and the planned windows of
   point 10 over them, for a rest bigger than ``PLAN_FROM`` pages), plus one
   per due recheck run. The profile comes from whole cached working days, or
   from six single hours counted across the day when the load is big enough
   to be worth it (an even spread already predicting 40 requests; kept an
   hour); a smaller load without one takes the middle between the even spread
   and 2 × rows / page. So an estimate costs 1 to 3 requests, 7 to 9 the first
   time a sensor has a big uncached range. On the simulator's sensor 54, cold:
   a day 15 for 15, a week 73 for 81, a month 299 for 309, a week with pages
   capped at 300 rows 166 for 169; with one cached day as profile, a week 64
   for 62, a month 303 for 300 (these figures: the walk alone; planned, a cold
   week 42 for 43). Estimates are kept three minutes per window
   and filters (Streamlit reruns on every click) and dropped when a load of
   that sensor and filters ends. If counting fails (two retries, then it gives
   up), the answer is one request per missing hour and per segment,
   ``exact=False``.
8. **Cancel and allowance.** Every attempt, retries included, first passes
   the load's gate, in the thread that makes it (the client's limiter is
   wrapped for that): a set ``cancel`` event or a spent ``max_requests``
   refuses it, also while waiting for a rate-limit slot. Requests already sent
   complete and their hours are kept; then ``LoadCancelledError`` or
   ``BudgetExceededError`` is raised with the hours not loaded and the partial
   frame (cached and completed hours). Worst case after a cancel: one request
   in flight per worker (``max_concurrency``), none started after it.
   ``max_requests=0`` reads the cache only: no recheck, no open hour (listed in
   ``open_hours`` with no rows; such a result is never kept in memory).
9. **Saving as it goes.** Each batch of hours accepted by points 1-3 is
   written to the ``Store`` at once, its settled hours only: the store merges
   it into the day's file under a per-file lock (shared by every ``Store`` of
   the process), reading the file again, so chunks finishing together never
   drop each other's hours, and renames a complete file into place. A
   cancelled, stopped or killed load therefore resumes where it stopped: the
   next load fetches only the hours still missing (a week cancelled after 31
   of its 81 requests: 50 more). A segment whose final count disagrees with its
   first request's (point 3) has its hours taken back out of the cache. A cache
   that cannot be written does not fail the load. Cost: one read-merge-write of
   a day file per accepted window.
10. **Planned windows** (what brings a cold load near the limit ceil(rows /
   page)). When a segment's rest after its head holds more than ``PLAN_FROM``
   pages, one request to ``/flux-hour-sensor`` (one per page of hours: a month
   is one) reads each hour's ``count``. It is a hint: its sum over the rest must
   equal what the head's ``meta.total`` leaves (within 2%, the open hour may
   grow; with server filters, which it does not apply, it must be at least
   that and is scaled down), else the walk of point 1 takes that segment; an
   endpoint that fails or answers nonsense is not asked again for an hour. The
   settled hours are then cut, by dynamic programming, into windows of whole
   hours of up to ``WINDOW_PAGES`` pages (less ``OVERLAP`` rows), or one hour
   however big, each costing the fewest requests: a window of ≤ 1 page costs
   one, a bigger one ceil((rows + OVERLAP) / page). A window is read sorted by
   ``sumFlux``: ascending pages 1..n-1 and page 1 descending, which overlap by
   at least ``OVERLAP`` rows. sumFlux ties are rare (most rows have their own
   volume), and the positions a value occupies are the same on every request
   even when the order of tied rows is not, so a value whose run lies inside
   one page, a different value on either side, has all its rows there. A run
   cut by a page edge is read from the page of the other grid (descending pages
   start at ``total`` mod page) that holds it whole, one request. The window is
   accepted when its distinct rows equal its ``meta.total`` (every page must
   announce the same total); otherwise it is tried once more, then its hours
   take the walk of points 1-2, as does any window whose volumes are not sorted
   as in + out or whose run no page holds. Direction sub-streams (``only_in`` /
   ``only_out``) were measured and left out: IN is 0.3-2% of the simulator's
   rows, so splitting on it saves nothing. Cost on the simulator's sensor 54,
   cold, hazards on, ÷ ceil(rows / 1000): a week ×1.07, a month ×1.05, the dense
   month ×1.19 (its hours hold 4.1 pages each, and a window never splits an
   hour), the hourly counts included. Worst case: a wrong hint that still adds
   up (counts moved between hours) makes windows too big (halved once they
   exceed 4 × ``WINDOW_PAGES`` pages: one wasted request) or too small (one
   request each), about the walk's 2× at worst, never a row; a window that
   falls back costs its sumFlux requests on top of the walk over its hours.
   A cancelled window loses its pages (up to ``WINDOW_PAGES`` - 1 requests per
   worker): its hours are saved only once all of them are in.
11. **One fetch per sensor-day across loads and processes.** Before reading
   the cache, a load takes the locks of the sensor-days it may fetch (days of
   settled hours not all on disk, from file metadata), in sorted order so two
   loads never deadlock. In one process they are ``shared.LocalLocks``; with
   ``FLUX_REDIS_URL`` they are Redis locks with a renewed time-to-live, shared
   by replicas, the sync worker and the CLI, and taken over when a holder
   dies. A load that waited reads the cache its predecessor filled and
   fetches only the hours still missing. Open hours take no lock (they are
   never cached). Cancelling while waiting raises ``LoadCancelledError``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import polars as pl
from cachetools import TTLCache

from flux_dashboard import clock as clock_mod
from flux_dashboard import errors as E
from flux_dashboard.client import Client, FluxPage, _parse_meta
from flux_dashboard.hours import HOUR, SETTLE, ceil_hour, floor_hour, hours_between, iso
from flux_dashboard.schema import NATURAL_KEY, empty_frame, to_frame
from flux_dashboard.schema import compact as compact_frame
from flux_dashboard.shared import LOCAL_LOCKS
from flux_dashboard.shared import LockWaitCancelled as _LockWaitCancelled
from flux_dashboard.store import Store, filters_key

log = logging.getLogger(__name__)

RECHECK_EVERY = timedelta(minutes=15)  # a recent cached hour is re-counted at most this often
FILL = 0.9  # keyset windows aim at this share of a page
ESTIMATE_TTL_S = 180.0  # an estimate is reused this long (Streamlit reruns on every click)
SHAPE_TTL_S = 3600.0  # a sensor's daily profile of rows per hour is kept this long
SHAPE_TTL = timedelta(seconds=SHAPE_TTL_S)  # ... and a failed hourly count is not retried
MAX_COUNTS = 3  # more missing segments than this are counted as one span
SAMPLE_HOURS = 6  # single hours counted to learn a sensor's daily profile, when worth it
SAMPLE_FROM = 40  # ... that is, when an even spread already predicts this many requests
# Keys used to split a dense hour, with the filter that isolates one value.
# Planned windows (point 10): windows of whole hours aim at this many pages of rows...
WINDOW_PAGES = 3
# ... less this many rows, so that the last ascending page and page 1 descending overlap
# and a run of rows tied on sumFlux at their junction is seen whole in one of them.
OVERLAP = 30
PLAN_FROM = 2  # plan a segment's rest when it holds more than this many pages of rows
HINT_PATH = "flux-hour-sensor"  # per-hour statistics: its `count` is the planning hint
SPLIT_LEVELS: tuple[tuple[str, str], ...] = (
    ("ip0", "ip0"), ("ip1", "ip1"), ("dir", "dir"), ("protocol", "protocol"), ("port", "port"),
)
FATAL = (E.AuthenticationError, E.ForbiddenError, E.NotFoundError, E.InvalidRequestError,
         E.RateLimitedError)


@dataclass
class Progress:
    requests_done: int
    requests_planned: int
    rows: int
    hours_done: int
    hours_total: int
    rate_limit_per_min: int

    @property
    def fraction(self) -> float:
        if self.requests_planned <= 0:
            return 1.0
        return min(1.0, self.requests_done / self.requests_planned)

    @property
    def seconds_left(self) -> float:
        """Time left at the rate limit (the bottleneck on a real key)."""
        left = max(0, self.requests_planned - self.requests_done)
        return left * 60.0 / self.rate_limit_per_min


ProgressFn = Callable[[Progress], None]


_TOKENS = itertools.count(1)


@dataclass
class LoadResult:
    frame: pl.DataFrame
    start: datetime
    end: datetime
    server_filters: dict = field(default_factory=dict)
    flux_requests: int = 0
    cached_hours: int = 0
    fetched_hours: int = 0
    open_hours: list[datetime] = field(default_factory=list)  # still being written
    loaded_at: datetime | None = None
    from_memory: bool = False
    rechecked_hours: int = 0  # cached hours re-counted for late uploads
    late_hours: list[datetime] = field(default_factory=list)  # found changed and refetched
    # Process-unique serial of the load that produced ``frame``: derived caches key
    # on it (never on ``id(frame)``, which a later frame can reuse once this one is
    # freed). ``replace()`` keeps it, so a memory hit keeps its derived results.
    token: int = field(default_factory=lambda: next(_TOKENS))


@dataclass(frozen=True)
class Estimate:
    """What loading a window would cost (module docstring, point 7)."""

    requests: int  # flux requests the load would make, recheck counts included
    missing_hours: int  # hours not in the disk cache, open hours included
    rows: int | None  # rows to fetch; None when not counted
    spent: int = 0  # requests this estimate itself made (0 when reused or not needed)
    exact: bool = True  # False: the API could not count; ``requests`` is a cautious default


class _Stop(Exception):
    """A load's cancel event is set, or its request allowance is spent."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "request allowance spent")
        self.cancelled = cancelled


class _Gate:
    """Admits the flux requests of one load: its cancel event and its allowance.

    Taken before every attempt (retries included) by ``_GatedLimiter`` in the
    requesting thread, so ``used`` is exactly what this load sent, whatever
    other loads share the client.
    """

    def __init__(self, cancel: threading.Event | None = None, limit: int | None = None) -> None:
        self.cancel = cancel
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.cancel is not None and self.cancel.is_set():
                raise _Stop(cancelled=True)
            if self.limit is not None and self.used >= self.limit:
                raise _Stop(cancelled=False)
            self.used += 1

    def refund(self) -> None:
        with self._lock:
            self.used -= 1


_current = threading.local()  # .gate: the gate of the flux request this thread is making


class _GatedLimiter:
    """The client's rate limiter with the calling thread's load gate in front of it.

    The client calls ``limiter.acquire()`` right before each attempt, retries
    included, in the thread that asked: the one place where a load can refuse
    an attempt it has no allowance for, or stop waiting for a slot once it is
    cancelled. Requests made outside a load (no gate) pass straight through.
    """

    def __init__(self, inner) -> None:
        self._inner = inner

    def acquire(self) -> None:
        gate: _Gate | None = getattr(_current, "gate", None)
        if gate is None:
            self._inner.acquire()
            return
        gate.take()
        if gate.cancel is None:
            self._inner.acquire()
            return
        wait = self._inner.reserve()
        if wait > 0 and gate.cancel.wait(wait):  # cancelled while waiting for the slot
            gate.refund()
            raise _Stop(cancelled=True)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


_gating = threading.Lock()


def _gate_client(client: Client) -> None:
    with _gating:
        if not isinstance(client.limiter, _GatedLimiter):
            client.limiter = _GatedLimiter(client.limiter)


class _Acc:
    """Thread-safe accumulator of complete hours and their rows.

    ``save(frame, hours)``, if given, receives every accepted batch right away
    (the loader writes its settled hours to disk: point 9 of the module docstring).
    """

    def __init__(self, save: Callable[[pl.DataFrame, set[datetime]], None] | None = None
                 ) -> None:
        self.lock = threading.Lock()
        self.frames: list[pl.DataFrame] = []
        self.hours: set[datetime] = set()
        self.rows = 0
        self.requests = 0
        self.planned = 0
        self.save = save

    def add(self, frame: pl.DataFrame, hours: set[datetime]) -> None:
        with self.lock:
            if frame.height:
                self.frames.append(frame)
            self.hours |= hours
            self.rows += frame.height
        if self.save is not None and hours:
            self.save(frame, hours)


class Loader:
    planning = True  # point 10; False: the keyset walk alone (the bench's "before")

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
        # Single-flight per sensor-day (point 11): shared.LocalLocks or RedisLocks.
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
        self._shapes: TTLCache = TTLCache(maxsize=256, ttl=SHAPE_TTL_S)
        self._estimates_lock = threading.Lock()
        self._granted_page: int | None = None  # meta.per_page of the last full page asked

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
                                    gate=_Gate(cancel, max_requests), cache_only=cache_only)
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
        """What ``load`` of this window would cost now (module docstring, point 7).

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
        if hit is not None:
            return replace(hit, spent=0)
        result = self._estimate(sensor_id, start, end, params)
        with self._estimates_lock:
            self._estimates[key] = result
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
        again = (_predict_planned if self.planning else _predict)(cached, page,
                                                                  self.max_concurrency)
        return replace(base, requests=base.requests + again, missing_hours=len(hours),
                       rows=None if base.rows is None else base.rows + int(sum(cached[0])))

    def _forget_estimates(self, sensor_id: int, fkey: str) -> None:
        prefix = (self.source_id, sensor_id, fkey)
        with self._estimates_lock:
            for key in [k for k in self._estimates if k[:3] == prefix]:
                self._estimates.pop(key, None)

    def _estimate(self, sensor_id: int, start: datetime, end: datetime, params: dict
                  ) -> Estimate:
        _gate_client(self.client)
        now = self.clock()
        open_from = floor_hour(now - SETTLE)
        past = [h for h in hours_between(start, end) if h <= floor_hour(now)]
        settled = [h for h in past if h < open_from]
        fkey = filters_key(params)
        covered: set[datetime] = set()
        if self.store is not None and settled:
            covered = self.store.covered(self.source_id, sensor_id, fkey, settled)
        recheck = len(_segments(self._due(sensor_id, fkey, covered, now)))
        missing = [h for h in past if h not in covered]
        segments = _segments(missing)
        if all(h >= open_from for h in missing):  # nothing, or just the open hours
            return Estimate(requests=recheck + len(segments), missing_hours=len(missing),
                            rows=0 if not missing else None)
        # One count per segment; a scattered cache is counted as one span, less the
        # rows cached inside it (read from the cache files).
        scattered = len(segments) > MAX_COUNTS
        spans = [(segments[0][0], segments[-1][1])] if scattered else segments
        gate = _Gate(limit=len(spans) + 2)  # two retries, then give up
        fetch = _Fetcher(self, sensor_id, params, _Acc(), lambda: None, gate)
        try:
            totals = [fetch.count(a, b, learn_page=self._granted_page is None)
                      for a, b in spans]
            if scattered:
                a, b = spans[0]
                inside = {h for h in covered if a <= h < b}
                days = sorted({h.date() for h in inside})
                have = self.store.hourly_rows(self.source_id, sensor_id, fkey, days) \
                    if self.store is not None and days else {}
                cached_rows = sum(n for h, n in have.items() if h in inside)
                units = [(missing, max(0, totals[0] - cached_rows))]
            else:
                units = [(hours_between(a, b), t) for (a, b), t in zip(spans, totals,
                                                                      strict=True)]
            page = self._granted_page or self.per_page
            shape = self._shape(sensor_id, fkey)
            sampleable = [h for h in missing if h < open_from]
            if shape is None and len(sampleable) >= 24:  # shorter ranges: see below
                flat = _expected_rows(units, None)
                even = [[flat[h] for h in hours_between(a, b)] for a, b in segments]
                if _predict(even, page, self.max_concurrency) >= SAMPLE_FROM:
                    gate.limit = gate.used + SAMPLE_HOURS + 2
                    shape = self._sample_shape(fetch, sensor_id, fkey, sampleable)
        except (E.AuthenticationError, E.ForbiddenError, E.NotFoundError,
                E.InvalidRequestError, E.RateLimitedError):
            # Final answers (a 429 reaches us only once it is a quota or a long pause):
            # a load would get the same, so say it now rather than guess a cost.
            raise
        except (E.FluxError, _Stop) as exc:
            log.info("estimate for sensor %s fell back to a default (%s)", sensor_id,
                     exc.__class__.__name__)
            # Cautious: one request per missing hour (a page of rows an hour) and one
            # per segment, where most sensors need far fewer.
            return Estimate(requests=recheck + len(missing) + len(segments),
                            missing_hours=len(missing), rows=None, spent=gate.used,
                            exact=False)
        expected = _expected_rows(units, shape)
        rows = [[expected[h] for h in hours_between(a, b)] for a, b in segments]
        failed = getattr(self, "_hint_failed_at", None)
        planned = self.planning and (failed is None or now - failed >= SHAPE_TTL)
        requests = (_predict_planned if planned else _predict)(rows, page, self.max_concurrency)
        total = sum(map(sum, rows))
        if shape is None and not planned:
            # A small load and no profile of this sensor yet: an even spread is the
            # cheapest case (busy hours cost a request each however few rows they
            # have), two requests per page of rows about the dearest. Take the middle.
            dearest = 2 * math.ceil(total / page) + len(segments)
            requests = (requests + max(requests, dearest) + 1) // 2
        return Estimate(requests=recheck + requests, missing_hours=len(missing),
                        rows=round(total), spent=gate.used)

    def _shape(self, sensor_id: int, fkey: str) -> list[float] | None:
        """This sensor's rows per UTC hour of a working day: remembered, or from its cache."""
        key = (self.source_id, sensor_id, fkey)
        with self._estimates_lock:
            shape = self._shapes.get(key)
        if shape is None and self.store is not None:
            # Whole days only: a partly cached day lacks the hours a cancelled load
            # had not reached, and those tend to be the busy ones.
            rows = self.store.hourly_rows(self.source_id, sensor_id, fkey)
            per_day: dict = {}
            for h in rows:
                per_day[h.date()] = per_day.get(h.date(), 0) + 1
            shape = _profile({h: n for h, n in rows.items() if per_day[h.date()] == 24})
            if shape is not None:
                with self._estimates_lock:
                    self._shapes[key] = shape
        return shape

    def _sample_shape(self, fetch: _Fetcher, sensor_id: int, fkey: str,
                      hours: list[datetime]) -> list[float] | None:
        """Count a few single hours spread over the day to learn the daily profile."""
        counts = {h: fetch.count(h, h + HOUR) for h in _sample_hours(hours, SAMPLE_HOURS)}
        shape = _profile(counts, need_every_hour=False)
        if shape is not None:
            with self._estimates_lock:
                self._shapes[(self.source_id, sensor_id, fkey)] = shape
        return shape

    # ------------------------------------------------------------------ orchestration
    def _day_locks(self, sensor_id: int, fkey: str, settled: list[datetime],
                   whole_range: bool) -> list[str]:
        """Names of the sensor-days this load may fetch (point 11): the days of its
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
              gate: _Gate | None = None, cache_only: bool = False) -> LoadResult:
        gate = gate or _Gate()
        _gate_client(self.client)
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
        except _LockWaitCancelled:
            missing = sorted(set(past) - (self.store.covered(
                self.source_id, sensor_id, filters_key(params), settled)
                if self.store is not None else set()))
            partial = (self.store.read(self.source_id, sensor_id, filters_key(params),
                                       settled)[0] if self.store is not None else None)
            raise E.LoadCancelledError(
                _stop_message(missing, True, gate.limit) if missing else
                "The load was cancelled while it waited for another load of the same days.",
                hours=missing, partial=partial) from None

    def _load_held(self, sensor_id: int, start: datetime, end: datetime, params: dict,
                   progress: ProgressFn | None, whole_range: bool, gate: _Gate,
                   cache_only: bool, now: datetime, open_from: datetime,
                   past: list[datetime], settled: list[datetime]) -> LoadResult:
        fkey = filters_key(params)
        cached = empty_frame()
        covered: set[datetime] = set()
        if self.store is not None and settled and not whole_range:
            cached, covered = self.store.read(self.source_id, sensor_id, fkey, settled,
                                              transform=self._form)

        store = self.store
        unwritable: list[str] = []

        def save(frame: pl.DataFrame, hours: set[datetime]) -> None:
            # Point 9: a verified batch's settled hours go to disk at once, so an
            # interrupted load resumes from them. A cache that cannot be written
            # (disk full...) costs refetching later, never this load.
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

        acc = _Acc(save)

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
                cached, covered, rechecked, late = self._recheck(
                    sensor_id, params, fkey, cached, covered, now, report, gate)
            except _Stop as stop:  # cancelled while counting: the cache is as it was
                error = stop
        missing = [h for h in past if h not in covered]

        if missing and error is None and not cache_only:
            report()
            try:
                self._fetch(sensor_id, _segments(missing), params, acc, report, open_from,
                            gate)
            except BaseException as exc:  # cached what completed before re-raising
                error = exc
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
        incomplete = sorted(set(missing) - acc.hours)
        if cache_only and all(h >= open_from for h in incomplete):
            incomplete = []  # only the open hours: not refreshed, listed in open_hours
        if error is not None and isinstance(error, FATAL):
            raise error
        if incomplete and (cache_only or isinstance(error, _Stop)):
            report()
            cancelled = isinstance(error, _Stop) and error.cancelled
            cls = E.LoadCancelledError if cancelled else E.BudgetExceededError
            raise cls(_stop_message(incomplete, cancelled, gate.limit), hours=incomplete,
                      partial=frame)
        if isinstance(error, _Stop):
            error = None  # stopped once nothing was missing any more
        if incomplete:
            raise E.IncompleteDataError(
                _incomplete_message(incomplete, error), hours=incomplete, partial=frame,
                cause=error)
        if error is not None:
            raise error
        report()
        return LoadResult(frame=frame, start=start, end=end, server_filters=params,
                          flux_requests=gate.used,
                          cached_hours=len(covered), fetched_hours=len(acc.hours),
                          open_hours=[h for h in past if h >= open_from], loaded_at=now,
                          rechecked_hours=rechecked, late_hours=late)

    def _due(self, sensor_id: int, fkey: str, covered: set[datetime], now: datetime
             ) -> list[datetime]:
        """The cached hours whose late-data recheck is due (metadata only)."""
        if self.store is None or self.recheck_hours <= 0:
            return []
        horizon = floor_hour(now) - self.recheck_hours * HOUR
        failed = self._recheck_failed.get((sensor_id, fkey))
        recent = [h for h in covered if h >= horizon]
        if not recent or (failed is not None and now - failed < self.recheck_every):
            return []
        checked = self.store.checked(self.source_id, sensor_id, fkey, recent)
        return sorted(h for h in recent
                      if h not in checked or now - checked[h] >= self.recheck_every)

    def _recheck(self, sensor_id: int, params: dict, fkey: str, cached: pl.DataFrame,
                 covered: set[datetime], now: datetime, report: Callable[[], None],
                 gate: _Gate | None = None
                 ) -> tuple[pl.DataFrame, set[datetime], int, list[datetime]]:
        """Re-count the recent cached hours that are due (module docstring, point 6).

        Returns the cache without the hours whose count changed (so they are
        fetched again), how many hours were counted, and the changed hours.
        Best effort: if the API fails, the cache is served and rechecks pause;
        if the allowance runs out, the hours not counted yet are served as they
        are. A cancellation (``_Stop``) propagates.
        """
        assert self.store is not None
        due = self._due(sensor_id, fkey, covered, now)
        if not due:
            return cached, covered, 0, []
        have = dict(cached.group_by("start_of_hour").len().iter_rows())
        fetch = _Fetcher(self, sensor_id, params, _Acc(), report, gate)
        same: list[datetime] = []
        changed: list[datetime] = []
        try:
            for a, b in _segments(due):
                hours = hours_between(a, b)
                _locate(hours, fetch.count(a, b), have, fetch.count, same, changed)
        except E.LoadCancelledError:
            raise
        except _Stop as stop:
            if stop.cancelled:
                raise
        except E.FluxError as exc:
            log.warning("late-data recheck of sensor %s failed (%s); serving the cache",
                        sensor_id, exc.__class__.__name__)
            self._recheck_failed[(sensor_id, fkey)] = now
        if same:
            self.store.mark_checked(self.source_id, sensor_id, fkey, same, now)
        if changed:
            cached = cached.filter(~pl.col("start_of_hour").is_in(changed))
            covered = covered - set(changed)
        return cached, covered, len(same) + len(changed), sorted(changed)

    def _fetch(self, sensor_id: int, segments: list[tuple[datetime, datetime]], params: dict,
               acc: _Acc, report: Callable[[], None], settled_before: datetime,
               gate: _Gate | None = None) -> None:
        fetch = _Fetcher(self, sensor_id, params, acc, report, gate)
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="flux") as pool:
            # First request of every segment: reveals its size and the page size granted.
            heads = [pool.submit(fetch.head, a, b) for a, b in segments]
            acc.planned = len(heads)
            _wait_all(heads)
            plans = [f.result() for f in heads]
            # Point 10: the rest of big settled segments in planned sumFlux windows.
            windows, rest = (self._plan(fetch, plans, settled_before) if self.planning
                             else ([], [(p.cursor, p.end, p.remaining_rows, p.density)
                                        for p in plans]))
            acc.planned = fetch.gate.used + sum(cost for _, _, cost in windows)
            chunks = []
            remaining = sum(rows for _, _, rows, _ in rest)
            acc.planned += math.ceil(remaining / (FILL * fetch.page_size))
            budget_chunks = max(1, self.max_concurrency)
            for a, b, rows, rho in rest:
                if a >= b:
                    continue
                share = rows / remaining if remaining else 1
                want = max(1, round(budget_chunks * share))
                want = min(want, math.ceil(rows / (4 * fetch.page_size)) or 1)
                chunks += _split(a, b, want, rho)
            report()
            futures = [pool.submit(fetch.window, a, b) for a, b, _ in windows]
            futures += [pool.submit(fetch.chunk, a, b, rho) for a, b, rho in chunks]
            _wait_all(futures)
        # Settled segments must add up to what their first request announced.
        for p in plans:
            if p.end > settled_before:
                continue
            with acc.lock:
                got = sum(f.filter(pl.col("start_of_hour").is_between(
                    p.start, p.end, closed="left")).height for f in acc.frames)
            if got != p.total:
                hours = hours_between(p.start, p.end)
                with acc.lock:
                    acc.hours -= set(hours)
                    acc.frames = [f.filter(~pl.col("start_of_hour").is_between(
                        p.start, p.end, closed="left")) for f in acc.frames]
                if self.store is not None:  # written as they came (point 9): take them back
                    self.store.forget(self.source_id, sensor_id, filters_key(params), hours)
                raise E.IncompleteDataError(
                    f"{got} rows were loaded for {iso(p.start)[:13]}h–{iso(p.end)[:13]}h where "
                    f"the API announced {p.total}.", hours=hours)


    def _plan(self, fetch: _Fetcher, plans: list[_Plan], settled_before: datetime
              ) -> tuple[list[tuple[datetime, datetime, int]],
                         list[tuple[datetime, datetime, int, float]]]:
        """Point 10: cut the settled rest of big segments into windows from hourly counts.

        Returns the planned windows (start, end, requests expected) and the parts
        left to the keyset walk (start, end, rows, rows per hour): small rests,
        hours not settled yet, and everything when the counts are unavailable or
        do not add up to the segment's ``meta.total``.
        """
        page = fetch.page_size
        rest = [(p.cursor, p.end, p.remaining_rows, p.density) for p in plans]
        big = [p for p in plans if p.remaining_rows > PLAN_FROM * page
               and min(p.end, settled_before) - p.cursor >= 2 * HOUR]
        failed = getattr(self, "_hint_failed_at", None)
        if not big or (failed is not None and self.clock() - failed < SHAPE_TTL):
            return [], rest
        counts = fetch.hint(min(p.cursor for p in big), max(p.end for p in big))
        if counts is None:
            self._hint_failed_at = self.clock()
            return [], rest
        windows: list[tuple[datetime, datetime, int]] = []
        rest = [(p.cursor, p.end, p.remaining_rows, p.density) for p in plans if p not in big]
        filtered = bool(fetch.params)
        for p in big:
            hinted = sum(counts[h] for h in hours_between(p.cursor, p.end))
            rows = p.remaining_rows
            # Without filters the counts must add up to the segment's rest (the open
            # hour may grow meanwhile); with filters they count more rows than we get.
            off = (abs(hinted - rows) > max(2, rows // 50) if not filtered
                   else hinted < rows or not hinted)
            if off:
                log.info("hourly counts of sensor %s disagree with meta.total (%s vs %s); "
                         "keyset walk", fetch.sensor_id, hinted, rows)
                rest.append((p.cursor, p.end, p.remaining_rows, p.density))
                continue
            scale = rows / hinted if hinted else 1.0
            cut = max(p.cursor, min(p.end, settled_before))
            hours = hours_between(p.cursor, cut)
            expected = [counts[h] * scale for h in hours]
            windows += [(hours[i], hours[j - 1] + HOUR, cost)
                        for i, j, cost in _plan_windows(expected, page)]
            if cut < p.end:
                tail = sum(counts[h] * scale for h in hours_between(cut, p.end))
                rest.append((cut, p.end, round(tail), p.density))
        return windows, rest


def _window_cost(rows: float, page: int) -> int:
    """Requests of a sumFlux window of ``rows`` (``_Fetcher.window``), ties aside."""
    if rows <= page:
        return 1
    # Ascending pages but the last, then page 1 descending: OVERLAP rows of them shared.
    return math.ceil((rows + OVERLAP) / page)


def _plan_windows(rows: list[float], page: int) -> list[tuple[int, int, int]]:
    """Cut hours with these expected rows into windows (i, j, cost) of least total cost.

    A window holds whole hours, at most ``WINDOW_PAGES`` pages of rows less
    ``OVERLAP`` (or one hour, however big). Dynamic programming over the cut points.
    """
    n = len(rows)
    limit = WINDOW_PAGES * page - OVERLAP
    best = [0] + [math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        total = 0.0
        for i in range(j - 1, -1, -1):
            total += rows[i]
            if i < j - 1 and total > limit:
                break
            cost = best[i] + _window_cost(total, page)
            if cost < best[j]:
                best[j], back[j] = cost, i
    out = []
    j = n
    while j > 0:
        i = back[j]
        out.append((i, j, _window_cost(sum(rows[i:j]), page)))
        j = i
    return out[::-1]


# ------------------------------------------------------------------ cost model (point 7)
def _hour_cost(rows: float, page: int) -> int:
    """Requests for one hour fetched alone (``_Fetcher.hour``): one page, or the key split."""
    if rows <= page:
        return 1
    pages = math.ceil(rows / page)
    # Ascending pages and page 1 descending, plus the straddling key groups fetched on
    # their own (about one per page boundary beyond the first two pages).
    return pages + max(0, pages - 2)


def _page_cut(rows: list[float], page: int) -> int:
    """Index of the hour holding the last row of a full first page (hours before it are whole)."""
    total = 0.0
    for i, r in enumerate(rows):
        total += r
        if total >= page:
            return i
    return len(rows)


def _walk(rows: list[float], page: int, rho: float) -> int:
    """Requests ``_Fetcher.chunk`` makes over these rows per hour, from density ``rho``."""
    requests, i = 0, 0
    while i < len(rows):
        n = max(1, min(len(rows) - i, math.floor(FILL * page / max(rho, 1.0))))
        if n == 1:
            rho = max(rows[i], 1.0)
            requests += _hour_cost(rows[i], page)
            i += 1
            continue
        window = rows[i:i + n]
        requests += 1
        rho = max(sum(window) / n, 1.0)
        if sum(window) <= page:
            i += n
            continue
        cut = _page_cut(window, page)
        if cut == 0:  # the first hour alone fills the page
            requests += _hour_cost(window[0], page)
            i += 1
        else:
            i += cut
    return requests


def _predict(segments: list[list[float]], page: int, concurrency: int) -> int:
    """Requests ``Loader._fetch`` makes over segments given as expected rows per hour."""
    requests = 0
    plans: list[tuple[list[float], float, float]] = []
    for rows in segments:
        requests += 1  # the head
        total = sum(rows)
        if not rows or total <= page:
            continue
        cut = _page_cut(rows, page)
        plans.append((rows[cut:], max(0.0, total - sum(rows[:cut])), total / len(rows)))
    remaining = sum(rest for _, rest, _ in plans)
    for rows, rest, rho in plans:
        share = rest / remaining if remaining else 1
        want = max(1, round(max(1, concurrency) * share))
        want = min(want, math.ceil(rest / (4 * page)) or 1)
        n = max(1, min(want, len(rows)))
        i = 0
        for k in range(n):
            size = len(rows) // n + (1 if k < len(rows) % n else 0)
            requests += _walk(rows[i:i + size], page, rho)
            i += size
    return requests


def _predict_planned(segments: list[list[float]], page: int, concurrency: int) -> int:
    """Requests ``Loader._fetch`` makes with planned windows (point 10).

    Each segment's head walks its first page; a rest of more than ``PLAN_FROM``
    pages goes in planned windows (one count of the hours for the whole load),
    a smaller one takes the keyset walk.
    """
    requests, hinted = 0, False
    for rows in segments:
        total = sum(rows)
        cut = _page_cut(rows, page) if rows and total > page else len(rows)
        rest = rows[cut:]
        if sum(rest) > PLAN_FROM * page and len(rest) >= 2:
            hinted = True
            requests += 1 + sum(c for _, _, c in _plan_windows(rest, page))
        else:
            requests += _predict([rows], page, concurrency)
    return requests + hinted


def _expected_rows(units: list[tuple[list[datetime], int]], shape: list[float] | None
                   ) -> dict[datetime, float]:
    """Each unit's counted rows spread over its hours along the daily profile.

    ``shape`` holds a working day's rows per UTC hour (``_profile``): working
    days are expected to look like it, and the weekend gets the rest of the
    total, along the same shape. Scaling the whole span instead would dilute the
    busy hours with the quiet weekend, and busy hours are what costs requests.
    When the rest does not fit (negative, or a weekend busier than the week),
    or without a profile, the total is simply spread in proportion.
    """
    out: dict[datetime, float] = {}
    for hours, total in units:
        weights = [shape[h.hour] if shape else 1.0 for h in hours]
        if sum(weights) <= 0:
            weights = [1.0] * len(hours)
        working = sum(w for h, w in zip(hours, weights, strict=True) if h.weekday() < 5)
        rest_weight = sum(weights) - working
        rest = total - working
        if shape and working and rest_weight and 0 <= rest <= rest_weight:
            scale_working, scale_rest = 1.0, rest / rest_weight
        else:
            scale_working = scale_rest = total / sum(weights)
        out.update({h: w * (scale_working if h.weekday() < 5 else scale_rest)
                    for h, w in zip(hours, weights, strict=True)})
    return out


def _profile(rows: Mapping[datetime, int], need_every_hour: bool = True
             ) -> list[float] | None:
    """Mean rows per UTC hour of a working day (Monday to Friday), or None.

    With ``need_every_hour`` every hour of the day must be known; otherwise a
    missing one takes its nearest known neighbour's value, and rows with no
    working day at all are profiled as they are.
    """
    working = {h: n for h, n in rows.items() if h.weekday() < 5}
    if need_every_hour and not working:
        return None
    by_hod: dict[int, list[int]] = {}
    for h, n in (working or rows).items():
        by_hod.setdefault(h.hour, []).append(n)
    if not by_hod or (need_every_hour and len(by_hod) < 24):
        return None
    means = {hod: sum(v) / len(v) for hod, v in by_hod.items()}

    def nearest(hod: int) -> float:
        return means[min(means, key=lambda k: (min((k - hod) % 24, (hod - k) % 24), k))]

    shape = [nearest(hod) for hod in range(24)]
    return shape if any(shape) else None


def _sample_hours(hours: list[datetime], k: int) -> list[datetime]:
    """``k`` of ``hours`` spread over the range and over the hours of the day.

    On working days (Monday to Friday) when the range has some: busy hours set
    the cost (each costs a whole request), and the weekend gets the rest of the
    counted rows anyway (``_expected_rows``).
    """
    picks: list[datetime] = []
    for j in range(k):
        base = hours[j * len(hours) // k]
        target = (2 + j * 24 // k) % 24  # 02:00, 06:00, 10:00... UTC
        same_hour = [h for h in hours if h.hour == target] or [base]
        working = [h for h in same_hour if h.weekday() < 5] or same_hour
        pick = min(working, key=lambda h: abs(h - base))
        if pick not in picks:
            picks.append(pick)
    return picks


def _locate(hours: list[datetime], total: int, have: Mapping[datetime, int],
            count: Callable[[datetime, datetime], int], same: list[datetime],
            changed: list[datetime]) -> None:
    """Sort ``hours`` (counted ``total`` by the API) into ``same`` and ``changed``.

    A part whose count matches the cache is unchanged; a part that differs is
    halved: the left half is counted, the right half is deduced from the total
    (so each step costs one request), down to single hours.
    """
    if total == sum(have.get(h, 0) for h in hours):
        same.extend(hours)
    elif len(hours) == 1:
        changed.extend(hours)
    else:
        mid = len(hours) // 2
        left = count(hours[0], hours[mid])
        _locate(hours[:mid], left, have, count, same, changed)
        _locate(hours[mid:], total - left, have, count, same, changed)


def _wait_all(futures) -> None:
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in done:
        exc = f.exception()
        if exc is not None and isinstance(exc, (*FATAL, _Stop)):
            for p in pending:
                p.cancel()
            raise exc
    wait(pending)
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()


@dataclass
class _Plan:
    start: datetime
    cursor: datetime
    end: datetime
    total: int  # rows announced for [start, end) by the first request
    remaining_rows: int
    density: float  # rows per hour


def _segments(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    segs: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if segs and segs[-1][1] == h:
            segs[-1] = (segs[-1][0], h + HOUR)
        else:
            segs.append((h, h + HOUR))
    return segs


def _split(a: datetime, b: datetime, n: int, rho: float) -> list[tuple[datetime, datetime, float]]:
    hours = int((b - a) / HOUR)
    n = max(1, min(n, hours))
    out, cur = [], a
    for i in range(n):
        size = hours // n + (1 if i < hours % n else 0)
        out.append((cur, cur + size * HOUR, rho))
        cur += size * HOUR
    return out


def _span(hours: list[datetime]) -> str:
    first, last = hours[0], hours[-1]
    return (f"{iso(first)[:16]}Z" if len(hours) == 1
            else f"{len(hours)} hours between {iso(first)[:16]}Z and {iso(last)[:16]}Z")


def _incomplete_message(hours: list[datetime], cause: BaseException | None) -> str:
    why = f" ({cause})" if cause else ""
    return (f"Could not load {_span(hours)} completely{why}. The other hours are loaded and "
            "cached; load again to fetch only what is missing.")


def _stop_message(hours: list[datetime], cancelled: bool, limit: int | None) -> str:
    if cancelled:
        return (f"Loading was cancelled: {_span(hours)} not loaded. The hours completed "
                "before are cached; load again to fetch only what is missing.")
    if not limit:
        return (f"Only cached data was asked for, and {_span(hours)} are not in the cache. "
                "Load the range to fetch them.")
    return (f"The load stopped at its allowance of {limit} API request(s): {_span(hours)} "
            "not loaded. The hours completed are cached; load again to fetch only what is "
            "missing.")


class _Fetcher:
    """The request logic of one load; methods run in worker threads."""

    def __init__(self, loader: Loader, sensor_id: int, params: dict, acc: _Acc,
                 report: Callable[[], None], gate: _Gate | None = None) -> None:
        self.loader = loader
        self.gate = gate or _Gate()
        self.client = loader.client
        self.sensor_id = sensor_id
        self.params = params
        self.acc = acc
        self.report = report
        self.requested_page = loader.per_page
        self.page_size = loader.per_page  # updated from meta.per_page (the server may cap it)
        self.fixed = {name for name, _ in SPLIT_LEVELS if self._fixes(name)}

    def _fixes(self, name: str) -> bool:
        if name == "dir":
            return "only_in" in self.params or "only_out" in self.params
        return name in self.params

    # -- one request
    def _get(self, a: datetime, b: datetime, *, sort_by: str, desc: bool = False, page: int = 1,
             extra: Mapping[str, object] | None = None, per_page: int | None = None
             ) -> tuple[FluxPage, pl.DataFrame]:
        # `from` one second before the first hour, `to` one second before the end:
        # rows only start on whole hours, so the answer is the same whether the API
        # treats either bound as inclusive or exclusive. Callers trim to [a, b) anyway.
        q = {**self.params, **(extra or {}), "from": iso(a - timedelta(seconds=1)),
             "to": iso(b - timedelta(seconds=1)), "sort_by": sort_by,
             "sort_desc": desc, "page": page, "per_page": per_page or self.requested_page}
        _current.gate = self.gate  # read by _GatedLimiter before each attempt
        try:
            resp = self.client.flux_page(self.sensor_id, q)
        finally:
            _current.gate = None
        if per_page is None:
            self.page_size = self.loader._granted_page = resp.meta.per_page
        frame = to_frame(resp.rows)
        self.report()
        return resp, frame

    def _keep(self, frame: pl.DataFrame, hours: set[datetime]) -> pl.DataFrame:
        return frame.filter(pl.col("start_of_hour").is_in(sorted(hours)))

    def count(self, a: datetime, b: datetime, *, learn_page: bool = False) -> int:
        """Rows in [a, b) as the API counts them now: one row asked, ``meta.total`` read.

        ``learn_page``: ask a full page instead (same one request), whose
        ``meta.per_page`` shows the page size the server grants.
        """
        resp, _ = self._get(a, b, sort_by="startOfHour", per_page=None if learn_page else 1)
        return resp.meta.total

    # -- level 1: keyset windows of hours
    def head(self, a: datetime, b: datetime) -> _Plan:
        resp, frame = self._get(a, b, sort_by="startOfHour")
        total = resp.meta.total
        cursor = self._accept_window(a, b, resp, frame)
        hours = max(1, int((b - a) / HOUR))
        if cursor is None:
            return _Plan(a, b, b, total, 0, total / hours)
        done_rows = frame.filter(pl.col("start_of_hour") < cursor).height
        return _Plan(a, cursor, b, total, max(0, total - done_rows), total / hours)

    def chunk(self, a: datetime, b: datetime, rho: float) -> None:
        """Walk [a, b) with keyset windows; an error leaves the rest of it incomplete."""
        cursor = a
        while cursor < b:
            n = max(1, min(int((b - cursor) / HOUR),
                           math.floor(FILL * self.page_size / max(rho, 1.0))))
            if n == 1:
                # Dense enough that a window would be one hour: split it directly
                # instead of spending a keyset request that cannot advance.
                rho = max(self.hour(cursor), 1.0)
                cursor += HOUR
                continue
            resp, frame = self._get(cursor, cursor + n * HOUR, sort_by="startOfHour")
            rho = max(resp.meta.total / n, 1.0)
            nxt = self._accept_window(cursor, cursor + n * HOUR, resp, frame)
            if nxt is None:
                cursor += n * HOUR
            elif nxt == cursor:  # this hour alone fills a page: split it
                self.hour(cursor)
                cursor += HOUR
            else:
                cursor = nxt

    def _accept_window(self, a: datetime, b: datetime, resp: FluxPage, frame: pl.DataFrame
                       ) -> datetime | None:
        """Keep the complete hours of a keyset page; return the next cursor or None if done."""
        meta = resp.meta
        window = set(hours_between(a, b))
        if meta.total <= meta.per_page:
            _check_distinct(frame, meta.total, "window")
            self.acc.add(self._keep(frame, window), window)
            return None
        if frame.height != meta.per_page:
            raise E.IncompleteDataError(
                f"The API returned {frame.height} rows on a full page of {meta.per_page}.",
                hours=sorted(window))
        _check_distinct(frame, frame.height, "page")
        sh = frame.get_column("start_of_hour")
        if not sh.is_sorted():
            raise E.SchemaError("The API did not sort the flows by startOfHour as asked.")
        last = sh[-1]
        done = {h for h in window if h < last}
        self.acc.add(self._keep(frame, done), done)
        return max(a, last) if last < b else None

    # -- planned windows (point 10): per-hour counts, then windows sorted by sumFlux
    def hint(self, a: datetime, b: datetime) -> dict[datetime, int] | None:
        """Rows per hour of [a, b) as ``/flux-hour-sensor`` counts them; None if it cannot say.

        A hint only: the caller checks it against a ``meta.total`` and every window is
        verified anyway. Any failure (the endpoint missing, refused, or an answer that
        is not one count per hour of the range) gives None, except a rate limit or the
        load's own stop, which a load would meet next anyway.
        """
        hours = set(hours_between(a, b))
        counts: dict[datetime, int] = {}
        page, last = 1, 1
        try:
            while page <= last:
                q = {"from": iso(a - timedelta(seconds=1)), "to": iso(b - timedelta(seconds=1)),
                     "sort_by": "utc_hour", "page": page, "per_page": self.requested_page}
                _current.gate = self.gate
                try:
                    data = self.client._get_json(
                        f"sensors/{int(self.sensor_id)}/{HINT_PATH}", q,
                        what=f"hourly counts of sensor {self.sensor_id}", flux=True)
                finally:
                    _current.gate = None
                self.report()
                if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                    return None
                meta = _parse_meta(data.get("meta"))
                if meta.total > len(hours) or meta.last_page > len(hours):
                    return None  # more statistics than hours: not what we take it for
                last = meta.last_page
                for item in data["data"]:
                    n = item.get("count") if isinstance(item, dict) else None
                    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                        return None
                    h = datetime.fromisoformat(str(item.get("utc_hour")).replace("Z", "+00:00"))
                    h = h.astimezone(UTC)
                    if h in counts:
                        return None
                    if h in hours:
                        counts[h] = n
                page += 1
        except (E.RateLimitedError, _Stop):
            raise
        except (E.FluxError, ValueError, TypeError, AttributeError) as exc:
            log.info("hourly counts of sensor %s unavailable (%s); planning without them",
                     self.sensor_id, exc.__class__.__name__)
            return None
        return {h: counts.get(h, 0) for h in sorted(hours)}

    def window(self, a: datetime, b: datetime) -> None:
        """Fetch [a, b) sorted by sumFlux (point 10); the keyset walk if that fails."""
        window = set(hours_between(a, b))
        total = 0
        for _attempt in range(2):
            try:
                frame, total = self._sum_window(a, b)
            except _Changed:
                continue
            except _Unplanned:
                break
            if frame is not None:
                self.acc.add(self._keep(frame, window), window)
            return
        log.info("window %s: sumFlux pages did not resolve; keyset walk instead", iso(a))
        self.chunk(a, b, max(1.0, total / max(1, len(window))))

    def _sum_window(self, a: datetime, b: datetime) -> tuple[pl.DataFrame | None, int]:
        """The rows of [a, b) from pages sorted by sumFlux, proven complete, and their total.

        None (with the total) when the window was too big for its plan and was halved.
        """
        r1, f1 = self._get(a, b, sort_by="sumFlux")
        total, p = r1.meta.total, r1.meta.per_page
        if total <= p:
            _check_distinct(f1, total, "window", changed=True)
            return f1, total
        pages = math.ceil(total / p)
        hours = int((b - a) / HOUR)
        if pages > 4 * WINDOW_PAGES and hours > 1:  # the plan was far off: halve the window
            mid = a + (hours // 2) * HOUR
            self.window(a, mid)
            self.window(mid, b)
            return None, total
        got: dict[tuple[bool, int], pl.DataFrame] = {(False, 1): f1}

        def fetch(desc: bool, page: int) -> None:
            r, f = self._get(a, b, sort_by="sumFlux", desc=desc, page=page)
            if r.meta.total != total or r.meta.per_page != p:
                raise _Changed()
            got[(desc, page)] = f

        for page in range(2, pages):
            fetch(False, page)
        fetch(True, 1)
        for _repair in range(pages + 1):
            frame, need = _resolve_sums(got, total, p)
            if frame is not None:
                _check_distinct(frame, total, "window", changed=True)
                return frame, total
            if not need:
                raise _Unplanned()
            for desc, page in need:
                fetch(desc, page)
        raise _Unplanned()

    # -- level 2: one hour, split on other keys
    def hour(self, h: datetime) -> int:
        """Fetch one whole hour (retrying if it changes under us); return its row count."""
        for attempt in range(3):
            try:
                frame, total = self._group(h, {}, 0)
            except _Changed:
                if attempt == 2:
                    raise E.IncompleteDataError(
                        f"Hour {iso(h)} kept changing while it was read.", hours=[h]) from None
                continue
            self.acc.add(self._keep(frame, {h}), {h})
            return total
        raise AssertionError("unreachable")

    def _group(self, h: datetime, extra: dict, level: int) -> tuple[pl.DataFrame, int]:
        while level < len(SPLIT_LEVELS) and SPLIT_LEVELS[level][0] in self.fixed | set(extra):
            level += 1
        if level >= len(SPLIT_LEVELS):
            raise E.IncompleteDataError(
                f"Hour {iso(h)} has more rows sharing one natural key than a page holds.",
                hours=[h])
        key, _ = SPLIT_LEVELS[level]
        sort_by = key
        r1, f1 = self._get(h, h + HOUR, sort_by=sort_by, extra=_filter_params(extra))
        total, p = r1.meta.total, r1.meta.per_page
        if total <= p:
            _check_distinct(f1, total, "hour", changed=True)
            return f1, total
        pages: list[tuple[pl.DataFrame, bool]] = [(f1, False)]  # (frame, is_tail)
        last_page = math.ceil(total / p)
        for page in range(2, last_page):
            _, fm = self._get(h, h + HOUR, sort_by=sort_by, page=page, extra=_filter_params(extra))
            pages.append((fm, False))
        r2, f2 = self._get(h, h + HOUR, sort_by=sort_by, desc=True, extra=_filter_params(extra))
        if r2.meta.total != total:
            raise _Changed()
        pages.append((f2, True))

        complete, straddlers = _complete_groups(pages, key, total, p)
        parts = [complete]
        got = complete.height
        for value in straddlers:
            sub_extra = {**extra, key: value}
            sub, n = self._group(h, sub_extra, level + 1)
            parts.append(sub)
            got += n
        frame = pl.concat(parts)
        if got != total or frame.height != total:
            raise _Changed()
        _check_distinct(frame, total, "hour", changed=True)
        return frame, total


class _Changed(Exception):
    """The rows of an hour changed between two requests (the open hour grows)."""


class _Unplanned(Exception):
    """A sumFlux window could not be proven complete: fetch its hours the keyset way."""


def _resolve_sums(got: Mapping[tuple[bool, int], pl.DataFrame], total: int, p: int
                  ) -> tuple[pl.DataFrame | None, list[tuple[bool, int]]]:
    """Rows of a window from offset pages sorted by sumFlux, or the pages still needed.

    ``got`` maps (descending, page) to a page's rows. A page is the slice of
    positions ``[(page - 1) p, page p)`` of the ascending order, or its mirror
    from the end when descending. Rows tied on sumFlux come back in any order,
    but the positions a value occupies are the same on every request: a value
    whose run lies inside one slice, with a different value (or the end) on
    either side, has all its rows in that slice. Returns (frame, []) when the
    distinct rows add up to ``total``; else (None, pages that hold a run no
    slice holds whole); (None, []) when no page can (a run longer than a page,
    or pages whose values are not sorted as sumFlux = in + out).
    """
    union = pl.concat(list(got.values()))
    union = union.unique(subset=list(NATURAL_KEY), keep="first", maintain_order=True)
    if union.height == total:
        return union, []
    slices: list[tuple[int, pl.DataFrame]] = []
    value_at: dict[int, int] = {}
    for (desc, page), f in got.items():
        if desc:
            f = f.reverse()
            offset = total - (page - 1) * p - f.height
        else:
            offset = (page - 1) * p
        sums = (f.get_column("in_bytes") + f.get_column("out_bytes")).to_list()
        if None in sums or any(x > y for x, y in itertools.pairwise(sums)):
            return None, []  # not sorted as we read sumFlux: cannot reason on positions
        for i, v in enumerate(sums):
            if value_at.setdefault(offset + i, v) != v:
                return None, []  # a position changed value between requests
        slices.append((offset, f.with_columns(pl.Series("_sum", sums))))
    whole: dict[int, pl.DataFrame] = {}
    for offset, f in slices:
        for (v,), grp in f.group_by("_sum", maintain_order=True):
            if v in whole:
                continue
            first = offset + f.get_column("_sum").search_sorted(v, "left")
            end = first + grp.height
            if ((first == 0 or value_at.get(first - 1, v) != v)
                    and (end == total or value_at.get(end, v) != v)):
                whole[v] = grp.drop("_sum")
    if sum(g.height for g in whole.values()) == total:
        return pl.concat(list(whole.values())), []
    need: set[tuple[bool, int]] = set()
    for v in sorted(set(value_at.values()) - set(whole)):
        where = [pos for pos, x in value_at.items() if x == v]
        s, e = min(where), max(where) + 1
        if (s > 0 and value_at.get(s - 1) is None) or (e < total and value_at.get(e) is None):
            return None, []  # the run's ends are not seen: its length is unknown
        page = next(((d, k) for d, k in _covering_pages(s, e, total, p) if (d, k) not in got),
                    None)
        if page is None:
            return None, []
        need.add(page)
    return None, sorted(need)


def _covering_pages(s: int, e: int, total: int, p: int) -> list[tuple[bool, int]]:
    """Pages (descending, page) whose slice holds positions [s, e) whole."""
    out = []
    k = s // p + 1
    if e <= k * p:
        out.append((False, k))
    i = (total - e) // p + 1  # descending page i holds [total - i p, total - (i - 1) p)
    if total - i * p <= s:
        out.append((True, i))
    return out


def _filter_params(extra: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in extra.items():
        if k == "dir":
            out["only_in" if v == "IN" else "only_out"] = True
        else:
            out[k] = v
    return out


def _complete_groups(pages: list[tuple[pl.DataFrame, bool]], key: str, total: int, p: int
                     ) -> tuple[pl.DataFrame, list]:
    """Split the rows of offset pages into complete key groups and straddling keys.

    Ascending pages are consecutive slices [0, p), [p, 2p), ...; the last entry
    is page 1 descending, the slice [total - p, total). A key's rows are
    complete in a slice when the key does not continue past either edge of that
    slice; its position range is the same on every request even when the
    order of its rows is not.
    """
    asc = [f for f, tail in pages if not tail]
    tail = next(f for f, t in pages if t)
    slices: list[tuple[pl.DataFrame, bool, bool]] = []  # frame, open_left, open_right
    for i, f in enumerate(asc):
        slices.append((f, i > 0, True))
    slices.append((tail, False, True))  # descending: its inner edge is its last row
    complete: dict = {}
    seen: set = set()
    for f, open_left, open_right in slices:
        if not f.height:
            continue
        col = f.get_column(key)
        edge_first, edge_last = col[0], col[-1]
        for value, grp in f.group_by(key, maintain_order=True):
            v = value[0]
            seen.add(v)
            # A key on an open edge may continue in the next slice: not proven complete.
            if v in complete or (open_left and v == edge_first) or (open_right and v == edge_last):
                continue
            complete[v] = grp
    straddlers = [v for v in seen if v not in complete]
    frame = pl.concat(list(complete.values())) if complete else empty_frame()
    if None in straddlers:
        raise E.IncompleteDataError(
            f"Rows with no {key} span several pages and cannot be isolated with a filter.",
            hours=[])
    return frame, straddlers


def _check_distinct(frame: pl.DataFrame, expected: int, what: str, changed: bool = False
                    ) -> None:
    n = frame.select(pl.struct(NATURAL_KEY).n_unique()).item() if frame.height else 0
    if n != expected or frame.height != expected:
        if changed:
            raise _Changed()
        raise E.IncompleteDataError(
            f"The API announced {expected} rows for a {what} but returned {frame.height} "
            f"({n} distinct).", hours=sorted(set(frame.get_column("start_of_hour").to_list())))
