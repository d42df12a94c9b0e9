"""Fetch the missing hours as contiguous segments, in parallel, and check each whole.

The first request of every segment (``Fetcher.head``) reveals its size and the
page size the server grants. The rest of a big settled segment (more than
``PLAN_FROM`` pages) is planned: one request to ``/flux-hour-sensor`` (one per
page of hours: a month is one) reads each hour's ``count``. It is a hint: its
sum over the rest must equal what the head's ``meta.total`` leaves (within 2%,
the open hour may grow; with server filters, which it does not apply, it must
be at least that and is scaled down), else the keyset walk takes that segment;
an endpoint that fails or answers nonsense is not asked again for
``HINT_RETRY``. The settled hours are then cut, by dynamic programming
(``cost.plan_windows``), into windows of whole hours of up to ``WINDOW_PAGES``
pages, each read sorted by sumFlux (``Fetcher.window``). What is not planned
is cut into chunks walked with keyset windows (``Fetcher.chunk``), at most
``max_concurrency`` at once, all behind the process-wide rate limiter.
Direction sub-streams (``only_in`` / ``only_out``) were measured and left out:
IN is 0.3-2% of the simulator's rows, so splitting on it saves nothing.

Verification: each settled segment's rows must add up to the total its head
announced; if not, its hours are taken back out of the cache and the load
fails with ``IncompleteDataError``. A wrong hint that still adds up (counts
moved between hours) makes windows too big (halved past 4 × ``WINDOW_PAGES``
pages: one wasted request) or too small (one request each): never a row.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard.hours import HOUR, hours_between, iso
from flux_dashboard.loader.cost import FILL, PLAN_FROM, plan_windows
from flux_dashboard.loader.fetch import Accumulator, Fetcher, SegmentPlan
from flux_dashboard.loader.gate import FATAL, Gate, Stop
from flux_dashboard.store import filters_key

if TYPE_CHECKING:
    from flux_dashboard.loader.core import Loader

log = logging.getLogger(__name__)

HINT_RETRY = timedelta(hours=1)  # hourly counts that failed are not asked again before this


def fetch_segments(loader: Loader, sensor_id: int, segments: list[tuple[datetime, datetime]],
                   params: dict, acc: Accumulator, report: Callable[[], None],
                   settled_before: datetime, gate: Gate | None = None) -> None:
    """Fetch the missing segments into ``acc``: the heads, then the planned windows and
    keyset chunks in parallel; a settled segment's rows must add up to its head's total."""
    fetch = Fetcher(loader, sensor_id, params, acc, report, gate)
    with DaemonPool(loader.max_concurrency, "flux") as pool:
        # First request of every segment: reveals its size and the page size granted.
        heads = [pool.submit(fetch.head, a, b) for a, b in segments]
        acc.planned = len(heads)
        wait_all(heads)
        plans = [f.result() for f in heads]
        # The rest of big settled segments in planned sumFlux windows.
        windows, rest = (plan_rest(loader, fetch, plans, settled_before) if loader.planning
                         else ([], [(p.cursor, p.end, p.remaining_rows, p.density)
                                    for p in plans]))
        acc.planned = fetch.gate.used + sum(cost for _, _, cost in windows)
        chunks = []
        remaining = sum(rows for _, _, rows, _ in rest)
        acc.planned += math.ceil(remaining / (FILL * fetch.page_size))
        budget_chunks = max(1, loader.max_concurrency)
        for a, b, rows, rho in rest:
            if a >= b:
                continue
            share = rows / remaining if remaining else 1
            want = max(1, round(budget_chunks * share))
            want = min(want, math.ceil(rows / (4 * fetch.page_size)) or 1)
            chunks += split(a, b, want, rho)
        report()
        futures = [pool.submit(fetch.window, a, b) for a, b, _ in windows]
        futures += [pool.submit(fetch.chunk, a, b, rho) for a, b, rho in chunks]
        wait_all(futures)
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
            if loader.store is not None:  # written as they came (``fetch``): take them back
                loader.store.forget(loader.source_id, sensor_id, filters_key(params), hours)
            raise E.IncompleteDataError(
                f"{got} rows were loaded for {iso(p.start)[:13]}h–{iso(p.end)[:13]}h where "
                f"the API announced {p.total}.", hours=hours)


def plan_rest(loader: Loader, fetch: Fetcher, plans: list[SegmentPlan],
              settled_before: datetime
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
    failed = loader._hint_failed_at
    if not big or (failed is not None and loader.clock() - failed < HINT_RETRY):
        return [], rest
    counts = fetch.hint(min(p.cursor for p in big), max(p.end for p in big))
    if counts is None:
        loader._hint_failed_at = loader.clock()
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
                    for i, j, cost in plan_windows(expected, page)]
        if cut < p.end:
            tail = sum(counts[h] * scale for h in hours_between(cut, p.end))
            rest.append((cut, p.end, round(tail), p.density))
    return windows, rest


class DaemonPool:
    """``ThreadPoolExecutor``'s ``submit`` and ``with``, on daemon threads.

    ``concurrent.futures`` joins its workers when the interpreter exits, so a
    server told to stop (SIGTERM) would wait for a request the API holds open
    or a retry's backoff. These threads are abandoned instead: what they had
    completed is already saved (the store writes each page atomically).
    """

    def __init__(self, workers: int, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter, as the executor does
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()

    def __enter__(self) -> DaemonPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def wait_all(futures) -> None:
    """Wait for the futures; a fatal error or a stop cancels the pending ones at once."""
    done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in done:
        exc = f.exception()
        if exc is not None and isinstance(exc, (*FATAL, Stop)):
            for p in pending:
                p.cancel()
            raise exc
    wait(pending)
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()




def segments_of(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Hours as contiguous half-open runs [start, end)."""
    segs: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if segs and segs[-1][1] == h:
            segs[-1] = (segs[-1][0], h + HOUR)
        else:
            segs.append((h, h + HOUR))
    return segs


def split(a: datetime, b: datetime, n: int, rho: float
          ) -> list[tuple[datetime, datetime, float]]:
    """[a, b) cut into ``n`` chunks of whole hours (at most one an hour), walked in parallel."""
    hours = int((b - a) / HOUR)
    n = max(1, min(n, hours))
    out, cur = [], a
    for i in range(n):
        size = hours // n + (1 if i < hours % n else 0)
        out.append((cur, cur + size * HOUR, rho))
        cur += size * HOUR
    return out
