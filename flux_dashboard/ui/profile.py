"""The remote-host profile: opening it (table rows, links, search) and drawing it.

A profile is the Remote hosts page focused on one public IP through the
sidebar's "Remote IP" filter (``?remote=IP``, bound to the URL): a link to the
page with that parameter reproduces the profile, masked links carry the
masked address, and every other page follows the same focus. Selecting a row
of a table that shows ``ip1`` sets that filter and opens the page; the
search box on the page does the same. The profile reads only the loaded
window and the disk cache; a wider look-back is fetched only when asked,
through the same loader, and says what it fetches.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import remote_profile as P
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.hours import days_before
from flux_dashboard.store import filters_key
from flux_dashboard.ui.loading import lookback
from flux_dashboard.ui.sidebar import REAL_OF, masking_forced
from flux_dashboard.ui.state import Keyed, View, masker, memo, service
from flux_dashboard.ui.widgets import chart, downloads, evidence_button, only_remote, table

OPEN_FLAG = "_flux_open_profile"
SEARCH_KEY = "rh_profile_search"
_PROBLEM = "_flux_profile_problem"


# ------------------------------------------------------------------ opening it
def _open(ip: str) -> None:
    """(Callback) focus the sidebar's Remote IP filter on ``ip`` and ask for the page."""
    st.session_state["remote"] = ip
    st.session_state[OPEN_FLAG] = True


def close_profile() -> None:
    """(Callback) clear the Remote IP filter: back to every remote host."""
    st.session_state["remote"] = ""
    st.session_state.pop(_PROBLEM, None)


def wants_profile_page() -> bool:
    """Whether a callback of this run asked for the Remote hosts page (read once)."""
    return bool(st.session_state.pop(OPEN_FLAG, False))


def profile_table(df: pl.DataFrame, key: str, masked: bool, **kw: Any) -> Any:
    """``table`` whose row selection opens the profile of the row's ``ip1``."""
    def picked() -> None:
        rows = (st.session_state.get(key) or {}).get("selection", {}).get("rows", [])
        if not rows or rows[0] >= df.height:
            return
        ip, problem = P.check_remote(df["ip1"][rows[0]], masked)
        if ip is None:
            st.session_state[_PROBLEM] = problem
            return
        _open(ip)

    return table(df, key, on_select=picked, selection_mode="single-row", **kw)


def search_box(view: View) -> None:
    """The page's "open a profile" box: a valid public IP sets the Remote IP filter."""
    def searched() -> None:
        value = st.session_state.get(SEARCH_KEY, "")
        forced = masking_forced(view.session)
        ip, problem = P.check_remote(value, forced or view.masked)
        if ip is None and view.masked and not forced:
            # The presenter's masking: a real public IP opens its alias. Never when
            # masking is forced: that would confirm a viewer's guess.
            ip, problem = P.check_remote(value, False)
            if ip is not None:
                alias = masker(view.settings).mask_value("public_ip", ip)
                st.session_state.setdefault(REAL_OF, {})[alias] = ip
                ip = alias
            else:
                ip, problem = P.check_remote(value, True)
        st.session_state[SEARCH_KEY] = ""  # masked, a typed address must not stay shown
        if ip is None:
            st.session_state[_PROBLEM] = problem
            return
        st.session_state.pop(_PROBLEM, None)
        _open(ip)

    st.text_input("Open a remote host's profile", key=SEARCH_KEY, on_change=searched,
                  placeholder="a public IP, e.g. 91.92.248.153 (or select a table row)")
    problem = st.session_state.pop(_PROBLEM, None)
    if problem:
        st.warning(text(problem), icon=":material/travel_explore:")


# ------------------------------------------------------------------ data
def _without_remote(view: View) -> Keyed:
    """The view's flows with every filter but the remote one (for same-owner IPs)."""
    filters = replace(view.filters, remote_ip=None)
    key = ("filtered", view.data_key, filters)
    return Keyed(key, memo(key, lambda: filters.apply(view.base, view.tz, view.hno_hours)))


def _cache_first_contacts(view: View) -> pl.DataFrame:
    """ip1 → first cached hour, over every cached day of this sensor (no request).

    Masked views get the table with masked ``ip1``: the cache holds real IPs.
    """
    def build() -> pl.DataFrame:
        loader = service().loader
        if loader.store is None:
            return P.first_contacts([])
        keys = {filters_key({}), filters_key(dict(view.result.server_filters))}
        frames = (f for k in sorted(keys) for f in loader.store.columns_by_day(
            loader.source_id, int(view.sensor["id"]), k, ["ip1", "start_of_hour"]))
        table_ = P.first_contacts(frames)
        return masker(view.settings).mask_frame(table_) if view.masked else table_

    return memo(("cache_first_contacts", view.data_key), build)


