"""Hourly totals: ``/flux-hour-sensor`` and ``/flux-hour-ip0`` as a data product.

The API sums a sensor's flows per UTC hour (and per local IP per hour): the flow
records (``count``), bytes in and out, toxic flows in and out, and cyT. A month of
one sensor's totals is one request, against about 1,370 for its flows on a dense
sensor: enough for a fleet's morning check and a cold range's first view.

``HourlyLoader(client, root, per_device=False)`` loads every hour of a range
exactly, through the same client (rate limiter, retries, request count) as the
flows, and with the flows' loader interface (``load``, ``holds``, ``estimate``),
so ``spending`` admits, books and audits its requests like any other load:

* **Exact under the API's hazards.** A window is asked for in one page only: a
  window whose ``meta.total`` is more than the page the server granted is split
  into smaller windows (so the unstable order of ties between pages never
  duplicates or drops an item), each page must hold exactly ``meta.total`` items,
  one per hour (and IP), inside the window; volumes come as strings or numbers.
  Anything else is a ``SchemaError``, never a silent guess.
* **Cached like the flows**: one Parquet file per sensor and UTC day
  (``store.Store`` with this module's schema), settled hours only; an hour with no
  item is a covered hour of zero. The open hours are fetched every time, and the
  settled hours of the late-data horizon (``FLUX_RECHECK_HOURS``) are fetched again
  when last checked more than ``RECHECK_EVERY`` ago (one request covers them).

``agreement(totals, flows)`` compares the totals with the flows of the same hours:
any difference is a data-quality note to show, never a correction.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from flux_dashboard import clock as clock_mod
from flux_dashboard import errors as E
from flux_dashboard.hours import HOUR, SETTLE, ceil_hour, floor_hour, hours_between, iso
from flux_dashboard.loader.results import Estimate, Progress
from flux_dashboard.store import Store

RECHECK_EVERY = timedelta(minutes=15)
PER_PAGE = 1000
FIGURES = ("flows", "bytes_in", "bytes_out", "toxic_in", "toxic_out", "cyt")
HOURLY_SCHEMA = pl.Schema({"start_of_hour": pl.Datetime("us", "UTC"),
                           **{f: pl.Int64 for f in FIGURES}})
DEVICE_SCHEMA = pl.Schema({"start_of_hour": pl.Datetime("us", "UTC"), "ip0": pl.String,
                           **{f: pl.Int64 for f in FIGURES}})
_FIELDS = {"count": "flows", "in_flux": "bytes_in", "out_flux": "bytes_out",
           "in_toxic_flux": "toxic_in", "out_toxic_flux": "toxic_out", "cyt": "cyt"}
MAX_SPLITS = 12  # a window halved this often and still over a page: the API is not sane


@dataclass
class HourlyResult:
    frame: pl.DataFrame  # HOURLY_SCHEMA (every hour, zeros included) or DEVICE_SCHEMA
    start: datetime
    end: datetime
    flux_requests: int = 0
    cached_hours: int = 0
    fetched_hours: int = 0
    open_hours: list[datetime] = field(default_factory=list)


def _whole(value: object, what: str) -> int:
    """A count or a volume as the API sends it: an int, a float with no fraction, or
    a string of digits. Anything else is a SchemaError."""
    if isinstance(value, bool):
        raise E.SchemaError(f"The hourly statistics hold a boolean as {what}.")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        out = int(value.strip())
    else:
        raise E.SchemaError(f"The hourly statistics hold {str(value)[:20]!r} as {what}: "
                            "expected a whole number.")
    if out < 0:
        raise E.SchemaError(f"The hourly statistics hold a negative {what}.")
    return out


def _hour(value: object) -> datetime:
    try:
        h = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise E.SchemaError(f"The hourly statistics hold {str(value)[:30]!r} as an hour.") \
            from None
    if h.tzinfo is None:
        h = h.replace(tzinfo=UTC)
    h = h.astimezone(UTC)
    if h != floor_hour(h):
        raise E.SchemaError("The hourly statistics hold an hour that does not start on the "
                            "hour.")
    return h


class HourlyLoader:
    def __init__(self, client, root: Path | str | None, *, per_device: bool = False,
                 clock: Callable[[], datetime] | None = None, recheck_hours: int | None = None,
                 recheck_every: timedelta = RECHECK_EVERY, per_page: int = PER_PAGE) -> None:
        self.client = client
        self.per_device = per_device
        self.schema = DEVICE_SCHEMA if per_device else HOURLY_SCHEMA
        self.key = ("start_of_hour", "ip0") if per_device else ("start_of_hour",)
        kind = "hourly-ip0" if per_device else "hourly-sensor"
        self.store = Store(Path(root) / kind, self.schema, self.key) if root else None
        self.endpoint = "flux-hour-ip0" if per_device else "flux-hour-sensor"
        self.clock = clock or clock_mod.real
        self.source_id = client.settings.source_id
        self.recheck_hours = (client.settings.recheck_hours if recheck_hours is None
                              else recheck_hours)
        self.recheck_every = recheck_every
        self.per_page = per_page
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ planning

    def _plan(self, sensor: int, start: datetime, end: datetime
              ) -> tuple[list[datetime], list[datetime], list[datetime]]:
        """(hours of the range, hours to fetch, open hours)."""
        now = self.clock()
        hours = hours_between(floor_hour(start), ceil_hour(end))
        open_from = floor_hour(now - SETTLE)
        past = [h for h in hours if h < floor_hour(now) + HOUR]
        settled = [h for h in past if h < open_from]
        opened = [h for h in past if h >= open_from]
        if self.store is None:
            return hours, past, opened
        covered = self.store.covered(self.source_id, sensor, "all", settled)
        todo = {h for h in settled if h not in covered}
        horizon = open_from - self.recheck_hours * HOUR
        recent = [h for h in settled if h >= horizon and h in covered]
        if recent:
            checked = self.store.checked(self.source_id, sensor, "all", recent)
            todo |= {h for h in recent
                     if h not in checked or now - checked[h] >= self.recheck_every}
        return hours, sorted(todo | set(opened)), opened

    def holds(self, sensor: int, start: datetime, end: datetime, server: Mapping = ()) -> bool:
        return not self._plan(int(sensor), start, end)[1]

    def estimate(self, sensor: int, start: datetime, end: datetime, *,
                 server_filters: Mapping | None = None) -> Estimate:
        """What a load would cost. The sensor's totals: one item per hour, so the pages
        are known. Per device, the items are counted first: one request of one item for
        ``meta.total`` (``spent``, metered and audited by ``spending`` like the flows'
        counts), then the pages that total fills, with the splitting margin."""
        _, todo, _ = self._plan(int(sensor), start, end)
        if not todo:
            return Estimate(0, 0, 0)
        a, b = todo[0], todo[-1] + HOUR
        items, spent = (b - a) // HOUR, 0
        if self.per_device:
            q = {"from": iso(a - timedelta(seconds=1)), "to": iso(b - timedelta(seconds=1)),
                 "sort_by": "utc_hour", "page": 1, "per_page": 1}
            items, spent = self.client.hourly_page(int(sensor), self.endpoint, q).meta.total, 1
        pages = math.ceil(items / self.per_page)
        requests = 1 if pages <= 1 else math.ceil(1.4 * pages) + 2
        return Estimate(requests, len(todo), items, spent=spent)

    refetch_estimate = estimate

    def expected_rows(self, sensor: int, start: datetime, end: datetime,
                      server: Mapping = ()) -> int | None:
        return None  # a few thousand rows at most: never too big for memory

    def cached(self, sensor: int, start: datetime, end: datetime) -> pl.DataFrame:
        """The cached totals of the settled hours of ``[start, end)``: no request (the
        hours not cached are simply absent)."""
        if self.store is None:
            return pl.DataFrame(schema=self.schema)
        open_from = floor_hour(self.clock() - SETTLE)
        hours = [h for h in hours_between(floor_hour(start), ceil_hour(end)) if h < open_from]
        frame, covered = self.store.read(self.source_id, int(sensor), "all", hours)
        if not self.per_device and covered:  # the covered hours without a row: zeros
            frame = pl.DataFrame({"start_of_hour": sorted(covered)},
                                 schema={"start_of_hour": pl.Datetime("us", "UTC")}) \
                .join(frame, on="start_of_hour", how="left") \
                .with_columns(pl.col(f).fill_null(0) for f in FIGURES)
        return frame.sort(list(self.key))

    # ------------------------------------------------------------------ loading

    def load(self, sensor: int, start: datetime, end: datetime, *,
             server_filters: Mapping | None = None, max_requests: int | None = None,
             progress: Callable[[Progress], None] | None = None,
             cancel: threading.Event | None = None, refresh: bool | str = False
             ) -> HourlyResult:
        """Every hour of ``[start, end)`` (hours not yet begun are left out)."""
        sensor = int(sensor)
        hours, todo, opened = self._plan(sensor, start, end)
        cached = []
        if self.store is not None:
            cached_frame, covered = self.store.read(
                self.source_id, sensor, "all", [h for h in hours if h not in set(todo)])
            cached = [cached_frame]
        else:
            covered = set()
        if todo and max_requests == 0:
            raise E.IncompleteDataError(
                f"{len(todo)} hours of hourly totals are not cached.", hours=todo)
        spent = [0]
        fetched = []
        if todo:
            a, b = todo[0], todo[-1] + HOUR
            fetched = self._fetch(sensor, a, b, spent, max_requests, cancel, progress,
                                  len(todo))
            got = pl.concat(fetched, how="vertical") if fetched else \
                pl.DataFrame(schema=self.schema)
            wanted = set(todo)
            got = got.filter(pl.col("start_of_hour").is_in(sorted(wanted)))
            settled = sorted(wanted - set(opened))
            if self.store is not None and settled:
                self.store.write(self.source_id, sensor, "all", settled,
                                 got.filter(pl.col("start_of_hour").is_in(settled)),
                                 checked_at=self.clock())
            cached.append(got)
        frame = pl.concat(cached, how="vertical") if cached else pl.DataFrame(schema=self.schema)
        frame = frame.filter(pl.col("start_of_hour").is_in(hours))
        if not self.per_device:  # every hour of the range that has begun, zeros included
            now = self.clock()
            begun = [h for h in hours if h < floor_hour(now) + HOUR]
            frame = pl.DataFrame({"start_of_hour": begun},
                                 schema={"start_of_hour": pl.Datetime("us", "UTC")}) \
                .join(frame, on="start_of_hour", how="left") \
                .with_columns(pl.col(f).fill_null(0) for f in FIGURES)
        frame = frame.sort(list(self.key))
        return HourlyResult(frame, start, end, spent[0], len(covered), len(todo), opened)

    def _fetch(self, sensor: int, a: datetime, b: datetime, spent: list[int],
               max_requests: int | None, cancel: threading.Event | None,
               progress: Callable[[Progress], None] | None, total_hours: int,
               depth: int = 0) -> list[pl.DataFrame]:
        """The items of ``[a, b)``, each window in one page (split while over a page)."""
        if cancel is not None and cancel.is_set():
            raise E.LoadCancelledError("The hourly totals' load was cancelled.",
                                       hours=hours_between(a, b))
        if max_requests is not None and spent[0] >= max_requests:
            raise E.BudgetExceededError(
                f"The hourly totals need more than the {max_requests} requests booked.",
                hours=hours_between(a, b))
        q = {"from": iso(a - timedelta(seconds=1)), "to": iso(b - timedelta(seconds=1)),
             "sort_by": "utc_hour", "page": 1, "per_page": self.per_page}
        page = self.client.hourly_page(sensor, self.endpoint, q)
        spent[0] += 1
        if progress is not None:
            progress(Progress(spent[0], max(spent[0], 1), 0, 0, total_hours,
                              self.client.settings.rate_limit_per_min))
        meta = page.meta
        hours = (b - a) // HOUR
        if meta.total > max(1, meta.per_page) or meta.last_page > 1:
            if hours <= 1 or depth >= MAX_SPLITS:
                raise E.SchemaError(f"The API counts {meta.total} hourly statistics for one "
                                    "hour, more than fit a page: they cannot be read exactly.")
            # Items spread unevenly over the hours (a quiet night, a busy day): a margin
            # so that few parts need a second split.
            parts = min(hours, max(2, math.ceil(1.4 * meta.total / max(1, meta.per_page)) + 1))
            step = math.ceil(hours / parts)
            out = []
            t = a
            while t < b:
                u = min(b, t + step * HOUR)
                out += self._fetch(sensor, t, u, spent, max_requests, cancel, progress,
                                   total_hours, depth + 1)
                t = u
            return out
        if len(page.rows) != meta.total:
            raise E.SchemaError(f"The hourly statistics of {iso(a)[:13]}h–{iso(b)[:13]}h hold "
                                f"{len(page.rows)} items where meta.total says {meta.total}.")
        return [self._frame(page.rows, a, b)]

    def _frame(self, items: list, a: datetime, b: datetime) -> pl.DataFrame:
        rows = []
        seen = set()
        for item in items:
            if not isinstance(item, dict):
                raise E.SchemaError("The hourly statistics hold an item that is not an object.")
            h = _hour(item.get("utc_hour"))
            if not a <= h < b:
                continue  # the API's inclusive edges: an hour outside the window asked
            row: dict[str, object] = {"start_of_hour": h}
            if self.per_device:
                ip = item.get("ip0")
                if not isinstance(ip, str) or not ip:
                    raise E.SchemaError("The per-device hourly statistics hold an item "
                                        "without its local IP.")
                row["ip0"] = ip
            key = tuple(row.values())
            if key in seen:
                raise E.SchemaError(f"The hourly statistics hold {iso(h)[:13]}h twice.")
            seen.add(key)
            for src, dst in _FIELDS.items():
                row[dst] = _whole(item.get(src), src)
            rows.append(row)
        return pl.DataFrame(rows, schema=self.schema, orient="row") if rows else \
            pl.DataFrame(schema=self.schema)


# ------------------------------------------------------------------ from the flows

def from_flows(flows: pl.DataFrame, per_device: bool = False) -> pl.DataFrame:
    """The same totals computed from flow rows (the agreement check's other side)."""
    toxic = pl.col("toxic").fill_null(False)
    keys = ["start_of_hour", "ip0"] if per_device else ["start_of_hour"]
    out = flows.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("flows"),
        pl.col("in_bytes").sum().cast(pl.Int64).alias("bytes_in"),
        pl.col("out_bytes").sum().cast(pl.Int64).alias("bytes_out"),
        (toxic & (pl.col("dir") == "IN")).sum().cast(pl.Int64).alias("toxic_in"),
        (toxic & (pl.col("dir") == "OUT")).sum().cast(pl.Int64).alias("toxic_out"))
    return out.with_columns((pl.col("toxic_in") + 10 * pl.col("toxic_out")).alias("cyt")) \
        .with_columns(pl.col("ip0").cast(pl.String) if per_device else []).sort(keys)


