"""What each dashboard page computes and draws, without Streamlit: frames in, results out.

Owns the pages' data work. For each page (or each part of a page that a widget
drives) one function takes the filtered flow frame and the page's parameters
and returns a small frozen result: the frames the page shows, and through
``figures()`` its charts (titles included), keyed by their Streamlit chart key.
The pages (``pages/*.py``) draw these results, memoised by ``View.compute``;
``benchmarks/workloads.py`` times the same functions. The widgets' choices a
benchmark has to pick too (defaults, options) are named here once.

The aggregations themselves live in ``analytics`` and ``hunting``; which days
and windows a page looks at, in ``hours``.

- ``overview``: headline numbers, cyberweather, carbon, traffic, top talkers;
- ``devices`` and ``device_drill``: the device charts and table, one device's detail;
- ``protocols`` and ``port_device``: protocol → port, top ports, the port × device grid;
- ``toxic``: who reached out first, threats, toxic remotes, the searchable flow table;
- ``remotes``: remote hosts by country and host, searchable;
- ``storylines``, ``first_seen``, ``off_hours``: the threat-hunting tabs (the upload
  anomalies tab calls ``hunting.upload_anomalies`` as it is);
- ``findings_page``, ``findings_rows``, ``finding_history``, ``with_history``: the
  Findings inbox (read from the findings database, ``triage.store``, a page at a time),
  every row its filters keep, one finding's history, the export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import plotly.graph_objects as go
import polars as pl

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import hunting as Hn
from flux_dashboard.triage.store import OPEN, STATUSES

Figures = dict[str, go.Figure]  # chart key → figure

# The widgets' options, first = default (the pages offer them, the benchmark takes the default).
HEAT_VALUES = ("bytes", "flows")  # Protocols: the port × device heatmap's value
DIRECTIONS = ("all", "IN", "OUT")  # Remote hosts
REMOTE_SORTS = ("threat", "bytes", "flows")  # Remote hosts
ANOMALY_K = 3.0  # Threat hunting: default sensitivity of the upload anomalies

PORT_DEVICE_TOP = 15  # ports × devices kept in the heatmap
TOXIC_SEARCH_COLUMNS = ("device_name", "ip0", "ip1", "owner", "threats", "protocol")
REMOTE_SEARCH_COLUMNS = ("ip1", "owner", "country")
OFF_HOURS_TOXIC_COLUMNS = ("off_hours", "start_of_hour", "device_name", "ip0", "ip1", "owner",
                           "dir", "protocol", "port", "out_bytes", "in_bytes", "occurrences",
                           "filtered")


# ------------------------------------------------------------------ Overview
@dataclass(frozen=True)
class Overview:
    kpis: dict
    weather: A.CyberweatherSummary
    carbon: dict
    days: pl.DataFrame  # cyberweather per local day
    every: str  # the traffic chart's bucket ("1h" or "1d")
    traffic: pl.DataFrame
    top_devices: pl.DataFrame
    top_protocols: pl.DataFrame
    top_ports: pl.DataFrame

    @property
    def hour_days(self) -> list[date]:
        """The local days of the cyberweather, newest first (the "Hours of" choices)."""
        return [d.date() for d in reversed(self.days["bucket"].to_list())]

    def figures(self) -> Figures:
        return {
            "traffic": C.traffic_over_time_fig(
                self.traffic, title=f"Traffic over time ({self.every} buckets)"),
            "cw_cal": C.cyberweather_calendar_fig(self.days, title="Cyberweather per day"),
            "cw_days": C.cyberweather_fig(self.days, title="cyT per day"),
            "top_dev": C.top_bar_fig(self.top_devices, title="Top devices by bytes"),
            "top_proto": C.top_bar_fig(self.top_protocols, title="Protocols by bytes",
                                       category_title="Protocol"),
            "top_port": C.top_bar_fig(self.top_ports, title="Top ports by bytes",
                                      category_title="Port"),
        }


def overview(df: pl.DataFrame, tz: str, today: date | None, g_per_gb: float) -> Overview:
    """The Overview of ``df``; ``today`` only when the range holds it (its level so far)."""
    return Overview(
        kpis=A.kpis(df), weather=A.cyberweather_summary(df, tz, today),
        carbon=A.cybercarbon(df, g_per_gb), days=A.cyberweather(df, tz, "1d"),
        every=A.auto_every(df), traffic=A.traffic_over_time(df, tz, "auto"),
        top_devices=A.top_devices(df, 10), top_protocols=A.top_protocols(df, 8),
        top_ports=A.top_ports(df, 10))


# ------------------------------------------------------------------ Devices
@dataclass(frozen=True)
class Devices:
    g_per_gb: float
    by_bytes: pl.DataFrame
    by_toxic: pl.DataFrame
    carbon: pl.DataFrame
    table: pl.DataFrame  # one row per device, most toxic OUT first

    @property
    def ips(self) -> list[str]:
        """The devices' ip0 in table order (the drill-down's choices, first = default)."""
        return self.table["ip0"].to_list()

    @property
    def names(self) -> dict[str, str]:
        return dict(self.table.select("ip0", "device_name").iter_rows())

    def device(self, ip: str) -> dict:
        """The table's row of ``ip``."""
        return self.table.filter(pl.col("ip0") == ip).row(0, named=True)

    def figures(self) -> Figures:
        return {
            "dev_bytes": C.top_bar_fig(self.by_bytes, title="Traffic per device (bytes)"),
            "dev_toxic": C.top_bar_fig(self.by_toxic, value="toxic_flows",
                                       title="Toxic flows per device"),
            "dev_carbon": C.carbon_fig(self.carbon, title="Cybercarbon per device (estimate "
                                                          f"at {self.g_per_gb:g} gCO2e/GB)"),
        }


