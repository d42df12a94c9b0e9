"""Toxic flows: who reached out to toxic hosts first, then threats, remotes and the table."""

import polars as pl
import streamlit as st

from flux_dashboard import pagedata as PD
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Toxic flows")
ui.guide(view, "toxic")
if ui.no_flows(view):
    st.stop()
tx = view.compute(PD.toxic, view.tz)
if tx.table.height == 0:
    st.success("No toxic flow in this range and these filters.", icon=":material/verified:")
    st.stop()

figures = tx.figures()
st.subheader("Devices that initiated toxic OUT flows", anchor=False)
if tx.out_devices.height:
    st.error(f"{tx.out_devices.height} device(s) on the LAN reached out to toxic hosts: "
             "check these first.", icon=":material/crisis_alert:")
    c1, c2 = st.columns(2)
    with c1:
        ui.chart(figures["toxic_devices"], key="toxic_devices")
    with c2:
        ui.table(tx.out_table, key="toxic_devices_table", max_height=400)
else:
    st.success("No device initiated a toxic flow (toxic traffic is inbound only).",
               icon=":material/verified:")

c1, c2 = st.columns(2)
with c1:
    ui.chart(figures["threats"], key="threats")
with c2:
    ui.chart(figures["toxic_remotes"], key="toxic_remotes")

st.subheader("Toxic flow table", anchor=False)
c1, c2, c3 = st.columns([2, 1, 1])
search = c1.text_input("Search device, IP, owner or threat", key="toxic_search",
                       placeholder="e.g. Command center, a device name, an IP or OVH")
only_critical = c2.toggle("Critical threats only", key="toxic_critical")
only_unfiltered = c3.toggle("Not blocked by the sensor", key="toxic_unblocked")
shown = tx.matching(search, critical_only=only_critical, unblocked_only=only_unfiltered)
st.caption(f"{shown.height:,} of {tx.table.height:,} toxic flows · newest first · click a "
           "header to sort · select a row to open its remote host's profile · the downloads "
           "hold exactly these rows")
ui.profile_table(ui.with_triage(view, shown, "toxic_out", only=pl.col("dir") == "OUT"),
                 key="toxic_table", masked=view.masked, max_height=520)
ui.downloads(view, shown, f"toxic-flows-{view.sensor['id']}-{view.start:%Y%m%d%H}", key="toxic_dl")
