"""Pure figure factories: an ``analytics`` frame in, a ``go.Figure`` out.

No Streamlit here: pages call ``st.plotly_chart(fig, theme=None, ...)`` and
the HTML report calls ``fig.to_html(...)``. Every figure sets
``template="plotly_white"`` itself, because importing streamlit changes the
process-wide default template.

One colour language across the dashboard: IN (remote initiated) is blue, OUT
(device initiated) is teal, toxic is red, critical threats are dark red, and
the cyberweather levels go from green (Clear) to dark purple-red (Critical).

Bytes use decimal units (1 KB = 1000 B). Axes pick one unit per figure from
the largest value and say it in the title ("Bytes (MB)"); hover text always
shows a human-readable size. Time axes show the sensor's local wall-clock
time (the frames carry tz-aware local datetimes) and name the zone.

Text that comes from data (device names, port labels, country names...) is
HTML-escaped with ``escaping.escape_plotly`` before it reaches plotly, which renders a
subset of HTML in labels and hover text. Category axes therefore hold escaped
labels; to map a selection back to a row, use the point index (bars keep
the frame's row order) rather than the label.

Figures never raise on an empty frame; pages check :func:`is_empty` first and
show a message instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime

# pandas before plotly builds any figure: plotly looks pandas up in sys.modules, and a
# session thread importing it (Streamlit's tables do) while another builds a figure made
# that one see a half-imported module (AttributeError; found by the soak, two sessions
# on a freshly restarted server). Imported here, it is complete before any figure.
import pandas  # noqa: F401
import plotly.graph_objects as go
import polars as pl

from flux_dashboard.analytics import (
    LEVEL_COLOURS,
    LEVEL_NAMES,
    LEVEL_RANGES,
    OTHERS,
    WEEKDAYS,
    human_bytes,
    human_grams,
    human_km,
)
from flux_dashboard.escaping import escape_plotly

TEMPLATE = "plotly_white"
IN_COLOUR = "#4c78a8"
OUT_COLOUR = "#72b7b2"
TOXIC_COLOUR = "#d62728"
CRITICAL_COLOUR = "#7f0000"
UNQUALIFIED_COLOUR = "#f1a7a7"
CLEAN_COLOUR = "#9aa5b1"
CARBON_COLOUR = "#5f6b7a"  # slate: no toxic or cyberweather meaning
# Calm colours for plain categories (protocols): no red, green or purple, which
# carry the toxic and cyberweather meanings.
CATEGORY_COLOURS = ("#4c78a8", "#72b7b2", "#9aa5b1", "#6b8fb8", "#86bcb6", "#b8c4d0")

_UNITS = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3))
_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}
_CYT_AXIS = "cyT (1 × toxic IN + 10 × toxic OUT)"
_LEVEL_LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0,
                 "title": {"text": "Level"}}
_VALUE_TITLES = {
    "bytes": "Bytes",
    "flows": "Flows",
    "toxic_flows": "Toxic flows",
    "sessions": "Sessions",
}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def is_empty(frame: pl.DataFrame | None) -> bool:
    """True when there is nothing to draw (pages show a message instead)."""
    return frame is None or frame.height == 0



def byte_unit(max_value: float | None) -> tuple[str, float]:
    """The unit to scale an axis by, from its largest value: ("MB", 1e6)."""
    for unit, size in _UNITS:
        if max_value is not None and abs(max_value) >= size:
            return unit, size
    return "B", 1.0


def _scaled(values: Sequence, size: float) -> list:
    return [None if v is None else v / size for v in values]


def _max(frame: pl.DataFrame, expr: pl.Expr) -> float | None:
    if is_empty(frame):
        return None
    return frame.select(expr.max()).item()


def _tz_name(frame: pl.DataFrame, col: str) -> str | None:
    dtype = frame.schema.get(col)
    return getattr(dtype, "time_zone", None)


def _wall(frame: pl.DataFrame, col: str) -> list:
    """Local wall-clock datetimes, tz dropped (plotly.js has no time zones)."""
    s = frame.get_column(col)
    if getattr(s.dtype, "time_zone", None):
        s = s.dt.replace_time_zone(None)
    return s.to_list()


def _one_bucket_ticks(fig: go.Figure, x: list, fmt: str) -> None:
    """A single bar on a date axis: plotly.js cannot infer its width, draws it a
    millisecond wide and zooms onto it (ticks "21:59:59.9996 … 22:00:00.0004").
    One tick, labelled with the bucket, instead."""
    if len(x) == 1 and isinstance(x[0], datetime):
        fig.update_xaxes(tickmode="array", tickvals=x, ticktext=[x[0].strftime(fmt)])


def _with_tz(label: str, tz: str | None) -> str:
    return f"{label} ({tz})" if tz else label


def _base(fig: go.Figure, title: str, xtitle: str | None, ytitle: str | None, **layout):
    layout = {
        "height": 420,
        "legend": _LEGEND,
        "margin": {"l": 10, "r": 10, "t": 70, "b": 10},
        "hoverlabel": {"align": "left"},
        **layout,
    }
    fig.update_layout(
        template=TEMPLATE, title={"text": title, "x": 0.01, "xanchor": "left"}, **layout
    )
    # Only the main axes: a secondary y axis keeps its own title.
    if xtitle is not None:
        fig.update_layout(xaxis={"title": {"text": xtitle}, "automargin": True})
    if ytitle is not None:
        fig.update_layout(yaxis={"title": {"text": ytitle}, "automargin": True})
    return fig


def _col(frame: pl.DataFrame, name: str) -> list:
    return frame.get_column(name).to_list() if name in frame.columns else [None] * frame.height


def _bar_height(n: int) -> int:
    return max(320, 26 * n + 140)


def _customdata(*columns: Sequence) -> list[list]:
    return [list(row) for row in zip(*columns, strict=True)]


def _hbar(
    frame: pl.DataFrame,
    labels: list[str],
    value: str,
    title: str,
    category_title: str,
    extra: Sequence[tuple[str, Sequence]] = (),
    outline: Sequence[bool] | None = None,
) -> go.Figure:
    """Horizontal bars, first row on top.

    bytes -> IN/OUT stacked; flows -> clean/toxic stacked; toxic_flows -> red.
    ``labels`` are already escaped; ``extra`` adds (name, escaped values) lines
    to the hover.
    """
    n = frame.height
    bin_, bout = _col(frame, "bytes_in"), _col(frame, "bytes_out")
    flows, toxic = _col(frame, "flows"), _col(frame, "toxic_flows")
    total = [(a or 0) + (b or 0) for a, b in zip(bin_, bout, strict=True)]
    extra_lines = "".join(
        f"<br>{name}: %{{customdata[{5 + i}]}}" for i, (name, _) in enumerate(extra)
    )
    custom = _customdata(
        labels,
        [human_bytes(v) for v in bin_],
        [human_bytes(v) for v in bout],
        [human_bytes(v) for v in total],
        [f"{f or 0:,} ({t or 0:,} toxic)" for f, t in zip(flows, toxic, strict=True)],
        *[vals for _, vals in extra],
    )
    hover = (
        "<b>%{customdata[0]}</b><br>IN: %{customdata[1]}<br>OUT: %{customdata[2]}"
        "<br>Total: %{customdata[3]}<br>Flows: %{customdata[4]}" + extra_lines
        + "<extra></extra>"
    )
    line = None
    if outline is not None:
        line = {
            "color": [TOXIC_COLOUR if o else "rgba(0,0,0,0)" for o in outline],
            "width": 2,
        }
    fig = go.Figure()
    if value == "bytes":
        unit, size = byte_unit(max(total, default=None))
        for name, vals, colour in (("IN", bin_, IN_COLOUR), ("OUT", bout, OUT_COLOUR)):
            fig.add_bar(
                name=name, y=labels, x=_scaled(vals, size), orientation="h",
                marker={"color": colour, **({"line": line} if line else {})},
                customdata=custom, hovertemplate=hover,
            )
        xtitle = f"Bytes ({unit})"
    elif value == "flows":
        clean = [(f or 0) - (t or 0) for f, t in zip(flows, toxic, strict=True)]
        for name, vals, colour in (("Clean", clean, CLEAN_COLOUR), ("Toxic", toxic, TOXIC_COLOUR)):
            fig.add_bar(
                name=name, y=labels, x=vals, orientation="h",
                marker={"color": colour, **({"line": line} if line else {})},
                customdata=custom, hovertemplate=hover,
            )
        xtitle = "Flows (count)"
    elif value == "toxic_flows":
        fig.add_bar(
            name="Toxic", y=labels, x=toxic, orientation="h",
            marker={"color": TOXIC_COLOUR}, customdata=custom, hovertemplate=hover,
        )
        xtitle = "Toxic flows (count)"
    else:
        raise ValueError(f"value must be bytes, flows or toxic_flows; got {value!r}")
    _base(fig, title, xtitle, category_title, barmode="stack", height=_bar_height(n))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


# ---------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------

def traffic_over_time_fig(frame: pl.DataFrame, title: str = "Traffic over time") -> go.Figure:
    """From ``analytics.traffic_over_time``: IN/OUT stacked bars + toxic flows line (right)."""
    tz = _tz_name(frame, "bucket")
    x = _wall(frame, "bucket") if "bucket" in frame.columns else []
    bin_, bout = _col(frame, "bytes_in"), _col(frame, "bytes_out")
    unit, size = byte_unit(_max(frame, pl.col("bytes_in") + pl.col("bytes_out")))
    custom = _customdata(
        [human_bytes(v) for v in bin_],
        [human_bytes(v) for v in bout],
        [f"{v:,}" for v in _col(frame, "flows")],
        [f"{v:,}" for v in _col(frame, "toxic_flows")],
        [human_bytes(v) for v in _col(frame, "toxic_bytes")],
    )
    fig = go.Figure()
    fig.add_bar(
        name="IN", x=x, y=_scaled(bin_, size), marker_color=IN_COLOUR, customdata=custom,
        hovertemplate="IN: %{customdata[0]}<br>Flows: %{customdata[2]}<extra></extra>",
    )
    fig.add_bar(
        name="OUT", x=x, y=_scaled(bout, size), marker_color=OUT_COLOUR, customdata=custom,
        hovertemplate="OUT: %{customdata[1]}<extra></extra>",
    )
    fig.add_scatter(
        name="Toxic flows", x=x, y=_col(frame, "toxic_flows"), yaxis="y2", mode="lines+markers",
        line={"color": TOXIC_COLOUR, "width": 2}, marker={"size": 4}, customdata=custom,
        hovertemplate="Toxic: %{customdata[3]} flows, %{customdata[4]}<extra></extra>",
    )
    _base(
        fig, title, _with_tz("Local time", tz), f"Bytes ({unit})",
        barmode="stack", hovermode="x unified", bargap=0.1,
        yaxis2={
            "title": {"text": "Toxic flows (count)", "font": {"color": TOXIC_COLOUR}},
            "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
            # Whole counts: a step of at least 1 (auto ticks gave 0, 0, 1, 1 for small counts).
            "tickmode": "linear", "tick0": 0, "tickformat": ",d",
            "dtick": max(1, math.ceil((max(_col(frame, "toxic_flows"), default=0) or 0) / 5)),
            "tickfont": {"color": TOXIC_COLOUR},
        },
    )
    _one_bucket_ticks(fig, x, "%a %d %b %Y %H:%M")
    fig.update_yaxes(rangemode="tozero")
    return fig


def level_label(level: int) -> str:
    """A level's legend entry: its name and the cyT it covers, "Moderate (cyT 6–10)"."""
    return f"{LEVEL_NAMES[level]} (cyT {LEVEL_RANGES[level]})"


