"""Streamlit glue: the only part of the package that imports streamlit.

- ``frame``: page config, navigation, and the frame every page passes through.
- ``sidebar``: the shared sidebar and the URL state; masking is decided there.
- ``loading``: the threaded load with progress, preparation, lookbacks, coverage.
- ``state``: settings, service, sensors, masker; the derived cache and ``View``.
- ``widgets``: header, tables, charts, downloads, the evidence pack.
- ``auth``: the sign-in gate, the session's grant, audit and quota helpers.
- ``text``: ``escaping.escape_markdown``, the escaper every value echoed in markdown
  goes through (the ui modules import it under that name too).
- ``guide``: the presenter's "What to look at" panel (demo mode only).
- ``profile``: the remote-host profile, and tables whose rows open it.
- ``triage``: the Findings page's detection and forms; ``with_triage`` adds the
  status of the finding a row of another page belongs to, and a link to it.

Pages import this package and call ``ui.frame()`` first, then ``ui.*`` helpers to
draw what ``flux_dashboard.pagedata`` computes for them.
"""

from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.ui.auth import Session, meter
from flux_dashboard.ui.frame import PAGES, admin_frame, fleet_frame, frame, run_app
from flux_dashboard.ui.guide import guide
from flux_dashboard.ui.loading import lookback
from flux_dashboard.ui.profile import profile_table, remote_profile, search_box
from flux_dashboard.ui.sidebar import hours_text
from flux_dashboard.ui.state import Keyed, View, settings
from flux_dashboard.ui.triage import with_triage
from flux_dashboard.ui.widgets import (
    chart,
    downloads,
    evidence_button,
    header,
    human_bytes,
    level_counts,
    no_flows,
    table,
)

__all__ = ["PAGES", "Keyed", "Session", "View", "admin_frame", "chart", "downloads",
           "evidence_button", "fleet_frame", "frame", "guide", "header", "hours_text",
           "human_bytes", "level_counts", "lookback", "meter", "no_flows", "profile_table",
           "remote_profile", "run_app", "search_box", "settings", "table", "text", "with_triage"]
