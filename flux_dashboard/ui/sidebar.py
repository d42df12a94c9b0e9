"""The shared sidebar and the URL state: source, sensor, range, filters, masking.

Owns every widget of the sidebar and how it maps to and from the link: bound
widgets carry readable labels (``range=Last+7+days``); the sensor, devices
and threats are seeded once from the link's values (ids, IPs, flag names)
and written back as values; link parameters that are unknown or invalid are
reported, escaped, never rendered. Only the sensors the session's grant
allows are listed, and a link naming another one is refused before any
request. Masking is decided in one place, ``masking_forced``: the
deployment (FLUX_FORCE_MASK) or the role (viewer) can force it on, whatever
the link or the switch say; pages only read ``View.masked``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from flux_dashboard import errors as E
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.filters import Filters
from flux_dashboard.hours import (
    HOUR_LABELS,
    hour_label,
    hour_labels,
    labelled_datetime,
    preset_range,
    sensor_hno,
    sensor_zone,
)
from flux_dashboard.masking import Masker
from flux_dashboard.schema import THREATS
from flux_dashboard.sync import StatusFile, describe
from flux_dashboard.ui.auth import Session, record, sidebar_identity
from flux_dashboard.ui.loading import load_main, prepare
from flux_dashboard.ui.state import View, data_key, masker, memo, sensors, settings

# The widgets bound to the link (bind="query-params"): Streamlit carries them
# across a page switch itself, and refuses to set or clear them from code.
BOUND_KEYS = frozenset({"mask", "range", "remote", "mac", "protocol", "port", "dir",
                        "toxic", "offhours"})

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
DIRECTIONS = ["all", "IN", "OUT"]
# Every parameter a link may hold (the others are reported as unknown).
LINK_KEYS = ("sensor", "range", "from_day", "from_hour", "to_day", "to_hour", "device",
             "remote", "protocol", "port", "mac", "dir", "toxic", "threat", "offhours", "mask",
             "finding")  # finding: a finding's key, opened on the Findings page
_SENSOR_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is True


def masking_forced(session: Session) -> bool:
    """Whether masking is forced on for this session: the deployment or the role.

    The one place that can overrule the presenter's switch and the link's
    ``mask=false``: FLUX_FORCE_MASK=1 (a demo deployment) or the viewer role.
    """
    return session.hosting.force_mask or session.grant.masked


def sidebar_and_load(session: Session, page: str = "overview") -> View | None:
    """Draw the sidebar, load the chosen window and return the page's View (None:
    nothing to show; the reason is already on the page)."""
    first_run = "_flux_seen" not in st.session_state
    # The link seeds every widget whose state is missing: on the first run, and after a
    # page switch (the profile jump), whose run ends before the sidebar is drawn, so
    # Streamlit drops the unbound widgets' state (the switch carries their values in
    # the link: frame._unbound_link). What it holds is reported on the first run only.
    link = {k: st.query_params.get_all(k) for k in st.query_params}
    raw_query = link if first_run else {}
    st.session_state["_flux_seen"] = True
    try:
        cfg = settings()
    except E.ConfigError as exc:
        st.error(f"Configuration problem: {text(exc)}")
        return None
    side = st.sidebar
    sb = side.container()  # source, sensor, range and filters
    bottom = side.container()  # masking: created first (below), shown last
    bottom.divider()
    masked = masking_switch(session, bottom)
    sidebar_identity(session, bottom)
    sb.markdown(f"**:material/sensors: {text(cfg.describe())}**")
    if cfg.demo:
        sb.caption("No API key configured: this is a simulated sensor. Set "
                   "SERENICITY_API_KEY to read your own.")
    try:
        every = sensors(cfg)
    except E.FluxError as exc:
        st.error(text(exc), icon=":material/error:")
        return None
    available = session.grant.visible(every)
    if not available:
        st.warning("No sensor is available to you: ask an administrator." if every else
                   "This API key sees no sensor.", icon=":material/sensors_off:")
        return None
    by_id = {int(s["id"]): s for s in available}
    mask = masker(cfg) if masked else None
    _mask_identifier_filters(mask, masking_forced(session), link)
    sensor_id, denied = _sensor_picker(session, sb, by_id, mask, link)
    sensor = by_id[sensor_id]
    zone, tz = _sensor_zone(sb, sensor, sensor_id)
    start, end, problems = _time_range(sb, cfg, zone, link)
    refresh = _refresh_buttons(sb)
    device_slot, partial_filters, hno, filter_problems = _filter_inputs(sb, sensor, link)
    problems += filter_problems
    range_label = (f"{start.astimezone(zone):%a %d %b %Y %H:%M} → "
                   f"{end.astimezone(zone):%a %d %b %Y %H:%M} ({tz})")
    if denied:
        return None
    if problems:
        for p in problems:
            st.error(text(p), icon=":material/edit:")
        st.info("Fix the highlighted input in the sidebar; nothing was fetched.")
        _link_warnings(raw_query)
        return None

    def first_view(planned: int):
        from flux_dashboard.ui import firstview

        if not firstview.wanted(page, planned, partial_filters.is_empty, cfg.demo):
            return None
        return firstview.first_view(page, session, cfg, sensor, start, end, tz, mask)

    loaded = load_main(session, cfg, sensor_id, start, end, partial_filters, refresh,
                       first_view)
    if loaded is None:
        _link_warnings(raw_query)
        return None
    result, partial_note, offline = loaded
    base = prepare(cfg, sensor_id, result, masked)
    dkey = data_key(cfg, sensor_id, result, masked)
    names = memo(("names", dkey),
                 lambda: dict(base.group_by("ip0").agg(pl.col("device_name").last())
                              .sort("device_name").iter_rows()))
    _seed_multi("device", list(names), link)
    devices = device_slot.multiselect(
        "Devices", list(names), key="device",
        format_func=lambda ip: f"{names.get(ip, ip)} · {ip}" if names.get(ip) != ip else ip,
        placeholder="All devices")
    _set_query("device", devices)
    filters = replace(partial_filters, devices=tuple(sorted(devices)))
    shown = memo(("filtered", dkey, filters), lambda: filters.apply(base, tz, hno))
    view = View(cfg, mask.mask_sensor(sensor) if mask is not None else sensor, tz, hno,
                start, end, filters, masked, result, base, shown, range_label, dkey, names,
                partial_note, session, offline)
    _link_warnings(raw_query)
    return view


def masking_switch(session: Session, bottom) -> bool:
    """The presenter's switch; on, and disabled, when masking is forced."""
    forced = masking_forced(session)
    if forced:
        st.session_state["mask"] = True  # whatever the link or the last run said
    masked = bottom.toggle("Demo masking", key="mask", bind="query-params", disabled=forced,
                           help="Masking is required for your account" if forced else
                           "Replace IPs, MACs, device names and vendors with consistent "
                           "pseudonyms everywhere, downloads and links included")
    return bool(masked) or forced