def devices(df: pl.DataFrame, tz: str, g_per_gb: float) -> Devices:
    return Devices(g_per_gb, by_bytes=A.top_devices(df, 15),
                   by_toxic=A.top_devices(df, 15, by="toxic_flows"),
                   carbon=A.carbon_by_device(df, g_per_gb, 10), table=A.device_table(df, tz))


@dataclass(frozen=True)
class DeviceDrill:
    tz: str
    kpis: dict
    carbon: dict
    timeline: pl.DataFrame
    remotes: pl.DataFrame
    heatmap: pl.DataFrame
    ports: pl.DataFrame
    protocols: pl.DataFrame
    toxic: pl.DataFrame  # its toxic flows, newest first

    def figures(self) -> Figures:
        return {
            "drill_time": C.traffic_over_time_fig(self.timeline, title="Timeline of this device"),
            "drill_remotes": C.remote_hosts_fig(self.remotes, title="Top remote hosts"),
            "drill_heat": C.hour_weekday_heatmap_fig(
                self.heatmap, tz=self.tz, title="Activity by hour of day and weekday"),
            "drill_ports": C.top_bar_fig(self.ports, title="Ports", category_title="Port"),
            "drill_protocols": C.top_bar_fig(self.protocols, title="Protocols",
                                             category_title="Protocol"),
        }


def device_drill(df: pl.DataFrame, ip: str, tz: str, g_per_gb: float) -> DeviceDrill:
    """The flows of the device ``ip`` (an ip0), in detail."""
    one = df.filter(pl.col("ip0") == ip)
    return DeviceDrill(
        tz, kpis=A.kpis(one), carbon=A.cybercarbon(one, g_per_gb),
        timeline=A.traffic_over_time(one, tz, "auto"), remotes=A.top_remotes(one, 15),
        heatmap=A.hour_weekday_heatmap(one, tz), ports=A.top_ports(one, 10),
        protocols=A.top_protocols(one, 8), toxic=A.toxic_flow_table(one, tz))


# ------------------------------------------------------------------ Protocols & ports
@dataclass(frozen=True)
class Protocols:
    tree: pl.DataFrame
    by_bytes: pl.DataFrame
    by_flows: pl.DataFrame
    ports: pl.DataFrame  # the top 50 ports, as the table shows them

    def figures(self) -> Figures:
        return {
            "treemap": C.protocol_treemap_fig(self.tree, title="Protocol → port"),
            "ports_bytes": C.top_bar_fig(self.by_bytes, title="Top ports by bytes",
                                         category_title="Port"),
            "ports_flows": C.top_bar_fig(self.by_flows, value="flows", title="Top ports by flows",
                                         category_title="Port"),
        }


