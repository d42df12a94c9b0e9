"""Sensors: every sensor the user may see at a glance, from the API's hourly totals."""

import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st
from cachetools import TTLCache

from flux_dashboard import charts as C
from flux_dashboard import errors as E
from flux_dashboard import fleet as FL
from flux_dashboard import spending, ui
from flux_dashboard.hours import floor_hour, hours_between, sensor_zone
from flux_dashboard.store import filters_key
from flux_dashboard.sync import StatusFile, describe
from flux_dashboard.triage.store import OPEN
from flux_dashboard.ui.auth import spender
from flux_dashboard.ui.sidebar import masking_switch
from flux_dashboard.ui.state import hourly_loader, masker, sensors, service

REFRESH = timedelta(minutes=5)  # today's hours are asked again at most this often


@st.cache_resource(show_spinner=False)
def _recent() -> TTLCache:
    """Loads of this process by (source, sensor, window, 5-minute slot): a rerun, a
    filter or another user's visit in the same minutes costs nothing."""
    return TTLCache(maxsize=4096, ttl=REFRESH.total_seconds())


session = ui.fleet_frame()
cfg = ui.settings()
masked = masking_switch(session, st.sidebar)
st.title(":material/sensors: Sensors", anchor=False)
listed = session.grant.visible(sensors(cfg))
if not listed:
    st.info("No sensor to show for your account.", icon=":material/sensors_off:")
    st.stop()

try:
    silent_h = FL.silent_after(os.environ)
except E.ConfigError as exc:
    st.error(ui.text(exc), icon=":material/error:")
    st.stop()
now = cfg.now()
mask = masker(cfg) if masked else None
hourly = hourly_loader(cfg)
flows_store, src = service().loader.store, cfg.source_id
states = StatusFile(cfg.cache_dir, src).read()
try:
    from flux_dashboard.triage import run

    store = run.store_for(cfg)
    open_counts = {s: store.count([s], statuses=list(OPEN)) for s in
                   [int(x["id"]) for x in listed]}
except E.DatabaseUnavailableError:
    open_counts = {}
