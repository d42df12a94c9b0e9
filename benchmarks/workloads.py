"""What each dashboard page computes on the server, through the pages' own functions.

Every page function takes a ``Ctx`` (the view a page would get) and returns the
figures and tables it hands to Streamlit, at the widgets' defaults: the page's
computation from ``flux_dashboard.pagedata`` (the same call, memoised in the
app), its ``figures()``, and the tables the page draws. ``serialize`` then does
what ``st.plotly_chart`` (``plotly.io.to_json``) and ``st.dataframe`` (eager
Arrow path) do with them, so the timing is the page's server time minus
Streamlit's own widget overhead. Lazy work (downloads, evidence packs) runs
only on click in the app and is left out here too.

Lookbacks (the Overview's selected day and the same hours a week before, the
Threat-hunting baseline) go through the loader with ``refresh=True`` and are
re-prepared every time, as on a first visit of the page: the conservative case
(the app keeps them in memory afterwards). Which windows they are comes from
``hours``, as on the pages; ``lookback_windows`` lists them so that a phase can
fill the cache first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import plotly.io as pio
import polars as pl

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import hunting as Hn
from flux_dashboard import pagedata as PD
from flux_dashboard.config import DEFAULT_CARBON_G_PER_GB
from flux_dashboard.digest import digest
from flux_dashboard.filters import Filters
from flux_dashboard.geo import enrich
from flux_dashboard.hours import DayComparison, ceil_hour, days_before, range_days, week_on_week
from flux_dashboard.loader import Loader


@dataclass
class Ctx:
    loader: Loader
    sensor_id: int
    tz: str
    hno: tuple[int, ...]
    start: datetime
    end: datetime
    now: datetime  # the clock the pages read (today, the digest's default day)
    filters: Filters
    frame: pl.DataFrame  # the filtered frame the pages show
    baseline_days: int = 7  # the hunting baseline (the page's default: 7)
    g_per_gb: float = DEFAULT_CARBON_G_PER_GB


Output = list  # of plotly figures and polars frames


def digest_windows(tz: str, start: datetime, end: datetime, now: datetime
                   ) -> DayComparison:
    """The Overview's default digest: the range's last complete local day (so far, up to
    the open hour) and the same hours a week before."""
    day = range_days(start, end, now, tz).last_complete
    return week_on_week(day, tz, until=ceil_hour(now))


def lookback_windows(tz: str, start: datetime, end: datetime, now: datetime,
                     baseline_days: int) -> list[tuple[datetime, datetime]]:
    """Every extra window the pages load: the digest's two days and the hunting baseline."""
    compared = digest_windows(tz, start, end, now)
    return [compared.window, compared.previous_window, days_before(start, baseline_days)]


def _lookback(ctx: Ctx, start: datetime, end: datetime) -> pl.DataFrame:
    """``ui.lookback``: load through the loader (disk cache), prepare, apply the filters."""
    result = ctx.loader.load(ctx.sensor_id, start, end, refresh=True)
    if result.flux_requests:
        raise RuntimeError(f"a lookback made {result.flux_requests} flux requests: the cache "
                           "should hold it")
    return ctx.filters.apply(enrich(result.frame, "ip1"), ctx.tz, ctx.hno)


def overview(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    calendar = range_days(ctx.start, ctx.end, ctx.now, tz)
    ov = PD.overview(f, tz, calendar.today_in_range, ctx.g_per_gb)
    compared = digest_windows(tz, ctx.start, ctx.end, ctx.now)
    current, previous = (_lookback(ctx, *compared.window),
                         _lookback(ctx, *compared.previous_window))
    digest(current, previous, tz, compared.day, compared.previous)
    day = (ov.hour_days or calendar.days)[0]  # "Hours of": the newest day
    return [*ov.figures().values(),
            C.cyberweather_hours_fig(A.cyberweather_hours(f, tz, day), tz=tz, day=day)]


def devices(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    dv = PD.devices(f, tz, ctx.g_per_gb)
    ip = dv.ips[0]  # the drill-down's default device
    dv.device(ip)
    drill = PD.device_drill(f, ip, tz, ctx.g_per_gb)
    out: Output = [*dv.figures().values(), dv.table, *drill.figures().values()]
    return out + ([drill.toxic] if drill.toxic.height else [])


def protocols(ctx: Ctx) -> Output:
    pr = PD.protocols(ctx.frame)
    heat = PD.port_device(ctx.frame, PD.HEAT_VALUES[0])
    return [*pr.figures().values(), *heat.figures().values(), pr.ports]


def toxic(ctx: Ctx) -> Output:
    tx = PD.toxic(ctx.frame, ctx.tz)
    if tx.table.height == 0:
        return []
    tables = [tx.out_table] if tx.out_devices.height else []
    return [*tx.figures().values(), *tables, tx.matching("")]


def remotes(ctx: Ctx) -> Output:
    rh = PD.remotes(ctx.frame, PD.DIRECTIONS[0], PD.REMOTE_SORTS[0])
    return [*rh.figures().values(), rh.matching("")]


def hunting(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    baseline = _lookback(ctx, *days_before(ctx.start, ctx.baseline_days))
    stories = PD.storylines(f).table
    anomalies = Hn.upload_anomalies(f, baseline, k=PD.ANOMALY_K)
    out: Output = [*([stories] if stories.height else []), PD.first_seen(f, baseline).table,
                   *([anomalies] if anomalies.height else [])]
    if ctx.hno:
        off = PD.off_hours(f, tz, ctx.hno)
        out += [off.per_device, *([off.toxic] if off.toxic.height else [])]
    return out


PAGES: list[tuple[str, Callable[[Ctx], Output]]] = [
    ("Overview", overview),
    ("Devices", devices),
    ("Protocols & ports", protocols),
    ("Toxic flows", toxic),
    ("Remote hosts", remotes),
    ("Threat hunting", hunting),
]


def serialize(outputs: Output) -> int:
    """What Streamlit does with the outputs before sending them; returns the bytes produced."""
    from streamlit import dataframe_util

    size = 0
    for item in outputs:
        if isinstance(item, pl.DataFrame):
            pdf = dataframe_util.convert_anything_to_pandas_df(item, ensure_copy=False)
            size += len(dataframe_util.convert_pandas_df_to_arrow_bytes(pdf))
        else:
            size += len(pio.to_json(item, validate=False))
    return size
