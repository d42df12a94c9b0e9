"""Devices: traffic per device, the device table, and a drill-down into one device."""

import polars as pl
import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Devices")
ui.guide(view, "devices")
if ui.no_flows(view):
    st.stop()

c1, c2 = st.columns(2)
with c1:
    ui.chart(C.top_bar_fig(view.compute(A.top_devices, 15), title="Traffic per device (bytes)"),
             key="dev_bytes")
with c2:
    ui.chart(C.top_bar_fig(view.compute(A.top_devices, 15, by="toxic_flows"),
                           value="toxic_flows", title="Toxic flows per device"),
             key="dev_toxic")
g_per_gb = view.settings.carbon_g_per_gb
ui.chart(C.carbon_fig(view.compute(A.carbon_by_device, g_per_gb, 10),
                      title=f"Cybercarbon per device (estimate at {g_per_gb:g} gCO2e/GB)"),
         key="dev_carbon")
st.caption(f"Cybercarbon is an estimate: bytes in + out × {g_per_gb:g} gCO2e per GB (fixed "
           f"network; the vendor quotes {A.MOBILE_G_PER_GB:g} for mobile), and km driven by an "
           f"average petrol car at {A.CAR_G_PER_KM:g} gCO2e per km.")

st.subheader("Device table", anchor=False)
devices = view.compute(A.device_table, view.tz)
st.caption(f"{devices.height} devices · sorted by toxic OUT flows, then bytes · click a "
           "column header to sort")
ui.table(devices, key="device_table", max_height=420)

st.subheader("Drill-down", anchor=False)
names = dict(devices.select("ip0", "device_name").iter_rows())
ips = devices["ip0"].to_list()
ip = st.selectbox("Device", ips, key="drill", index=0,
                  format_func=lambda i: f"{names.get(i, i)} · {i}" if names.get(i) != i else i)
one = view.subset(ui.only_device, ip)
row = devices.filter(pl.col("ip0") == ip).row(0, named=True)
st.markdown(f"#### {ui.text(row['device_name'])} · {ui.text(ip)}")
meta = [f"MAC {row['mac_address'] or 'unknown'}", f"vendor {row['vendor'] or 'unknown'}",
        f"NetBIOS {row['netbios'] or 'none'}"]
if row["is_critical"]:
    meta.append("critical device")
st.caption(ui.text(" · ".join(meta)))
k = view.compute(A.kpis, frame=one)
m = st.columns(6)
m[0].metric("Flows", f"{k['flows']:,}")
m[1].metric("Bytes in", ui.human_bytes(k["bytes_in"]))
m[2].metric("Bytes out", ui.human_bytes(k["bytes_out"]))
m[3].metric("Remote hosts", f"{k['remote_hosts']:,}")
m[4].metric("Toxic IN", f"{k['toxic_in']:,}")
m[5].metric("Toxic OUT", f"{k['toxic_out']:,}")
st.markdown(f"**Cybercarbon** (estimate): "
            f"{ui.text(A.cybercarbon_text(view.compute(A.cybercarbon, g_per_gb, frame=one)))}")

ui.chart(C.traffic_over_time_fig(view.compute(A.traffic_over_time, view.tz, "auto", frame=one),
                                 title="Timeline of this device"), key="drill_time")
c1, c2 = st.columns(2)
with c1:
    ui.chart(C.remote_hosts_fig(view.compute(A.top_remotes, 15, frame=one),
                                title="Top remote hosts"), key="drill_remotes")
with c2:
    ui.chart(C.hour_weekday_heatmap_fig(view.compute(A.hour_weekday_heatmap, view.tz,
                                                     frame=one), tz=view.tz,
                                        title="Activity by hour of day and weekday"),
             key="drill_heat")
c1, c2 = st.columns(2)
with c1:
    ui.chart(C.top_bar_fig(view.compute(A.top_ports, 10, frame=one), title="Ports",
                           category_title="Port"), key="drill_ports")
with c2:
    ui.chart(C.top_bar_fig(view.compute(A.top_protocols, 8, frame=one), title="Protocols",
                           category_title="Protocol"), key="drill_protocols")
toxic = view.compute(A.toxic_flow_table, view.tz, frame=one)
st.markdown(f"**Toxic flows of this device** ({toxic.height})")
if toxic.height:
    ui.table(toxic, key="drill_toxic", max_height=360)
else:
    st.caption("None in this range.")
ui.evidence_button(view, device=ip, key="pack_device")
