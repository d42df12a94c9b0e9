"""Findings: the team's inbox of what the analyses flagged, kept and triaged.

The range being viewed is detected on every visit (its findings are stored, the
same ones the sync worker stores); the inbox then lists what the database
holds for this sensor or every sensor the reader may see, open first.
"""

import polars as pl
import streamlit as st

from flux_dashboard import findings as F
from flux_dashboard import pagedata as PD
from flux_dashboard import ui
from flux_dashboard.errors import DatabaseUnavailableError
from flux_dashboard.triage.store import OPEN, STATUSES
from flux_dashboard.ui import triage as T
from flux_dashboard.ui.state import masker

view = ui.frame()
ui.header(view, "Findings")
with st.expander("How findings are made and rated", icon=":material/help:"):
    st.markdown(
        "Each finding is one thing to look at, detected from the flows of the range you "
        "view (against the 7 days before it) and by the sync worker every cycle. Detecting "
        "the same thing again updates it (last seen, evidence), never duplicates it.\n\n"
        "- **Toxic contact (OUT)**: a device initiated flows to a toxic host;\n"
        "- **Beaconing**: very regular contacts to a toxic host;\n"
        "- **Inbound attack**: toxic IN waves from one host on one day;\n"
        "- **Upload anomaly**: a device uploaded more than its own baseline allows "
        "(median + 3·MAD) on one day;\n"
        "- **First-seen remote**: a host a device never contacted in the baseline;\n"
        "- **Off-hours activity**: a device busy outside working hours on one day.\n\n"
        f"**Severity.** {ui.text(F.SEVERITY_RULE)}\n\n"
        "**Statuses.** New, Acknowledged, Investigating (open); Resolved, False positive "
        "(with a reason), Expected (matched an expected-behaviour rule: hidden by default, "
        "counted). A resolved finding seen again with newer contacts is reopened.")
store = T.open_store(view)
if store is None:
    st.stop()
T.show_message()


def inbox_page(view, store) -> None:
    if view.result.frame.height:
        got = T.detect_view(view, store)
        if got is not None:
            found, done = got
            st.caption(f":material/radar: This range: {found.height:,} findings detected · "
                       f"{done.new:,} new, {done.expected:,} expected by a rule, "
                       f"{done.reopened:,} reopened since the last detection.")

    sensor_id = int(view.sensor["id"])
    c0, c1, c2, c3 = st.columns([1.6, 2.2, 2, 1.4])
    scope = c0.segmented_control("Sensors", ["this", "all"], default="this", key="findings_scope",
                                 format_func=lambda s: "This sensor" if s == "this"
                                 else "All my sensors") or "this"
    sensors = [sensor_id] if scope == "this" else \
        [s for s in store.sensors() if view.session.grant.allows(s)]
    statuses = c1.multiselect("Status", list(STATUSES), default=list(OPEN), key="findings_status",
                              format_func=T.STATUS_LABELS.get,
                              help="Open statuses by default; add Expected to see what rules hid.")
    kinds = c2.multiselect("Kind", list(F.KINDS), key="findings_kind",
                           format_func=F.KIND_LABELS.get, placeholder="Every kind")
    severities = c3.multiselect("Severity", list(F.SEVERITIES), key="findings_severity",
                                placeholder="Every severity")
    c4, c5 = st.columns([3, 2])
    search = c4.text_input("Device or remote", key="findings_search",
                           placeholder="part of a device's name, IP or MAC, or a remote's "
                                       "IP or owner")
    who = c5.selectbox("Assignee", ["anyone", "me", "unassigned"], key="findings_assignee",
                       format_func={"anyone": "Anyone", "me": "Assigned to me",
                                    "unassigned": "Unassigned"}.get)
    assignee = {"anyone": None, "me": view.session.user, "unassigned": ""}[who]
    mask = masker(view.settings) if view.masked else None
    page_no = int(st.session_state.get("findings_page_no") or 1)
    inbox = PD.findings_page(store, sensors, statuses=statuses or None, kinds=kinds,
                             severities=severities, device=search, assignee=assignee, mask=mask,
                             page=page_no - 1)

    cols = st.columns(len(STATUSES))
    for col, status in zip(cols, STATUSES, strict=True):
        col.metric(T.STATUS_LABELS[status], f"{inbox.counts[status]:,}")
    if inbox.kinds.height:
        st.caption("Open by kind: " + " · ".join(
            f"{F.KIND_LABELS.get(k, k)} {o:,}" for k, o, _ in inbox.kinds.rows() if o))

    shown = inbox.table
    if shown.height == 0:
        st.success("No finding matches these filters." if inbox.total else
                   "No finding yet for these sensors.", icon=":material/verified:")
        focus = T.focus_keys(view, store, None, [], "")
    else:
        first = inbox.page * PD.FINDINGS_PER_PAGE
        st.caption(f"{inbox.matched:,} of {inbox.total:,} findings match"
                   + (f" · rows {first + 1:,}–{first + shown.height:,} (page {inbox.page + 1} of "
                      f"{inbox.pages})" if inbox.pages > 1 else "")
                   + " · open first, then by severity and last contact · select one to see its "
                   "evidence, history and actions, or several for one action on all · the "
                   f"downloads hold the {inbox.matched:,} matching rows with their history")
        table_key = f"findings_table_{st.session_state.get(T.TABLE_GEN, 0)}"
        event = ui.table(shown, key=table_key, max_height=520, on_select="rerun",
                         selection_mode="multi-row", hide=("key",))
        if inbox.pages > 1:
            st.session_state["findings_page_no"] = inbox.page + 1  # within the pages left
            st.number_input("Page", min_value=1, max_value=inbox.pages, step=1,
                            key="findings_page_no")

        def export() -> pl.DataFrame:  # every matching row, built on click after the checks
            rows = PD.findings_rows(store, sensors, inbox.where)
            return PD.mask_findings(PD.with_history(rows, store.events(sensors=sensors),
                                                    hide_comments=view.masked), mask)

        ui.downloads(view, export, f"findings-{sensor_id if scope == 'this' else 'all'}",
                     key="findings_dl", sensors=sensors)
        focus = T.focus_keys(view, store, event, inbox.keys, table_key)
    # The findings in focus are read again by key (within the grant), whatever the filters:
    # a finding someone else just resolved stays open here, with its new state.
    allowed = [s for s in store.sensors() if view.session.grant.allows(s)]
    real = store.list(allowed, keys=focus) if focus else shown.clear()
    if real.height:
        masked_rows = PD.mask_findings(real, mask).to_dicts()
        pairs = list(zip(real.to_dicts(), masked_rows, strict=True))
        gone = [r for r, _ in pairs if r["key"] not in set(inbox.keys)]
        if gone:
            st.caption(f":material/filter_alt_off: {len(gone)} of these no longer match the "
                       "filters (their state changed); shown here anyway.")
        if len(pairs) == 1:
            T.finding_panel(view, store, *pairs[0])
        else:
            T.bulk_panel(view, store, [r for r, _ in pairs])

    with st.expander("Expected-behaviour rules", icon=":material/rule_settings:"):
        T.rules_panel(view, store, sensors)


try:
    inbox_page(view, store)
except DatabaseUnavailableError as exc:  # it failed in the middle of the page
    st.warning(f"Triage is unavailable: {ui.text(exc)}", icon=":material/database_off:")
