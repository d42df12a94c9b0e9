"""Figure factories: titles, axes, colours, escaping, empty input."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import pytest

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

PARIS = "Europe/Paris"
EVIL = "<img src=x onerror=alert(1)>"
BOLD = "<b>x</b>"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_flows(rows: list[dict]) -> pl.DataFrame:
    """FLOW_SCHEMA rows with defaults (same helper as in test_analytics)."""
    defaults = {
        "start_of_hour": utc(2024, 3, 4, 10), "ip0": "192.168.1.10", "ip1": "8.8.8.8",
        "dir": "OUT", "protocol": "TCP", "port": 443, "occurrences": 1, "duration_s": 1.0,
        "first_seen": None, "last_seen": None, "out_bytes": 0, "in_bytes": 0,
        "filtered": False, "toxic": False, **dict.fromkeys(THREAT_FLAGS, False),
        "device_name": None, "custom_name": None, "netbios": None, "mac_address": None,
        "vendor": None, "is_critical": False, "device_category": None,
    }
    full = [{**defaults, **r} for r in rows]
    for row in full:
        row["device_name"] = row["device_name"] or row["ip0"]
    return pl.from_dicts(full, schema=FLOW_SCHEMA)


EMPTY = make_flows([])


def sample() -> pl.DataFrame:
    return make_flows([
        {"ip0": "192.168.1.10", "device_name": EVIL, "ip1": "8.8.8.8", "dir": "OUT",
         "in_bytes": 2_000_000, "out_bytes": 500_000, "toxic": True, "trojan": True,
         "start_of_hour": utc(2024, 3, 4, 10)},
        {"ip0": "192.168.1.20", "device_name": BOLD, "ip1": "1.1.1.1", "dir": "IN",
         "in_bytes": 1000, "toxic": True, "protocol": "UDP", "port": 53,
         "start_of_hour": utc(2024, 3, 5, 13)},
        {"ip0": "192.168.1.30", "ip1": "8.8.4.4", "dir": "OUT", "in_bytes": 10,
         "protocol": "ICMP", "port": None, "start_of_hour": utc(2024, 3, 6, 8)},
    ])


FIGS = {
    "traffic_over_time_fig": lambda d: C.traffic_over_time_fig(A.traffic_over_time(d, PARIS)),
    "cyberweather_fig": lambda d: C.cyberweather_fig(A.cyberweather(d, PARIS)),
    "cyberweather_calendar_fig": lambda d: C.cyberweather_calendar_fig(
        A.cyberweather(d, PARIS)),
    "cyberweather_hours_fig": lambda d: C.cyberweather_hours_fig(
        A.cyberweather_hours(d, PARIS, date(2024, 3, 4)), PARIS, date(2024, 3, 4)),
    "top_bar_fig": lambda d: C.top_bar_fig(A.top_devices(d)),
    "top_bar_fig_flows": lambda d: C.top_bar_fig(A.top_ports(d), value="flows",
                                                 category_title="Port"),
    "protocol_treemap_fig": lambda d: C.protocol_treemap_fig(A.protocol_port_tree(d)),
    "port_device_heatmap_fig": lambda d: C.port_device_heatmap_fig(A.port_device_matrix(d)),
    "hour_weekday_heatmap_fig": lambda d: C.hour_weekday_heatmap_fig(
        A.hour_weekday_heatmap(d, PARIS), tz=PARIS),
    "threats_fig": lambda d: C.threats_fig(A.threats_by_category(d)),
    "toxic_devices_fig": lambda d: C.toxic_devices_fig(A.toxic_out_devices(d, PARIS)),
    "countries_map_fig": lambda d: C.countries_map_fig(A.countries_summary(d)),
    "remote_hosts_fig": lambda d: C.remote_hosts_fig(A.remote_hosts(d)),
    "carbon_fig": lambda d: C.carbon_fig(A.carbon_by_device(d, 18.0)),
}
NO_AXES = {"protocol_treemap_fig", "countries_map_fig"}


def strings(obj) -> list[str]:
    """Every string inside a figure's JSON-able dict (hover text, labels, categories...)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list | tuple):
        return [s for v in obj for s in strings(v)]
    return []


def data_strings(fig: go.Figure) -> list[str]:
    return strings(fig.to_plotly_json()["data"])


