"""The requests of one load (``Fetcher``; its methods run in worker threads).

1. **Keyset by hour** (``head``, ``chunk``). Ask for a window of hours sorted
   by ``startOfHour`` ascending, page 1 only. If ``meta.total`` fits in the
   page, the window is complete. Otherwise every hour in the page except the
   last one is complete (the page starts at position 0 and is full), so those
   are kept and the cursor moves to the last hour. No page 2 is ever asked at
   this level. Window sizes adapt to the observed rows per hour, aiming at
   ``FILL`` of a page.
2. **Dense hours** (``hour``). An hour that alone fills a page is split on a
   second key (``SPLIT_LEVELS``: ``ip0``, then ``ip1``, ``dir``, ``protocol``,
   ``port``): page 1 ascending plus page 1 descending cover any group of up to
   two pages; a key group wholly inside one of them is complete
   (``positions.complete_groups``). A group that straddles both (or, beyond two
   pages, any page boundary) is fetched again with the key as a filter, one
   level down. Beyond two pages, middle pages are fetched and judged the same.
3. **Planned windows** (``window``). A window is read sorted by ``sumFlux``:
   ascending pages 1..n-1 and page 1 descending, which overlap by at least
   ``OVERLAP`` rows; ``positions.resolve_sums`` proves which rows are whole and
   names the pages still needed. A window that is not proven complete is tried
   once more, then its hours take the keyset walk. ``hint`` reads the hourly
   counts that planning starts from.
4. **Verification.** Every window checks its distinct natural keys against
   ``meta.total`` (complete windows) or the page size (keyset pages). ``from``
   and ``to`` are each sent one second early, so the answer is the same whether
   the API treats either bound as inclusive or exclusive; rows outside the
   window are trimmed anyway. A row twice fails the load.
5. **Saving as it goes.** Each batch of hours accepted above goes to the
   ``Accumulator``, whose ``save`` writes its settled hours to the store at
   once, so a cancelled, stopped or killed load resumes where it stopped. A
   cancelled planned window loses its pages: its hours are saved only once all
   of them are in.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard.client import FluxPage
from flux_dashboard.hours import HOUR, hours_between, iso
from flux_dashboard.loader.cost import FILL, WINDOW_PAGES
from flux_dashboard.loader.gate import Gate, Stop, gated
from flux_dashboard.loader.positions import complete_groups, resolve_sums
from flux_dashboard.schema import NATURAL_KEY, to_frame

if TYPE_CHECKING:
    from flux_dashboard.loader.core import Loader

log = logging.getLogger(__name__)

# Keys used to split a dense hour, with the filter that isolates one value.
SPLIT_LEVELS: tuple[tuple[str, str], ...] = (
    ("ip0", "ip0"), ("ip1", "ip1"), ("dir", "dir"), ("protocol", "protocol"), ("port", "port"),
)


@dataclass
class SegmentPlan:
    """A segment after its first request: what is done and what is left."""

    start: datetime
    cursor: datetime
    end: datetime
    total: int  # rows announced for [start, end) by the first request
    remaining_rows: int
    density: float  # rows per hour


class Accumulator:
    """Thread-safe accumulator of complete hours and their rows.

    ``save(frame, hours)``, if given, receives every accepted batch right away
    (the loader writes its settled hours to disk: point 5 above).
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