def _level_bars(fig: go.Figure, frame: pl.DataFrame, x: list, when: list[str]) -> None:
    """One bar trace per cyberweather level so the legend doubles as the colour key.

    Every level has its trace, in scale order, even when no bucket has it (one
    empty point keeps it in the legend): colours and entries never shift. The
    legend sits under the chart: five entries wrap in a narrow column and would
    cover the title above it.
    """
    levels = _col(frame, "level")
    cyt, tin, tout = _col(frame, "cyt"), _col(frame, "toxic_in"), _col(frame, "toxic_out")
    for lvl, colour in LEVEL_COLOURS.items():
        idx = [i for i, v in enumerate(levels) if v == lvl]
        fig.add_bar(
            name=level_label(lvl),
            # An absent level: one point with no value, at an x of the chart's own
            # type (a None x would turn a date axis into a number axis).
            x=[x[i] for i in idx] or x[:1] or [None],
            y=[cyt[i] for i in idx] or [None],
            marker_color=colour,
            showlegend=True,
            customdata=[[when[i], LEVEL_NAMES[lvl], cyt[i], tin[i], tout[i]] for i in idx]
            or None,
            hovertemplate=(
                "<b>%{customdata[0]}</b><br>%{customdata[1]} (cyT %{customdata[2]})"
                "<br>Toxic IN: %{customdata[3]} · Toxic OUT: %{customdata[4]}<extra></extra>"
            ),
        )


