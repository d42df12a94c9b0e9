"""Activity (admins only): the audit trail with filters and a download, and the quota meter."""

import streamlit as st

from flux_dashboard import audit, ui

session = ui.admin_frame()
st.title(":material/policy: Activity", anchor=False)
host = session.hosting
st.caption(f"Audit trail of this deployment ({ui.text(host.audit_file.name)}): sign-ins, page "
           "views, exports, evidence packs, refusals and loads, with their request cost.")

usage = ui.meter().usage()
m = st.columns(3)
m[0].metric("API requests today", f"{usage.today:,}",
            help="All users and processes of this deployment, UTC day")
m[1].metric("This month", f"{usage.month:,}" + (f" / {host.monthly_quota:,}"
                                                  if host.monthly_quota else ""),
            help="Against FLUX_MONTHLY_QUOTA when set")
m[2].metric("Daily budget", f"{host.global_daily_budget:,}" if host.global_daily_budget
            else "none", help="FLUX_GLOBAL_DAILY_BUDGET (per user: FLUX_USER_DAILY_BUDGET)")

everything = audit.read(host.audit_file)
users, sensors = audit.choices(everything)
c1, c2, c3, c4 = st.columns(4)
user = c1.selectbox("User", ["all", *users], key="act_user")
sensor = c2.selectbox("Sensor", ["all", *sensors], key="act_sensor")
event = c3.selectbox("Event", ["all", *audit.EVENTS], key="act_event")
period = c4.selectbox("Period", list(audit.PERIODS), key="act_period")
since = audit.PERIODS[period]
shown = audit.read(host.audit_file, user=None if user == "all" else user,
                   sensor=None if sensor == "all" else int(sensor),
                   event=None if event == "all" else event,
                   since=ui.settings().now() - since if since else None)
st.caption(f"{shown.height:,} of {everything.height:,} events · newest first")
if shown.height:
    ui.table(shown, key="activity_table", max_height=560)
else:
    st.info("No event matches these filters.", icon=":material/filter_alt_off:")
ui.downloads(session, shown, "activity", key="activity_dl")