def agreement(totals: pl.DataFrame, flows: pl.DataFrame, hours: Iterable[datetime]
              ) -> pl.DataFrame:
    """The hours (of ``hours``: those whose flows are all cached) where the hourly
    totals and the flows disagree: hour, then each figure from both sides and their
    difference (``<figure>_totals``, ``<figure>_flows``). Empty: they agree."""
    wanted = sorted(set(hours))
    if not wanted:
        return pl.DataFrame()
    mine = totals.filter(pl.col("start_of_hour").is_in(wanted))
    theirs = from_flows(flows.filter(pl.col("start_of_hour").is_in(wanted)))
    both = pl.DataFrame({"start_of_hour": wanted},
                        schema={"start_of_hour": pl.Datetime("us", "UTC")}) \
        .join(mine, on="start_of_hour", how="left") \
        .join(theirs, on="start_of_hour", how="left", suffix="_flows") \
        .rename({f: f"{f}_totals" for f in FIGURES}) \
        .with_columns(pl.col(f"{f}_{s}").fill_null(0) for f in FIGURES for s in ("totals",
                                                                                   "flows"))
    differs = pl.any_horizontal(pl.col(f"{f}_totals") != pl.col(f"{f}_flows") for f in FIGURES)
    return both.filter(differs)


def agreement_text(diff: pl.DataFrame, tz: str) -> str | None:
    """One plain sentence about the hours that disagree, or None."""
    if diff.height == 0:
        return None
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    parts = []
    for row in diff.head(5).iter_rows(named=True):
        what = ", ".join(f"{f.replace('_', ' ')} {row[f + '_totals']:,} vs {row[f + '_flows']:,}"
                         for f in FIGURES if row[f + "_totals"] != row[f + "_flows"])
        parts.append(f"{row['start_of_hour'].astimezone(zone):%d %b %H:00} ({what})")
    more = f" and {diff.height - 5} more" if diff.height > 5 else ""
    return (f"Data quality: the API's hourly totals and its flows disagree for "
            f"{diff.height} hour{'s' * (diff.height > 1)}: {'; '.join(parts)}{more} "
            "(totals vs flows). The figures on this page come from the flows.")


