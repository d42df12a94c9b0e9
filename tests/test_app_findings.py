"""The Findings page through AppTest: detection of the viewed range, triage, access.

Each test has its own cache directory, so its own findings database (SQLite,
the embedded default); tests/test_triage_store.py runs the store on PostgreSQL
too. The range is the four local days around the planted incident (days -6 to
-3 of the story: its upload, its last brute-force wave, the beacon): the
expected findings come from the story's plan (tests/kit/clock.py's PLAN), not
from the code under test. A finding is opened with its link (``?finding=<key>``),
as another page's row or a shared link opens it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from flux_dashboard.masking import Masker
from flux_dashboard.triage import db
from flux_dashboard.triage.run import DEMO_ACTOR
from flux_dashboard.triage.store import FindingsStore
from tests.kit.apptest import hermetic, plain, run_page, said, texts
from tests.kit.clock import PINNED, PLAN, days_link
from tests.kit.hosting import ALICE, BOB, CAROL, audit_lines, hosted, signed_in
from tests.kit.procs import free_port

FINDINGS = "pages/8_findings.py"
RANGE = days_link(PLAN.day(-6), 4)
INCIDENT = {("toxic_out", PLAN.workstation_ip, PLAN.c2_ip),
            ("beacon", PLAN.workstation_ip, PLAN.c2_ip)}


def store_in(where: Path) -> FindingsStore:
    """The findings database of a test: ``findings.sqlite3`` in its folder."""
    return FindingsStore(db.connect(f"sqlite:///{where / 'findings.sqlite3'}"))


def inbox(at) -> pl.DataFrame:
    tables = [d.value for d in at.dataframe if "severity" in d.value.columns]
    assert tables, "no findings table"
    return pl.from_pandas(tables[0])


def open_finding(key: str, at=None, **query: str):
    return run_page(FINDINGS, {**RANGE, **query, "finding": key}, at=at)


@pytest.fixture(scope="module")
def flows_cache(tmp_path_factory) -> Path:
    """The flows' disk cache, shared by the module's tests (each has its own database)."""
    return tmp_path_factory.mktemp("findings-flows")


@pytest.fixture
def cache(tmp_path: Path, flows_cache: Path) -> Iterator[Path]:
    """A test's own findings database (in ``tmp_path``) beside the shared flows."""
    with hermetic(flows_cache, FLUX_DATABASE_URL=f"sqlite:///{tmp_path / 'findings.sqlite3'}"):
        yield tmp_path


def test_the_incident_is_detected_stored_and_listed_with_the_demo_false_positive(cache):
    at = run_page(FINDINGS, RANGE)
    caption = next(c for c in said(at.caption) if c.startswith(":material/radar: This range"))
    store = store_in(cache)
    rows = store.list()
    assert f"{rows.height:,} findings detected" in plain(caption)
    got = {(r["kind"], r["ip0"], r["ip1"]) for r in rows.to_dicts()}
    assert INCIDENT <= got
    assert ("inbound_attack", PLAN.server_ip) in {(k, a) for k, a, _ in got}
    assert ("upload_anomaly", PLAN.workstation_ip, None) in got
    shown = inbox(at)
    assert {"new"} == set(shown["status"])  # the default: open findings
    assert shown.height == rows.filter(pl.col("status") == "new").height
    # One ordinary finding triaged by the demo, with a reason and a comment.
    fp = rows.filter(pl.col("status") == "false_positive")
    assert fp.height == 1 and fp["reason"][0] == "known_application"
    assert fp["threats"][0] in (None, "")
    events = store.events(fp["key"].to_list())
    assert events["actor"].to_list() == ["detector", DEMO_ACTOR]
    counts = {m.label: m.value for m in at.metric}
    assert counts["False positive"] == "1" and counts["New"] == f"{shown.height:,}"
    # Seen again (another run, same range): the same findings, nothing doubled.
    run_page(FINDINGS, RANGE)
    assert store_in(cache).list().height == rows.height