def protocols(df: pl.DataFrame) -> Protocols:
    return Protocols(tree=A.protocol_port_tree(df, 10), by_bytes=A.top_ports(df, 15),
                     by_flows=A.top_ports(df, 15, by="flows"),
                     ports=A.top_ports(df, 50).drop("members", strict=False))


@dataclass(frozen=True)
class PortDevice:
    value: str  # one of HEAT_VALUES
    matrix: pl.DataFrame

    def figures(self) -> Figures:
        n = PORT_DEVICE_TOP
        return {"port_device": C.port_device_heatmap_fig(
            self.matrix, value=self.value, title=f"Port × device ({self.value}, top {n} × {n})")}


def port_device(df: pl.DataFrame, value: str) -> PortDevice:
    """The top ports × top devices by ``value``, without the Others row and column."""
    return PortDevice(value, A.port_device_matrix(df, PORT_DEVICE_TOP, PORT_DEVICE_TOP,
                                                  value=value, others=False))


# ------------------------------------------------------------------ Toxic flows
@dataclass(frozen=True)
class Toxic:
    out_devices: pl.DataFrame  # devices that initiated toxic OUT flows, most urgent first
    threats: pl.DataFrame
    remotes: pl.DataFrame
    table: pl.DataFrame  # every toxic flow, newest first (empty: no toxic flow at all)

    @property
    def out_table(self) -> pl.DataFrame:
        return self.out_devices.drop("label", strict=False)

    def matching(self, text: str, *, critical_only: bool = False,
                 unblocked_only: bool = False) -> pl.DataFrame:
        """The flow table's rows the search box and the two toggles keep."""
        shown = A.search(self.table, text, TOXIC_SEARCH_COLUMNS)
        if critical_only:
            shown = shown.filter(pl.col("critical"))
        if unblocked_only:
            shown = shown.filter(~pl.col("filtered"))
        return shown

    def figures(self) -> Figures:
        out = {"toxic_devices": C.toxic_devices_fig(self.out_devices)} \
            if self.out_devices.height else {}
        return {**out, "threats": C.threats_fig(self.threats),
                "toxic_remotes": C.remote_hosts_fig(self.remotes, value="flows",
                                                    title="Top toxic remote IPs (flows)")}


def toxic(df: pl.DataFrame, tz: str) -> Toxic:
    return Toxic(out_devices=A.toxic_out_devices(df, tz), threats=A.threats_by_category(df),
                 remotes=A.top_toxic_remotes(df, 15), table=A.toxic_flow_table(df, tz))


# ------------------------------------------------------------------ Remote hosts
@dataclass(frozen=True)
class Remotes:
    value: str  # what the map and the bar show: toxic_flows, bytes or flows
    countries: pl.DataFrame
    hosts: pl.DataFrame

    @property
    def table(self) -> pl.DataFrame:
        return self.hosts.drop("iso3", strict=False)

    def matching(self, text: str) -> pl.DataFrame:
        """The table's rows whose IP, owner or country holds ``text`` (blank: all)."""
        return A.search(self.table, text, REMOTE_SEARCH_COLUMNS)

    def figures(self) -> Figures:
        what = self.value.replace("_", " ")
        return {
            "map": C.countries_map_fig(self.countries, value=self.value,
                                       title=f"Remote hosts by country ({what})"),
            "remote_bar": C.remote_hosts_fig(self.hosts, value=self.value, top=20,
                                             title=f"Top remote hosts by {what}"),
        }


def remotes(df: pl.DataFrame, direction: str, sort_by: str) -> Remotes:
    """Remote hosts of ``direction`` (DIRECTIONS) sorted by ``sort_by`` (REMOTE_SORTS)."""
    return Remotes(value="toxic_flows" if sort_by == "threat" else sort_by,
                   countries=A.countries_summary(df, direction),
                   hosts=A.remote_hosts(df, direction, sort_by))


# ------------------------------------------------------------------ Threat hunting
@dataclass(frozen=True)
class Storylines:
    table: pl.DataFrame  # one line per device and toxic remote
    beacons: pl.DataFrame  # the lines that hint at beaconing (hunting.beaconing)