def cyberweather_fig(frame: pl.DataFrame, title: str = "Cyberweather") -> go.Figure:
    """From ``analytics.cyberweather``: cyT per day (or hour), bars coloured by level."""
    tz = _tz_name(frame, "bucket")
    x = _wall(frame, "bucket") if "bucket" in frame.columns else []
    daily = all(v.hour == 0 and v.minute == 0 for v in x)
    fmt = "%a %Y-%m-%d" if daily else "%a %Y-%m-%d %H:%M"
    when = [v.strftime(fmt) for v in x]
    fig = go.Figure()
    _level_bars(fig, frame, x, when)
    _base(fig, title, _with_tz("Day" if daily else "Local time", tz),
          _CYT_AXIS, barmode="overlay", bargap=0.15,
          legend=_LEVEL_LEGEND)
    _one_bucket_ticks(fig, x, fmt)
    fig.update_yaxes(rangemode="tozero")
    return fig


def cyberweather_hours_fig(
    frame: pl.DataFrame, tz: str | None = None, day: date | None = None,
    title: str | None = None,
) -> go.Figure:
    """From ``analytics.cyberweather_hours``: cyT per local hour of one day."""
    hours = _col(frame, "hour")
    when = [f"{day.isoformat() + ' ' if day else ''}{h:02d}:00" for h in hours]
    fig = go.Figure()
    _level_bars(fig, frame, hours, when)
    default = f"Cyberweather by hour, {day.isoformat()}" if day else "Cyberweather by hour"
    _base(fig, title or default, _with_tz("Hour of day", tz),
          _CYT_AXIS, barmode="overlay", bargap=0.15,
          legend=_LEVEL_LEGEND)
    fig.update_xaxes(range=[-0.5, 23.5], tickmode="linear", dtick=1)
    fig.update_yaxes(rangemode="tozero")
    return fig