def _sensor_picker(session: Session, sb, by_id: dict[int, dict], mask: Masker | None,
                   raw_query: dict[str, list[str]]) -> tuple[int, bool]:
    """The chosen sensor, and whether the link asked for one this user may not see
    (refused on the page and audited; the caller then shows nothing)."""
    def sensor_label(i: int) -> str:
        s = by_id[i] if mask is None else mask.mask_sensor(by_id[i])
        status = s.get("status", "")
        mark = " · ⚠ disconnected" if status and status != "CONNECTED" else ""
        return f"{s.get('full_name') or s.get('name')} · #{i}{mark}"

    # Not bound: a bound selectbox would put the (maskable) sensor name in the URL.
    # Seeded once from ?sensor=<id>, then written back when it changes. One widget key
    # per masking state: the browser keeps showing a picker's old label while its
    # options stay the same, so the real sensor name stayed on screen after masking
    # was switched on; a new key redraws the picker, the choice carried over.
    wkey, other = ("sensor_id_masked", "sensor_id") if mask is not None else ("sensor_id",
                                                                  "sensor_id_masked")
    if wkey not in st.session_state and st.session_state.get(other) in by_id:
        st.session_state[wkey] = st.session_state[other]
    st.session_state.pop(other, None)
    denied = False
    if wkey not in st.session_state or st.session_state[wkey] not in by_id:
        wanted = (raw_query.get("sensor") or [""])[-1]
        ok = _SENSOR_ID.fullmatch(wanted) is not None and int(wanted) in by_id
        chosen = int(wanted) if ok else next(iter(by_id))
        if wanted and not ok and session.grant.sensors is not None:
            # Refused, whether it exists or not (no oracle), without its name and
            # without a request; the picker offers the user's own sensors.
            denied = True
            st.error(f"You are not allowed to see sensor “{text(wanted[:40])}”. Ask an "
                     "administrator for access, or choose one of your sensors in the "
                     "sidebar.", icon=":material/block:")
            record(session, "denied", required=False,
                   sensor=int(wanted) if _SENSOR_ID.fullmatch(wanted) else None,
                   reason="sensor not allowed", asked=wanted[:40])
        elif wanted and not ok:
            st.warning(f"Sensor “{text(wanted[:40])}” from the link is not available with "
                       "this key; showing the first sensor instead.",
                       icon=":material/link_off:")
        st.session_state[wkey] = chosen
    sensor_id = sb.selectbox("Sensor", list(by_id), key=wkey, format_func=sensor_label)
    _set_query("sensor", [str(sensor_id)])
    return sensor_id, denied


