"""Streamlit glue: the only module of the package that imports streamlit.

``run_app()`` is the whole frame every page passes through: page config,
navigation, the shared sidebar (data source, sensor, range, filters, all bound
to the URL), the load with its progress bar, and errors in plain words. Pages
call ``frame()`` first: when a freshly started server receives a page URL as
its very first request, Streamlit runs that file of ``pages/`` on its own; the
call then runs the full app instead, so the page still gets the sidebar and
the data source, and renders exactly once.

Everything heavy is cached outside the rerun: the loader keeps hot frames in
memory, and ``compute()`` memoises analytics by (window, filters, function).
"""

from __future__ import annotations

import os
import secrets as pysecrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st
from cachetools import TTLCache

from flux_dashboard import errors as E
from flux_dashboard.config import Settings, load_settings
from flux_dashboard.filters import Filters
from flux_dashboard.geo import with_country
from flux_dashboard.loader import HOUR, LoadResult, Progress, ceil_hour, floor_hour
from flux_dashboard.schema import THREATS
from flux_dashboard.service import Service, build_service

ROOT = Path(__file__).resolve().parents[1]

# (url_path, title, icon, file)
PAGES: list[tuple[str, str, str, str]] = [
    ("overview", "Overview", ":material/dashboard:", "pages/1_overview.py"),
    ("devices", "Devices", ":material/devices:", "pages/2_devices.py"),
    ("protocols", "Protocols & ports", ":material/lan:", "pages/3_protocols.py"),
    ("toxic", "Toxic flows", ":material/gpp_maybe:", "pages/4_toxic.py"),
    ("remotes", "Remote hosts", ":material/public:", "pages/5_remotes.py"),
    ("hunting", "Threat hunting", ":material/troubleshoot:", "pages/6_hunting.py"),
]

# Bound selectboxes write the option's label into the URL, so options are the
# labels themselves: readable links, stable whatever the masking.
PRESETS = {
    "Last 24 hours": "24h",
    "Last 7 days": "7d",
    "Last 30 days": "30d",
    "Yesterday": "yesterday",
    "This month": "month",
    "Custom": "custom",
}
HOURS = [f"{h:02d}:00" for h in range(24)]
DIRECTIONS = ["all", "IN", "OUT"]
BOUND_KEYS = ("sensor", "range", "from_day", "from_hour", "to_day", "to_hour", "device",
              "remote", "protocol", "port", "mac", "dir", "toxic", "threat", "offhours", "mask")
_local = threading.local()


# ------------------------------------------------------------------ resources
def _secrets() -> dict:
    try:
        return {k: v for k, v in st.secrets.to_dict().items()}
    except Exception:  # no secrets.toml at all is the normal demo case
        return {}


def settings() -> Settings:
    return load_settings(secrets=_secrets())


@st.cache_resource(show_spinner=False)
def _service(source_id: str, cache_dir: str) -> Service:
    # Keyed by the source id (URL + key fingerprint), never by the key itself.
    return build_service(settings())


def service() -> Service:
    cfg = settings()
    return _service(cfg.source_id, str(cfg.cache_dir))


@st.cache_data(ttl=300, show_spinner=False)
def _sensors(source_id: str) -> list[dict]:
    return service().client.sensors()


def _mask_secret(cfg: Settings) -> bytes:
    """Stable across restarts so masked links keep working; never in the repo."""
    env = os.environ.get("FLUX_MASK_SECRET")
    if env:
        return env.encode()
    path = cfg.cache_dir / "mask-secret"
    try:
        return path.read_bytes()
    except OSError:
        pass
    value = pysecrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
    except FileExistsError:
        return path.read_bytes()
    except OSError:
        pass
    return value


@st.cache_resource(show_spinner=False)
def _masker(source_id: str):
    from flux_dashboard.masking import Masker

    return Masker(_mask_secret(settings()))


# ------------------------------------------------------------------ derived data cache
_derived: TTLCache = TTLCache(maxsize=512, ttl=900)
_derived_lock = threading.Lock()


def _memo(key: tuple, fn: Callable[[], Any]) -> Any:
    with _derived_lock:
        if key in _derived:
            return _derived[key]
    value = fn()
    with _derived_lock:
        _derived[key] = value
    return value


