"""The findings database: every test runs on SQLite and on a real PostgreSQL
(``database_url``, tests/conftest.py), started by the tests on loopback.

Findings come from ``findings.detect`` on hand-built flows (tests/kit/flows.py):
on Tue 24 Nov 2026, device A reaches the toxic remote X (trojan), device B the
toxic remote Y. Expected values are worked by hand from those rows.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from flux_dashboard import errors as E
from flux_dashboard import findings as F
from flux_dashboard.triage import db
from flux_dashboard.triage.store import FindingsStore, rule_matches
from tests.kit.flows import EMPTY, frame, row, utc

ROOT = Path(__file__).resolve().parents[1]
SENSOR, PARIS, HNO = 54, "Europe/Paris", [0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23]
A, B = "192.168.1.10", "192.168.1.20"
X, Y = "176.123.8.71", "185.220.101.4"
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def flows(until_hour: int = 11, flows_to_x: int = 2) -> pl.DataFrame:
    """A -> X (trojan) at 10:00..until_hour UTC, ``flows_to_x`` rows; B -> Y once."""
    hours = [10 + i % (until_hour - 9) for i in range(flows_to_x)]
    rows = [row(ip1=X, toxic=True, trojan=True, out_bytes=100 * (i + 1),
                start_of_hour=utc(2026, 11, 24, h), first_seen=utc(2026, 11, 24, h, 5),
                last_seen=utc(2026, 11, 24, h, 30)) for i, h in enumerate(hours)]
    rows.append(row(ip0=B, ip1=Y, toxic=True, out_bytes=40, device_name="printer"))
    owner = pl.when(pl.col("ip1") == Y).then(pl.lit("Backup Co")).otherwise(pl.lit("OVH"))
    return frame(*rows).with_columns(  # as geo enrichment leaves it: Y is Backup Co's
        owner.alias("owner"), pl.lit("FR").alias("country_code"),
        pl.lit("France").alias("country"), pl.lit(None, pl.String).alias("iso3"),
        pl.lit(None, pl.String).alias("owner_net"))


def found(df: pl.DataFrame | None = None) -> pl.DataFrame:
    """The toxic_out findings (A -> X critical, B -> Y high); longer runs of A -> X
    are also a beacon, left out to keep the counts by hand."""
    out = F.detect(flows() if df is None else df, EMPTY, SENSOR, PARIS, HNO)
    return out.filter(pl.col("kind") == "toxic_out")


@pytest.fixture
def store(database_url) -> FindingsStore:
    return FindingsStore(db.connect(database_url))


def key_of(out: pl.DataFrame, ip1: str) -> str:
    return out.filter(pl.col("ip1") == ip1)["key"].item()


# ------------------------------------------------------------------ detections


def test_a_detection_stored_twice_is_one_finding_that_grows(store):
    first = found()
    assert store.upsert(first, NOW).new == 2
    # The same thing from a later, overlapping range: more flows, a later last contact.
    later = found(flows(until_hour=13, flows_to_x=4))
    assert set(later["key"]) == set(first["key"])
    got = store.upsert(later, NOW + timedelta(hours=1))
    assert (got.new, got.updated, got.reopened) == (0, 2, 0)
    rows = store.list()
    assert rows.height == 2
    x = store.get(key_of(first, X))
    assert (x["flows"], x["bytes"], x["hours"]) == (4, 1000, 4)  # 100+200+300+400
    assert x["first_contact"] == utc(2026, 11, 24, 10, 5)
    assert x["last_contact"] == utc(2026, 11, 24, 13, 30)
    assert x["detections"] == 2 and x["last_seen"] == NOW + timedelta(hours=1)
    assert x["first_detected"] == NOW and x["status"] == "new" and x["version"] == 1
    # The earlier, smaller range again: nothing shrinks.
    store.upsert(first, NOW + timedelta(hours=2))
    x = store.get(key_of(first, X))
    assert (x["flows"], x["last_contact"]) == (4, utc(2026, 11, 24, 13, 30))
    events = store.events()
    assert events["action"].to_list() == ["detected", "detected"]


def test_triage_change_then_a_stale_change_is_refused_with_who_and_when(store):
    store.upsert(found(), NOW)
    key = key_of(found(), X)
    t1 = NOW + timedelta(minutes=5)
    after = store.change(key, 1, "ann@example.org", "acknowledge", comment="on it", now=t1)
    assert (after["status"], after["version"], after["updated_by"]) == \
        ("acknowledged", 2, "ann@example.org")
    with pytest.raises(E.TriageConflictError) as err:
        store.change(key, 1, "bob@example.org", "resolve", now=t1 + timedelta(minutes=1))
    assert "changed by ann@example.org at 2026-11-25 06:05 UTC" in str(err.value)
    assert store.get(key)["status"] == "acknowledged"  # nothing overwritten
    store.change(key, 2, "bob@example.org", "assign", assignee="bob@example.org", now=t1)
    store.change(key, 3, "bob@example.org", "false_positive", reason="known_application",
                 comment="the vendor's updater", now=t1)
    hist = store.events([key]).select("actor", "action", "from_status", "to_status",
                                      "assignee", "reason", "comment").rows()
    assert hist == [
        ("detector", "detected", None, "new", None, None, None),
        ("ann@example.org", "acknowledge", "new", "acknowledged", None, None, "on it"),
        ("bob@example.org", "assign", "acknowledged", "acknowledged", "bob@example.org",
         None, None),
        ("bob@example.org", "false_positive", "acknowledged", "false_positive",
         "bob@example.org", "known_application", "the vendor's updater"),
    ]
    got = store.get(key)
    assert (got["status"], got["reason"], got["assignee"]) == \
        ("false_positive", "known_application", "bob@example.org")


def test_bad_triage_input_is_refused_plainly(store):
    store.upsert(found(), NOW)
    key = key_of(found(), X)
    with pytest.raises(ValueError, match="needs a reason"):
        store.change(key, 1, "a@x.org", "false_positive", now=NOW)
    with pytest.raises(ValueError, match="needs a reason"):
        store.change(key, 1, "a@x.org", "false_positive", reason="because", now=NOW)
    with pytest.raises(ValueError, match="Unknown action"):
        store.change(key, 1, "a@x.org", "delete", now=NOW)
    with pytest.raises(ValueError, match="at most 2,000"):
        store.change(key, 1, "a@x.org", "acknowledge", comment="x" * 2001, now=NOW)
    with pytest.raises(ValueError, match="does not exist"):
        store.change("0" * 20, 1, "a@x.org", "acknowledge", now=NOW)
    assert store.get(key)["version"] == 1 and store.events([key]).height == 1


def test_a_resolved_finding_detected_with_new_evidence_is_reopened(store):
    store.upsert(found(), NOW)
    key = key_of(found(), X)
    store.change(key, 1, "ann@example.org", "resolve", comment="blocked", now=NOW)
    # The same evidence again (a re-render of the same range): stays resolved.
    assert store.upsert(found(), NOW + timedelta(hours=1)).reopened == 0
    assert store.get(key)["status"] == "resolved"
    # A later contact: reopened, with an event that says why.
    got = store.upsert(found(flows(until_hour=12, flows_to_x=3)), NOW + timedelta(hours=2))
    assert got.reopened == 1
    x = store.get(key)
    assert (x["status"], x["version"]) == ("new", 3)
    last = store.events([key]).row(-1, named=True)
    assert (last["action"], last["from_status"], last["to_status"]) == \
        ("reopened", "resolved", "new")
    assert "after it was resolved" in last["comment"]


def test_bulk_applies_one_action_and_reports_conflicts(store):
    out = found()
    store.upsert(out, NOW)
    kx, ky = key_of(out, X), key_of(out, Y)
    store.change(ky, 1, "ann@example.org", "investigate", now=NOW)
    done, conflicts = store.bulk([(kx, 1), (ky, 1)], "bob@example.org", "acknowledge",
                                 comment="morning sweep", now=NOW)
    assert done == [kx]
    assert [c.key for c in conflicts] == [ky] and conflicts[0].who == "ann@example.org"
    assert store.get(kx)["status"] == "acknowledged"
    assert store.get(ky)["status"] == "investigating"


def test_list_filters_and_order(store):
    store.upsert(found(), NOW)
    kx, ky = key_of(found(), X), key_of(found(), Y)
    assert store.list()["key"].to_list() == [kx, ky]  # critical before high
    store.change(kx, 1, "a@x.org", "resolve", now=NOW)
    assert store.list()["key"].to_list() == [ky, kx]  # open first
    assert store.list(statuses=["new"])["key"].to_list() == [ky]
    assert store.list(sensors=[SENSOR + 1]).height == 0  # another sensor's grant
    assert store.list(device="printer")["key"].to_list() == [ky]
    assert store.list(assignee="").height == 2  # unassigned
    store.change(ky, 1, "a@x.org", "assign", assignee="a@x.org", now=NOW)
    assert store.list(assignee="a@x.org")["key"].to_list() == [ky]
    # A page at a time, in the same order; a search on a part of an identifier.
    assert store.list(limit=1)["key"].to_list() == [ky]
    assert store.list(limit=1, offset=1)["key"].to_list() == [kx]
    assert store.list(search="PRINT")["key"].to_list() == [ky]  # any case
    assert store.list(search="backup co")["key"].to_list() == [ky]  # the remote's owner
    assert store.list(search="%").height == 0  # taken literally
    assert store.count(search="176.123") == 1 and store.count(statuses=["new"]) == 1
    assert store.list(among={"ip1": {X}})["key"].to_list() == [kx]
    assert store.list(among={"ip1": set()}).height == 0
    assert store.distinct([SENSOR], ["ip1"]) == {"ip1": {X, Y}}
    counts = store.counts([SENSOR]).sort("status").select("status", "findings").rows()
    assert counts == [("new", 1), ("resolved", 1)]
    assert store.sensors() == [SENSOR]


# ------------------------------------------------------------------ rules


def test_a_rule_makes_new_matches_expected_and_leaves_history(store):
    out = found()
    store.upsert(out.filter(pl.col("ip1") == X), NOW)  # A -> X known before the rule
    rid = store.add_rule(kind="toxic_out", owner="backup co", reason="nightly backup",
                         actor="ann@example.org", now=NOW)
    other = store.add_rule(kind="toxic_out", ip0=A, ip1=X, reason="lab machine",
                           actor="ann@example.org", now=NOW, expires=date(2026, 11, 20))
    got = store.upsert(out, NOW + timedelta(hours=1), today=date(2026, 11, 25))
    assert (got.new, got.expected, got.updated) == (0, 1, 1)
    y = store.get(key_of(out, Y))
    assert (y["status"], y["rule_id"]) == ("expected", rid)  # by owner, any case
    x = store.get(key_of(out, X))
    assert (x["status"], x["rule_id"]) == ("new", None)  # known before; other rule expired
    assert f"Matched rule #{rid}: nightly backup" in store.events([y["key"]])["comment"][0]
    # Deleting the rule: it stops matching, what it matched keeps its status and rule.
    store.delete_rule(rid, actor="root@example.org", now=NOW)
    with pytest.raises(ValueError, match="already deleted"):
        store.delete_rule(rid, actor="root@example.org", now=NOW)
    assert store.get(y["key"])["rule_id"] == rid
    rules = store.rules()
    assert rules.filter(pl.col("id") == rid)["deleted_by"].item() == "root@example.org"
    assert store.rules(include_deleted=False)["id"].to_list() == [other]
    store.edit_rule(other, actor="bob@example.org", now=NOW, reason="lab", expires=None)
    with pytest.raises(ValueError, match="needs a reason"):
        store.add_rule(kind="beacon", reason=" ", actor="a", now=NOW)
    with pytest.raises(ValueError, match="not both"):
        store.add_rule(kind="beacon", reason="r", ip1=X, owner="o", actor="a", now=NOW)


def test_rule_matching_by_hand():
    f = {"kind": "beacon", "sensor": 54, "ip0": A, "ip1": X, "owner": "OVH SAS"}
    base = {"kind": "beacon", "sensor": None, "ip0": None, "ip1": None, "owner": None,
            "expires": None, "deleted_at": None}
    today = date(2026, 11, 25)
    assert rule_matches(base, f, today)
    assert not rule_matches({**base, "kind": "toxic_out"}, f, today)
    assert not rule_matches({**base, "sensor": 55}, f, today)
    assert rule_matches({**base, "ip0": A, "owner": " ovh sas"}, f, today)
    assert not rule_matches({**base, "ip0": B}, f, today)
    assert not rule_matches({**base, "ip1": "1.1.1.1"}, f, today)
    assert rule_matches({**base, "expires": today}, f, today)  # its last day
    assert not rule_matches({**base, "expires": today - timedelta(days=1)}, f, today)
    assert not rule_matches({**base, "deleted_at": NOW}, f, today)


# ------------------------------------------------------------------ processes

WORKER = """
import sys
from datetime import UTC, datetime
import polars as pl
from flux_dashboard.triage import db
from flux_dashboard.triage.store import FindingsStore
store = FindingsStore(db.connect(sys.argv[1]))
found = pl.read_parquet(sys.argv[2])
sys.stdin.readline()  # start together
for i in range(5):
    store.upsert(found, datetime(2026, 11, 25, 6, i, tzinfo=UTC))
