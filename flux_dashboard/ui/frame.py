"""The frame every page passes through: config, sign-in gate, navigation, sidebar, page.

Pages call ``frame()`` first. When a freshly started server receives a page
URL as its very first request, Streamlit runs that file of ``pages/`` on its
own; ``frame()`` then runs the whole app instead, so the page still passes the
sign-in gate and gets the sidebar and the data source, and renders once. The
Activity page is in the navigation of admins only, and checks the role again.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from flux_dashboard.ui.auth import Session, gate, record, sidebar_identity
from flux_dashboard.ui.profile import wants_profile_page
from flux_dashboard.ui.sidebar import BOUND_KEYS, LINK_KEYS, sidebar_and_load
from flux_dashboard.ui.state import View

ROOT = Path(__file__).resolve().parents[2]

# (url_path, title, icon, file)
PAGES: list[tuple[str, str, str, str]] = [
    ("overview", "Overview", ":material/dashboard:", "pages/1_overview.py"),
    ("devices", "Devices", ":material/devices:", "pages/2_devices.py"),
    ("protocols", "Protocols & ports", ":material/lan:", "pages/3_protocols.py"),
    ("toxic", "Toxic flows", ":material/gpp_maybe:", "pages/4_toxic.py"),
    ("remotes", "Remote hosts", ":material/public:", "pages/5_remotes.py"),
    ("hunting", "Threat hunting", ":material/troubleshoot:", "pages/6_hunting.py"),
    ("findings", "Findings", ":material/inbox:", "pages/8_findings.py"),
]
# Pages without one sensor's data: no sensor picker and no load in the sidebar.
FLEET_PAGES = [("sensors", "Sensors", ":material/sensors:", "pages/0_sensors.py")]
NO_SENSOR_PAGES = ("sensors", "activity", "notifications")
ADMIN_PAGES = [("activity", "Activity", ":material/policy:", "pages/7_activity.py"),
               ("notifications", "Notifications", ":material/notifications:",
                "pages/9_notifications.py")]
_local = threading.local()


def frame() -> View:
    """Call first on every page. Returns the shared view (or stops the run)."""
    view = getattr(_local, "view", None)
    if getattr(_local, "in_nav", False):
        if view is None:
            st.stop()
        return view
    # This file was run without the entrypoint (fresh server, page URL first):
    # run the whole app, which renders this page through the navigation.
    run_app()
    st.stop()
    raise AssertionError("unreachable")


def run_app() -> None:
    st.set_page_config(page_title="Flux · Serenicity flows", page_icon=":material/lan:",
                       layout="wide", initial_sidebar_state="expanded")
    # Tables' own "Download as CSV" skips the audit and the formula guard of our download
    # buttons: off in every mode, whatever config file the server was started with.
    if not st.get_option("client.disableDataExport"):
        st.set_option("client.disableDataExport", True)

    def page(u: str, t: str, i: str, f: str) -> st.Page:
        return st.Page(str(ROOT / f), title=t, icon=i, url_path=u, default=(u == "overview"))

    flows = [page(*p) for p in PAGES]
    _prepare_findings_db()
    session = gate()
    if session is None:
        # Registered but hidden and never run: no page, no sidebar, no data.
        st.navigation(flows + [page(*p) for p in FLEET_PAGES + ADMIN_PAGES],
                      position="hidden")
        return
    sections = {"Fleet": [page(*p) for p in FLEET_PAGES], "Flows": flows[:5],
                "Hunting": flows[5:]}
    if session.grant.is_admin:
        sections["Administration"] = [page(*p) for p in ADMIN_PAGES]
    nav = st.navigation(sections, position="sidebar")
    _local.view = None
    _local.session = session
    _local.in_nav = True
    try:
        if wants_profile_page() and nav.url_path != "remotes":
            # A table row's remote was chosen (its callback set the Remote IP filter).
            st.switch_page(next(p for p in flows if p.url_path == "remotes"),
                           query_params=_unbound_link())
        if nav.url_path in NO_SENSOR_PAGES:  # no load, no filters: the page draws its own
            sidebar_identity(session, st.sidebar)
        else:
            _local.view = sidebar_and_load(session, nav.url_path or "overview")
            if _local.view is not None:
                _audit_view(session, nav.url_path or "overview", _local.view)
        nav.run()
    finally:
        _local.in_nav = False
        _local.view = None
        _local.session = None


def _prepare_findings_db() -> None:
    """Once per process: the findings database's migrations, in the background."""
    with _prepared_lock:
        if _prepared:
            return
        _prepared.append(True)
    from flux_dashboard.triage import run
    from flux_dashboard.ui.state import settings

    try:
        run.prepare_in_background(settings())
    except Exception:  # noqa: BLE001 - bad settings are reported by the sidebar
        _prepared.clear()


_prepared: list[bool] = []
_prepared_lock = threading.Lock()


def _unbound_link() -> list[tuple[str, str]]:
    """The link's known parameters that no widget is bound to (sensor, custom days,
    devices, threats), to carry across a page switch. Without them the switch clears
    the link, and clearing raises when a bound widget's value is in it (any range
    but the default); the bound ones Streamlit carries itself. Unknown parameters
    were reported on the page they came with, and are dropped."""
    qp = st.query_params
    return [(k, v) for k in qp if k in LINK_KEYS and k not in BOUND_KEYS
            for v in qp.get_all(k)]


def current_session() -> Session | None:
    """The session of this run (inside the navigation), for pages that need the role."""
    return getattr(_local, "session", None)


def _audit_view(session: Session, page: str, view: View) -> None:
    """One ``page_view`` line per page and view change, not one per rerun."""
    signature = (page, view.sensor["id"], view.start, view.end, view.filters, view.masked)
    if st.session_state.get("_flux_audited_view") == signature:
        return
    st.session_state["_flux_audited_view"] = signature
    record(session, "page_view", required=False, page=page, sensor=int(view.sensor["id"]),
           range=[view.start, view.end], filters=view.filters.describe(),
           masked=view.masked, requests=view.result.flux_requests)


def fleet_frame() -> Session:
    """Call first on pages of every sensor (Sensors): the session, or stop."""
    if not getattr(_local, "in_nav", False):
        run_app()
        st.stop()
    session = current_session()
    if session is None:
        st.stop()
    return session


def admin_frame() -> Session:
    """Call first on admin pages: the admin's session, or a refusal (audited) and stop."""
    if not getattr(_local, "in_nav", False):
        run_app()
        st.stop()
    session = current_session()
    if session is None or not session.grant.is_admin:
        if session is not None:
            record(session, "denied", required=False, page="activity", reason="admin only")
        st.error("This page is for administrators.", icon=":material/block:")
        st.stop()
    return session