@dataclass
class View:
    """Everything a page needs: the sensor, the window, the filters and the frame."""

    settings: Settings
    sensor: dict
    tz: str
    hno_hours: tuple[int, ...]
    start: datetime
    end: datetime
    filters: Filters
    masked: bool
    result: LoadResult
    base: pl.DataFrame  # prepared (countries, masking), before local filters
    frame: pl.DataFrame  # what the pages show
    range_label: str
    device_names: dict[str, str] = field(default_factory=dict)
    partial_note: str = ""  # set when some hours could not be loaded

    @property
    def key(self) -> tuple:
        return (self.sensor["id"], _data_key(self.settings, self.result, self.masked))

    def compute(self, fn: Callable, *args, frame: pl.DataFrame | None = None, **kw) -> Any:
        """``fn(frame, *args, **kw)`` memoised by (window, filters, function, arguments).

        ``fn`` must be a named module-level function: its qualified name is the key.
        """
        if fn.__name__ == "<lambda>":
            raise TypeError("compute() needs a named function, not a lambda")
        # Frames passed in are themselves memoised objects: identity is their key.
        def part(a: Any) -> Any:
            if isinstance(a, pl.DataFrame):
                return ("frame", id(a), a.shape)
            return tuple(a) if isinstance(a, list) else a

        key = (self.key, self.filters, fn.__module__, fn.__qualname__,
               tuple(part(a) for a in args), tuple(sorted((k, part(v)) for k, v in kw.items())),
               None if frame is None else id(frame))
        return _memo(key, lambda: fn(self.frame if frame is None else frame, *args, **kw))

    def local(self, t: datetime) -> datetime:
        return t.astimezone(ZoneInfo(self.tz))

    def sensor_label(self) -> str:
        s = self.sensor
        return f"{s.get('full_name') or s.get('name') or 'Sensor'} (#{s['id']})"


# ------------------------------------------------------------------ the frame
def frame() -> View:
    """Call first on every page. Returns the shared view (or stops the run)."""
    view = getattr(_local, "view", None)
    if getattr(_local, "in_nav", False):
        if view is None:
            st.stop()
        return view
    # This file was run without the entrypoint (fresh server, page URL first):
    # run the whole app, which renders this page through the navigation.
    run_app()
    st.stop()
    raise AssertionError("unreachable")


def run_app() -> None:
    st.set_page_config(page_title="Flux · Serenicity flows", page_icon=":material/lan:",
                       layout="wide", initial_sidebar_state="expanded")
    pages = [st.Page(str(ROOT / f), title=t, icon=i, url_path=u, default=(u == "overview"))
             for u, t, i, f in PAGES]
    nav = st.navigation({"Flows": pages[:5], "Hunting": pages[5:]}, position="sidebar")
    _local.view = None
    _local.in_nav = True
    try:
        _local.view = _sidebar_and_load()
        nav.run()
    finally:
        _local.in_nav = False
        _local.view = None