slot = int(now.timestamp() // REFRESH.total_seconds())
spend = spender(session)
rows, levels, requests, refused = [], {}, 0, []
with st.spinner("Reading every sensor's hourly totals…"):
    for s in listed:
        sid, tz = int(s["id"]), sensor_zone(s)
        start, end = FL.fleet_window(now, tz)
        key = (src, sid, start, floor_hour(now), slot)
        note = None
        got = _recent().get(key)
        if got is None:
            try:
                got = spending.load(spend, hourly, sid, start, end, purpose="fleet")
                requests += got.flux_requests
                _recent()[key] = got
            except spending.NeedsConfirmation as exc:
                note, got = str(exc), None
            except E.FluxError as exc:
                note, got = str(exc).splitlines()[0], None
            if got is None:
                refused.append(sid)
                try:  # what the cache holds, without a request
                    got = hourly.load(sid, start, floor_hour(now) - timedelta(hours=1),
                                      max_requests=0)
                except E.FluxError:
                    got = None
        totals = got.frame if got is not None else pl.DataFrame(schema=hourly.schema)
        share = _recent().get(("flows cached", *key))
        if share is None:  # 31 days of file footers: read once per five minutes
            settled = hours_between(start, floor_hour(now))
            cached = len(flows_store.covered(src, sid, filters_key(None), settled)) \
                if flows_store is not None else 0
            share = _recent()[("flows cached", *key)] = cached / max(1, len(settled))
        shown = mask.mask_sensor(s) if mask is not None else s
        days = FL.daily_levels(totals, tz)
        row = FL.sensor_row(FL.SensorFacts(
            shown, tz, totals, share, describe(states.get(sid), ZoneInfo(tz), now),
            open_counts.get(sid), note), now, silent_h, days=days)
        rows.append(row)
        levels[row["name"]] = days

table = FL.fleet_table(rows)
silent = table.filter(pl.col("silent")).height
st.caption(
    f"{table.height} sensor{'s' * (table.height != 1)} · {silent} silent for over "
    f"{silent_h} h · the last {FL.FLEET_DAYS} days and today, in each sensor's "
    f"local time · refreshed with {requests} request{'s' * (requests != 1)} (hourly totals: "
    "one request per sensor and month; nothing when cached)")
if refused:
    st.warning(f"{len(refused)} sensor(s) show only what is cached: "
               + ui.text(next(r["note"] for r in rows if r["note"])), icon=":material/block:")

c1, c2, c3 = st.columns([3, 2, 2])
search = c1.text_input("Sensor", key="fleet_search", placeholder="part of a sensor's name")
worst = c2.selectbox("Yesterday at least", ["any level", *list(FL.LEVEL_NAMES.values())[1:]],
                     key="fleet_level")
only_silent = c3.toggle("Silent only", key="fleet_silent")
shown = table
if search.strip():
    shown = shown.filter(pl.col("name").str.to_lowercase().str.contains(
        search.strip().lower(), literal=True))
if worst != "any level":
    floor = next(k for k, v in FL.LEVEL_NAMES.items() if v == worst)
    shown = shown.filter(pl.col("yesterday_level") >= floor)
if only_silent:
    shown = shown.filter(pl.col("silent"))


def link(sid: int) -> str:
    return f"overview?sensor={sid}&range=Last+30+days" + ("&mask=true" if masked else "")


live = floor_hour(now)
view = shown.with_columns(
    pl.col("sensor").map_elements(link, return_dtype=pl.String).alias("open"),
    pl.when(pl.col("silent")).then(pl.format("⚠ silent {} h", pl.col("silent_hours")))
    .otherwise(pl.lit("sending")).alias("alert"),
    pl.when(pl.col("last_data") > live).then(pl.lit("this hour"))
    .otherwise(pl.col("last_data").dt.strftime("%a %d %b %H:%M UTC")).alias("last data"),
    pl.col("levels").list.eval(pl.element().fill_null(-1)).alias("levels"))
st.dataframe(
    view.select("open", "name", "alert", "last data", "yesterday", "yesterday_cyt", "today",
                "today_cyt", "levels", "toxic_out_yesterday", "toxic_out_week_before",
                "flows_change_pct", "open_findings", "status", "flows_cached", "synced",
                "note"),
    hide_index=True, key="fleet_table", width="stretch",
    column_config={
        "open": st.column_config.LinkColumn("Open", display_text="overview",
                                            help="That sensor's Overview, last 30 days"),
        "name": "Sensor", "alert": "Data", "last data": "Last data",
        "yesterday": "Yesterday", "yesterday_cyt": st.column_config.NumberColumn("cyT"),
        "today": "Today so far", "today_cyt": st.column_config.NumberColumn("cyT today"),
        "levels": st.column_config.BarChartColumn(
            f"Last {FL.FLEET_DAYS} days", y_min=-1, y_max=4,
            help="Cyberweather level per local day, oldest first (0 Clear … 4 Critical; "
                 "-1: no data). The chart below colours them."),
        "toxic_out_yesterday": st.column_config.NumberColumn("Toxic OUT yesterday"),
        "toxic_out_week_before": st.column_config.NumberColumn(
            "a week before", help="Toxic OUT flows on the same weekday a week before"),
        "flows_change_pct": st.column_config.NumberColumn(
            "Flows vs a week before", format="%+.0f%%",
            help="Yesterday's flows against the same weekday a week before"),
        "open_findings": st.column_config.NumberColumn("Open findings"),
        "status": "API status",
        "flows_cached": st.column_config.ProgressColumn(
            "Flows cached", min_value=0.0, max_value=1.0, format="percent",
            help="Share of these days' hours whose flows are in the cache"),
        "synced": "Sync worker", "note": "Note"})

order = shown["name"].to_list()
if order:
    ui.chart(C.fleet_strip_fig(FL.strip_frame({n: levels[n] for n in order}), order),
             key="fleet_strip")
ui.downloads(session, lambda: shown.drop("levels"), "sensors", key="fleet_dl",
             sensors=shown["sensor"].to_list(), masked=masked, admin_only=False)
