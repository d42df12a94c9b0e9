"""Protocols & ports: protocol → port breakdown, top ports, port × device."""

import streamlit as st

from flux_dashboard import pagedata as PD
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Protocols & ports")
ui.guide(view, "protocols")
if ui.no_flows(view):
    st.stop()

pr = view.compute(PD.protocols)
figures = pr.figures()
ui.chart(figures["treemap"], key="treemap")
c1, c2 = st.columns(2)
with c1:
    ui.chart(figures["ports_bytes"], key="ports_bytes")
with c2:
    ui.chart(figures["ports_flows"], key="ports_flows")
value = st.segmented_control("Heatmap value", PD.HEAT_VALUES, default=PD.HEAT_VALUES[0],
                             key="heat_value") or PD.HEAT_VALUES[0]
ui.chart(view.compute(PD.port_device, value).figures()["port_device"], key="port_device")
st.subheader("Ports", anchor=False)
ui.table(pr.ports, key="ports_table", height=360)
