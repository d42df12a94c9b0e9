"""Page elements: header, tables, charts, downloads and the evidence pack.

Owns how data reaches the screen and the user's disk: readable table
headers, bytes as KB/MB/GB, charts with the offline map config, CSV/Parquet
downloads of exactly what a page shows (formula-like cells neutralised), and
the evidence pack, built on click from the view and the same loader.

A file is built when its button is clicked, outside the script run: the build
first checks the identity again (``auth.still_allowed``) and writes its audit
line; a refused build (signed out, expired, access withdrawn, audit trail
unwritable in hosted mode) gives a file of the same type that holds the reason
only (``refused_file``), never the data.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl
import streamlit as st

from flux_dashboard import report
from flux_dashboard.errors import AuditUnavailableError, FluxError
from flux_dashboard.escaping import csv_safe
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.hours import HOUR, week_on_week
from flux_dashboard.ui.auth import Session, record, spender, still_allowed
from flux_dashboard.ui.loading import coverage_banner, load_window
from flux_dashboard.ui.state import View, loader_for, masker


def header(view: View, title: str, icon: str = "") -> None:
    st.title(f"{icon} {title}".strip(), anchor=False)
    st.caption(f"{text(view.sensor_label())} · {text(view.range_label)} · "
               f"{text(view.filters.describe(view.device_names))}"
               + (" · :material/visibility_off: masked" if view.masked else ""))
    coverage_banner(view)


def no_flows(view: View) -> bool:
    """Show the plain 'no flows match' message; True when there is nothing to show."""
    if view.frame.height:
        return False
    if view.base.height:
        st.info("No flows match these filters in this range. Loosen a filter in the "
                "sidebar or widen the time range.", icon=":material/filter_alt_off:")
    else:
        st.info("The sensor recorded no flows in this range. Choose another range or "
                "sensor.", icon=":material/hourglass_empty:")
    return True


def chart(fig, key: str, **kw) -> Any:
    # No "Download plot as png": like the tables' own export, a file built in the
    # browser would skip the audit; the evidence pack holds every chart.
    config = {"displaylogo": False, "topojsonURL": "/app/static/topojson/",
              "modeBarButtonsToRemove": ["toImage"]}
    return st.plotly_chart(fig, key=key, theme=None, config=config, width="stretch", **kw)


def downloads(source: View | Session, df: pl.DataFrame | Callable[[], pl.DataFrame],
              name: str, key: str, sensors: Iterable[int] | None = None, *,
              masked: bool | None = None, admin_only: bool | None = None) -> None:
    """CSV and Parquet of exactly ``df`` (built only when clicked, and audited then;
    ``df`` may be a function that builds the frame then).

    ``source`` is the page's view (sensor data) or, for pages without one, the
    session: the Activity page's files are for admins only (``admin_only``, the
    default without a view), the Sensors page's for anyone granted ``sensors``.
    ``sensors``: the file holds these sensors' data (default: the view's), each
    checked against the grant when it is built; ``masked``: whether it is masked
    (an unmasked file is refused to a grant that became masked).
    """
    view = source if isinstance(source, View) else None
    session = view.session if view is not None else source
    held = sorted({int(s) for s in sensors}) if sensors is not None else None
    admin = (view is None) if admin_only is None else admin_only

    where = ({"sensor": int(view.sensor["id"]), "masked": view.masked,
              "range": [view.start, view.end]} if view is not None else
             ({"masked": masked} if masked is not None else {}))

    def refusal() -> str | None:
        """Why this build is refused now (nothing built, a 'denied' line), or None."""
        why = None
        for sensor in held if held is not None else [where.get("sensor")]:
            why = why or still_allowed(session, sensor, masked=where.get("masked"),
                                       admin=admin)
        if why:
            try:
                record(session, "denied", required=False, reason=why, name=name, **where)
            except AuditUnavailableError:
                pass
        return why

    def build(fmt: str) -> pl.DataFrame | str:
        """The frame, after the checks and the export's audit line; or why not."""
        why = refusal()
        if why:
            return why
        out = df() if callable(df) else df
        try:
            record(session, "export", name=name, format=fmt, rows=out.height, **where,
                   **({"sensors": held} if held is not None else {}))
        except AuditUnavailableError as exc:
            return str(exc)
        return out

    def csv() -> str | bytes:
        out = build("csv")
        return refused_file("csv", out) if isinstance(out, str) else csv_safe(out).write_csv()

    def parquet() -> bytes:
        out = build("parquet")
        if isinstance(out, str):
            return refused_file("parquet", out)
        buf = io.BytesIO()
        # Text as text: the page's categoricals (schema.compact) are an in-memory form.
        out.with_columns(pl.col(pl.Categorical).cast(pl.String)).write_parquet(buf)
        return buf.getvalue()

    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button(":material/download: CSV", data=csv,
                       file_name=f"{name}.csv", mime="text/csv", key=f"{key}_csv",
                       on_click="ignore")
    c2.download_button(":material/download: Parquet", data=parquet,
                       file_name=f"{name}.parquet", mime="application/octet-stream",
                       key=f"{key}_pq", on_click="ignore")