def storylines(df: pl.DataFrame) -> Storylines:
    table = Hn.storylines(df)
    return Storylines(table, Hn.beaconing(table))


@dataclass(frozen=True)
class FirstSeen:
    table: pl.DataFrame  # new device → remote pairs, toxic first
    toxic: int  # pairs with a toxic flow
    devices: int  # devices concerned


def first_seen(df: pl.DataFrame, baseline: pl.DataFrame) -> FirstSeen:
    """The device → remote pairs of ``df`` that ``baseline`` never saw."""
    new = Hn.first_seen_remotes(df, baseline)
    return FirstSeen(new, int(new["toxic"].sum()) if new.height else 0,
                     new["ip0"].n_unique() if new.height else 0)


@dataclass(frozen=True)
class OffHours:
    per_device: pl.DataFrame  # flagged devices first
    flagged: int  # devices mostly active off-hours
    toxic: pl.DataFrame  # toxic flows, off-hours first, the columns shown


def off_hours(df: pl.DataFrame, tz: str, hno_hours: tuple[int, ...] | list[int]) -> OffHours:
    """Activity outside the working hours (``hno_hours``, local, plus weekends)."""
    per_device = Hn.off_hours_by_device(df, tz, list(hno_hours))
    flagged = int(per_device["mostly_off"].sum()) if per_device.height else 0
    toxic_rows = Hn.off_hours_toxic(df, tz, list(hno_hours)).select(OFF_HOURS_TOXIC_COLUMNS)
    return OffHours(per_device, flagged, toxic_rows)


# ------------------------------------------------------------------ Findings
FINDING_STATUSES = OPEN  # the inbox's default status filter
FINDINGS_PER_PAGE = 500  # rows of the inbox's table per page (the downloads hold them all)
FINDING_COLUMNS = ("severity", "status", "kind", "sensor", "day", "device_name", "ip0", "ip1",
                   "owner", "country", "threats", "flows", "bytes", "hours", "last_contact",
                   "assignee", "reason", "note", "detections", "key")
_MASK_KINDS = {"ip0": "local_ip", "device_name": "name", "mac_address": "mac",
               "ip1": "public_ip"}


@dataclass(frozen=True)
class FindingsPage:
    counts: dict[str, int]  # findings per status (every status) in scope
    kinds: pl.DataFrame  # kind, open, all: findings per kind in scope
    table: pl.DataFrame  # this page's rows: FINDING_COLUMNS, masked when asked
    keys: list[str]  # the real keys of ``table``'s rows, in order (server side only)
    total: int  # findings in scope, whatever their status
    matched: int  # findings the filters keep (every page)
    page: int  # this page, from 0
    pages: int
    where: dict  # the store filters, for ``findings_rows`` (the downloads: every page)


def _searched(store, sensors, needle: str, mask) -> dict:
    """The store filter of a search box: the text itself, or (masked) the real values
    whose aliases contain it: a masked reader searches what is shown, never the real
    identifiers (a guess of a real IP finds nothing)."""
    if not needle:
        return {}
    if mask is None:
        return {"search": needle}
    values = store.distinct(sensors, list(_MASK_KINDS))
    among = {col: {real for real, alias in mask.aliases(kind, values[col]).items()
                   if needle in alias.lower()} for col, kind in _MASK_KINDS.items()}
    owners = {v for v in store.distinct(sensors, ["owner"])["owner"] if needle in v.lower()}
    return {"among": {**among, "owner": owners}}