def test_acknowledge_with_a_comment_then_a_stale_change_is_refused(cache):
    run_page(FINDINGS, RANGE)
    store = store_in(cache)
    key = store.list(kinds=["toxic_out"]).filter(pl.col("ip1") == PLAN.c2_ip)["key"][0]
    at = open_finding(key)
    assert any("Toxic contact (OUT)" in s for s in said(at.subheader))
    at.radio(key=f"action_{key}").set_value("acknowledge")
    at.text_area(key=f"comment_{key}").input("C2 confirmed by the EDR; isolating the PC")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    assert not at.exception
    assert "Acknowledge: 1 finding(s) saved." in said(at.success)
    got = store.get(key)
    assert (got["status"], got["updated_by"], got["version"]) == ("acknowledged", "anonymous", 2)
    last = store.events([key]).row(-1, named=True)
    assert (last["action"], last["comment"]) == (
        "acknowledge", "C2 confirmed by the EDR; isolating the PC")
    # The history on the page shows it.
    history = [d.value for d in at.dataframe if "actor" in d.value.columns][0]
    assert "C2 confirmed by the EDR; isolating the PC" in set(history["comment"])

    # Someone else resolves it meanwhile; this page still shows version 2.
    store.change(key, 2, "bob@corp.example", "resolve", comment="done", now=PINNED)
    at.radio(key=f"action_{key}").set_value("investigate")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    errors = said(at.error)
    assert any("changed by bob@corp.example at" in e for e in errors), errors
    assert store.get(key)["status"] == "resolved"  # not overwritten
    assert "Resolved" in plain(" ".join(said(at.caption)))  # the new state is shown


def test_false_positive_needs_a_reason_and_keeps_it(cache):
    run_page(FINDINGS, RANGE)
    store = store_in(cache)
    key = store.list(kinds=["inbound_attack"])["key"][0]
    at = open_finding(key)
    at.radio(key=f"action_{key}").set_value("false_positive")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    assert any("needs a reason" in e for e in said(at.error))
    assert store.get(key)["status"] == "new"
    at.radio(key=f"action_{key}").set_value("false_positive")
    at.selectbox(key=f"reason_{key}").set_value("authorised_user")
    at.text_area(key=f"comment_{key}").input("our pentest")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    got = store.get(key)
    assert (got["status"], got["reason"]) == ("false_positive", "authorised_user")


def test_a_rule_from_a_finding_makes_the_next_detection_expected(cache):
    first_day = days_link(PLAN.day(-6), 1)
    run_page(FINDINGS, first_day)
    store = store_in(cache)
    before = store.list(kinds=["upload_anomaly"])
    row = before.filter(pl.col("ip0") == PLAN.workstation_ip)
    key = (row if row.height else before)["key"][0]
    device = store.get(key)["ip0"]
    at = open_finding(key, **{k: v for k, v in first_day.items()})
    at.radio(key=f"rule_dev_{key}").set_value("this")
    at.text_input(key=f"rule_reason_{key}").input("nightly sync of this laptop")
    at.button(key=f"FormSubmitter:rule_{key}-Create the rule").click().run()
    assert not at.exception
    assert any("Rule #1 created" in s for s in said(at.success))
    assert store.get(key)["status"] == "expected" and store.get(key)["rule_id"] == 1
    # The next days' detection: the same device's upload anomalies come in as expected.
    run_page(FINDINGS, days_link(PLAN.day(-5), 3))
    later = store.list(kinds=["upload_anomaly"]).filter(
        (pl.col("ip0") == device) & (pl.col("key") != key))
    assert later.height and set(later["status"]) == {"expected"}
    assert set(later["rule_id"]) == {1}
    # Hidden from the default view, counted, listable.
    at = run_page(FINDINGS, days_link(PLAN.day(-5), 3))
    assert not set(inbox(at)["key"]) & set(later["key"])
    assert int({m.label: m.value for m in at.metric}["Expected"]) >= later.height + 1


def test_the_export_holds_the_rows_shown_with_their_history(cache, captured_downloads):
    at = run_page(FINDINGS, RANGE)
    shown = inbox(at)
    name = next(n for n in captured_downloads if n.startswith("findings-54") and
                n.endswith(".csv"))
    body = captured_downloads[name]()
    csv = pl.read_csv(io.BytesIO(body if isinstance(body, bytes) else body.encode()))
    assert csv["key"].to_list() == shown["key"].to_list()
    assert all("detected" in h for h in csv["history"].to_list())