def evidence_button(view: View, *, device: str | None = None, remote: str | None = None,
                    key: str) -> None:
    """One click: a zip with CSVs, the digest and a self-contained HTML report.

    Built on click, in a thread outside the script run: everything it needs
    (loader, masker) is taken now. Its digest compares the last day of the
    range (so far, if the range ends within it) with the same local hours a
    week before, both loaded through the loader like the Overview's lookbacks.
    With ``device`` (an ip0) or ``remote`` (an ip1), everything is cut to it.
    """
    loader = loader_for(view.session.grant)
    mask = masker(view.settings) if view.masked else None
    session = view.session
    spend = spender(session)
    sensor_id = int(view.sensor["id"])

    def build() -> bytes:
        from flux_dashboard import analytics as A
        from flux_dashboard import charts as C
        from flux_dashboard import hunting as Hn
        from flux_dashboard.digest import digest

        why = still_allowed(session, sensor_id, masked=view.masked)
        if why:
            record(session, "denied", required=False, reason=why, sensor=sensor_id,
                   name="evidence pack")
            return refused_file("zip", why)

        def mine(df: pl.DataFrame) -> pl.DataFrame:
            if remote is not None:
                df = only_remote(df, remote)
            return df if device is None else only_device(df, device)

        df = mine(view.frame)
        last_day = view.local(view.end - HOUR).date()
        compared = week_on_week(last_day, view.tz, until=view.end)
        try:
            current = mine(load_window(view, loader, mask, *compared.window, spend).frame)
            previous = mine(load_window(view, loader, mask, *compared.previous_window,
                                        spend).frame)
            digest_text = digest(current, previous, view.tz, last_day,
                                    compared.previous).as_text()
        except FluxError as exc:  # the pack still builds; it says why there is no digest
            digest_text = (f"What changed on {last_day:%a %Y-%m-%d}: the comparison could "
                           f"not be made ({exc}).\n")
        figures = {
            "Traffic over time": C.traffic_over_time_fig(
                A.traffic_over_time(df, view.tz, "auto")),
            "Cyberweather": C.cyberweather_fig(A.cyberweather(df, view.tz, "1d")),
            "Threats by category": C.threats_fig(A.threats_by_category(df)),
            "Top devices": C.top_bar_fig(A.top_devices(df, 10), title="Top devices by bytes"),
            "Top ports": C.top_bar_fig(A.top_ports(df, 10), title="Top ports by bytes",
                                       category_title="Port"),
        }
        pack = report.evidence_pack(
            flows=df, sensor=view.sensor, start=view.start, end=view.end, tz=view.tz,
            filters_description=view.filters.describe(view.device_names),
            digest_text=digest_text, figures=figures, storylines=Hn.storylines(df),
            generated_at=view.settings.now(), device=device, remote=remote,
            carbon_g_per_gb=view.settings.carbon_g_per_gb)
        try:
            record(session, "evidence_pack", sensor=sensor_id, device=device,
                   **({"remote": remote} if remote else {}),
                   rows=df.height, masked=view.masked, range=[view.start, view.end])
        except AuditUnavailableError as exc:
            return refused_file("zip", str(exc))
        return pack

    who = "device" if device else ("remote host" if remote else "sensor")
    target = device or remote
    safe_target = "".join(c if c.isalnum() else "_" for c in target) if target else ""
    st.download_button(f":material/folder_zip: Evidence pack ({who})", data=build,
                       file_name=f"evidence-{view.sensor['id']}-{view.start:%Y%m%d%H}"
                                 f"{'-' + safe_target if target else ''}.zip",
                       mime="application/zip", key=key, on_click="ignore",
                       help="Zip: flows.csv, toxic_flows.csv, storylines.csv, digest and an "
                            "HTML report that opens offline")