def _sidebar_and_load() -> View | None:
    first_run = "_flux_seen" not in st.session_state
    raw_query = {k: st.query_params.get_all(k) for k in st.query_params} if first_run else {}
    st.session_state["_flux_seen"] = True
    try:
        cfg = settings()
    except E.ConfigError as exc:
        st.error(f"Configuration problem: {exc}")
        return None
    side = st.sidebar
    sb = side.container()  # source, sensor, range and filters
    bottom = side.container()  # masking: created first (below), shown last
    bottom.divider()
    masked = bottom.toggle("Demo masking", key="mask", bind="query-params",
                           help="Replace IPs, MACs, device names and vendors with consistent "
                                "pseudonyms everywhere, downloads and links included")
    sb.markdown(f"**:material/sensors: {text(cfg.describe())}**")
    if cfg.demo:
        sb.caption("No API key configured: this is a simulated sensor. Set "
                   "SERENICITY_API_KEY to read your own.")
    try:
        sensors = _sensors(cfg.source_id)
    except E.FluxError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    if not sensors:
        st.warning("This API key sees no sensor.")
        return None
    by_id = {int(s["id"]): s for s in sensors}
    masker = _masker(cfg.source_id) if masked else None

    def sensor_label(i: int) -> str:
        s = by_id[i] if masker is None else masker.mask_sensor(by_id[i])
        status = s.get("status", "")
        mark = " · ⚠ disconnected" if status and status != "CONNECTED" else ""
        return f"{s.get('full_name') or s.get('name')} · #{i}{mark}"

    # Not bound: a bound selectbox would put the (maskable) sensor name in the URL.
    # Seeded once from ?sensor=<id>, then written back on every run.
    if "sensor_id" not in st.session_state or st.session_state.sensor_id not in by_id:
        wanted = (raw_query.get("sensor") or [""])[-1]
        chosen = int(wanted) if wanted.isdigit() and int(wanted) in by_id else next(iter(by_id))
        if wanted and str(chosen) != wanted:
            st.warning(f"Sensor {wanted!r} from the link is not available with this key; "
                       "showing the first sensor instead.", icon=":material/link_off:")
        st.session_state.sensor_id = chosen
    sensor_id = sb.selectbox("Sensor", list(by_id), key="sensor_id", format_func=sensor_label)
    st.query_params["sensor"] = str(sensor_id)
    sensor = by_id[sensor_id]
    tz = sensor.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(tz)
    except Exception:
        zone, tz = ZoneInfo("UTC"), "UTC"
    sb.caption(f"Times in the sensor's time zone: {tz}")

    preset = PRESETS[sb.selectbox("Time range", list(PRESETS), key="range",
                                  bind="query-params")]
    now = datetime.now(UTC)
    problems: list[str] = []
    if preset == "custom":
        today = now.astimezone(zone).date()
        c1, c2 = sb.columns(2)
        # A default only when "Pin these dates" has not already set the value
        # (both would make Streamlit log a warning).
        def default(key: str, value: date) -> dict:
            return {} if key in st.session_state else {"value": value}

        from_day = c1.date_input("From", key="from_day", bind="query-params", max_value=today,
                                 **default("from_day", today - timedelta(days=1)))
        from_hour = c2.selectbox("at", HOURS, key="from_hour", bind="query-params")
        c3, c4 = sb.columns(2)
        to_day = c3.date_input("To", key="to_day", bind="query-params",
                               **default("to_day", today))
        to_hour = c4.selectbox("at ", HOURS, key="to_hour", bind="query-params")
        start = _local_dt(from_day, HOURS.index(from_hour), zone)
        end = _local_dt(to_day, HOURS.index(to_hour), zone)
    else:
        start, end = preset_range(preset, now, zone)
        sb.button(":material/push_pin: Pin these dates", key="pin_btn", on_click=_pin,
                  args=(start, end, zone), width="stretch",
                  help="Turn the relative range into fixed dates, so that a shared link "
                       "shows exactly this data tomorrow too")
    if end <= start:
        problems.append("The start of the range must be before its end.")
    elif end - start > timedelta(days=cfg.max_range_days):
        problems.append(f"The range is {(end - start).days} days long; the maximum is "
                        f"{cfg.max_range_days} days. Choose a shorter range.")
    refresh = sb.button(":material/refresh: Refresh the open hour", key="refresh_btn",
                        help="Fetch the hour still being written again (past hours are cached)",
                        width="stretch")

    sb.divider()
    sb.markdown("**Filters**")
    # The device list comes from the loaded data, so filters render after the load;
    # their placeholders keep the sidebar order stable.
    device_slot = sb.empty()
    c1, c2 = sb.columns(2)
    remote = c1.text_input("Remote IP", key="remote", bind="query-params",
                           placeholder="1.2.3.4")
    mac = c2.text_input("MAC", key="mac", bind="query-params", placeholder="aa:bb:…")
    c3, c4 = sb.columns(2)
    protocol = c3.text_input("Protocol", key="protocol", bind="query-params",
                             placeholder="TCP")
    port = c4.text_input("Port", key="port", bind="query-params", placeholder="443")
    direction = sb.segmented_control("Direction", DIRECTIONS, key="dir", bind="query-params",
                                     default="all") or "all"
    toxic = sb.toggle("Toxic flows only", key="toxic", bind="query-params")
    _seed_multi("threat", list(THREATS), raw_query)
    threats = sb.multiselect("Threat categories", list(THREATS), key="threat",
                             format_func=lambda t: THREATS[t]["label"])
    _set_query("threat", threats)
    hno = tuple(int(h) for h in sensor.get("hno_hours") or () if str(h).isdigit())
    offhours = sb.toggle("Non-working hours only", key="offhours", bind="query-params",
                         help=f"The sensor's non-working hours ({hours_text(hno)}), "
                              "in its time zone", disabled=not hno)

    partial_filters, filter_problems = Filters.parse(
        remote_ip=remote, protocol=protocol, port=port, mac=mac, direction=direction,
        toxic_only=toxic, threats=threats, off_hours_only=offhours)
    problems += filter_problems
    range_label = (f"{start.astimezone(zone):%a %d %b %Y %H:%M} → "
                   f"{end.astimezone(zone):%a %d %b %Y %H:%M} ({tz})")
    if problems:
        for p in problems:
            st.error(p, icon=":material/edit:")
        st.info("Fix the highlighted input in the sidebar; nothing was fetched.")
        _link_warnings(raw_query)
        return None

    loaded = _load(cfg, sensor_id, start, end, partial_filters, refresh)
    if loaded is None:
        _link_warnings(raw_query)
        return None
    result, partial_note = loaded
    base = _prepare(cfg, result, masked)
    dkey = _data_key(cfg, result, masked)
    names = _memo(("names", dkey),
                  lambda: dict(base.group_by("ip0").agg(pl.col("device_name").last())
                               .sort("device_name").iter_rows()))
    _seed_multi("device", list(names), raw_query)
    devices = device_slot.multiselect(
        "Devices", list(names), key="device",
        format_func=lambda ip: f"{names.get(ip, ip)} · {ip}" if names.get(ip) != ip else ip,
        placeholder="All devices")
    _set_query("device", devices)
    filters = replace(partial_filters, devices=tuple(sorted(devices)))
    shown = _memo(("filtered", dkey, filters), lambda: filters.apply(base, tz, hno))
    view = View(cfg, masker.mask_sensor(sensor) if masked and masker else sensor, tz, hno,
                start, end, filters, masked, result, base, shown, range_label, names,
                partial_note)
    _link_warnings(raw_query)
    return view