@pytest.mark.parametrize("name", list(FIGS))
def test_figure_has_title_axes_and_template(name, monkeypatch):
    # streamlit changes the process-wide default; every figure must pin its own.
    monkeypatch.setattr(pio.templates, "default", "ggplot2")
    fig = FIGS[name](sample())
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text
    assert fig.layout.template == pio.templates["plotly_white"]
    if name not in NO_AXES:
        assert fig.layout.xaxis.title.text
        assert fig.layout.yaxis.title.text
    json.loads(fig.to_json())  # serialisable


@pytest.mark.parametrize("name", list(FIGS))
def test_figure_on_empty_input(name):
    fig = FIGS[name](EMPTY)
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text
    fig.to_json()


@pytest.mark.parametrize("name", list(FIGS))
def test_no_raw_html_from_data(name):
    fig = FIGS[name](sample())
    texts = data_strings(fig) + strings(fig.to_plotly_json()["layout"].get("yaxis", {}))
    assert not any("<img" in s for s in texts)
    assert not any("<b>x</b>" in s for s in texts)


@pytest.mark.parametrize(
    "name", ["top_bar_fig", "port_device_heatmap_fig", "toxic_devices_fig"]
)
def test_device_names_appear_escaped(name):
    raw = FIGS[name](sample()).to_json()
    # plotly's JSON escapes "/" (and may escape "<"); decode before looking.
    texts = strings(json.loads(raw)["data"])
    assert any("&lt;img src=x onerror=alert(1)&gt;" in s for s in texts)
    if name != "toxic_devices_fig":  # the <b> device has no toxic OUT flow
        assert any("&lt;b&gt;x&lt;/b&gt;" in s for s in texts)
    assert not any("<img" in s or "<b>x" in s for s in texts)


def test_human_bytes_and_units():
    assert C.human_bytes(0) == "0 B"
    assert C.human_bytes(999) == "999 B"
    assert C.human_bytes(1500) == "1.5 KB"
    assert C.human_bytes(2_500_000) == "2.5 MB"
    assert C.human_bytes(3_210_000_000) == "3.2 GB"
    assert C.human_bytes(None) == ""
    assert C.byte_unit(None) == ("B", 1.0)
    assert C.byte_unit(999) == ("B", 1.0)
    assert C.byte_unit(2_500_000) == ("MB", 1e6)
    assert C.byte_unit(7e12) == ("TB", 1e12)


def test_traffic_fig_colours_units_and_local_time():
    t = A.traffic_over_time(sample(), PARIS, "1h")
    fig = C.traffic_over_time_fig(t)
    bars = {tr.name: tr for tr in fig.data}
    assert bars["IN"].marker.color == C.IN_COLOUR
    assert bars["OUT"].marker.color == C.OUT_COLOUR
    assert bars["Toxic flows"].line.color == C.TOXIC_COLOUR
    assert C.IN_COLOUR != C.OUT_COLOUR
    assert fig.layout.yaxis.title.text == "Bytes (MB)"
    assert fig.layout.yaxis2.title.text == "Toxic flows (count)"
    assert PARIS in fig.layout.xaxis.title.text
    assert bars["IN"].x[0] == datetime(2024, 3, 4, 11)  # 10:00 UTC, shown as Paris time
    assert bars["IN"].y[0] == pytest.approx(2.0)  # 2 MB
    assert any("2.0 MB" in str(c) for c in bars["IN"].customdata[0])


def test_one_bucket_time_charts_get_one_labelled_tick():
    """A single bar on a date axis is drawn a millisecond wide by plotly.js, which then
    ticks sub-second times; one tick names the bucket instead (more buckets: auto)."""
    one = sample().filter(pl.col("start_of_hour") == utc(2024, 3, 4, 10))
    fig = C.traffic_over_time_fig(A.traffic_over_time(one, PARIS, "1h"))
    assert list(fig.layout.xaxis.tickvals) == [datetime(2024, 3, 4, 11)]
    assert list(fig.layout.xaxis.ticktext) == ["Mon 04 Mar 2024 11:00"]
    day = C.cyberweather_fig(A.cyberweather(one, PARIS, "1d"))
    assert list(day.layout.xaxis.ticktext) == ["Mon 2024-03-04"]
    several = C.traffic_over_time_fig(A.traffic_over_time(sample(), PARIS, "1h"))
    assert len(several.data[0].x) > 1 and several.layout.xaxis.tickvals is None


