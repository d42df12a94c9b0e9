"""Devices: traffic per device, the device table, and a drill-down into one device."""

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import pagedata as PD
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Devices")
ui.guide(view, "devices")
if ui.no_flows(view):
    st.stop()

g_per_gb = view.settings.carbon_g_per_gb
dv = view.compute(PD.devices, view.tz, g_per_gb)
figures = dv.figures()
c1, c2 = st.columns(2)
with c1:
    ui.chart(figures["dev_bytes"], key="dev_bytes")
with c2:
    ui.chart(figures["dev_toxic"], key="dev_toxic")
ui.chart(figures["dev_carbon"], key="dev_carbon")
st.caption(f"Cybercarbon is an estimate: bytes in + out × {g_per_gb:g} gCO2e per GB (fixed "
           f"network; the vendor quotes {A.MOBILE_G_PER_GB:g} for mobile), and km driven by an "
           f"average petrol car at {A.CAR_G_PER_KM:g} gCO2e per km.")

st.subheader("Device table", anchor=False)
devices = dv.table
st.caption(f"{devices.height} devices · sorted by toxic OUT flows, then bytes · click a "
           "column header to sort")
ui.table(devices, key="device_table", max_height=420)

st.subheader("Drill-down", anchor=False)
names = dv.names
ip = st.selectbox("Device", dv.ips, key="drill", index=0,
                  format_func=lambda i: f"{names.get(i, i)} · {i}" if names.get(i) != i else i)
drill = view.compute(PD.device_drill, ip, view.tz, g_per_gb)
row = dv.device(ip)
st.markdown(f"#### {ui.text(row['device_name'])} · {ui.text(ip)}")
meta = [f"MAC {row['mac_address'] or 'unknown'}", f"vendor {row['vendor'] or 'unknown'}",
        f"NetBIOS {row['netbios'] or 'none'}"]
if row["is_critical"]:
    meta.append("critical device")
st.caption(ui.text(" · ".join(meta)))
k = drill.kpis
m = st.columns(6)
m[0].metric("Flows", f"{k['flows']:,}")
m[1].metric("Bytes in", ui.human_bytes(k["bytes_in"]))
m[2].metric("Bytes out", ui.human_bytes(k["bytes_out"]))
m[3].metric("Remote hosts", f"{k['remote_hosts']:,}")
m[4].metric("Toxic IN", f"{k['toxic_in']:,}")
m[5].metric("Toxic OUT", f"{k['toxic_out']:,}")
st.markdown(f"**Cybercarbon** (estimate): {ui.text(A.cybercarbon_text(drill.carbon))}")

figures = drill.figures()
ui.chart(figures["drill_time"], key="drill_time")
c1, c2 = st.columns(2)
with c1:
    ui.chart(figures["drill_remotes"], key="drill_remotes")
with c2:
    ui.chart(figures["drill_heat"], key="drill_heat")
c1, c2 = st.columns(2)
with c1:
    ui.chart(figures["drill_ports"], key="drill_ports")
with c2:
    ui.chart(figures["drill_protocols"], key="drill_protocols")
toxic = drill.toxic
st.markdown(f"**Toxic flows of this device** ({toxic.height})")
if toxic.height:
    ui.table(toxic, key="drill_toxic", max_height=360)
else:
    st.caption("None in this range.")
ui.evidence_button(view, device=ip, key="pack_device")