print("ok")
"""


def test_two_processes_detecting_at_once_make_no_duplicate(database_url, tmp_path):
    out = found(flows(until_hour=12, flows_to_x=6))
    path = tmp_path / "found.parquet"
    out.write_parquet(path)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, database_url, str(path)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate("go\n", timeout=120) for p in procs]
    assert [r[0].strip() for r in results] == ["ok", "ok"], [r[1][-2000:] for r in results]
    store = FindingsStore(db.connect(database_url))
    assert sorted(store.list()["key"]) == sorted(out["key"])
    assert store.list()["detections"].to_list() == [10, 10]
    detected = store.events().filter(pl.col("action") == "detected")
    assert sorted(detected["key"]) == sorted(out["key"])  # one "detected" per finding


def test_the_schema_is_at_the_head_and_upgrading_again_changes_nothing(database_url):
    eng = db.connect(database_url)
    assert db.current(eng) == db.HEAD
    assert db.upgrade(eng) == db.HEAD
    names = set(sa.inspect(eng).get_table_names())
    assert {"findings", "finding_events", "rules", "alembic_version"} <= names


def test_an_unreachable_database_is_one_plain_message_without_the_password(postgres_server):
    from tests.kit.procs import free_port

    port = free_port()
    url = f"postgresql+psycopg://flux:s3cr3t-pw@127.0.0.1:{port}/flux"
    with pytest.raises(E.DatabaseUnavailableError) as err:
        db.connect(url)
    msg = str(err.value)
    assert f"postgresql at 127.0.0.1:{port}" in msg and "Flows still work" in msg
    assert "s3cr3t" not in msg and "s3cr3t" not in repr(err.value.__cause__)
    # A wrong password on the real server: the same, without the password.
    bad = postgres_server.url.replace("flux@", "nobody:s3cr3t-pw@")
    with pytest.raises(E.DatabaseUnavailableError) as err:
        db.connect(bad)
    assert "s3cr3t" not in str(err.value)


def test_database_urls_are_checked_and_the_default_is_sqlite_in_the_cache(tmp_path):
    assert db.validate_url("postgresql+psycopg://u:p@h:5/d")
    for bad in ("mysql://u@h/d", "not a url", "postgresql+asyncpg://u@h/d"):
        with pytest.raises(E.ConfigError) as err:
            db.validate_url(bad)
        assert "FLUX_DATABASE_URL" in str(err.value)
    assert db.default_url(tmp_path) == f"sqlite:///{tmp_path / 'findings.sqlite3'}"
    demo = db.default_url(tmp_path, "demo|x|nokey|2026-11-18")
    assert demo.startswith(f"sqlite:///{tmp_path}/findings-") and demo != db.default_url(
        tmp_path, "demo|x|nokey|2026-11-19")
    assert db.where("postgresql+psycopg://u:pw@db.internal:6543/flux") == \
        "postgresql at db.internal:6543"


def test_the_inbox_pages_and_a_masked_search_matches_aliases_only(store):
    from flux_dashboard import pagedata as PD
    from flux_dashboard.masking import Masker

    store.upsert(found(), NOW)
    kx, ky = key_of(found(), X), key_of(found(), Y)
    page = PD.findings_page(store, [SENSOR], per_page=1)
    assert (page.matched, page.pages, page.total) == (2, 2, 2)
    assert page.table["key"].to_list() == [kx]
    assert PD.findings_page(store, [SENSOR], per_page=1, page=5).table["key"].to_list() == [ky]
    assert page.counts["new"] == 2 and page.counts["expected"] == 0
    mask = Masker(b"k" * 32)
    masked = PD.findings_page(store, [SENSOR], mask=mask)
    assert X not in set(masked.table["ip1"]) and A not in set(masked.table["ip0"])
    alias = mask.mask_value("public_ip", X)
    assert PD.findings_page(store, [SENSOR], mask=mask, device=X).matched == 0  # a real guess
    got = PD.findings_page(store, [SENSOR], mask=mask, device=alias[-6:].upper())
    assert got.keys == [kx]
    # The key hashes the real identifiers: a masked view shows its alias only.
    assert got.table["key"].to_list() == [mask.mask_value("finding", kx)] != [kx]
    assert PD.findings_page(store, [SENSOR], device=X).table["key"].to_list() == [kx]


def test_a_malformed_url_turns_triage_off_with_a_message(tmp_path):
    from flux_dashboard.config import load_settings
    from flux_dashboard.triage import run

    settings = load_settings(env={"FLUX_DATABASE_URL": "mysql://u:pw@db:3306/x",
                                  "FLUX_CACHE_DIR": str(tmp_path)}, secrets={})
    assert settings.database_url == "mysql://u:pw@db:3306/x"  # the flows' settings load
    with pytest.raises(E.DatabaseUnavailableError) as err:
        run.store_for(settings)
    assert "PostgreSQL" in str(err.value) and "pw" not in str(err.value)
    with pytest.raises(E.DatabaseUnavailableError):  # again at once, without a new attempt
        run.store_for(settings)