def _sensor_zone(sb, sensor: dict, sensor_id: int) -> tuple[ZoneInfo, str]:
    """The sensor's time zone (UTC when it names none or an unknown one)."""
    tz = sensor_zone(sensor)
    zone = ZoneInfo(tz)
    sb.caption(f"Times in the sensor's time zone: {text(tz)}")
    synced = sync_line(sensor_id, zone)
    if synced:
        sb.caption(synced, help="Kept warm by the sync worker (python -m flux_dashboard "
                   "sync): a range within these days opens from the cache, without requests.")

    return zone, tz


def _time_range(sb, cfg, zone: ZoneInfo, raw_query: dict[str, list[str]]
                 ) -> tuple[datetime, datetime, list[str]]:
    """The range picker: a preset or custom days and hours; the range and what is
    wrong with it (in plain words)."""
    preset = PRESETS[sb.selectbox("Time range", list(PRESETS), key="range",
                                  bind="query-params")]
    now = cfg.now()
    problems: list[str] = []
    if preset == "custom":
        today = now.astimezone(zone).date()
        # Not bound to the URL: a bound widget leaves values set from code (Pin these
        # dates) and its defaults out of the link, and a link without its days would
        # move with the calendar. Seeded once from the link, written back when changed.
        if "from_day" not in st.session_state:
            st.session_state.update(
                from_day=min(_day(raw_query, "from_day") or today - timedelta(days=1), today),
                to_day=_day(raw_query, "to_day") or today,
                from_hour=_hour(raw_query, "from_hour"), to_hour=_hour(raw_query, "to_hour"))
        c1, c2 = sb.columns(2)
        from_day = c1.date_input("From", key="from_day", max_value=today) or today
        from_hour = c2.selectbox("at", _hour_options(from_day, zone, "from_hour"),
                                 key="from_hour")
        c3, c4 = sb.columns(2)
        to_day = c3.date_input("To", key="to_day") or today
        to_hour = c4.selectbox("at ", _hour_options(to_day, zone, "to_hour"), key="to_hour")
        for k, v in (("from_day", from_day), ("from_hour", from_hour), ("to_day", to_day),
                     ("to_hour", to_hour)):
            _set_query(k, [str(v)])
        start = labelled_datetime(from_day, from_hour, zone)
        end = labelled_datetime(to_day, to_hour, zone)
    else:
        for k in _CUSTOM_KEYS:  # a relative range: no stale fixed dates in the link
            if k in st.query_params:
                del st.query_params[k]
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
    return start, end, problems


