"""Remote hosts: public IPs by country on an offline map, sortable by threat, volume, count;
with a public IP chosen (a table row, ``?remote=IP`` or the search box), its profile."""

import streamlit as st

from flux_dashboard import analytics as A
from flux_dashboard import charts as C
from flux_dashboard import ui
from flux_dashboard.remote_profile import check_remote

view = ui.frame()
ui.header(view, "Remote hosts")
ui.guide(view, "remotes")
ui.search_box(view)
if view.filters.remote_ip:
    ip, problem = check_remote(view.filters.remote_ip, view.masked)
    if ip is not None:
        ui.remote_profile(view, ip)
        st.stop()
    st.info(f"{ui.text(problem)} Showing the remote hosts that match the Remote IP filter.",
            icon=":material/travel_explore:")
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
    needle = st.text_input("Filter by IP, owner or country", key="rh_filter",
                           placeholder="e.g. OVH, GOOGLE, Bulgaria")
    shown = A.search(hosts.drop("iso3", strict=False), needle, ("ip1", "owner", "country"))
    count = f"{shown.height:,} of {hosts.height:,}" if needle.strip() else f"{hosts.height:,}"
    st.caption(f"{count} public IPs · {countries.height} countries · select a row to open "
               "its profile")
    ui.profile_table(shown, key="remote_table", masked=view.masked, height=560)
    ui.downloads(view, shown, f"remote-hosts-{view.sensor['id']}", key="remote_dl")
