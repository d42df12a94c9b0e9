"""The Findings page's Streamlit parts: detection of the viewed range, triage forms.

- ``open_store``: the findings database, or a plain "unavailable" message (flows
  keep working on every other page).
- ``detect_view``: ``triage.run`` on the range being viewed (raw flows and the
  7 days before it, loaded through the same gate as the hunting baseline),
  stored once per loaded frame and process.
- ``refusal``: why this session may not change findings now (viewers, masked
  views, a sign-in that expired or a grant withdrawn since the page was drawn).
- ``apply``: one action on one or several findings: checked again, audited,
  then written with the version the user saw (optimistic concurrency).
- ``finding_panel``, ``bulk_panel``, ``rule_form``, ``rules_panel``: the forms.

The version a user acts on is the one the previous run showed (``_seen``): a
change made by someone else in between is refused with who and when, never
overwritten.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

import polars as pl
import streamlit as st

from flux_dashboard import errors as E
from flux_dashboard import findings as F
from flux_dashboard import pagedata as PD
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.hours import days_before
from flux_dashboard.triage import run
from flux_dashboard.triage.store import REASONS, FindingsStore, check_change
from flux_dashboard.ui.auth import record, still_allowed
from flux_dashboard.ui.loading import lookback_result
from flux_dashboard.ui.state import View, data_key, masker, memo
from flux_dashboard.ui.widgets import human_bytes, table

MESSAGE = "_flux_triage_message"
SEEN = "_flux_triage_seen"  # key -> the version the previous run showed
TABLE_GEN = "_flux_findings_table_gen"  # a new table key after an action: no stale selection
SELECTION = "_flux_findings_selection"  # (table key, row indices, the keys they meant)
BASIS = "_flux_findings_basis"  # the keys of the table as the last run drew it
FOCUS = "_flux_findings_focus"  # (the keys just acted on, the link's finding then)
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
ACTION_LABELS = {"acknowledge": "Acknowledge", "investigate": "Investigating",
                 "resolve": "Resolve", "false_positive": "False positive",
                 "reopen": "Reopen", "comment": "Comment only"}
STATUS_LABELS = {"new": "New", "acknowledged": "Acknowledged",
                 "investigating": "Investigating", "resolved": "Resolved",
                 "false_positive": "False positive", "expected": "Expected"}


def with_triage(view: View, df: pl.DataFrame, kind: str, *, day_from: str | None = None,
                only: pl.Expr | None = None) -> pl.DataFrame:
    """``df`` (a table of another page, masked or not) with the ``triage`` status and a
    ``finding`` link of the stored finding of ``kind`` each row belongs to: matched on
    the device and remote as shown (aliases when masked), and on the local day of the
    ``day_from`` column for the day-bound kinds; ``only`` limits the rows that may
    belong (e.g. OUT flows). ``df`` as it is when the findings database is down."""
    try:
        store = run.store_for(view.settings)
        found = store.list([int(view.sensor["id"])], kinds=[kind])
    except E.DatabaseUnavailableError:
        return df
    if found.height == 0 or not {"ip0"} <= set(df.columns):
        return df
    if view.masked:
        found = masker(view.settings).mask_frame(found)
    on = ["ip0"] + (["ip1"] if kind not in F.MACHINE_KINDS and "ip1" in df.columns else [])
    keys = found.select(*on, *(["day"] if day_from else []), "status", "key")
    left = df.with_columns(pl.col(c).cast(pl.String).alias(f"_{c}") for c in on)
    if day_from:
        left = left.with_columns(pl.col(day_from).dt.convert_time_zone(view.tz).dt.date()
                                 .alias("_day"))
    right = keys.rename({c: f"_{c}" for c in [*on, *(["day"] if day_from else [])]})
    joined = left.join(right.unique([c for c in right.columns if c.startswith("_")]),
                       on=[c for c in right.columns if c.startswith("_")], how="left",
                       maintain_order="left")
    if only is not None:
        joined = joined.with_columns(pl.when(only).then(pl.col("status"))
                                     .alias("status"),
                                     pl.when(only).then(pl.col("key")).alias("key"))
    query = [(k, v) for k in st.query_params if k != "finding"
             for v in st.query_params.get_all(k)]
    if view.masked:  # the key hashes real identifiers: its alias only
        aliases = masker(view.settings).aliases("finding", found["key"].to_list())
        joined = joined.with_columns(pl.col("key").replace_strict(
            aliases, default=None, return_dtype=pl.String))
    base = "findings?" + (urlencode(query) + "&" if query else "") + "finding="
    out = joined.with_columns(
        pl.col("status").alias("triage"),
        pl.when(pl.col("key").is_not_null()).then(pl.lit(base) + pl.col("key"))
        .alias("finding"),
    ).drop([c for c in joined.columns if c.startswith("_")] + ["status", "key"])
    # Next to the row's first column (its time or device): seen without scrolling.
    return out.select(df.columns[0], "triage", "finding", *df.columns[1:])


def open_store(view: View) -> FindingsStore | None:
    try:
        return run.store_for(view.settings)
    except E.DatabaseUnavailableError as exc:
        st.warning(f"Triage is unavailable: {text(exc)}", icon=":material/database_off:")
        return None


def detect_view(view: View, store: FindingsStore) -> tuple[pl.DataFrame, Any] | None:
    """(findings of the viewed range, what storing them did), or None when its
    baseline could not be loaded (the page says why)."""
    start, end = days_before(view.start, 7)
    base = lookback_result(view, start, end, "Baseline for findings (7 days before the range)")
    if base is None:
        return None
    key = ("findings", data_key(view.settings, view.sensor["id"], view.result, False),
           base.start, base.end, base.token)
    found = memo(key + ("detect",), lambda: run.detect_loaded(view.result.frame, base.frame,
                                                             view.sensor))
    done = memo(key + ("stored", run.store_for(view.settings).engine.url.render_as_string()),
                lambda: run.record(store, found, view.settings.now(),
                                   demo=view.settings.demo))
    return found, done


def refusal(view: View) -> str | None:
    """Why this session may not change findings (None: it may)."""
    session = view.session
    if session.grant.role not in ("analyst", "admin"):
        return "Viewers see findings and their status; triage is for analysts."
    if view.masked:
        return "Masked view: identifiers and comments are hidden, so triage is off. " \
               "Turn masking off to triage."
    return None


def _message(kind: str, body: str) -> None:
    st.session_state[MESSAGE] = (kind, body)


def show_message() -> None:
    got = st.session_state.pop(MESSAGE, None)
    if got:
        kind, body = got
        (st.success if kind == "ok" else st.error)(body, icon=":material/task_alt:"
                                                   if kind == "ok" else ":material/error:")


def _focus(keys: list[str]) -> None:
    """Keep ``keys`` in focus after an action, while the link's finding stays the same."""
    st.session_state[FOCUS] = (keys, st.query_params.get("finding") or "")


