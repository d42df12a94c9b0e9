"""A first view in seconds for a cold range: the Overview (and the Devices page's traffic
per device) from the API's hourly totals while the flows load below.

``first_view(page, …)`` gives the drawing function ``loading.load_main`` calls above
its progress bar when the load will take a while at the rate limit (more than
``FIRST_VIEW_OVER`` requests) on a page that has one, with no filter (the totals are
the whole sensor's). The totals go through the same spending gate as every load
(purpose "first view": estimated, booked, audited) and cost one request for a month,
a few dozen per device; when the flows arrive, the page is drawn from them as usual,
with the same numbers. Everything drawn here is labelled as coming from the totals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import errors as E
from flux_dashboard import spending
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.hourly import first_view as compute
from flux_dashboard.hours import range_days
from flux_dashboard.masking import Masker

FIRST_VIEW_OVER = 20  # requests (about 12 s at 100 a minute): below, the flows come fast
DEVICES_AT_MOST = 20  # per-device totals only when they cost at most this (about 12 s)
PAGES = ("overview", "devices")


def wanted(page: str, estimate_requests: int, filters_empty: bool, demo: bool) -> bool:
    return (page in PAGES and filters_empty and not demo
            and estimate_requests > FIRST_VIEW_OVER)


def first_view(page: str, session, cfg, sensor: dict, start: datetime, end: datetime,
               tz: str, mask: Masker | None) -> Callable[[], None]:
    """The function that draws the page's first view (call it inside a container)."""
    from flux_dashboard.ui.auth import spender
    from flux_dashboard.ui.state import hourly_loader

    def load():
        return spending.load(spender(session), hourly_loader(cfg), sensor["id"], start, end,
                             purpose="first view").frame

    def load_devices() -> tuple[int, object]:
        """(their cost, the per-device totals or None): counted first (one request, in
        the gate's estimate), loaded only when cheap; booked and audited either way."""
        loader = hourly_loader(cfg, True)
        booking = spending.begin(spender(session), loader, sensor["id"], start, end,
                                 purpose="first view")
        cost = booking.estimate.requests if booking.estimate is not None else 0
        if cost > DEVICES_AT_MOST:
            booking.finish(0)
            return cost, None
        try:
            got = loader.load(sensor["id"], start, end, max_requests=booking.allowance)
        except BaseException as exc:
            booking.finish(0, exc)
            raise
        booking.finish(got.flux_requests)
        return cost, got.frame

    def draw() -> None:
        try:
            totals = load()
        except E.FluxError as exc:
            st.caption(f"No first view from the hourly totals ({text(exc)}); the flows load "
                       "below.")
            return
        now = cfg.now()
        today = range_days(start, end, now, tz).today_in_range
        fv = compute(totals, tz, today, cfg.carbon_g_per_gb)
        st.info("**First view** from the API's hourly totals (exact sums per hour). The "
                "flow-level parts (remotes, protocols, ports, threats, devices' names) load "
                "below; the page switches to the full view when they arrive.",
                icon=":material/bolt:")
        k = fv.kpis
        cols = st.columns(4) + st.columns(4)
        cols[0].metric("Flows", f"{k['flows']:,}")
        cols[1].metric("Bytes in", A.human_bytes(k["bytes_in"]))
        cols[2].metric("Bytes out", A.human_bytes(k["bytes_out"]))
        cols[3].metric("Toxic IN", f"{k['toxic_in']:,}")
        cols[4].metric("Toxic OUT", f"{k['toxic_out']:,}")
        worst = fv.weather.worst
        cols[5].metric("Cyberweather, worst day", worst.name if worst else "–",
                       f"{worst.day:%a %d %b} · cyT {worst.cyt:,}" if worst else None,
                       delta_color="off", delta_arrow="off")
        if fv.weather.today is not None:
            cols[6].metric("Cyberweather today", fv.weather.today.name,
                           f"so far · cyT {fv.weather.today.cyt:,}", delta_color="off",
                           delta_arrow="off")
        cols[7].metric("Cybercarbon (CO2e)", f"≈ {A.human_grams(fv.carbon['co2e_g'])}")
        from flux_dashboard.ui.widgets import chart

        if page == "overview":
            chart(C.traffic_over_time_fig(fv.traffic, title=f"Traffic over time ({fv.every} "
                                          "buckets, hourly totals)"), key="fv_traffic")
            chart(C.cyberweather_calendar_fig(fv.days, title="Cyberweather per day (hourly "
                                              "totals)"), key="fv_calendar")
        # The per-device totals last: everything above is on screen already.
        try:
            cost, devices = load_devices()
        except E.FluxError:
            cost, devices = -1, None
        if devices is None:
            st.caption("Top devices by bytes come with the flows" + (
                f" (their hourly totals would cost {cost:,} requests here)." if cost > 0
                else "."))
            return
        if mask is not None:
            devices = mask.mask_frame(devices, {"ip0": "local_ip"})
        top = compute(totals, tz, today, cfg.carbon_g_per_gb, devices).top_devices
        if top is not None:
            chart(C.top_bar_fig(top, title="Top devices by bytes (hourly totals; names come "
                                "with the flows)"), key="fv_devices")

    return draw


def data_quality(view) -> None:
    """The agreement check on a loaded page: where the hourly totals of this range are
    cached, the flows of the same hours must sum to them. A difference is said (which
    hours, by how much), never corrected. Costs no request."""
    from flux_dashboard.hourly import agreement, agreement_text
    from flux_dashboard.ui.state import hourly_loader, memo

    result = view.result
    if result.server_filters:  # rows fetched with server-side filters: not comparable
        return
    sid = int(view.sensor["id"])

    def check() -> str | None:
        totals = hourly_loader(view.settings).cached(sid, view.start, view.end)
        if totals.height == 0:
            return None
        opened = set(result.open_hours)
        hours = [h for h in totals["start_of_hour"].to_list()
                 if h not in opened and view.start <= h < view.end]
        if view.partial_note:  # an incomplete load: only the hours it holds rows of
            held = set(result.frame["start_of_hour"].unique().to_list())
            hours = [h for h in hours if h in held]
        return agreement_text(agreement(totals, result.frame, hours), view.tz)

    note = memo((view.data_key, "agreement"), check)
    if note:
        st.warning(text(note), icon=":material/rule:")