def preset_range(preset: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC for a preset, in the sensor's local calendar."""
    end = ceil_hour(now)  # includes the open hour
    local_now = now.astimezone(zone)
    midnight = datetime(local_now.year, local_now.month, local_now.day, tzinfo=zone)
    if preset == "24h":
        return end - timedelta(hours=24), end
    if preset == "7d":
        return end - timedelta(days=7), end
    if preset == "30d":
        return end - timedelta(days=30), end
    if preset == "yesterday":
        y = (midnight - timedelta(hours=12)).date()
        return (datetime(y.year, y.month, y.day, tzinfo=zone).astimezone(UTC),
                midnight.astimezone(UTC))
    if preset == "month":
        first = datetime(local_now.year, local_now.month, 1, tzinfo=zone)
        return first.astimezone(UTC), end
    raise ValueError(preset)


def _pin(start: datetime, end: datetime, zone: ZoneInfo) -> None:
    """Callback: switch to a custom range holding the current preset's dates."""
    a, b = start.astimezone(zone), end.astimezone(zone)
    st.session_state.update(range="Custom", from_day=a.date(), from_hour=HOURS[a.hour],
                            to_day=b.date(), to_hour=HOURS[b.hour])


def _local_dt(day: date | None, hour: int | None, zone: ZoneInfo) -> datetime:
    day = day or date.today()
    return datetime(day.year, day.month, day.day, int(hour or 0), tzinfo=zone).astimezone(UTC)


def hours_text(hours: tuple[int, ...]) -> str:
    if not hours:
        return "none configured"
    runs, start, prev = [], hours[0], hours[0]
    for h in (*sorted(hours)[1:], None):
        if h is not None and h == prev + 1:
            prev = h
            continue
        runs.append(f"{start:02d}:00–{(prev + 1) % 24:02d}:00")
        if h is not None:
            start = prev = h
    return ", ".join(runs)


def _load(cfg: Settings, sensor_id: int, start: datetime, end: datetime, filters: Filters,
          refresh: bool) -> tuple[LoadResult, str] | None:
    """Load in a worker thread while this (script) thread draws the progress bar."""
    svc = service()
    loader = svc.loader
    server: dict = {}
    # A toxic-only view of a range we do not hold yet: ask the API for toxic rows
    # only (a handful of requests instead of hundreds). Otherwise filter locally.
    if filters.toxic_only and loader.cached_coverage(sensor_id, start, end) < 1.0:
        server = {"only_toxic": True}
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = loader.load(sensor_id, start, end, server_filters=server,
                                        progress=lambda p: box.__setitem__("progress", p),
                                        refresh=refresh)
        except BaseException as exc:  # handed to the script thread below
            box["error"] = exc

    worker = threading.Thread(target=work, name="flux-load", daemon=True)
    worker.start()
    worker.join(0.15)
    if worker.is_alive():
        holder = st.empty()
        with holder.container():
            bar = st.progress(0.0, text="Connecting to the sensor…")
            while worker.is_alive():
                p: Progress | None = box.get("progress")
                if p is not None:
                    bar.progress(p.fraction, text=_progress_text(p))
                worker.join(0.25)
        holder.empty()
    err = box.get("error")
    if isinstance(err, E.IncompleteDataError) and err.partial is not None:
        hours = err.hours
        note = (f"{len(hours)} hour(s) could not be loaded completely and are left out "
                f"(first: {hours[0]:%Y-%m-%d %H:00} UTC). {err}") if hours else str(err)
        partial = LoadResult(frame=err.partial, start=floor_hour(start), end=ceil_hour(end),
                             server_filters=server, loaded_at=datetime.now(UTC))
        return partial, note
    if err is not None:
        if isinstance(err, E.FluxError):
            st.error(str(err), icon=":material/cloud_off:")
        else:  # a bug: say so plainly, keep the traceback in the server log only
            import logging

            logging.getLogger(__name__).exception("load failed", exc_info=err)
            st.error("Something went wrong while loading the flows. Try again; if it "
                     "persists, the server log has the details.", icon=":material/bug_report:")
        return None
    return box["result"], ""


def _progress_text(p: Progress) -> str:
    left = p.seconds_left
    eta = f" · about {left:.0f} s left at {p.rate_limit_per_min:,} requests/min" if left >= 1 \
        else ""
    return (f"Loading flows: {p.requests_done}/{p.requests_planned} requests · "
            f"{p.rows:,} rows · {p.hours_done}/{p.hours_total} hours{eta}")


def _data_key(cfg: Settings, result: LoadResult, masked: bool) -> tuple:
    """Identifies one loaded frame (and its masking) in the derived-data caches."""
    return (cfg.source_id, result.start, result.end, tuple(result.server_filters.items()),
            result.loaded_at, id(result.frame), masked)


def _prepare(cfg: Settings, result: LoadResult, masked: bool) -> pl.DataFrame:
    key = ("prepared", _data_key(cfg, result, masked))

    def build() -> pl.DataFrame:
        df = with_country(result.frame, "ip1")
        if masked:
            df = _masker(cfg.source_id).mask_frame(df)
        return df

    return _memo(key, build)


def _coverage_banner(view: View) -> None:
    """Which hours are missing or still being written, and how the data was filtered."""
    r = view.result
    if view.partial_note:
        st.warning(view.partial_note, icon=":material/warning:")
    if r.server_filters:
        st.caption(":material/filter_alt: Loaded toxic flows only (server-side filter): "
                   "turn off “Toxic flows only” to load every flow.")
    if r.open_hours:
        first = view.local(r.open_hours[0])
        st.caption(f":material/schedule: {len(r.open_hours)} hour(s) from "
                   f"{first:%H:%M} are still being written; “Refresh” fetches them again.")


def _seed_multi(key: str, options: list[str], raw: dict[str, list[str]]) -> None:
    """Seed a multiselect once from ``?key=a&key=b`` (values such as IPs, not labels).

    Not bound to the URL: Streamlit would write the option labels (device names,
    which masking changes) into links. ``_set_query`` writes the values back.
    """
    if key not in st.session_state:
        wanted = raw.get(key, [])
        st.session_state[key] = [v for v in dict.fromkeys(wanted) if v in options]
        dropped = [v for v in wanted if v not in options]
        if dropped:
            st.warning(f"Link parameter {key} has values unknown in this range and view, "
                       f"ignored: {', '.join(dropped[:5])}", icon=":material/link_off:")
    else:  # a new range or sensor may not have every chosen value
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


def _set_query(key: str, values: list[str]) -> None:
    if values:
        st.query_params[key] = list(values)
    elif key in st.query_params:
        del st.query_params[key]


# What each bound widget shows when nothing (or nothing valid) is asked for.
_DEFAULTS = {"range": "Last 24 hours", "from_hour": "00:00", "to_hour": "00:00", "dir": "all",
             "toxic": "false", "offhours": "false", "mask": "false"}


def _link_warnings(raw: dict[str, list[str]]) -> None:
    """Warn once about link parameters that were unknown or could not be applied.

    Bound widgets silently fall back to their default on a value they cannot
    take; a widget at its default while the link asked for something else
    therefore means the link's value was invalid.
    """
    if not raw:
        return
    unknown = [k for k in raw if k not in BOUND_KEYS]
    if unknown:
        st.warning("This link has parameters the dashboard does not know; they were "
                   "ignored: " + ", ".join(sorted(unknown)), icon=":material/link_off:")
    bad = []
    for k, values in raw.items():
        if k not in st.session_state or k in ("sensor", "device", "threat"):
            continue
        got = st.session_state[k]
        if k in _DEFAULTS:
            shown = str(got).lower() if isinstance(got, bool) else str(got)
            if shown == _DEFAULTS[k] and values[-1].lower() != _DEFAULTS[k].lower():
                bad.append(k)
        elif k in ("from_day", "to_day") and str(got) != values[-1]:
            bad.append(k)
    if bad:
        st.warning("Some link parameters were not valid here and fell back to defaults: "
                   + ", ".join(bad), icon=":material/link_off:")


# ------------------------------------------------------------------ page helpers
def header(view: View, title: str, icon: str = "") -> None:
    st.title(f"{icon} {title}".strip(), anchor=False)
    st.caption(f"{text(view.sensor_label())} · {view.range_label} · "
               f"{text(view.filters.describe(view.device_names))}"
               + (" · :material/visibility_off: masked" if view.masked else ""))
    _coverage_banner(view)


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
    config = {"displaylogo": False, "topojsonURL": "/app/static/topojson/"}
    return st.plotly_chart(fig, key=key, theme=None, config=config, width="stretch", **kw)


def downloads(df: pl.DataFrame, name: str, key: str) -> None:
    """CSV and Parquet of exactly ``df`` (built only when clicked)."""
    import io

    def parquet() -> bytes:
        buf = io.BytesIO()
        df.write_parquet(buf)
        return buf.getvalue()

    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button(":material/download: CSV", data=lambda: _csv_safe(df).write_csv(),
                       file_name=f"{name}.csv", mime="text/csv", key=f"{key}_csv",
                       on_click="ignore")
    c2.download_button(":material/download: Parquet", data=parquet,
                       file_name=f"{name}.parquet", mime="application/octet-stream",
                       key=f"{key}_pq", on_click="ignore")


def _csv_safe(df: pl.DataFrame) -> pl.DataFrame:
    """Flatten lists for CSV and neutralise cells a spreadsheet would run as formulas."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            exprs.append(pl.col(name).cast(pl.List(pl.String)).list.join(", "))
        elif dtype == pl.String:
            c = pl.col(name)
            exprs.append(pl.when(c.str.contains(r"^[=+\-@\t\r]")).then("'" + c).otherwise(c)
                         .alias(name))
    return df.with_columns(exprs) if exprs else df


def evidence_button(view: View, *, device: str | None = None, key: str) -> None:
    """One click: a zip with CSVs, the digest and a self-contained HTML report."""
    from flux_dashboard import analytics as A
    from flux_dashboard import charts as C
    from flux_dashboard import hunting as Hn
    from flux_dashboard import report

    def build() -> bytes:
        df = view.frame if device is None else view.frame.filter(pl.col("ip0") == device)
        last_day = (view.end - HOUR).astimezone(ZoneInfo(view.tz)).date()
        dg = view.compute(Hn.digest, view.tz, last_day, last_day - timedelta(days=7),
                          frame=df)
        figures = {
            "Traffic over time": C.traffic_over_time_fig(
                A.traffic_over_time(df, view.tz, "auto")),
            "Cyberweather": C.cyberweather_fig(A.cyberweather(df, view.tz, "1d")),
            "Threats by category": C.threats_fig(A.threats_by_category(df)),
            "Top devices": C.top_bar_fig(A.top_devices(df, 10), title="Top devices by bytes"),
            "Top ports": C.top_bar_fig(A.top_ports(df, 10), title="Top ports by bytes",
                                       category_title="Port"),
        }
        return report.evidence_pack(
            flows=df, sensor=view.sensor, start=view.start, end=view.end, tz=view.tz,
            filters_description=view.filters.describe(view.device_names),
            digest_text=dg.as_text(), figures=figures, storylines=Hn.storylines(df),
            generated_at=datetime.now(UTC), device=device)

    who = "device" if device else "sensor"
    st.download_button(f":material/folder_zip: Evidence pack ({who})", data=build,
                       file_name=f"evidence-{view.sensor['id']}-{view.start:%Y%m%d%H}"
                                 f"{'-' + device if device else ''}.zip",
                       mime="application/zip", key=key, on_click="ignore",
                       help="Zip: flows.csv, toxic_flows.csv, storylines.csv, digest and an "
                            "HTML report that opens offline")


def text(value: object) -> str:
    """Escape a data string for st.markdown (HTML and markdown syntax shown literally)."""
    from flux_dashboard.hunting import escape_markdown

    return escape_markdown(str(value))


def human_bytes(n: float | None) -> str:
    from flux_dashboard.analytics import human_bytes as hb

    return hb(n)


def lookback(view: View, start: datetime, end: datetime, why: str) -> pl.DataFrame | None:
    """Flows of another window (e.g. a baseline) through the same loader and cache.

    Says what it fetches and why; returns None (after a plain message) on error.
    """
    loader = service().loader
    server = dict(view.result.server_filters)
    cached = loader.cached_coverage(view.sensor["id"], start, end, server)
    span = (f"{view.local(start):%a %d %b %H:%M} → {view.local(end):%a %d %b %H:%M}")
    note = "from the cache" if cached >= 1.0 else "fetching what is not cached yet"
    st.caption(f":material/history: {why}: flows of {span} ({note}).")
    try:
        with st.spinner(f"Loading {why.lower()}…"):
            result = loader.load(view.sensor["id"], start, end, server_filters=server)
    except E.IncompleteDataError as exc:
        if exc.partial is None:
            st.warning(str(exc))
            return None
        st.warning(f"The comparison data is incomplete: {exc}")
        result = LoadResult(frame=exc.partial, start=start, end=end, server_filters=server,
                            loaded_at=datetime.now(UTC))
    except E.FluxError as exc:
        st.warning(f"Could not load {why.lower()}: {exc}")
        return None
    base = _prepare(view.settings, result, view.masked)
    return _memo(("lookback", view.key, view.filters, start, end, result.loaded_at),
                 lambda: view.filters.apply(base, view.tz, view.hno_hours))


_LABELS = {"ip0": "Local IP", "ip1": "Remote IP", "dir": "Dir", "dirs": "Dirs",
           "mac_address": "MAC", "netbios": "NetBIOS", "is_critical": "Critical device",
           "cyt": "cyT", "iso3": "ISO3", "off_share": "Off-hours share"}


def table(df: pl.DataFrame, key: str, *, height: int | str = "auto", hide: tuple = (),
          **kw) -> Any:
    """A sortable table with readable headers, bytes as KB/MB/GB, text shown as text."""
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
        else:
            config[name] = st.column_config.Column(label)
    return st.dataframe(df, key=key, hide_index=True, column_config=config, height=height,
                        width="stretch", **kw)


def only_device(df: pl.DataFrame, ip0: str) -> pl.DataFrame:
    return df.filter(pl.col("ip0") == ip0)


def only_toxic(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("toxic"))