def _level_colourscale() -> list[list]:
    n = len(LEVEL_COLOURS)
    scale = []
    for lvl, colour in LEVEL_COLOURS.items():
        scale += [[lvl / n, colour], [(lvl + 1) / n, colour]]
    return scale


def cyberweather_calendar_fig(
    frame: pl.DataFrame, title: str = "Cyberweather calendar"
) -> go.Figure:
    """From ``analytics.cyberweather(every="1d")``: weeks (columns) × weekdays (rows)."""
    tz = _tz_name(frame, "bucket")
    weeks: list[str] = []
    z: list[list] = [[] for _ in WEEKDAYS]
    text: list[list] = [[] for _ in WEEKDAYS]
    if not is_empty(frame):
        days = frame.select(
            pl.col("bucket").dt.date().alias("day"),
            (pl.col("bucket").dt.weekday() - 1).alias("wd"),
            "level", "level_name", "cyt", "toxic_in", "toxic_out",
        ).with_columns(
            (pl.col("day") - pl.duration(days=pl.col("wd"))).alias("week"),
        )
        start, end = days["week"].min(), days["week"].max()
        week_list = pl.date_range(start, end, "1w", eager=True).to_list()
        weeks = [w.isoformat() for w in week_list]
        cells = {(r["week"], r["wd"]): r for r in days.iter_rows(named=True)}
        for wd in range(7):
            for w in week_list:
                r = cells.get((w, wd))
                z[wd].append(None if r is None else r["level"])
                text[wd].append(
                    "" if r is None else
                    f"<b>{WEEKDAYS[wd]} {r['day'].isoformat()}</b><br>{r['level_name']} "
                    f"(cyT {r['cyt']})<br>Toxic IN: {r['toxic_in']} · Toxic OUT: "
                    f"{r['toxic_out']}"
                )
    fig = go.Figure(
        go.Heatmap(
            x=weeks, y=list(WEEKDAYS), z=z, text=text, hovertemplate="%{text}<extra></extra>",
            colorscale=_level_colourscale(), zmin=-0.5, zmax=len(LEVEL_COLOURS) - 0.5,
            xgap=3, ygap=3, hoverongaps=False,
            colorbar={
                "title": {"text": "Level"},
                "tickvals": list(LEVEL_NAMES), "ticktext": [level_label(v) for v in LEVEL_NAMES],
            },
        )
    )
    _base(fig, title, _with_tz("Week starting", tz), "Weekday",
          height=max(300, 60 + 36 * 7), plot_bgcolor="white")
    fig.update_xaxes(type="category", showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    return fig


def carbon_fig(frame: pl.DataFrame, title: str = "Cybercarbon per device") -> go.Figure:
    """From ``analytics.carbon_by_device``: estimated gCO2e per device, first row on top."""
    labels = escape_plotly(_col(frame, "label"))
    grams, km = _col(frame, "co2e_g"), _col(frame, "car_km")
    unit, size = next(((u, f) for u, f in (("t", 1e6), ("kg", 1e3))
                       if max(grams, default=0) >= f), ("g", 1.0))
    fig = go.Figure()
    fig.add_bar(
        name="CO2e", y=labels, x=[g / size for g in grams], orientation="h",
        marker={"color": CARBON_COLOUR},
        customdata=_customdata(labels, [human_grams(g) for g in grams],
                               [human_bytes(b) for b in _col(frame, "bytes")],
                               [human_km(k) for k in km]),
        hovertemplate=("<b>%{customdata[0]}</b><br>≈ %{customdata[1]} CO2e for "
                       "%{customdata[2]}<br>≈ %{customdata[3]} by petrol car<extra></extra>"),
    )
    _base(fig, title, f"Estimated CO2e ({unit})", "Device", height=_bar_height(frame.height),
          showlegend=False)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def top_bar_fig(
    frame: pl.DataFrame,
    value: str = "bytes",
    title: str = "Top talkers",
    category: str = "label",
    category_title: str = "Device",
) -> go.Figure:
    """Any ``top_*`` frame (label, bytes_in, bytes_out, flows, toxic_flows) as horizontal bars.

    ``value``: "bytes" (IN/OUT stacked), "flows" (clean/toxic stacked) or "toxic_flows".
    """
    labels = escape_plotly([str(v) for v in _col(frame, category)])
    return _hbar(frame, labels, value, title, category_title)


# ---------------------------------------------------------------------------
# Protocols & ports, heatmaps
# ---------------------------------------------------------------------------

def protocol_treemap_fig(
    frame: pl.DataFrame, value: str = "bytes", title: str = "Protocols and ports"
) -> go.Figure:
    """From ``analytics.protocol_port_tree``: protocol → port treemap sized by ``value``."""
    ids, labels, parents, values, custom = ["all"], ["All traffic"], [""], [], []
    totals: dict[str, dict[str, int]] = {}
    rows = list(frame.iter_rows(named=True)) if not is_empty(frame) else []
    for r in rows:
        t = totals.setdefault(r["protocol"], {"bytes": 0, "flows": 0, "toxic_flows": 0})
        for k in t:
            t[k] += r[k] or 0

    def describe(d):
        return [human_bytes(d["bytes"]), f"{d['flows']:,}", f"{d['toxic_flows']:,}"]

    grand = {k: sum(t[k] for t in totals.values()) for k in ("bytes", "flows", "toxic_flows")}
    values.append(grand[value])
    custom.append(describe(grand))
    for proto, t in totals.items():
        ids.append(f"p/{proto}")
        labels.append(escape_plotly(proto))
        parents.append("all")
        values.append(t[value])
        custom.append(describe(t))
    for r in rows:
        ids.append(f"p/{r['protocol']}/{r['port_label']}")
        labels.append(escape_plotly(r["port_label"]))
        parents.append(f"p/{r['protocol']}")
        values.append(r[value] or 0)
        custom.append(describe(r))
    fig = go.Figure(
        go.Treemap(
            ids=escape_plotly(ids), labels=labels, parents=escape_plotly(parents), values=values,
            branchvalues="total", customdata=custom, maxdepth=3,
            hovertemplate=(
                "<b>%{label}</b><br>Bytes: %{customdata[0]}<br>Flows: %{customdata[1]}"
                "<br>Toxic flows: %{customdata[2]}<extra></extra>"
            ),
            texttemplate="%{label}<br>%{customdata[0]}",
        )
    )
    _base(fig, f"{title} (sized by {_VALUE_TITLES.get(value, value).lower()})", None, None,
          margin={"l": 10, "r": 10, "t": 50, "b": 10}, treemapcolorway=list(CATEGORY_COLOURS))
    return fig


def _value_axis(frame: pl.DataFrame, value: str) -> tuple[list, str, list[str]]:
    """(z values scaled, unit title, human hover strings) for a heatmap's ``value`` column."""
    raw = _col(frame, "value")
    if value == "bytes":
        unit, size = byte_unit(max((v for v in raw if v is not None), default=None))
        return _scaled(raw, size), f"Bytes ({unit})", [human_bytes(v) for v in raw]
    name = _VALUE_TITLES.get(value, value)
    return raw, f"{name} (count)", [f"{v:,} {name.lower()}" for v in raw]


def _zmax(values: Sequence) -> float:
    """Colour scale top; with zmin=0 so that colour is proportional to the value."""
    return max((v for v in values if v is not None), default=0) or 1


def _heat_scale(value: str) -> str:
    return "Reds" if value == "toxic_flows" else "Blues"


def port_device_heatmap_fig(
    frame: pl.DataFrame, value: str = "bytes", title: str = "Ports × devices"
) -> go.Figure:
    """From ``analytics.port_device_matrix`` (long form) as a device × port heatmap."""
    ports = escape_plotly([str(v) for v in frame.get_column("port_label").unique(
        maintain_order=True).to_list()]) if not is_empty(frame) else []
    devices = escape_plotly([str(v) for v in frame.get_column("device").unique(
        maintain_order=True).to_list()]) if not is_empty(frame) else []
    zs, unit_title, human = _value_axis(frame, value)
    pi = {p: i for i, p in enumerate(ports)}
    di = {d: i for i, d in enumerate(devices)}
    z = [[None] * len(ports) for _ in devices]
    text = [[""] * len(ports) for _ in devices]
    port_col = escape_plotly([str(v) for v in _col(frame, "port_label")])
    dev_col = escape_plotly([str(v) for v in _col(frame, "device")])
    for p, d, v, h in zip(port_col, dev_col, zs, human, strict=True):
        z[di[d]][pi[p]] = v
        text[di[d]][pi[p]] = f"<b>{d}</b><br>Port: {p}<br>{h}"
    fig = go.Figure(
        go.Heatmap(
            x=ports, y=devices, z=z, text=text, hovertemplate="%{text}<extra></extra>",
            colorscale=_heat_scale(value), colorbar={"title": {"text": unit_title}},
            xgap=1, ygap=1, zmin=0, zmax=_zmax(zs),
        )
    )
    _base(fig, title, "Port (or protocol)", "Device", height=_bar_height(len(devices)))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def hour_weekday_heatmap_fig(
    frame: pl.DataFrame, value: str = "bytes", tz: str | None = None,
    title: str = "Activity by hour of week",
) -> go.Figure:
    """From ``analytics.hour_weekday_heatmap``: weekdays (rows, Monday on top) × 24 hours."""
    zs, unit_title, human = _value_axis(frame, value)
    z = [[None] * 24 for _ in WEEKDAYS]
    text = [[""] * 24 for _ in WEEKDAYS]
    for wd, h, v, s in zip(_col(frame, "weekday"), _col(frame, "hour"), zs, human, strict=True):
        z[wd][h] = v
        text[wd][h] = f"<b>{WEEKDAYS[wd]} {h:02d}:00–{h:02d}:59</b><br>{s}"
    fig = go.Figure(
        go.Heatmap(
            x=list(range(24)), y=list(WEEKDAYS), z=z, text=text,
            hovertemplate="%{text}<extra></extra>", colorscale=_heat_scale(value),
            colorbar={"title": {"text": unit_title}}, xgap=1, ygap=1, zmin=0, zmax=_zmax(zs),
        )
    )
    _base(fig, title, _with_tz("Hour of day", tz), "Weekday", height=340)
    fig.update_xaxes(tickmode="linear", dtick=1)
    fig.update_yaxes(autorange="reversed")
    return fig


# ---------------------------------------------------------------------------
# Toxic
# ---------------------------------------------------------------------------

def threats_fig(frame: pl.DataFrame, title: str = "Threats by category") -> go.Figure:
    """From ``analytics.threats_by_category``: flows per category, most dangerous on top.

    Critical categories are dark red and marked ⚠; Unqualified is pale red.
    """
    labels = _col(frame, "label")
    critical = _col(frame, "critical")
    threat = _col(frame, "threat")
    ticks = [
        f"<b>⚠ {escape_plotly(lbl)}</b>" if crit else escape_plotly(lbl)
        for lbl, crit in zip(labels, critical, strict=True)
    ]
    colours = [
        CRITICAL_COLOUR if crit else UNQUALIFIED_COLOUR if t == "unqualified" else TOXIC_COLOUR
        for crit, t in zip(critical, threat, strict=True)
    ]
    custom = _customdata(
        escape_plotly([str(v) for v in labels]),
        ["critical" if c else "not critical" for c in critical],
        _col(frame, "toxic_in"), _col(frame, "toxic_out"),
        _col(frame, "devices"), _col(frame, "remotes"),
    )
    fig = go.Figure(
        go.Bar(
            y=ticks, x=_col(frame, "flows"), orientation="h", marker_color=colours,
            text=_col(frame, "flows"), textposition="auto", customdata=custom,
            hovertemplate=(
                "<b>%{customdata[0]}</b> (%{customdata[1]})<br>Flows: %{x}"
                "<br>Toxic IN: %{customdata[2]} · Toxic OUT: %{customdata[3]}"
                "<br>Devices: %{customdata[4]} · Remote hosts: %{customdata[5]}<extra></extra>"
            ),
            showlegend=False,
        )
    )
    _base(fig, title, "Toxic flows (count)", "Threat (most dangerous first)",
          height=_bar_height(frame.height))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def _fmt_times(frame: pl.DataFrame, col: str) -> list[str]:
    if col not in frame.columns:
        return [""] * frame.height
    return frame.select(pl.col(col).dt.strftime("%Y-%m-%d %H:%M").fill_null("")).to_series(
    ).to_list()


def toxic_devices_fig(
    frame: pl.DataFrame, top: int = 15,
    title: str = "Devices that initiated toxic OUT flows",
) -> go.Figure:
    """From ``analytics.toxic_out_devices``: toxic OUT flows per device (first ``top``)."""
    frame = frame.head(top)
    tz = _tz_name(frame, "first_seen")
    labels = escape_plotly([str(v) for v in _col(frame, "label")])
    critical = _col(frame, "critical")
    custom = _customdata(
        labels, _col(frame, "remotes"), escape_plotly([str(v) for v in _col(frame, "threats")]),
        [human_bytes(v) for v in _col(frame, "bytes_out")],
        _fmt_times(frame, "first_seen"), _fmt_times(frame, "last_seen"),
    )
    fig = go.Figure(
        go.Bar(
            y=labels, x=_col(frame, "flows"), orientation="h",
            marker_color=[CRITICAL_COLOUR if c else TOXIC_COLOUR for c in critical],
            customdata=custom, showlegend=False,
            hovertemplate=(
                "<b>%{customdata[0]}</b><br>Toxic OUT flows: %{x}"
                "<br>Toxic remote hosts: %{customdata[1]}<br>Threats: %{customdata[2]}"
                "<br>Bytes out: %{customdata[3]}<br>First: %{customdata[4]}"
                f"<br>Last: %{{customdata[5]}}{' (' + tz + ')' if tz else ''}<extra></extra>"
            ),
        )
    )
    _base(fig, title, "Toxic OUT flows (count)", "Device (critical threats first)",
          height=_bar_height(frame.height))
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


# ---------------------------------------------------------------------------
# Remote hosts / map
# ---------------------------------------------------------------------------

def countries_map_fig(
    frame: pl.DataFrame, value: str = "bytes", title: str = "Remote hosts by country"
) -> go.Figure:
    """From ``analytics.countries_summary``: a choropleth on ISO-3 codes.

    Draws offline only when the page passes ``config={"topojsonURL": ...}``.
    """
    known = frame.filter(pl.col("iso3").is_not_null()) if not is_empty(frame) else frame
    if value == "bytes":
        raw = _col(known, "bytes")
        unit, size = byte_unit(max((v for v in raw if v is not None), default=None))
        z, bar_title = _scaled(raw, size), f"Bytes ({unit})"
    else:
        z, bar_title = _col(known, value), f"{_VALUE_TITLES.get(value, value)} (count)"
    custom = _customdata(
        escape_plotly([str(v) for v in _col(known, "country")]),
        [human_bytes(v) for v in _col(known, "bytes")],
        _col(known, "flows"), _col(known, "remotes"), _col(known, "toxic_flows"),
    )
    fig = go.Figure(
        go.Choropleth(
            locations=escape_plotly([str(v) for v in _col(known, "iso3")]), z=z,
            locationmode="ISO-3", colorscale=_heat_scale(value), customdata=custom,
            marker_line_color="white", marker_line_width=0.5,
            colorbar={"title": {"text": bar_title}},
            hovertemplate=(
                "<b>%{customdata[0]}</b><br>Bytes: %{customdata[1]}<br>Flows: %{customdata[2]}"
                "<br>Remote hosts: %{customdata[3]}<br>Toxic flows: %{customdata[4]}"
                "<extra></extra>"
            ),
        )
    )
    _base(fig, title, None, None, height=480, margin={"l": 0, "r": 0, "t": 50, "b": 0})
    fig.update_geos(
        projection_type="natural earth", showcountries=True, countrycolor="#c8ced6",
        showcoastlines=False, showland=True, landcolor="#eef1f4", showframe=False,
        # The whole world, centred on Europe (plotly.js 4 would fit to the data and
        # crop or rotate the map depending on which countries are present).
        fitbounds=False, projection_rotation_lon=10, projection_scale=1,
        lataxis_range=[-58, 85],
    )
    return fig


def remote_hosts_fig(
    frame: pl.DataFrame, value: str = "bytes", top: int = 20,
    title: str = "Remote hosts",
) -> go.Figure:
    """From ``analytics.remote_hosts`` (or ``top_remotes``/``top_toxic_remotes``).

    The first ``top`` rows as bars; toxic hosts are marked ⚠ and outlined in red.
    """
    frame = frame.head(top)
    ips = _col(frame, "ip1")
    cc = _col(frame, "country_code")
    toxic = [(t or 0) > 0 for t in _col(frame, "toxic_flows")]
    labels = [
        ("⚠ " if t else "") + escape_plotly(str(ip))
        + (f" ({escape_plotly(c)})" if c and c != "--" and ip != OTHERS else "")
        for ip, c, t in zip(ips, cc, toxic, strict=True)
    ]
    extra = [
        ("Owner", escape_plotly([str(v or "") for v in _col(frame, "owner")])),
        ("Country", escape_plotly([str(v or "") for v in _col(frame, "country")])),
        ("Devices", [str(v) if v is not None else "" for v in _col(frame, "devices")]),
        ("Threats", escape_plotly([str(v or "") for v in _col(frame, "threats")])),
    ]
    return _hbar(frame, labels, value, title, "Remote host", extra=extra, outline=toxic)


def fleet_strip_fig(frame: pl.DataFrame, order: Sequence[str],
                    title: str = "Cyberweather per day, every sensor") -> go.Figure:
    """From ``fleet.strip_frame``: sensors (rows, in ``order``: worst first) × local days,
    each cell coloured by the day's level on the fixed five-level scale; a day without
    any flow is left blank."""
    days = sorted(set(frame["day"].to_list())) if frame.height else []
    cells = {(r["sensor"], r["day"]): r for r in frame.iter_rows(named=True)}
    z, text = [], []
    for name in order:
        zr, tr = [], []
        for d in days:
            r = cells.get((name, d))
            ok = r is not None and r["flows"] > 0
            zr.append(r["level"] if ok else None)
            tr.append(f"<b>{escape_plotly(name)}</b><br>{d:%a %d %b}<br>"
                      + (f"{LEVEL_NAMES[r['level']]} (cyT {r['cyt']:,})<br>Toxic IN: "
                         f"{r['toxic_in']:,} · Toxic OUT: {r['toxic_out']:,}" if ok
                         else "no data"))
        z.append(zr)
        text.append(tr)
    fig = go.Figure(go.Heatmap(
        x=[d.isoformat() for d in days], y=[escape_plotly(n) for n in order], z=z, text=text,
        hovertemplate="%{text}<extra></extra>", colorscale=_level_colourscale(),
        zmin=-0.5, zmax=len(LEVEL_COLOURS) - 0.5, xgap=2, ygap=2, hoverongaps=False,
        colorbar={"title": {"text": "Level"}, "tickvals": list(LEVEL_NAMES),
                  "ticktext": [level_label(v) for v in LEVEL_NAMES]}))
    _base(fig, title, "Local day of each sensor", None,
          height=max(260, 90 + 26 * len(order)), plot_bgcolor="white")
    fig.update_yaxes(autorange="reversed", showgrid=False, type="category")
    fig.update_xaxes(showgrid=False)
    return fig
