"""Overview: KPIs, what changed, traffic over time, cyberweather, top talkers."""

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import pagedata as PD
from flux_dashboard import ui
from flux_dashboard.digest import digest
from flux_dashboard.hours import ceil_hour, range_days, week_on_week
from flux_dashboard.ui.firstview import data_quality

view = ui.frame()
ui.header(view, "Overview")
ui.guide(view, "overview")
if ui.no_flows(view):
    st.stop()

now = view.settings.now()
calendar = range_days(view.start, view.end, now, view.tz)
today, in_range = calendar.today, calendar.today_in_range is not None
ov = view.compute(PD.overview, view.tz, calendar.today_in_range, view.settings.carbon_g_per_gb)
k, cw, carbon = ov.kpis, ov.weather, ov.carbon

cols = st.columns(5) + st.columns(5 if in_range else 4)
cols[0].metric("Flows", f"{k['flows']:,}", help="Flow records: hour × device × remote × "
               "direction × protocol × port")
cols[1].metric("Bytes in", ui.human_bytes(k["bytes_in"]))
cols[2].metric("Bytes out", ui.human_bytes(k["bytes_out"]))
cols[3].metric("Devices", f"{k['devices']:,}")
cols[4].metric("Remote hosts", f"{k['remote_hosts']:,}")
cols[5].metric("Toxic IN", f"{k['toxic_in']:,}", help="Toxic flows initiated from outside")
cols[6].metric("Toxic OUT", f"{k['toxic_out']:,}",
               help="Toxic flows initiated by a local device: the most serious")
worst = cw.worst
cols[7].metric("Cyberweather, worst day", worst.name if worst else "–",
               f"{worst.day:%a %d %b} · cyT {worst.cyt:,}" if worst else None,
               delta_color="off", delta_arrow="off",
               help=f"{A.CYBERWEATHER_RULE} The range is never rated as a whole: this is its "
                    f"worst local day ({ui.text(view.tz)}); the range's total cyT is {k['cyt']:,}.")
if in_range:
    cols[8].metric("Cyberweather today", cw.today.name, f"so far · cyT {cw.today.cyt:,}",
                   delta_color="off", delta_arrow="off",
                   help=f"Today ({today:%a %d %b}, {ui.text(view.tz)}) up to now. "
                        f"{A.CYBERWEATHER_RULE}")
cols[-1].metric("Cybercarbon (CO2e)", f"≈ {A.human_grams(carbon['co2e_g'])}",
                f"≈ {A.human_km(carbon['car_km'])} by car", delta_color="off", delta_arrow="off",
                help=f"An estimate: {ui.human_bytes(carbon['bytes'])} of traffic (in + out) × "
                     f"{carbon['g_per_gb']:g} gCO2e per GB (fixed network; the vendor quotes "
                     f"{A.MOBILE_G_PER_GB:g} for mobile; setting `FLUX_CARBON_G_PER_GB`), compared "
                     f"with an average petrol car at {A.CAR_G_PER_KM:g} gCO2e per km.")
ui.level_counts(cw.days_per_level, cw.days)
data_quality(view)

# -- what changed: a whole local day (or today so far) against the same hours a week before
choices = calendar.days
with st.container(border=True):
    c1, c2 = st.columns([3, 1])
    day = c2.selectbox("Day", choices, index=choices.index(calendar.last_complete),
                       key="digest_day",
                       format_func=lambda d: f"{d:%a %d %b %Y}" + (" (so far)" if d == today
                                                                  else ""))
    # Local calendar days (23 or 25 hours around a DST change), never UTC + 24 h.
    compared = week_on_week(day, view.tz, until=ceil_hour(now))
    c1.subheader(f"What changed on {day:%a %d %b} vs {compared.previous:%a %d %b}",
                 anchor=False)
    current = ui.lookback(view, *compared.window, "Selected day")
    baseline = ui.lookback(view, *compared.previous_window, "Same hours a week before")
    if current is not None and baseline is not None:
        dg = view.compute(digest, baseline, view.tz, day, compared.previous, frame=current)
        if not dg.sentences:
            st.caption("Nothing to compare.")
        for sentence in dg.sentences:
            st.markdown(f"- {ui.text(sentence)}")
        if dg.previous_empty:
            st.caption("The comparison day has no flows (before installation or a gap): "
                       "everything looks new.")
    else:
        st.warning("The comparison could not be made: see the message above.",
                   icon=":material/compare_arrows:")

figures = ov.figures()
st.subheader("Traffic over time", anchor=False)
ui.chart(figures["traffic"], key="traffic")

st.subheader("Cyberweather", anchor=False)
c1, c2 = st.columns([3, 2])
with c1:
    ui.chart(figures["cw_cal"], key="cw_cal")
with c2:
    cw_day = st.selectbox("Hours of", ov.hour_days or [calendar.days[0]], key="cw_day",
                          format_func=lambda d: f"{d:%a %d %b %Y}")
    ui.chart(C.cyberweather_hours_fig(view.compute(A.cyberweather_hours, view.tz, cw_day),
                                      tz=view.tz, day=cw_day), key="cw_hours")
ui.chart(figures["cw_days"], key="cw_days")

st.subheader("Top talkers", anchor=False)
c1, c2, c3 = st.columns(3)
for column, key in ((c1, "top_dev"), (c2, "top_proto"), (c3, "top_port")):
    with column:
        ui.chart(figures[key], key=key)

ui.evidence_button(view, key="pack_sensor")