def test_top_bar_fig_colours_and_order():
    top = A.top_devices(sample())
    fig = C.top_bar_fig(top, title="Top devices")
    assert [tr.marker.color for tr in fig.data] == [C.IN_COLOUR, C.OUT_COLOUR]
    assert fig.layout.xaxis.title.text == "Bytes (MB)"
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 on top; point index = row
    assert fig.data[0].y[0] == "&lt;img src=x onerror=alert(1)&gt; (192.168.1.10)"
    flows = C.top_bar_fig(top, value="flows")
    assert [tr.name for tr in flows.data] == ["Clean", "Toxic"]
    assert flows.data[1].marker.color == C.TOXIC_COLOUR
    assert list(flows.data[1].x) == [1, 1, 0]
    with pytest.raises(ValueError):
        C.top_bar_fig(top, value="weight")


def test_threats_fig_order_and_critical_colour():
    fig = C.threats_fig(A.threats_by_category(sample()))
    bar = fig.data[0]
    assert list(bar.y) == ["<b>⚠ Trojan horse</b>", "Unqualified"]
    assert list(bar.marker.color) == [C.CRITICAL_COLOUR, C.UNQUALIFIED_COLOUR]
    assert fig.layout.yaxis.autorange == "reversed"


def test_toxic_devices_fig_critical_colour():
    fig = C.toxic_devices_fig(A.toxic_out_devices(sample()))
    assert list(fig.data[0].marker.color) == [C.CRITICAL_COLOUR]
    assert list(fig.data[0].x) == [1]


# The scale written out by hand (names, cyT ranges, colours), not read from the code.
LEVEL_KEY = [("Clear (cyT 0)", "#2e9e5b"), ("Light (cyT 1–5)", "#f2c94c"),
             ("Moderate (cyT 6–10)", "#f2994a"), ("Severe (cyT 11–99)", "#d64545"),
             ("Critical (cyT 100+)", "#6b1238")]


def test_cyberweather_colours_by_level():
    fig = C.cyberweather_fig(A.cyberweather(sample(), PARIS))
    assert [(tr.name, tr.marker.color) for tr in fig.data] == LEVEL_KEY
    by_name = {tr.name: tr for tr in fig.data}
    # 4 March: one toxic OUT -> cyT 10, Moderate; 5 March: one toxic IN -> Light.
    assert list(by_name["Moderate (cyT 6–10)"].y) == [10]
    assert list(by_name["Light (cyT 1–5)"].y) == [1]
    assert list(by_name["Clear (cyT 0)"].y) == [0]
    assert "Day (Europe/Paris)" == fig.layout.xaxis.title.text
    assert fig.layout.legend.title.text == "Level"


@pytest.mark.parametrize("make", [
    lambda d: C.cyberweather_fig(A.cyberweather(d, PARIS)),
    lambda d: C.cyberweather_fig(A.cyberweather(d, PARIS, "1h")),
    lambda d: C.cyberweather_hours_fig(A.cyberweather_hours(d, PARIS, date(2024, 3, 4)),
                                       PARIS, date(2024, 3, 4)),
])
def test_level_legend_lists_all_five_levels_even_absent_ones(make):
    # Only a Clear day and a Moderate day: Light, Severe and Critical are absent, yet
    # the legend keeps all five, in scale order, in their fixed colours.
    for data in (sample(), EMPTY):
        fig = make(data)
        assert [(tr.name, tr.marker.color) for tr in fig.data] == LEVEL_KEY
        assert all(tr.showlegend for tr in fig.data)
        severe = fig.data[3]
        assert [v for v in severe.y if v is not None] == []  # nothing drawn for it
        # its one empty point sits at an x of the axis' own type (a date on a date axis)
        assert type(severe.x[0]) is type(fig.data[0].x[0])
        assert fig.layout.legend.title.text == "Level"


def test_level_legend_sits_under_the_chart():
    # Above it, five entries wrap in a narrow column and cover the title.
    fig = C.cyberweather_hours_fig(A.cyberweather_hours(sample(), PARIS, date(2024, 3, 4)))
    assert fig.layout.legend.yanchor == "top" and fig.layout.legend.y < 0