def findings_page(store, sensors, *, statuses=FINDING_STATUSES, kinds=None, severities=None,
                  device: str = "", assignee: str | None = None, mask=None, page: int = 0,
                  per_page: int = FINDINGS_PER_PAGE) -> FindingsPage:
    """The inbox: counts by status and kind of the findings of ``sensors`` (the grant's),
    and one page of the rows the filters keep (open first, by severity then recency,
    ordered and cut by the database), identifiers masked by ``mask`` (a ``Masker``)
    when given. ``device`` is a case-insensitive part of the device's name, IP or MAC,
    or of the remote's IP or owner, as shown (an alias when masked); ``assignee`` ""
    is unassigned."""
    counts = store.counts(sensors)
    per_status = dict(counts.group_by("status").agg(pl.col("findings").sum()).rows())
    by_kind = counts.group_by("kind").agg(
        pl.col("findings").filter(pl.col("status").is_in(OPEN)).sum().alias("open"),
        pl.col("findings").sum().alias("all")).sort("open", "all", "kind",
                                                   descending=[True, True, False])
    where = {"statuses": list(statuses) if statuses else None,
             "kinds": list(kinds) if kinds else None,
             "severities": list(severities) if severities else None, "assignee": assignee,
             **_searched(store, sensors, (device or "").strip().lower(), mask)}
    matched = store.count(sensors, **where)
    pages = max(1, -(-matched // per_page))
    page = min(max(0, int(page)), pages - 1)
    real = findings_rows(store, sensors, where, limit=per_page, offset=page * per_page)
    return FindingsPage(counts={s: int(per_status.get(s, 0)) for s in STATUSES},
                        kinds=by_kind, table=mask_findings(real, mask),
                        keys=real["key"].to_list(), matched=matched, page=page, pages=pages,
                        total=int(counts["findings"].sum()) if counts.height else 0,
                        where=where)


def findings_rows(store, sensors, where: dict, limit: int | None = None,
                  offset: int = 0) -> pl.DataFrame:
    """The rows of ``store.list(sensors, **where)`` with the inbox's columns
    (``FINDING_COLUMNS``), unmasked: ``mask_findings`` before showing them."""
    return store.list(sensors, **where, limit=limit, offset=offset).select(FINDING_COLUMNS)


def mask_findings(rows: pl.DataFrame, mask=None) -> pl.DataFrame:
    """Findings as a masked view shows them (``mask`` None: as they are): identifiers
    aliased, who is assigned withheld, and the key aliased too: it is a hash of the
    real identifiers, against which a guess could be checked."""
    if mask is None:
        return rows
    aliases = mask.aliases("finding", rows["key"].to_list())
    return mask.mask_frame(rows).with_columns(
        pl.when(pl.col("assignee").is_not_null()).then(pl.lit("(assigned)"))
        .alias("assignee"),
        pl.col("key").replace_strict(aliases, return_dtype=pl.String).alias("key"))


def finding_history(events: pl.DataFrame, hide_comments: bool) -> pl.DataFrame:
    """A finding's events as the page shows them, newest first; comments withheld
    (``hide_comments``: masked views, where they may name people) as "(hidden)"."""
    out = events.sort("id", descending=True).select(
        "at", "actor", "action", "from_status", "to_status", "assignee", "reason", "comment")
    if hide_comments:
        out = out.with_columns(
            pl.when(pl.col("comment").is_not_null()).then(pl.lit("(hidden)"))
            .alias("comment"), pl.lit(None, pl.String).alias("assignee"),
            pl.lit("(hidden)").alias("actor"))
    return out


def with_history(table: pl.DataFrame, events: pl.DataFrame, hide_comments: bool
                 ) -> pl.DataFrame:
    """``table`` (the rows shown) with a ``history`` column: each finding's events,
    oldest first, one per line ("2026-11-18 10:05 UTC ann@… acknowledge new →
    acknowledged: comment"); comments and names withheld when ``hide_comments``."""
    if hide_comments:
        who = pl.lit("(hidden)")
        said = pl.when(pl.col("comment").is_not_null()).then(pl.lit(": (comment hidden)"))
    else:
        who = pl.col("actor")
        said = pl.when(pl.col("comment").is_not_null()).then(pl.lit(": ") + pl.col("comment"))
    lines = events.sort("id").select(
        "key", pl.concat_str(
            pl.col("at").dt.strftime("%Y-%m-%d %H:%M UTC"), who, pl.col("action"),
            pl.concat_str(pl.col("from_status").fill_null("-"), pl.lit("→"),
                          pl.col("to_status").fill_null("-"), separator=" "),
            separator=" ").alias("line"), said.otherwise(pl.lit("")).alias("said"))
    hist = lines.group_by("key", maintain_order=True).agg(
        (pl.col("line") + pl.col("said")).str.join("\n").alias("history"))
    return table.join(hist, on="key", how="left", maintain_order="left")
