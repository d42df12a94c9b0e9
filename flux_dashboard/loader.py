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
   anyway. Rows with a natural key twice fail the load before anything is cached.
4. **Concurrency and budget.** After the first request of a segment reveals
   its size, the rest is cut into chunks that run in parallel (at most
   ``max_concurrency``), all behind the process-wide rate limiter. Keyset pages
   waste only the partial last hour, so a cold load costs about
   rows / (0.9 × page) requests plus one per chunk; dense hours cost two per
   hour up to two pages of rows: within 2 × ceil(rows / page) + 10.
5. **Cache.** Complete past hours come from / go to the ``Store``; only
   missing hours are requested, so a warm revisit makes no flux request, an
   extended range fetches just the new hours, and the open hour (and any hour
   not yet settled) is always fetched again and never written to disk.
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
"""

from __future__ import annotations

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

from flux_dashboard import errors as E
from flux_dashboard.client import Client, FluxPage
from flux_dashboard.schema import NATURAL_KEY, empty_frame, to_frame
from flux_dashboard.store import Store, filters_key

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=15)  # an hour is final this long after it ends (inferred)
RECHECK_EVERY = timedelta(minutes=15)  # a recent cached hour is re-counted at most this often
FILL = 0.9  # keyset windows aim at this share of a page
# Keys used to split a dense hour, with the filter that isolates one value.
SPLIT_LEVELS: tuple[tuple[str, str], ...] = (
    ("ip0", "ip0"), ("ip1", "ip1"), ("dir", "dir"), ("protocol", "protocol"), ("port", "port"),
)
FATAL = (E.AuthenticationError, E.ForbiddenError, E.NotFoundError, E.InvalidRequestError,
         E.RateLimitedError)


def floor_hour(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t.astimezone(UTC) else f + HOUR


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    n = int((end - start) / HOUR)
    return [start + i * HOUR for i in range(max(n, 0))]


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


class _Acc:
    """Thread-safe accumulator of complete hours and their rows."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames: list[pl.DataFrame] = []
        self.hours: set[datetime] = set()
        self.rows = 0
        self.requests = 0
        self.planned = 0

    def add(self, frame: pl.DataFrame, hours: set[datetime]) -> None:
        with self.lock:
            if frame.height:
                self.frames.append(frame)
            self.hours |= hours
            self.rows += frame.height