def _refresh_buttons(sb) -> bool | str:
    """False, "open" (the hour still being written) or "range" (every hour again)."""
    refresh_open = sb.button(":material/refresh: Refresh the open hour", key="refresh_btn",
                             help="Fetch the hour still being written again (past hours "
                                  "come from the cache)", width="stretch")
    refresh_all = sb.button(":material/sync: Refresh the whole range", key="refresh_all_btn",
                            help="Fetch every hour of the range again from the API and "
                                 "replace the cache (late uploads; costs requests)",
                            width="stretch")
    return "range" if refresh_all else ("open" if refresh_open else False)


def _filter_inputs(sb, sensor: dict, raw_query: dict[str, list[str]]):
    """The filter widgets; the devices' slot (filled after the load, from its data),
    the filters without devices, the sensor's non-working hours, and input problems."""
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
    hno = sensor_hno(sensor)
    offhours = sb.toggle("Non-working hours only", key="offhours", bind="query-params",
                         help=f"The sensor's non-working hours ({hours_text(hno)}), "
                              "in its time zone", disabled=not hno)

    partial_filters, filter_problems = Filters.parse(
        remote_ip=remote, protocol=protocol, port=port, mac=mac, direction=direction,
        toxic_only=toxic, threats=threats, off_hours_only=offhours)
    return device_slot, partial_filters, hno, filter_problems


def sync_line(sensor_id: int, zone: ZoneInfo) -> str | None:
    """'Synced up to 14:00 · 30 days warm' from the sync worker's status file, if any."""
    cfg = settings()
    status = StatusFile(cfg.cache_dir, cfg.source_id).read().get(int(sensor_id))
    return describe(status, zone, cfg.now())


_MASKED_PUBLIC = ipaddress.ip_network("2001:db8::/32")  # where masked remote IPs live
_MASKED_LOCAL_V4 = ipaddress.ip_network("240.0.0.0/6")  # masked LAN IPv4 (class E)
_MASKED_LOCAL_V6 = ipaddress.ip_network("fd00::/8")  # masked other local IPs (ULA)
_MAC_ALIAS = re.compile(r"02(?::[0-9a-f]{2}){5}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}")


REAL_OF = "_flux_real_of"  # alias -> the real identifier it replaced in a filter
# The identifier filters: (widget key, label, masking kind). Device is a list.
_IDENTIFIER_FILTERS = (("remote", "Remote IP", "public_ip"), ("mac", "MAC", "mac"),
                       ("device", "Devices", "local_ip"))


def is_alias(kind: str, value: str) -> bool:
    """Whether ``value`` has the shape of a masking alias of ``kind`` (masking.py)."""
    if kind == "mac":
        return bool(_MAC_ALIAS.fullmatch(value.lower()))
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    if kind == "public_ip":
        return addr.version == 6 and addr in _MASKED_PUBLIC
    return addr in _MASKED_LOCAL_V4 if addr.version == 4 else addr in _MASKED_LOCAL_V6