def test_calendar_places_days_on_weekdays():
    fig = C.cyberweather_calendar_fig(A.cyberweather(sample(), PARIS))
    hm = fig.data[0]
    assert list(hm.x) == ["2024-03-04"]  # one week, starting Monday 4 March
    z = [list(row) for row in hm.z]
    assert z[0] == [2] and z[1] == [1] and z[2] == [0] and z[3] == [None]
    # The colour bar keys all five levels with the same names as the bar legends,
    # whatever levels the data holds: level n sits in the n-th fifth of the scale.
    assert list(hm.colorbar.ticktext) == [name for name, _ in LEVEL_KEY]
    assert list(hm.colorbar.tickvals) == [0, 1, 2, 3, 4]
    assert (hm.zmin, hm.zmax) == (-0.5, 4.5)
    for lvl, (_, colour) in enumerate(LEVEL_KEY):
        assert [lvl / 5, colour] in [list(x) for x in hm.colorscale]
        assert [(lvl + 1) / 5, colour] in [list(x) for x in hm.colorscale]


def test_carbon_fig_grams_per_device():
    # 192.168.1.10: 2.5 MB -> 2.5e6 / 1e9 x 18 = 0.045 g; .20: 1000 B -> 0.000018 g;
    # .30: 10 B. All under 1 kg: the axis is in grams.
    fig = C.carbon_fig(A.carbon_by_device(sample(), 18.0))
    bar = fig.data[0]
    assert fig.layout.xaxis.title.text == "Estimated CO2e (g)"
    assert list(bar.x) == pytest.approx([0.045, 0.000018, 0.00000018])
    assert bar.y[0] == "&lt;img src=x onerror=alert(1)&gt; (192.168.1.10)"
    assert fig.layout.yaxis.autorange == "reversed"
    # 10 GB on one device at 18 g/GB: 180 g; 100 GB: 1.8 kg -> the axis switches to kg.
    big = make_flows([{"in_bytes": 100_000_000_000}])
    fig = C.carbon_fig(A.carbon_by_device(big, 18.0))
    assert fig.layout.xaxis.title.text == "Estimated CO2e (kg)"
    assert list(fig.data[0].x) == pytest.approx([1.8])
    assert list(fig.data[0].customdata[0][1:]) == ["1.8 kg", "100.0 GB", "9.09 km"]


def test_heatmap_units_and_scale():
    fig = C.hour_weekday_heatmap_fig(A.hour_weekday_heatmap(sample(), PARIS), tz=PARIS)
    hm = fig.data[0]
    assert hm.colorbar.title.text == "Bytes (MB)"
    assert hm.z[0][11] == pytest.approx(2.5)  # Monday 11:00 Paris, 2.5 MB
    assert fig.layout.xaxis.title.text == "Hour of day (Europe/Paris)"


def test_countries_map_is_iso3_choropleth():
    fig = C.countries_map_fig(A.countries_summary(sample()))
    ch = fig.data[0]
    assert ch.type == "choropleth" and ch.locationmode == "ISO-3"
    assert set(ch.locations) == {"USA", "AUS"}
    assert ch.colorbar.title.text == "Bytes (MB)"
    assert "topojson" not in fig.to_json()


def test_is_empty():
    assert C.is_empty(None)
    assert C.is_empty(A.top_devices(EMPTY))
    assert not C.is_empty(A.top_devices(sample()))


RACE = """
import threading, sys
from flux_dashboard import charts  # noqa: F401  (what every page imports first)
import plotly.graph_objects as go
errors = []
barrier = threading.Barrier(8)
def build():
    barrier.wait()
    for _ in range(200):
        try:
            go.Figure().add_bar(x=[1, 2], y=["a", "b"], customdata=[[1], [2]])
        except Exception as exc:
            errors.append(repr(exc))
            return
def table():
    barrier.wait()
    import pandas  # noqa: F401  (another session's table, at the same moment)
threads = [threading.Thread(target=build) for _ in range(7)] + [threading.Thread(target=table)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors[:1])
sys.exit(1 if errors else 0)
"""


def test_figures_built_while_another_session_imports_pandas_do_not_fail():
    """Found by the soak: on a freshly started server, a session building a chart while
    another imported pandas saw a half-imported module and crashed with a traceback."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", RACE], cwd=root, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr[-2000:]