# ------------------------------------------------------------------ a first view

@dataclass(frozen=True)
class FirstView:
    """What the Overview can say exactly from hourly totals, before the flows arrive."""

    kpis: dict  # flows, bytes_in, bytes_out, toxic_in, toxic_out, cyt
    weather: object  # analytics.CyberweatherSummary
    carbon: dict
    days: pl.DataFrame  # as analytics.cyberweather(every="1d")
    every: str
    traffic: pl.DataFrame  # as analytics.traffic_over_time (toxic_bytes unknown: 0)
    top_devices: pl.DataFrame | None  # as analytics.top_devices (names unknown: the IPs)


def first_view(totals: pl.DataFrame, tz: str, today, g_per_gb: float,
               devices: pl.DataFrame | None = None) -> FirstView:
    """The Overview's exact parts from hourly totals (``HOURLY_SCHEMA``; ``devices``:
    ``DEVICE_SCHEMA``), computed as ``pagedata.overview`` computes them from flows."""
    from flux_dashboard import analytics as A

    t = totals.filter(pl.col("flows") > 0)
    sums = {f: int(t[f].sum()) for f in FIGURES if f != "cyt"}
    kpis = {**sums, "cyt": A.cyt_of(sums["toxic_in"], sums["toxic_out"])}
    local = pl.col("start_of_hour").dt.convert_time_zone(tz)
    lo, hi = (t["start_of_hour"].min(), t["start_of_hour"].max()) if t.height else (None, None)
    every = "1h" if lo is None or (hi - lo).total_seconds() <= 3 * 86400 else "1d"

    def buckets(by: str, cols: list[str]) -> pl.DataFrame:
        agg = t.group_by(local.dt.truncate(by).alias("bucket")).agg(pl.col(cols).sum())
        return A._fill_buckets(agg, by, cols)

    days = A._with_levels(buckets("1d", ["toxic_in", "toxic_out", "flows"])).select(
        "bucket", "toxic_in", "toxic_out", "cyt", "level", "level_name", "flows")
    traffic = buckets(every, ["bytes_in", "bytes_out", "flows", "toxic_in", "toxic_out"]) \
        .with_columns((pl.col("toxic_in") + pl.col("toxic_out")).alias("toxic_flows"),
                      pl.lit(0, pl.Int64).alias("toxic_bytes")) \
        .select("bucket", "bytes_in", "bytes_out", "toxic_bytes", "flows", "toxic_flows")
    weather = A.summary_of_days(days, today)
    carbon = A.carbon_of_bytes(sums["bytes_in"] + sums["bytes_out"], g_per_gb)
    top = None
    if devices is not None and devices.height:
        per = devices.group_by("ip0").agg(pl.col("bytes_in").sum(), pl.col("bytes_out").sum(),
                                          pl.col("flows").sum(),
                                          (pl.col("toxic_in") + pl.col("toxic_out")).sum()
                                          .alias("toxic_flows"))
        top = per.with_columns((pl.col("bytes_in") + pl.col("bytes_out")).alias("bytes")) \
            .sort(["bytes", "ip0"], descending=[True, False]).head(10) \
            .with_columns(pl.col("ip0").alias("label"))
    return FirstView(kpis, weather, carbon, days, every, traffic, top)