def test_an_unreachable_database_leaves_the_flows_working(flows_cache):
    port = free_port()
    url = f"postgresql+psycopg://flux:hunter2@127.0.0.1:{port}/flux"
    with hermetic(flows_cache, FLUX_DATABASE_URL=url):
        at = run_page(FINDINGS, RANGE)
        warning = " ".join(said(at.warning))
        assert f"postgresql at 127.0.0.1:{port}" in warning and "Triage is unavailable" in warning
        assert "hunter2" not in " ".join(s for _, s in texts(at))
        overview = run_page(None, RANGE)
        assert overview.metric  # the flows still work


# ------------------------------------------------------------------ hosted: roles


@pytest.fixture
def root(tmp_path: Path, flows_cache: Path) -> Iterator[Path]:
    """A hosted deployment of its own (policy, audit trail, database), the shared flows."""
    with hosted(tmp_path / "deploy", FLUX_CACHE_DIR=str(flows_cache),
                FLUX_DATABASE_URL=f"sqlite:///{tmp_path / 'deploy' / 'findings.sqlite3'}"):
        yield tmp_path / "deploy"


def test_a_viewer_sees_statuses_masked_without_actions_or_comments(root):
    first = signed_in(BOB, FINDINGS, **RANGE)  # an analyst detects and comments
    store = store_in(root)
    key = store.list(kinds=["toxic_out"]).filter(pl.col("ip1") == PLAN.c2_ip)["key"][0]
    store.change(key, 1, "bob@corp.example", "acknowledge", comment="Call Jean Dupont",
                 now=PINNED)
    assert first.dataframe
    # A real key opens nothing in a masked view (it hashes real identifiers: a guess
    # could be checked against it); the link a masked page gives holds its alias.
    guess = signed_in(CAROL, FINDINGS, **RANGE, finding=key)
    assert not [d for d in guess.dataframe if "actor" in d.value.columns]
    assert key not in " ".join(s for _, s in texts(guess))
    alias = Masker(b"apptest-fixed-mask-secret").mask_value("finding", key)
    at = signed_in(CAROL, FINDINGS, **RANGE, finding=alias)
    shown = inbox(at)
    assert key not in set(shown["key"]) and alias in set(shown["key"])
    assert "acknowledged" in set(shown["status"])
    assert PLAN.workstation_ip not in set(shown["ip0"]) and PLAN.c2_ip not in set(shown["ip1"])
    everything = " ".join(s for _, s in texts(at))
    assert "Jean Dupont" not in everything and PLAN.workstation_ip not in everything
    assert not [b for b in at.button if "Apply" in str(b.label)]
    assert any("triage is for analysts" in i for i in said(at.info))
    history = [d.value for d in at.dataframe if "actor" in d.value.columns][0]
    assert set(history["actor"]) == {"(hidden)"}


def test_an_analyst_action_is_audited_and_refused_once_the_grant_is_withdrawn(root):
    signed_in(BOB, FINDINGS, **RANGE)
    store = store_in(root)
    key = store.list(kinds=["beacon"])["key"][0]
    at = signed_in(BOB, FINDINGS, **RANGE, finding=key)
    at.radio(key=f"action_{key}").set_value("investigate")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    assert store.get(key)["status"] == "investigating"
    line = [e for e in audit_lines(root) if e["event"] == "triage"][-1]
    assert (line["user"], line["finding"], line["action"], line["sensor"]) == (
        "bob@corp.example", key, "investigate", 54)
    # The access file loses Bob's rule while his page is open: his next click changes
    # nothing, is audited as denied, and the page offers no action any more.
    before = len(audit_lines(root))
    policy = (root / "access.toml").read_text().replace('"soc"', '"nobody-group"')
    (root / "access.toml").write_text(policy)
    at.radio(key=f"action_{key}").set_value("resolve")
    at.button(key=f"FormSubmitter:triage_{key}-Apply").click().run()
    assert store.get(key)["status"] == "investigating"
    after = audit_lines(root)[before:]
    assert [e["event"] for e in after if e["event"] in ("denied", "triage")] == ["denied"]
    assert not [b for b in at.button if "Apply" in str(b.label)]