class Fetcher:
    """The request logic of one load; methods run in worker threads."""

    def __init__(self, loader: Loader, sensor_id: int, params: dict, acc: Accumulator,
                 report: Callable[[], None], gate: Gate | None = None) -> None:
        self.loader = loader
        self.gate = gate or Gate()
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
        with gated(self.gate):
            resp = self.client.flux_page(self.sensor_id, q)
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
    def head(self, a: datetime, b: datetime) -> SegmentPlan:
        resp, frame = self._get(a, b, sort_by="startOfHour")
        total = resp.meta.total
        cursor = self._accept_window(a, b, resp, frame)
        hours = max(1, int((b - a) / HOUR))
        if cursor is None:
            return SegmentPlan(a, b, b, total, 0, total / hours)
        done_rows = frame.filter(pl.col("start_of_hour") < cursor).height
        return SegmentPlan(a, cursor, b, total, max(0, total - done_rows), total / hours)

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
            check_distinct(frame, meta.total, "window")
            self.acc.add(self._keep(frame, window), window)
            return None
        if frame.height != meta.per_page:
            raise E.IncompleteDataError(
                f"The API returned {frame.height} rows on a full page of {meta.per_page}.",
                hours=sorted(window))
        check_distinct(frame, frame.height, "page")
        sh = frame.get_column("start_of_hour")
        if not sh.is_sorted():
            raise E.SchemaError("The API did not sort the flows by startOfHour as asked.")
        last = sh[-1]
        done = {h for h in window if h < last}
        self.acc.add(self._keep(frame, done), done)
        return max(a, last) if last < b else None

    # -- planned windows (point 3): per-hour counts, then windows sorted by sumFlux
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
                with gated(self.gate):
                    resp = self.client.hour_counts(self.sensor_id, q)
                self.report()
                meta = resp.meta
                if meta.total > len(hours) or meta.last_page > len(hours):
                    return None  # more statistics than hours: not what we take it for
                last = meta.last_page
                for item in resp.rows:
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
        except (E.RateLimitedError, Stop):
            raise
        except (E.FluxError, ValueError, TypeError, AttributeError) as exc:
            log.info("hourly counts of sensor %s unavailable (%s); planning without them",
                     self.sensor_id, exc.__class__.__name__)
            return None
        return {h: counts.get(h, 0) for h in sorted(hours)}

    def window(self, a: datetime, b: datetime) -> None:
        """Fetch [a, b) sorted by sumFlux (point 3); the keyset walk if that fails."""
        window = set(hours_between(a, b))
        total = 0
        for _attempt in range(2):
            try:
                frame, total = self._sum_window(a, b)
            except Changed:
                continue
            except Unplanned:
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
            check_distinct(f1, total, "window", changed=True)
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
                raise Changed()
            got[(desc, page)] = f

        for page in range(2, pages):
            fetch(False, page)
        fetch(True, 1)
        for _repair in range(pages + 1):
            frame, need = resolve_sums(got, total, p)
            if frame is not None:
                check_distinct(frame, total, "window", changed=True)
                return frame, total
            if not need:
                raise Unplanned()
            for desc, page in need:
                fetch(desc, page)
        raise Unplanned()

    # -- level 2: one hour, split on other keys
    def hour(self, h: datetime) -> int:
        """Fetch one whole hour (retrying if it changes under us); return its row count."""
        for attempt in range(3):
            try:
                frame, total = self._group(h, {}, 0)
            except Changed:
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
        r1, f1 = self._get(h, h + HOUR, sort_by=sort_by, extra=filter_params(extra))
        total, p = r1.meta.total, r1.meta.per_page
        if total <= p:
            check_distinct(f1, total, "hour", changed=True)
            return f1, total
        pages: list[tuple[pl.DataFrame, bool]] = [(f1, False)]  # (frame, is_tail)
        last_page = math.ceil(total / p)
        for page in range(2, last_page):
            _, fm = self._get(h, h + HOUR, sort_by=sort_by, page=page, extra=filter_params(extra))
            pages.append((fm, False))
        r2, f2 = self._get(h, h + HOUR, sort_by=sort_by, desc=True, extra=filter_params(extra))
        if r2.meta.total != total:
            raise Changed()
        pages.append((f2, True))

        complete, straddlers = complete_groups(pages, key, total, p)
        parts = [complete]
        got = complete.height
        for value in straddlers:
            sub_extra = {**extra, key: value}
            sub, n = self._group(h, sub_extra, level + 1)
            parts.append(sub)
            got += n
        frame = pl.concat(parts)
        if got != total or frame.height != total:
            raise Changed()
        check_distinct(frame, total, "hour", changed=True)
        return frame, total


class Changed(Exception):
    """The rows of an hour changed between two requests (the open hour grows)."""


class Unplanned(Exception):
    """A sumFlux window could not be proven complete: fetch its hours the keyset way."""


def filter_params(extra: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in extra.items():
        if k == "dir":
            out["only_in" if v == "IN" else "only_out"] = True
        else:
            out[k] = v
    return out


def check_distinct(frame: pl.DataFrame, expected: int, what: str, changed: bool = False
                    ) -> None:
    n = frame.select(pl.struct(NATURAL_KEY).n_unique()).item() if frame.height else 0
    if n != expected or frame.height != expected:
        if changed:
            raise Changed()
        raise E.IncompleteDataError(
            f"The API announced {expected} rows for a {what} but returned {frame.height} "
            f"({n} distinct).", hours=sorted(set(frame.get_column("start_of_hour").to_list())))