def _mask_identifier_filters(mask: Masker | None, forced: bool,
                             link: dict[str, list[str]]) -> None:
    """Keep the identifier filters (Remote IP, MAC, devices), and so the link, in the
    masking's terms. Runs before their widgets are drawn.

    Masked frames hold aliases. When the presenter turns masking on, a real value in
    a filter becomes its alias (the one the tables show), remembered on the server
    to come back when masking is turned off. When masking is forced (a viewer, a
    demo deployment), a filter takes aliases only: a real value is cleared with the
    same words whatever it is, never converted, since converting would tell a viewer
    whether a guessed address is in the data.
    """
    real_of: dict[str, str] = st.session_state.setdefault(REAL_OF, {})
    cleared = []
    for key, label, kind in _IDENTIFIER_FILTERS:
        state = st.session_state.get(key)
        if state is None:  # first run or after a page switch: the link's value
            state = link.get(key, []) if key == "device" else (link.get(key) or [""])[-1]
        values = [v.strip() for v in ([state] if isinstance(state, str) else state or [])]
        values = [v for v in values if v]
        if not values:
            continue
        if mask is None:
            new = [real_of.get(v, v) for v in values]
        elif forced:
            new = [v for v in values if is_alias(kind, v)]
            if len(new) < len(values):
                cleared.append(label)
        else:
            new = []
            for v in values:
                if not is_alias(kind, v) and _valid(kind, v):
                    # As the frames spell it: a MAC as filters.py normalises it.
                    alias = mask.mask_value(kind, v.lower().replace("-", ":")
                                            if kind == "mac" else v)
                    real_of[alias] = v
                    v = alias
                new.append(v)
        if new != values:
            st.session_state[key] = new if key == "device" else (new[0] if new else "")
    if cleared:
        st.warning(f"{', '.join(cleared)}: masking is on for your account, so filters take "
                   "masked values only, as the tables show them. The filter was cleared.",
                   icon=":material/visibility_off:")


def _valid(kind: str, value: str) -> bool:
    if kind == "mac":
        return bool(_MAC.fullmatch(value))
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _pin(start: datetime, end: datetime, zone: ZoneInfo) -> None:
    """Callback: switch to a custom range holding the current preset's dates."""
    (a, a_hour), (b, b_hour) = hour_label(start, zone), hour_label(end, zone)
    st.session_state.update(range="Custom", from_day=a, from_hour=a_hour, to_day=b,
                            to_hour=b_hour)


def _hour_options(day: date, zone: ZoneInfo, key: str) -> list[str]:
    """The hours of ``day`` (with the repeated hour of the day clocks go back); a
    "(2nd)" hour kept from another day falls back to its plain hour."""
    options = hour_labels(day, zone)
    if st.session_state.get(key) not in options:
        label = str(st.session_state.get(key) or "")
        st.session_state[key] = label.split(" ")[0] if label.split(" ")[0] in options \
            else "00:00"
    return options


_CUSTOM_KEYS = ("from_day", "from_hour", "to_day", "to_hour")


def _day(raw: dict[str, list[str]], key: str) -> date | None:
    values = raw.get(key) or []
    try:
        return date.fromisoformat(values[-1]) if values and len(values[-1]) == 10 else None
    except ValueError:
        return None


def _hour(raw: dict[str, list[str]], key: str) -> str:
    values = raw.get(key) or []
    return values[-1] if values and values[-1].split(" ")[0] in HOUR_LABELS else "00:00"


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
            st.warning(f"Link parameter {text(key)} has values unknown in this range and "
                       f"view, ignored: {text(', '.join(v[:60] for v in dropped[:5]))}",
                       icon=":material/link_off:")
    else:  # a new range or sensor may not have every chosen value
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


def _set_query(key: str, values: list[str]) -> None:
    """Write a link parameter only when it changes. Each write sends the whole query
    string this run knows; an unchanged value rewritten on every run could put back
    an older URL over a bound switch the browser had just changed (the suspected
    cause of a CI run where masking was on but ``mask=true`` was not in the URL)."""
    if values:
        if st.query_params.get_all(key) != list(values):
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
    therefore means the link's value was invalid. Names are echoed escaped.
    """
    if not raw:
        return
    unknown = [k for k in raw if k not in LINK_KEYS]
    if unknown:
        st.warning("This link has parameters the dashboard does not know; they were "
                   "ignored: " + text(", ".join(k[:40] for k in sorted(unknown)[:10])),
                   icon=":material/link_off:")
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
                   + text(", ".join(bad)), icon=":material/link_off:")