def test_an_admin_deletes_a_rule_an_analyst_cannot(root):
    signed_in(BOB, FINDINGS, **RANGE)
    store = store_in(root)
    rid = store.add_rule(kind="beacon", reason="lab", actor="bob@corp.example",
                         now=PINNED)
    at = signed_in(BOB, FINDINGS, **RANGE)
    delete = at.button(key="FormSubmitter:rule_edit-Delete the rule")
    assert delete.disabled
    admin = signed_in(ALICE, FINDINGS, **RANGE)
    admin.selectbox(key="rule_edit_id").set_value(rid)
    admin.button(key="FormSubmitter:rule_edit-Delete the rule").click().run()
    assert store.rules()["deleted_by"].to_list() == ["alice@corp.example"]
    assert any(e["event"] == "rule_deleted" for e in audit_lines(root))


def test_other_pages_show_the_status_of_a_rows_finding_and_link_to_it(cache):
    from tests.kit.apptest import HUNTING, TOXIC

    run_page(FINDINGS, RANGE)
    store = store_in(cache)
    key = store.list(kinds=["toxic_out"]).filter(pl.col("ip1") == PLAN.c2_ip)["key"][0]
    store.change(key, 1, "ann@corp.example", "investigate", now=PINNED)
    toxic = run_page(TOXIC, RANGE)
    table = pl.from_pandas(next(d.value for d in toxic.dataframe
                                if {"time", "dir", "triage"} <= set(d.value.columns)))
    c2 = table.filter((pl.col("ip1") == PLAN.c2_ip) & (pl.col("dir") == "OUT"))
    assert c2.height and set(c2["triage"]) == {"investigating"}
    assert all(link.endswith(f"finding={key}") and link.startswith("findings?")
               for link in c2["finding"])
    assert set(table.filter(pl.col("dir") == "IN")["triage"].to_list()) <= {None}
    hunting = run_page(HUNTING, RANGE)
    stories = pl.from_pandas(next(d.value for d in hunting.dataframe
                                  if {"regularity", "triage"} <= set(d.value.columns)))
    line = stories.filter((pl.col("ip0") == PLAN.workstation_ip) & (pl.col("ip1") == PLAN.c2_ip))
    assert line["triage"].to_list() == ["investigating"]
    # The link opens that finding on the Findings page.
    linked = run_page(FINDINGS, {**RANGE, "finding": key})
    assert any(f"key `{key}`" in c or key in c for c in said(linked.caption))


def test_a_database_that_goes_away_mid_session_is_a_message_not_a_traceback(flows_cache):
    from tests.kit.apptest import TOXIC
    from tests.kit.services import PostgresServer

    pg = PostgresServer()  # its own: this test stops it
    try:
        with hermetic(flows_cache, FLUX_DATABASE_URL=pg.database()):
            at = run_page(FINDINGS, RANGE)
            assert inbox(at).height
            pg.stop()
            at.run()  # the same session, the database gone
            assert not at.exception
            assert any("Triage is unavailable" in w and f"127.0.0.1:{pg.port}" in w
                       for w in said(at.warning))
            toxic = run_page(TOXIC, RANGE)  # the flows' pages go on, without statuses
            assert not any("triage" in d.value.columns for d in toxic.dataframe)
            assert toxic.dataframe
    finally:
        pg.stop()


def test_a_link_followed_after_an_action_opens_the_linked_finding(cache):
    """Found by the soak: after triaging one finding, following another finding's link
    in the same session still showed the first (the focus kept after an action won over
    the link)."""
    run_page(FINDINGS, RANGE)
    keys = store_in(cache).list()["key"].to_list()
    first, second = keys[0], keys[1]
    at = open_finding(first)
    at.button(key=f"assign_me_{first}").click().run()
    assert not at.exception
    assert store_in(cache).get(first)["assignee"] == "anonymous"
    assert at.button(key=f"assign_me_{first}").disabled  # still in focus after the action
    at.query_params["finding"] = second
    at.run()
    assert not at.exception
    keys_on_page = {b.key for b in at.button}
    assert f"assign_me_{second}" in keys_on_page and f"assign_me_{first}" not in keys_on_page