def seen_version(key: str, current: int) -> int:
    """The version the previous run showed for ``key`` (recording ``current`` for the
    next): what a submit in this run acts on."""
    seen = st.session_state.setdefault(SEEN, {})
    before = seen.get(key, current)
    seen[key] = current
    return before


def focus_keys(view: View, store: FindingsStore, event: Any, keys: list[str],
               table_key: str) -> list[str]:
    """The keys of the findings in focus: the rows selected, as the table was drawn
    when they were clicked (``keys``: its rows' real keys; it may have changed since:
    an index never moves to another finding); else the findings just acted on; else
    the link's ``finding`` (in a masked view its alias: a real key opens nothing)."""
    rows = tuple(event.selection.rows) if event is not None else ()
    before = st.session_state.get(SELECTION) or ("", (), [])
    if (table_key, rows) != before[:2]:
        basis = st.session_state.get(BASIS) or keys
        chosen = [basis[i] for i in rows if 0 <= i < len(basis)]
        st.session_state[SELECTION] = (table_key, rows, chosen)
        if chosen:
            st.session_state.pop(FOCUS, None)
    else:
        chosen = before[2]
    st.session_state[BASIS] = list(keys)
    if chosen:
        return chosen
    wanted = st.query_params.get("finding") or ""
    focus = st.session_state.get(FOCUS)
    if focus and focus[1] == wanted:  # a link followed since the action wins over it
        return list(focus[0])
    if not view.masked:
        return [wanted] if re.fullmatch(r"[0-9a-f]{20}", wanted) else []
    if not re.fullmatch(r"f-[0-9a-f]{18}", wanted):
        return []
    allowed = [s for s in store.sensors() if view.session.grant.allows(s)]
    real = store.distinct(allowed, ["key"])["key"]
    return [k for k, a in masker(view.settings).aliases("finding", real).items() if a == wanted]


