"""Notifications (admins only): the routes, their last deliveries, a digest preview and a
test message. Routes come from FLUX_NOTIFY_FILE; the sync worker sends."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from flux_dashboard import errors as E
from flux_dashboard import ui
from flux_dashboard.hours import sensor_zone
from flux_dashboard.notify import routes as R
from flux_dashboard.notify.ledger import Ledger
from flux_dashboard.notify.notifier import Notifier
from flux_dashboard.ui.auth import audit_log
from flux_dashboard.ui.sidebar import masking_forced
from flux_dashboard.ui.state import _secrets, masker, sensors, service

EXAMPLE = """[routes.soc]
sensors = [54]
urls = ["SOC_CHAT_URL"]   # an environment variable (or [notify] in secrets.toml)"""

session = ui.admin_frame()
st.title(":material/notifications: Notifications", anchor=False)
cfg = ui.settings()
try:
    routes = R.load(secrets=_secrets())
except E.ConfigError as exc:
    st.error(ui.text(exc), icon=":material/error:")
    st.stop()
if not len(routes):
    st.info("No notification route is configured. Point FLUX_NOTIFY_FILE at a TOML file of "
            "routes, for example:", icon=":material/notifications_off:")
    st.code(EXAMPLE, language="toml")
    st.caption("The sync worker (`python -m flux_dashboard sync`) sends the digests and "
               "alerts. See deploy/notify.example.toml for every setting.")
    st.stop()

st.caption(f"Routes of {ui.text(routes.path)} · the sync worker sends digests at each route's "
           f"local time, alerts within minutes, and a silent-sensor alert after "
           f"{routes.silent_after_hours} hours without data. Channels are shown by service and "
           "host only: their URLs hold secrets.")
st.dataframe(pl.DataFrame([{
    "route": r.name, "sensors": "all" if r.sensors is None else ", ".join(map(str, r.sensors)),
    "receives": " + ".join(sorted(r.receives)), "daily at": f"{r.daily_at:%H:%M}",
    "alerts from": r.min_severity, "masked": r.masked, "channels": ", ".join(r.targets())}
    for r in routes]), hide_index=True, key="notify_routes")

host = session.hosting
notifier = Notifier(service(), routes, audit=audit_log(host), detect=cfg.demo)
listed = session.grant.visible(sensors(cfg))
notifier.sensors({int(s["id"]): s for s in listed if str(s.get("id", "")).isdigit()})
forced = masking_forced(session)

st.subheader("Last deliveries", anchor=False)
try:
    recent = Ledger(notifier.store().engine).recent(limit=200)
except E.DatabaseUnavailableError as exc:
    st.error(ui.text(exc), icon=":material/database:")
    recent = None
if recent is not None:
    if recent.height == 0:
        st.info("Nothing sent yet: the sync worker sends what is due on its next cycle.",
                icon=":material/schedule_send:")
    else:
        if forced:  # an alert's subject is a finding key: a hash of real identifiers
            mask = masker(cfg)
            recent = recent.with_columns(pl.when(pl.col("kind") == "alert").then(
                pl.col("subject").map_elements(lambda k: mask.mask_value("finding", k),
                                               return_dtype=pl.String))
                .otherwise(pl.col("subject")).alias("subject"))
        failed = recent.filter(pl.col("status") == "failed").height
        st.caption(f"{recent.height} newest · {failed} failed" if failed
                   else f"{recent.height} newest")
        ui.table(recent.select("created_at", "route", "kind", "sensor", "subject", "status",
                               "attempts", "late", "sent_at", "last_error"),
                 key="notify_deliveries", max_height=420)

st.subheader("Preview a digest", anchor=False)
if not listed:
    st.info("No sensor to preview.")
else:
    names = {int(s["id"]): f"{s.get('full_name') or s.get('name') or 'Sensor'} · #{s['id']}"
             for s in listed if str(s.get("id", "")).isdigit()}
    c1, c2, c3 = st.columns([3, 2, 2])
    sid = c1.selectbox("Sensor", list(names), format_func=names.get, key="notify_sensor")
    zone = ZoneInfo(sensor_zone(notifier.meta(sid)))
    yesterday = cfg.now().astimezone(zone).date() - timedelta(days=1)
    day = c2.date_input("Day", value=yesterday, max_value=yesterday, key="notify_day")
    masked = c3.toggle("As a masked route", value=forced, disabled=forced, key="notify_masked")
    try:
        # Cached flows only, except in the demo (its sensor is in-process and free): a
        # preview never spends the API's requests outside the budgeted loads.
        message = notifier.digest(sid, day, masked=masked or forced,
                                  cache_only=not cfg.demo)
    except E.IncompleteDataError:
        st.info("That day is not in the cache yet: the sync worker fills it, or open the day "
                "on the Overview.", icon=":material/cloud_download:")
    except E.FluxError as exc:
        st.error(ui.text(exc), icon=":material/error:")
    else:
        st.caption(f"Title: {ui.text(message.title)}")
        tab_md, tab_text = st.tabs(["Chat (Markdown)", "Plain text"])
        with tab_md, st.container(border=True, key="notify_preview"):
            st.markdown(message.as_markdown())
        with tab_text:
            st.code(message.as_text(), language=None, wrap_lines=True)

st.subheader("Send a test", anchor=False)
with st.form("notify_test"):
    name = st.selectbox("Route", [r.name for r in routes], key="notify_test_route")
    sent = st.form_submit_button("Send a test message")
if sent:
    route = routes.get(name)
    with st.spinner(f"Sending to {name}…"):
        out = notifier.send_test(route, actor=session.user)
    if out.status == "sent":
        st.success(f"Test message sent to {name} ({', '.join(route.targets())}).",
                   icon=":material/check:")
    else:
        st.error(f"The test message to {name} failed after {out.attempts} tries: "
                 f"{ui.text(out.error or 'no answer')}", icon=":material/error:")
