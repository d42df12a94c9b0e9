"""Remote hosts: public IPs by country on an offline map, sortable by threat, volume, count;
with a public IP chosen (a table row, ``?remote=IP`` or the search box), its profile."""

import streamlit as st

from flux_dashboard import pagedata as PD
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
direction = c1.segmented_control("Direction", PD.DIRECTIONS, default=PD.DIRECTIONS[0],
                                 key="rh_dir") or PD.DIRECTIONS[0]
sort_by = c2.selectbox("Sort by", PD.REMOTE_SORTS, key="rh_sort",
                       format_func={"threat": "Threat", "bytes": "Volume",
                                    "flows": "Flow count"}.get)
rh = view.compute(PD.remotes, direction, sort_by)
figures = rh.figures()
ui.chart(figures["map"], key="map")
c1, c2 = st.columns([2, 3])
with c1:
    ui.chart(figures["remote_bar"], key="remote_bar")
with c2:
    needle = st.text_input("Filter by IP, owner or country", key="rh_filter",
                           placeholder="e.g. OVH, GOOGLE, Bulgaria")
    shown = rh.matching(needle)
    total = rh.hosts.height
    count = f"{shown.height:,} of {total:,}" if needle.strip() else f"{total:,}"
    st.caption(f"{count} public IPs · {rh.countries.height} countries · select a row to open "
               "its profile")
    ui.profile_table(shown, key="remote_table", masked=view.masked, height=560)
    ui.downloads(view, shown, f"remote-hosts-{view.sensor['id']}", key="remote_dl")
