"""The frame every page passes through: page config, navigation, sidebar, then the page.

Pages call ``frame()`` first. When a freshly started server receives a page
URL as its very first request, Streamlit runs that file of ``pages/`` on its
own; ``frame()`` then runs the whole app instead, so the page still gets the
sidebar and the data source (and later the sign-in gate), and renders once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from flux_dashboard.ui.sidebar import sidebar_and_load
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
]
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
    pages = [st.Page(str(ROOT / f), title=t, icon=i, url_path=u, default=(u == "overview"))
             for u, t, i, f in PAGES]
    nav = st.navigation({"Flows": pages[:5], "Hunting": pages[5:]}, position="sidebar")
    _local.view = None
    _local.in_nav = True
    try:
        _local.view = sidebar_and_load()
        nav.run()
    finally:
        _local.in_nav = False
        _local.view = None