def apply(view: View, store: FindingsStore, items: list[tuple[str, int, int]], action: str,
          **kw: Any) -> bool:
    """``action`` on ``items`` ((key, sensor, version seen)): every check again now,
    one audit line per finding, then the change; the outcome for the next run. True
    when every finding was changed."""
    session = view.session
    why = refusal(view) or still_allowed(session, None, masked=False)
    outside = [k for k, s, _ in items if not session.grant.allows(s)
               or still_allowed(session, s, masked=False)]
    if why or outside:
        record(session, "denied", required=False, reason=why or "sensor not granted",
               page="findings", action=action, findings=len(items))
        _message("error", f"Not saved: {why or 'you may no longer see one of these sensors.'}")
        return False
    try:
        check_change(action, **kw)  # nothing audited or written for an incomplete form
        for key, sensor, _ in items:
            record(session, "triage", page="findings", sensor=int(sensor), finding=key,
                   action=action, reason=kw.get("reason"), assignee=kw.get("assignee"),
                   comment=bool(kw.get("comment")))
        done, conflicts = store.bulk([(k, v) for k, _, v in items], session.user, action,
                                     now=view.settings.now(), **kw)
    except E.AuditUnavailableError as exc:
        _message("error", f"Not saved: {exc}")
        return False
    except ValueError as exc:
        _message("error", f"Not saved: {exc}")
        return False
    st.session_state[TABLE_GEN] = st.session_state.get(TABLE_GEN, 0) + 1
    _focus([k for k, _, _ in items])
    for c in conflicts:
        record(session, "triage_refused", required=False, page="findings", finding=c.key,
               action=action, changed_by=c.who)
    if conflicts:
        first = conflicts[0]
        more = f" ({len(conflicts) - 1} more likewise)" if len(conflicts) > 1 else ""
        saved = f"{len(done)} saved; " if done else ""
        _message("error", f"{saved}{first}{more}")
    else:
        label = ACTION_LABELS.get(action, action.replace("_", " ").capitalize())
        _message("ok", f"{label}: {len(done)} finding(s) saved.")
    return not conflicts


def finding_panel(view: View, store: FindingsStore, row: dict, masked_row: dict) -> None:
    """One finding: evidence, links to the view that shows it, history, actions."""
    key = row["key"]
    version = seen_version(key, row["version"])
    shown = masked_row
    kind = F.KIND_LABELS.get(row["kind"], row["kind"])
    st.subheader(f"{kind} · {shown['device_name'] or shown['ip0'] or '?'}"
                 + (f" → {shown['ip1']}" if shown.get("ip1") else ""), anchor=False)
    st.caption(f"Severity **{row['severity']}** · status **{STATUS_LABELS[row['status']]}**"
               + (f" ({REASONS.get(row['reason'], row['reason'])})" if row["reason"] else "")
               + (f" · assigned to {text(row['assignee'])}"
                  if row["assignee"] and not view.masked else "")
               + f" · key `{shown['key']}`")
    c = st.columns(4)
    c[0].metric("Flows", f"{row['flows']:,}")
    c[1].metric("Bytes", human_bytes(row["bytes"]))
    c[2].metric("Active hours", f"{row['hours']:,}")
    c[3].metric("Detections", f"{row['detections']:,}")
    facts = [f"First contact {view.local(row['first_contact']):%a %d %b %H:%M}"
             if row["first_contact"] else None,
             f"last contact {view.local(row['last_contact']):%a %d %b %H:%M}"
             if row["last_contact"] else None,
             f"threats: {row['threats']}" if row["threats"] else None,
             f"remote owner: {row['owner']}" if row["owner"] else None,
             f"country: {row['country']}" if row["country"] else None,
             row["note"]]
    st.caption(text(" · ".join(f for f in facts if f)))
    links = st.columns(2)
    for col, target, label in ((links[0], "device", "Open the device's flows"),
                               (links[1], "remote", "Open the remote host's profile")):
        try:
            page, query = F.link_query(shown, view.tz, target)
        except ValueError:
            continue
        col.page_link(f"pages/{_PAGE_FILES[page]}", label=label, icon=":material/open_in_new:",
                      query_params=query)
    st.markdown("**History**")
    hist = PD.finding_history(store.events([key]), hide_comments=view.masked)
    with st.container(key=f"history_{key}"):  # a keyed box: the page's and tests' handle
        table(hist, key=f"history_table_{key}", max_height=260)
    why = refusal(view)
    if why:
        st.info(why, icon=":material/lock:")
        return
    _actions_form(view, store, row, version)
    rule_form(view, store, row, version)


_PAGE_FILES = {"devices": "2_devices.py", "remotes": "5_remotes.py"}


