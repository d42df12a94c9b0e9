"""Toxic flows: who reached out to toxic hosts first, then threats, remotes and the table."""

import polars as pl
import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Toxic flows")
ui.guide(view, "toxic")
toxic_frame = view.subset(ui.only_toxic)
if ui.no_flows(view):
    st.stop()
if toxic_frame.height == 0:
    st.success("No toxic flow in this range and these filters.", icon=":material/verified:")
    st.stop()

out_devices = view.compute(A.toxic_out_devices, view.tz)
st.subheader("Devices that initiated toxic OUT flows", anchor=False)
if out_devices.height:
    st.error(f"{out_devices.height} device(s) on the LAN reached out to toxic hosts: "
             "check these first.", icon=":material/crisis_alert:")
    c1, c2 = st.columns(2)
    with c1:
        ui.chart(C.toxic_devices_fig(out_devices), key="toxic_devices")
    with c2:
        ui.table(out_devices.drop("label", strict=False), key="toxic_devices_table",
                 max_height=400)
else:
    st.success("No device initiated a toxic flow (toxic traffic is inbound only).",
               icon=":material/verified:")

c1, c2 = st.columns(2)
with c1:
    ui.chart(C.threats_fig(view.compute(A.threats_by_category)), key="threats")
with c2:
    remotes = view.compute(A.top_toxic_remotes, 15)
    ui.chart(C.remote_hosts_fig(remotes, value="flows", title="Top toxic remote IPs (flows)"),
             key="toxic_remotes")

st.subheader("Toxic flow table", anchor=False)
table = view.compute(A.toxic_flow_table, view.tz)
c1, c2, c3 = st.columns([2, 1, 1])
search = c1.text_input("Search device, IP, owner or threat", key="toxic_search",
                       placeholder="e.g. Command center, a device name, an IP or OVH")
only_critical = c2.toggle("Critical threats only", key="toxic_critical")
only_unfiltered = c3.toggle("Not blocked by the sensor", key="toxic_unblocked")
shown = A.search(table, search, ("device_name", "ip0", "ip1", "owner", "threats", "protocol"))
if only_critical:
    shown = shown.filter(pl.col("critical"))
if only_unfiltered:
    shown = shown.filter(~pl.col("filtered"))
st.caption(f"{shown.height:,} of {table.height:,} toxic flows · newest first · click a header "
           "to sort · select a row to open its remote host's profile · the downloads hold "
           "exactly these rows")
ui.profile_table(shown, key="toxic_table", masked=view.masked,
                 max_height=520)
ui.downloads(view, shown, f"toxic-flows-{view.sensor['id']}-{view.start:%Y%m%d%H}", key="toxic_dl")
