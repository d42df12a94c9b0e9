"""Remote hosts: public IPs by country on an offline map, sortable by threat, volume, count."""

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import ui

view = ui.frame()
ui.header(view, "Remote hosts")
ui.guide(view, "remotes")
if ui.no_flows(view):
    st.stop()

c1, c2, c3 = st.columns([1, 1, 2])
direction = c1.segmented_control("Direction", ["all", "IN", "OUT"], default="all",
                                 key="rh_dir") or "all"
sort_by = c2.selectbox("Sort by", ["threat", "bytes", "flows"], key="rh_sort",
                       format_func={"threat": "Threat", "bytes": "Volume",
                                    "flows": "Flow count"}.get)
countries = view.compute(A.countries_summary, direction)
value = "toxic_flows" if sort_by == "threat" else sort_by
ui.chart(C.countries_map_fig(countries, value=value,
                             title=f"Remote hosts by country ({value.replace('_', ' ')})"),
         key="map")
hosts = view.compute(A.remote_hosts, direction, sort_by)
c1, c2 = st.columns([2, 3])
with c1:
    ui.chart(C.remote_hosts_fig(hosts, value=value, top=20,
                                title=f"Top remote hosts by {value.replace('_', ' ')}"),
             key="remote_bar")
with c2:
    st.caption(f"{hosts.height:,} public IPs · {countries.height} countries")
    ui.table(hosts.drop("iso3", strict=False), key="remote_table", height=560)