def _actions_form(view: View, store: FindingsStore, row: dict, version: int) -> None:
    key = row["key"]
    me = view.session.user
    c1, c2 = st.columns([1, 3])
    if c1.button("Assign to me", key=f"assign_me_{key}", icon=":material/person_add:",
                 disabled=row["assignee"] == me):
        apply(view, store, [(key, row["sensor"], version)], "assign", assignee=me)
        st.rerun()
    with st.form(f"triage_{key}", border=True):
        action = st.radio("Action", list(ACTION_LABELS), format_func=ACTION_LABELS.get,
                          horizontal=True, key=f"action_{key}")
        reason = st.selectbox("False-positive reason", list(REASONS), index=None,
                              format_func=REASONS.get, key=f"reason_{key}",
                              placeholder="Needed for a false positive")
        assignee = st.text_input("Assign to (e-mail, optional)", key=f"assignee_{key}",
                                 value=row["assignee"] or "")
        comment = st.text_area("Comment", key=f"comment_{key}", max_chars=2000,
                               placeholder="What you checked, what you decided")
        if st.form_submit_button("Apply", type="primary", icon=":material/check:"):
            who = assignee.strip()
            if who and not _EMAIL.fullmatch(who):
                _message("error", "Not saved: the assignee must be an e-mail address.")
            else:
                assigned = True
                if who != (row["assignee"] or ""):  # the action only if this went through
                    assigned = apply(view, store, [(key, row["sensor"], version)], "assign",
                                     assignee=who or None)
                    version += 1
                if assigned and (action != "comment" or comment.strip()):
                    apply(view, store, [(key, row["sensor"], version)], action,
                          comment=comment, reason=reason if action == "false_positive"
                          else None)
            st.rerun()


def bulk_panel(view: View, store: FindingsStore, rows: list[dict]) -> None:
    """One action and one comment on every selected finding."""
    versions = {r["key"]: seen_version(r["key"], r["version"]) for r in rows}
    st.subheader(f"{len(rows)} findings selected", anchor=False)
    why = refusal(view)
    if why:
        st.info(why, icon=":material/lock:")
        return
    with st.form("triage_bulk", border=True):
        action = st.radio("Action", [a for a in ACTION_LABELS if a != "comment"],
                          format_func=ACTION_LABELS.get, horizontal=True, key="bulk_action")
        reason = st.selectbox("False-positive reason", list(REASONS), index=None,
                              format_func=REASONS.get, key="bulk_reason",
                              placeholder="Needed for a false positive")
        comment = st.text_area("Comment (one for all)", key="bulk_comment", max_chars=2000)
        if st.form_submit_button(f"Apply to {len(rows)} findings", type="primary"):
            apply(view, store, [(r["key"], r["sensor"], versions[r["key"]]) for r in rows],
                  action, comment=comment,
                  reason=reason if action == "false_positive" else None)
            st.rerun()


def rule_form(view: View, store: FindingsStore, row: dict, version: int) -> None:
    """Expected behaviour from this finding: its kind, this device or any, this remote,
    its owner or any, a reason and an optional last day."""
    with st.expander("Mark as expected behaviour (a rule)", icon=":material/rule:"):
        with st.form(f"rule_{row['key']}", border=False):
            dev = st.radio("Device", ["this", "any"], horizontal=True, key=f"rule_dev_{row['key']}",
                           format_func=lambda d: f"This device ({row['device_name'] or row['ip0']})"
                           if d == "this" else "Any device", disabled=not row["ip0"])
            options = ["ip", "owner", "any"] if row["ip1"] else ["any"]
            remote = st.radio("Remote", options, horizontal=True, key=f"rule_remote_{row['key']}",
                              format_func=lambda r: {"ip": f"This remote ({row['ip1']})",
                                                     "owner": f"Its owner ({row['owner']})",
                                                     "any": "Any remote"}[r])
            reason = st.text_input("Why it is expected", key=f"rule_reason_{row['key']}",
                                   max_chars=500, placeholder="e.g. nightly backup to our host")
            expires = st.date_input("Last day it applies (optional)", value=None,
                                    key=f"rule_expires_{row['key']}", format="YYYY-MM-DD")
            if st.form_submit_button("Create the rule", icon=":material/add_task:"):
                _create_rule(view, store, row, version, dev, remote, reason, expires)
                st.rerun()