class Loader:
    def __init__(self, client: Client, store: Store | None = None, *, per_page: int = 1000,
                 max_concurrency: int = 8, clock: Callable[[], datetime] | None = None,
                 memory_ttl_s: float = 300.0, memory_max_bytes: int = 2_000_000_000,
                 recheck_hours: int | None = None,
                 recheck_every: timedelta = RECHECK_EVERY) -> None:
        self.client = client
        self.store = store
        self.per_page = per_page
        self.max_concurrency = max(1, max_concurrency)
        self.clock = clock or (lambda: datetime.now(UTC))
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

    # ------------------------------------------------------------------ public
    def load(self, sensor_id: int, start: datetime, end: datetime, *,
             server_filters: Mapping[str, object] | None = None,
             progress: ProgressFn | None = None, refresh: bool | str = False) -> LoadResult:
        """All rows with ``start <= start_of_hour < end`` (see module docstring).

        ``refresh``: ``False`` may answer from memory; ``True`` or ``"open"``
        bypasses memory (the disk cache of settled hours is still used: only the
        open hours are fetched again); ``"range"`` fetches every hour of the
        range again, ignoring the disk cache, and rewrites it.
        """
        if refresh not in (False, True, "open", "range"):
            raise E.ConfigError(f"refresh must be False, 'open' or 'range', not {refresh!r}.")
        if start.tzinfo is None or end.tzinfo is None:
            raise E.ConfigError("Start and end must carry a time zone.")
        start, end = ceil_hour(start), ceil_hour(end)
        if end <= start:
            raise E.ConfigError("The end of the range must be after its start.")
        params = dict(server_filters or {})
        key = (self.source_id, int(sensor_id), filters_key(params), start, end)
        with self._memory_cond:
            while True:
                hit = None if refresh else self._memory.get(key)
                if hit is not None:
                    return replace(hit, flux_requests=0, from_memory=True)
                if key not in self._inflight:
                    self._inflight.add(key)
                    break
                # Someone else is loading this very window: wait for their result.
                self._memory_cond.wait()
        try:
            result = self._load(int(sensor_id), start, end, params, progress,
                                whole_range=refresh == "range")
            with self._memory_cond:
                try:
                    self._memory[key] = result
                except ValueError:  # larger than the whole cache: just don't keep it
                    pass
            return result
        finally:
            with self._memory_cond:
                self._inflight.discard(key)
                self._memory_cond.notify_all()

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

    # ------------------------------------------------------------------ orchestration
    def _load(self, sensor_id: int, start: datetime, end: datetime, params: dict,
              progress: ProgressFn | None, whole_range: bool = False) -> LoadResult:
        now = self.clock()
        open_from = floor_hour(now - SETTLE)  # hours from here on may still change
        all_hours = hours_between(start, end)
        past = [h for h in all_hours if h <= floor_hour(now)]  # later hours hold no data yet
        settled = [h for h in past if h < open_from]
        fkey = filters_key(params)

        cached = empty_frame()
        covered: set[datetime] = set()
        if self.store is not None and settled and not whole_range:
            cached, covered = self.store.read(self.source_id, sensor_id, fkey, settled)

        acc = _Acc()
        requests_before = self.client.flux_request_count

        def report() -> None:
            if progress:
                done = self.client.flux_request_count - requests_before
                progress(Progress(done, max(done, acc.planned), cached.height + acc.rows,
                                  len(covered) + len(acc.hours), len(past),
                                  self.client.limiter.per_minute))

        rechecked, late = 0, []
        if covered:
            cached, covered, rechecked, late = self._recheck(sensor_id, params, fkey, cached,
                                                             covered, now, report)
        missing = [h for h in past if h not in covered]

        error: BaseException | None = None
        if missing:
            report()
            try:
                self._fetch(sensor_id, _segments(missing), params, acc, report, open_from)
            except BaseException as exc:  # cached what completed before re-raising
                error = exc
        fetched = pl.concat(acc.frames) if acc.frames else empty_frame()
        # Checked before anything is written: a row twice means the load went wrong,
        # and the cache must never serve it. (Cached rows are checked by the store.)
        dup = fetched.height - fetched.select(pl.struct(NATURAL_KEY).n_unique()).item()
        if dup:
            raise E.IncompleteDataError(f"{dup} rows came back twice; the load was discarded. "
                                        "Try again.", hours=[], partial=None)
        if self.store is not None:
            to_save = {h for h in acc.hours if h < open_from}
            if to_save:
                self.store.write(self.source_id, sensor_id, fkey, to_save, fetched,
                                 checked_at=now)

        frames = [cached, *acc.frames]
        frame = pl.concat([f for f in frames if f.height] or [empty_frame()], rechunk=True)
        frame = frame.sort("start_of_hour", maintain_order=True)
        incomplete = sorted(set(missing) - acc.hours)
        if error is not None and isinstance(error, FATAL):
            raise error
        if incomplete:
            raise E.IncompleteDataError(
                _incomplete_message(incomplete, error), hours=incomplete, partial=frame,
                cause=error)
        if error is not None:
            raise error
        report()
        return LoadResult(frame=frame, start=start, end=end, server_filters=params,
                          flux_requests=self.client.flux_request_count - requests_before,
                          cached_hours=len(covered), fetched_hours=len(acc.hours),
                          open_hours=[h for h in past if h >= open_from], loaded_at=now,
                          rechecked_hours=rechecked, late_hours=late)

    def _recheck(self, sensor_id: int, params: dict, fkey: str, cached: pl.DataFrame,
                 covered: set[datetime], now: datetime, report: Callable[[], None]
                 ) -> tuple[pl.DataFrame, set[datetime], int, list[datetime]]:
        """Re-count the recent cached hours that are due (module docstring, point 6).

        Returns the cache without the hours whose count changed (so they are
        fetched again), how many hours were counted, and the changed hours.
        Best effort: if the API fails, the cache is served and rechecks pause.
        """
        assert self.store is not None
        horizon = floor_hour(now) - self.recheck_hours * HOUR
        failed = self._recheck_failed.get((sensor_id, fkey))
        recent = [h for h in covered if h >= horizon]
        if self.recheck_hours <= 0 or not recent or (
                failed is not None and now - failed < self.recheck_every):
            return cached, covered, 0, []
        checked = self.store.checked(self.source_id, sensor_id, fkey, recent)
        due = sorted(h for h in recent
                     if h not in checked or now - checked[h] >= self.recheck_every)
        if not due:
            return cached, covered, 0, []
        have = dict(cached.group_by("start_of_hour").len().iter_rows())
        fetch = _Fetcher(self, sensor_id, params, _Acc(), report)
        same: list[datetime] = []
        changed: list[datetime] = []
        try:
            for a, b in _segments(due):
                hours = hours_between(a, b)
                _locate(hours, fetch.count(a, b), have, fetch.count, same, changed)
        except E.LoadCancelledError:
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
               acc: _Acc, report: Callable[[], None], settled_before: datetime) -> None:
        fetch = _Fetcher(self, sensor_id, params, acc, report)
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="flux") as pool:
            # First request of every segment: reveals its size and the page size granted.
            heads = [pool.submit(fetch.head, a, b) for a, b in segments]
            acc.planned = len(heads)
            _wait_all(heads)
            plans = [f.result() for f in heads]
            chunks = []
            remaining = sum(p.remaining_rows for p in plans)
            acc.planned += math.ceil(remaining / (FILL * fetch.page_size))
            budget_chunks = max(1, self.max_concurrency)
            for p in plans:
                if p.cursor >= p.end:
                    continue
                share = p.remaining_rows / remaining if remaining else 1
                want = max(1, round(budget_chunks * share))
                want = min(want, math.ceil(p.remaining_rows / (4 * fetch.page_size)) or 1)
                chunks += _split(p.cursor, p.end, want, p.density)
            report()
            futures = [pool.submit(fetch.chunk, a, b, rho) for a, b, rho in chunks]
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
                raise E.IncompleteDataError(
                    f"{got} rows were loaded for {iso(p.start)[:13]}h–{iso(p.end)[:13]}h where "
                    f"the API announced {p.total}.", hours=hours)


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
        if exc is not None and isinstance(exc, FATAL):
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


