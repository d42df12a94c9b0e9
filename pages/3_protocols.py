"""Protocols & ports: protocol → port breakdown, top ports, port × device."""

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Protocols & ports")
ui.guide(view, "protocols")
if ui.no_flows(view):
    st.stop()

ui.chart(C.protocol_treemap_fig(view.compute(A.protocol_port_tree, 10),
                                title="Protocol → port"), key="treemap")
c1, c2 = st.columns(2)
with c1:
    ui.chart(C.top_bar_fig(view.compute(A.top_ports, 15), title="Top ports by bytes",
                           category_title="Port"), key="ports_bytes")
with c2:
    ui.chart(C.top_bar_fig(view.compute(A.top_ports, 15, by="flows"), value="flows",
                           title="Top ports by flows", category_title="Port"),
             key="ports_flows")
value = st.segmented_control("Heatmap value", ["bytes", "flows"], default="bytes",
                             key="heat_value") or "bytes"
ui.chart(C.port_device_heatmap_fig(
    view.compute(A.port_device_matrix, 15, 15, value=value, others=False), value=value,
    title=f"Port × device ({value}, top 15 × 15)"), key="port_device")
ports = view.compute(A.top_ports, 50)
st.subheader("Ports", anchor=False)
ui.table(ports.drop("members", strict=False), key="ports_table", height=360)