def _create_rule(view: View, store: FindingsStore, row: dict, version: int, dev: str,
                 remote: str, reason: str, expires: date | None) -> None:
    why = refusal(view) or still_allowed(view.session, row["sensor"], masked=False)
    if why:
        _message("error", f"Not saved: {why}")
        return
    if not (reason or "").strip():
        _message("error", "Not saved: a rule needs a reason: why this is expected.")
        return
    if remote == "owner" and not row["owner"]:
        _message("error", "Not saved: this remote's owner is unknown; choose the remote.")
        return
    scope = {"kind": row["kind"], "sensor": int(row["sensor"]),
             "ip0": row["ip0"] if dev == "this" else None,
             "ip1": row["ip1"] if remote == "ip" else None,
             "owner": row["owner"] if remote == "owner" else None}
    try:
        record(view.session, "rule_created", page="findings", **scope, reason=reason,
               expires=expires.isoformat() if expires else None)
        rid = store.add_rule(**scope, reason=reason, expires=expires, actor=view.session.user,
                             now=view.settings.now())
    except (ValueError, E.AuditUnavailableError) as exc:
        _message("error", f"Not saved: {exc}")
        return
    # The finding it was made from is expected too (its history says by which rule).
    try:
        store.change(row["key"], version, view.session.user, "expect", rule_id=rid,
                     comment=f"Rule #{rid}: {reason.strip()}", now=view.settings.now())
    except E.TriageConflictError as exc:
        _message("error", f"Rule #{rid} created; this finding was not marked: {exc}")
        return
    st.session_state[TABLE_GEN] = st.session_state.get(TABLE_GEN, 0) + 1
    _focus([row["key"]])
    _message("ok", f"Rule #{rid} created: the next detections it matches come in as "
                   "expected.")


def rules_panel(view: View, store: FindingsStore, sensors: list[int]) -> None:
    """The rules of these sensors (and the sensor-wide ones): analysts edit, admins delete."""
    rules = store.rules()
    rules = rules.filter(pl.col("sensor").is_null() | pl.col("sensor").is_in(sensors))
    shown = rules.with_columns(pl.when(pl.col("deleted_at").is_not_null())
                               .then(pl.lit("deleted")).otherwise(pl.lit("active"))
                               .alias("state"))
    if view.masked:
        shown = masker(view.settings).mask_frame(shown).with_columns(
            pl.lit("(hidden)").alias("reason"), pl.lit("(hidden)").alias("created_by"),
            pl.lit(None, pl.String).alias("updated_by"), pl.lit(None, pl.String)
            .alias("deleted_by"))
    if rules.height == 0:
        st.caption("No rule yet: create one from a finding (\"Mark as expected behaviour\").")
        return
    table(shown.select("id", "state", "kind", "sensor", "ip0", "ip1", "owner", "reason",
                       "expires", "created_by", "created_at", "updated_by", "deleted_by"),
          key="rules_table", max_height=300)
    if refusal(view):
        return
    live = rules.filter(pl.col("deleted_at").is_null())
    if live.height == 0:
        return
    with st.form("rule_edit", border=True):
        rid = st.selectbox("Rule", live["id"].to_list(), key="rule_edit_id",
                           format_func=lambda i: f"#{i}")
        reason = st.text_input("New reason", key="rule_edit_reason", max_chars=500)
        expires = st.date_input("Last day it applies", value=None, key="rule_edit_expires",
                                format="YYYY-MM-DD")
        c1, c2 = st.columns(2)
        save = c1.form_submit_button("Save the rule")
        delete = c2.form_submit_button("Delete the rule", disabled=not view.session.grant.is_admin,
                                       help="Administrators only. What it matched keeps its "
                                            "status.")
    if save or delete:
        _rule_change(view, store, int(rid), "delete" if delete else "edit", reason, expires)
        st.rerun()


def _rule_change(view: View, store: FindingsStore, rid: int, what: str, reason: str,
                 expires: date | None) -> None:
    why = refusal(view) or still_allowed(view.session, None, masked=False,
                                         admin=what == "delete")
    if what == "delete" and not view.session.grant.is_admin:
        why = "Only administrators delete rules."
    if why:
        record(view.session, "denied", required=False, reason=why, page="findings",
               rule=rid, action=what)
        _message("error", f"Not saved: {why}")
        return
    try:
        record(view.session, "rule_deleted" if what == "delete" else "rule_edited",
               page="findings", rule=rid)
        if what == "delete":
            store.delete_rule(rid, actor=view.session.user, now=view.settings.now())
        else:
            store.edit_rule(rid, actor=view.session.user, now=view.settings.now(),
                            reason=reason, expires=expires)
    except (ValueError, E.AuditUnavailableError) as exc:
        _message("error", f"Not saved: {exc}")
        return
    _message("ok", f"Rule #{rid} {'deleted' if what == 'delete' else 'saved'}.")