def refused_file(fmt: str, why: str) -> bytes:
    """A file of the promised type (csv, parquet, zip) holding only why it was refused."""
    message = f"This download was refused: {why}"
    if fmt == "csv":
        return csv_safe(pl.DataFrame({"refused": [message]})).write_csv().encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        pl.DataFrame({"refused": [message]}).write_parquet(buf)
        return buf.getvalue()
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("REFUSED.txt", message + "\n")
    return buf.getvalue()


def level_counts(days_per_level: dict[int, int], days: int) -> None:
    """One line: the number of days at each cyberweather level, in the levels' colours."""
    from flux_dashboard.analytics import LEVEL_COLOURS, LEVEL_NAMES

    # Built from the fixed level table and integers only: no data text in this HTML.
    parts = [
        f'<span style="display:inline-block;width:.8em;height:.8em;border-radius:2px;'
        f'background:{LEVEL_COLOURS[lvl]};margin:0 .3em 0 .8em;vertical-align:-.05em"></span>'
        f"{name} {int(days_per_level.get(lvl, 0))}"
        for lvl, name in LEVEL_NAMES.items()
    ]
    st.markdown(f'<div style="font-size:.9rem;color:#555">Days per cyberweather level '
                f'({int(days)} day{"s" if days != 1 else ""}):{"".join(parts)}</div>',
                unsafe_allow_html=True)


def human_bytes(n: float | None) -> str:
    from flux_dashboard.analytics import human_bytes as hb

    return hb(n)


_LABELS = {"ip0": "Local IP", "ip1": "Remote IP", "dir": "Dir", "dirs": "Dirs",
           "mac_address": "MAC", "netbios": "NetBIOS", "is_critical": "Critical device",
           "cyt": "cyT", "iso3": "ISO3", "off_share": "Off-hours share",
           "baseline_mad": "Baseline MAD", "owner_net": "Owner network"}


_HEADER_PX, _ROW_PX = 38, 35  # st.dataframe's header and row heights


def table(df: pl.DataFrame, key: str, *, height: int | str = "auto",
          max_height: int | None = None, hide: tuple = (), **kw) -> Any:
    """A sortable table with readable headers, bytes as KB/MB/GB, text shown as text.

    ``height`` is fixed; with ``max_height`` instead, the table fits its rows (one
    at least) and scrolls beyond ``max_height`` pixels.
    """
    if max_height is not None:
        height = min(max_height, _HEADER_PX + _ROW_PX * max(df.height, 1))
    config: dict[str, Any] = {}
    for name, dtype in df.schema.items():
        if name in hide:
            config[name] = None
            continue
        label = _LABELS.get(name, name.replace("_", " ").capitalize())
        if "bytes" in name or name in ("threshold", "baseline_median", "baseline_mad"):
            config[name] = st.column_config.NumberColumn(label, format="bytes")
        elif dtype.is_numeric() and name in ("ratio", "regularity", "off_share"):
            fmt = "percent" if name == "off_share" else "%.2f"
            config[name] = st.column_config.NumberColumn(label, format=fmt)
        elif isinstance(dtype, pl.Datetime):
            config[name] = st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm")
        elif name == "finding":  # a link to the row's finding (ui.triage.with_triage)
            config[name] = st.column_config.LinkColumn("Finding", display_text="open")
        elif dtype == pl.Date:
            config[name] = st.column_config.DateColumn(label, format="YYYY-MM-DD")
        else:
            config[name] = st.column_config.Column(label)
    return st.dataframe(df, key=key, hide_index=True, column_config=config, height=height,
                        width="stretch", **kw)


def only_device(df: pl.DataFrame, ip0: str) -> pl.DataFrame:
    return df.filter(pl.col("ip0") == ip0)


def only_remote(df: pl.DataFrame, ip1: str) -> pl.DataFrame:
    return df.filter(pl.col("ip1") == ip1)