def _incomplete_message(hours: list[datetime], cause: BaseException | None) -> str:
    first, last = hours[0], hours[-1]
    span = (f"{iso(first)[:16]}Z" if len(hours) == 1
            else f"{len(hours)} hours between {iso(first)[:16]}Z and {iso(last)[:16]}Z")
    why = f" ({cause})" if cause else ""
    return (f"Could not load {span} completely{why}. The other hours are loaded and cached; "
            "load again to fetch only what is missing.")


class _Fetcher:
    """The request logic of one load; methods run in worker threads."""

    def __init__(self, loader: Loader, sensor_id: int, params: dict, acc: _Acc,
                 report: Callable[[], None]) -> None:
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
        resp = self.client.flux_page(self.sensor_id, q)
        if per_page is None:
            self.page_size = resp.meta.per_page
        frame = to_frame(resp.rows)
        self.report()
        return resp, frame

    def _keep(self, frame: pl.DataFrame, hours: set[datetime]) -> pl.DataFrame:
        return frame.filter(pl.col("start_of_hour").is_in(sorted(hours)))

    def count(self, a: datetime, b: datetime) -> int:
        """Rows in [a, b) as the API counts them now: one row asked, ``meta.total`` read."""
        resp, _ = self._get(a, b, sort_by="startOfHour", per_page=1)
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