def _when(view: View, t: datetime | None) -> str:
    return f"{view.local(t):%a %d %b %Y %H:%M}" if t is not None else "—"


# ------------------------------------------------------------------ drawing it
def remote_profile(view: View, ip: str) -> None:
    """Everything the loaded window and the cache say about ``ip``."""
    s = view.compute(P.remote_summary, ip)
    c1, c2 = st.columns([4, 1])
    c1.subheader(f":material/travel_explore: Remote host {text(ip)}", anchor=False)
    c2.button(":material/close: Close the profile", key="profile_close", on_click=close_profile,
              width="stretch", help="Clear the Remote IP filter: back to every remote host")
    if s["flows"]:
        network = s["owner_net"] or ("hidden (masking)" if view.masked else "—")
        st.markdown(f"**Owner** {text(s['owner'] or 'unknown')} · **network** {text(network)} "
                    f"· **country** {text(s['country'] or 'unknown')}")
        threats = ", ".join(s["threats"]) if s["threats"] else "none"
        icon = ":material/gpp_bad:" if s["toxic_flows"] else ":material/verified_user:"
        st.markdown(f"{icon} **Threats** {text(threats)} · {text(P.blocked_text(s))}")
    else:
        st.info(f"No flow with {text(ip)} in this range and these filters. Look further back "
                "below, or widen the range.", icon=":material/search_off:")
    cached = _cache_first_contacts(view)
    first_cached = P.first_contact_of(cached, ip)
    st.markdown(f":material/schedule: **In this range** first contact "
                f"{_when(view, s['first_contact'])}, last {_when(view, s['last_contact'])} · "
                f"**first contact anywhere in the cache** {_when(view, first_cached)} "
                f"({text(view.tz)})")
    if s["flows"]:
        m = st.columns(5)
        m[0].metric("Flows", f"{s['flows']:,}")
        m[1].metric("Local devices", f"{s['devices']:,}")
        m[2].metric("Bytes out", A.human_bytes(s["bytes_out"]))
        m[3].metric("Bytes in", A.human_bytes(s["bytes_in"]))
        m[4].metric("Toxic flows", f"{s['toxic_flows']:,}")

        devices = view.compute(P.remote_devices, ip, view.tz)
        st.markdown(f"**Local devices that talked to it** ({devices.height})")
        table(devices, key="profile_devices", max_height=400)
        safe = "".join(c if c.isalnum() else "_" for c in ip)
        downloads(view, devices, f"remote-{safe}-devices-{view.sensor['id']}",
                  key="profile_devices_dl")
        one = view.subset(only_remote, ip)
        c1, c2 = st.columns(2)
        with c1:
            hourly = view.compute(A.traffic_over_time, view.tz, "1h", frame=one)
            chart(C.traffic_over_time_fig(hourly, title="Timeline of this host (by hour)"),
                  key="profile_timeline")
        with c2:
            reg = view.compute(P.remote_regularity, ip)
            st.markdown("**Storyline regularity per device** (1 = clockwork contacts, a "
                        "beaconing hint; needs ≥ 3 contact hours)")
            table(reg, key="profile_regularity", max_height=320)
    peers = view.compute(P.same_owner_remotes, ip, s["owner"], frame=_without_remote(view))
    if s["owner"] and s["owner"] not in P.NOT_AN_ORGANISATION:
        st.markdown(f"**Other IPs of {text(s['owner'])} contacted in this range** "
                    f"({peers.height})")
        if peers.height:
            profile_table(peers, key="profile_peers", masked=view.masked,
                          max_height=320)
        else:
            st.caption("None.")
    _look_back(view, ip)
    if s["flows"]:
        evidence_button(view, remote=ip, key="pack_remote")
    st.caption(":material/link: The address bar links to this profile (its `remote` "
               "parameter); with masking on, the link carries the masked address only.")


def _look_back(view: View, ip: str) -> None:
    days = st.segmented_control(
        "Look further back (fetches what is not cached)", [7, 30], key="profile_lookback",
        format_func=lambda d: f"{d} days before the range")
    if not days:
        return
    before = lookback(view, *days_before(view.start, days),
                      f"Look-back ({days} days before the range)")
    if before is None:
        return
    s = view.compute(P.remote_summary, ip, frame=before)
    if s["flows"]:
        st.markdown(f"In the {days} days before the range: **{s['flows']:,} flows** with "
                    f"**{s['devices']:,} device(s)**, first contact "
                    f"{_when(view, s['first_contact'])}, last {_when(view, s['last_contact'])}.")
    else:
        st.markdown(f"No flow with {text(ip)} in the {days} days before the range.")
