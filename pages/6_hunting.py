"""Threat hunting: storylines, first-seen remotes, upload anomalies, non-working hours.

These compare the selected range with a baseline: the 7 days before it, loaded
through the same cache (the page says so).
"""

import streamlit as st

from flux_dashboard import hunting as Hn
from flux_dashboard import pagedata as PD
from flux_dashboard import ui
from flux_dashboard.hours import days_before

view = ui.frame()
ui.header(view, "Threat hunting")
ui.guide(view, "hunting")
if ui.no_flows(view):
    st.stop()

baseline_days = st.segmented_control("Baseline", [7, 14, 28], default=7, key="baseline_days",
                                     format_func=lambda d: f"{d} days before the range") or 7
baseline = ui.lookback(view, *days_before(view.start, baseline_days),
                       f"Baseline ({baseline_days} days before the range)")

# Keyed, so the reader's tab is kept when a baseline fetch redraws what comes before.
tabs = st.tabs([":material/timeline: Threat storylines", ":material/fiber_new: First-seen remotes",
                ":material/upload: Upload anomalies", ":material/bedtime: Non-working hours"],
               key="hunting_tab", on_change="rerun")

with tabs[0]:
    sl = view.compute(PD.storylines)
    stories = sl.table
    st.caption("One line per device and toxic remote: first and last contact, hours active, "
               "volumes, threats. Regularity = 1 − coefficient of variation of the gaps "
               "between contacts (≥ 3 contacts): near 1 means clockwork contacts, a beaconing "
               "hint. Critical threats and OUT flows come first.")
    if stories.height:
        if sl.beacons.height:
            st.error(f"{sl.beacons.height} device/remote pair(s) show very regular OUT contacts "
                     "to a toxic host (possible beaconing).", icon=":material/sensors:")
        ui.profile_table(ui.with_triage(view, stories, "toxic_out"), key="stories",
                         masked=view.masked, max_height=480, hide=("country_code",))
        ui.downloads(view, stories, f"storylines-{view.sensor['id']}", key="stories_dl")
    else:
        st.success("No toxic remote in this range.", icon=":material/verified:")

with tabs[1]:
    if baseline is None:
        st.info("The baseline could not be loaded, so first-seen remotes cannot be computed.")
    else:
        if baseline.height == 0:
            st.warning("The baseline holds no flows (sensor installed later, or a gap): every "
                       "remote counts as new.")
        new = view.compute(PD.first_seen, baseline)
        st.caption(f"Remote IPs each device contacted in the range but never in the "
                   f"{baseline_days} days before it · toxic first, then bytes.")
        c1, c2, c3 = st.columns(3)
        c1.metric("New device → remote pairs", f"{new.table.height:,}")
        c2.metric("Of which toxic", f"{new.toxic:,}")
        c3.metric("Devices concerned", f"{new.devices:,}")
        ui.profile_table(ui.with_triage(view, new.table, "first_seen"), key="first_seen",
                         masked=view.masked, max_height=480, hide=("country_code",))

with tabs[2]:
    if baseline is None:
        st.info("The baseline could not be loaded, so upload anomalies cannot be computed.")
    else:
        k = st.slider("Sensitivity k (threshold = median + k × MAD of the device's own "
                      "hourly uploads)", 1.0, 10.0, PD.ANOMALY_K, 0.5, key="anomaly_k")
        anomalies = view.compute(Hn.upload_anomalies, baseline, k=k)
        st.caption("Device-hours whose outbound bytes exceed that device's own baseline. "
                   "Hours below 1 MB never alert; devices with fewer than 3 active baseline "
                   "hours are skipped.")
        if anomalies.height:
            ui.table(ui.with_triage(view, anomalies, "upload_anomaly", day_from="hour"),
                     key="anomalies", max_height=480)
        else:
            st.success("No device uploaded more than its baseline allows.",
                       icon=":material/verified:")

with tabs[3]:
    if not view.hno_hours:
        st.info("This sensor has no non-working hours configured (hno_hours).")
    else:
        st.caption(f"Non-working hours: {ui.hours_text(view.hno_hours)} ({view.tz}), and "
                   "weekends. Devices mostly active off-hours (by bytes, ≥ 1 MB) are flagged.")
        off = view.compute(PD.off_hours, view.tz, view.hno_hours)
        if off.flagged:
            st.warning(f"{off.flagged} device(s) are mostly active outside working hours.",
                       icon=":material/bedtime:")
        ui.table(off.per_device, key="offhours", max_height=420)
        st.markdown(f"**Toxic flows, off-hours first** ({off.toxic.height:,})")
        if off.toxic.height:
            ui.table(off.toxic, key="offhours_toxic", height=360)
