"""What each dashboard page computes on the server, call for call (mirrors ``pages/*.py``).

Every page function takes a ``Ctx`` (the view a page would get) and returns the
figures and tables it hands to Streamlit; ``serialize`` then does what
``st.plotly_chart`` (``plotly.io.to_json``) and ``st.dataframe`` (eager Arrow
path) do with them, so the timing is the page's server time minus Streamlit's
own widget overhead. Lazy work (downloads, evidence packs) runs only on click
in the app and is left out here too.

Lookbacks (the Overview's comparison day, the Threat-hunting baseline) go
through the loader with ``refresh=True`` and are re-prepared every time, as on
a first visit of the page: the conservative case (the app keeps them in memory
afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import plotly.io as pio
import polars as pl

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import hunting as Hn
from flux_dashboard.digest import digest
from flux_dashboard.filters import Filters
from flux_dashboard.geo import enrich
from flux_dashboard.hours import local_day_window
from flux_dashboard.loader import Loader


@dataclass
class Ctx:
    loader: Loader
    sensor_id: int
    tz: str
    hno: tuple[int, ...]
    start: datetime
    end: datetime
    filters: Filters
    frame: pl.DataFrame  # the filtered frame the pages show
    baseline_days: int = 7


Output = list  # of plotly figures and polars frames


def comparison_day(frame: pl.DataFrame, tz: str, end: datetime) -> tuple[date, date]:
    """The Overview's default digest day (the latest local day) and the one a week before."""
    days = A.cyberweather(frame, tz, "1d")
    options = [d.date() for d in days["bucket"].to_list()] or [
        (end - timedelta(seconds=1)).astimezone(ZoneInfo(tz)).date()]
    day = options[-1]
    return day, day - timedelta(days=7)


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    return local_day_window(day, tz)  # as the Overview: local midnights, DST-safe


def lookback_windows(frame: pl.DataFrame, tz: str, start: datetime, end: datetime,
                     baseline_days: int) -> list[tuple[datetime, datetime]]:
    """Every extra window the pages load: the digest's comparison day and the baseline."""
    _, prev = comparison_day(frame, tz, end)
    return [day_window(prev, tz), (start - timedelta(days=baseline_days), start)]


def _lookback(ctx: Ctx, start: datetime, end: datetime) -> pl.DataFrame:
    """``ui.lookback``: load through the loader (disk cache), prepare, apply the filters."""
    result = ctx.loader.load(ctx.sensor_id, start, end, refresh=True)
    if result.flux_requests:
        raise RuntimeError(f"a lookback made {result.flux_requests} flux requests: the cache "
                           "should hold it")
    return ctx.filters.apply(enrich(result.frame, "ip1"), ctx.tz, ctx.hno)


def overview(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    A.kpis(f)
    days = A.cyberweather(f, tz, "1d")
    day, prev = comparison_day(f, tz, ctx.end)
    baseline = _lookback(ctx, *day_window(prev, tz))
    digest(f, baseline, tz, day, prev)
    out: Output = [
        C.traffic_over_time_fig(A.traffic_over_time(f, tz, "auto"),
                                title=f"Traffic over time ({A.auto_every(f)} buckets)"),
        C.cyberweather_calendar_fig(days, title="Cyberweather per day"),
        C.cyberweather_hours_fig(A.cyberweather_hours(f, tz, day), tz=tz, day=day),
        C.cyberweather_fig(days, title="cyT per day"),
        C.top_bar_fig(A.top_devices(f, 10), title="Top devices by bytes"),
        C.top_bar_fig(A.top_protocols(f, 8), title="Protocols by bytes",
                      category_title="Protocol"),
        C.top_bar_fig(A.top_ports(f, 10), title="Top ports by bytes", category_title="Port"),
    ]
    return out


def devices(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    out: Output = [
        C.top_bar_fig(A.top_devices(f, 15), title="Traffic per device (bytes)"),
        C.top_bar_fig(A.top_devices(f, 15, by="toxic_flows"), value="toxic_flows",
                      title="Toxic flows per device"),
    ]
    table = A.device_table(f, tz)
    out.append(table)
    ip = table["ip0"].to_list()[0]  # the drill-down's default device
    one = f.filter(pl.col("ip0") == ip)
    table.filter(pl.col("ip0") == ip).row(0, named=True)
    A.kpis(one)
    out += [
        C.traffic_over_time_fig(A.traffic_over_time(one, tz, "auto"),
                                title="Timeline of this device"),
        C.remote_hosts_fig(A.top_remotes(one, 15), title="Top remote hosts"),
        C.hour_weekday_heatmap_fig(A.hour_weekday_heatmap(one, tz), tz=tz,
                                   title="Activity by hour of day and weekday"),
        C.top_bar_fig(A.top_ports(one, 10), title="Ports", category_title="Port"),
        C.top_bar_fig(A.top_protocols(one, 8), title="Protocols", category_title="Protocol"),
        A.toxic_flow_table(one, tz),
    ]
    return out


def protocols(ctx: Ctx) -> Output:
    f = ctx.frame
    return [
        C.protocol_treemap_fig(A.protocol_port_tree(f, 10), title="Protocol → port (bytes)"),
        C.top_bar_fig(A.top_ports(f, 15), title="Top ports by bytes", category_title="Port"),
        C.top_bar_fig(A.top_ports(f, 15, by="flows"), value="flows",
                      title="Top ports by flows", category_title="Port"),
        C.port_device_heatmap_fig(A.port_device_matrix(f, 15, 15, value="bytes", others=False),
                                  value="bytes", title="Port × device (bytes, top 15 × 15)"),
        A.top_ports(f, 50).drop("members", strict=False),
    ]


def toxic(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    if f.filter(pl.col("toxic")).height == 0:
        return []
    out_devices = A.toxic_out_devices(f, tz)
    out: Output = []
    if out_devices.height:
        out += [C.toxic_devices_fig(out_devices), out_devices.drop("label", strict=False)]
    out += [
        C.threats_fig(A.threats_by_category(f)),
        C.remote_hosts_fig(A.top_toxic_remotes(f, 15), value="flows",
                           title="Top toxic remote IPs (flows)"),
        A.toxic_flow_table(f, tz),
    ]
    return out


def remotes(ctx: Ctx) -> Output:
    f = ctx.frame
    countries = A.countries_summary(f, "all")
    value = "toxic_flows"  # the page's default sort: threat
    hosts = A.remote_hosts(f, "all", "threat")
    return [
        C.countries_map_fig(countries, value=value, title="Remote hosts by country (toxic flows)"),
        C.remote_hosts_fig(hosts, value=value, top=20, title="Top remote hosts by toxic flows"),
        hosts.drop("iso3", strict=False),
    ]


def hunting(ctx: Ctx) -> Output:
    f, tz = ctx.frame, ctx.tz
    baseline = _lookback(ctx, ctx.start - timedelta(days=ctx.baseline_days), ctx.start)
    out: Output = [Hn.storylines(f), Hn.first_seen_remotes(f, baseline),
                   Hn.upload_anomalies(f, baseline, k=3.0)]
    if ctx.hno:
        out.append(Hn.off_hours_by_device(f, tz, list(ctx.hno)))
        off = Hn.off_hours_toxic(f, tz, list(ctx.hno))
        if off.height:
            out.append(off.select(["off_hours", "start_of_hour", "device_name", "ip0", "ip1",
                                   "dir", "protocol", "port", "out_bytes", "in_bytes",
                                   "occurrences", "filtered"]))
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
