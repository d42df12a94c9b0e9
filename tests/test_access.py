"""Access policy, hosting settings, the audit trail and request budgets (pure, no Streamlit)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flux_dashboard import audit
from flux_dashboard import errors as E
from flux_dashboard.access import (
    ANONYMOUS,
    GuardedLoader,
    Hosting,
    Identity,
    Policy,
    anonymous_refusal,
    is_loopback,
    session_expired,
)
from flux_dashboard.budget import Budgets, Meter, Usage
from flux_dashboard.config import load_settings

POLICY = """
groups_claim = "groups"

[[rule]]
email = "Alice@Corp.example"
role = "admin"
sensors = ["*"]

[[rule]]
group = "soc"
role = "analyst"
sensors = [54, 77]

[[rule]]
domain = "customer.example"
role = "viewer"
sensors = [54]
"""


def who(email: str, verified: bool = True, groups=(), iat: float | None = None) -> Identity:
    claims = {"email": email, "email_verified": verified, "groups": list(groups)}
    if iat is not None:
        claims["iat"] = iat
    return Identity.from_claims(claims)


# ------------------------------------------------------------------ policy
def test_first_matching_rule_decides():
    p = Policy.from_toml(POLICY)
    admin = p.grant_for(who("alice@corp.example", groups=["soc"]))
    assert admin.role == "admin" and admin.sensors is None and admin.allows(999)
    soc = p.grant_for(who("bob@corp.example", groups=["soc"]))
    assert soc.role == "analyst" and soc.allows(54) and soc.allows("77") and not soc.allows(3)
    viewer = p.grant_for(who("carol@customer.example"))
    assert viewer.role == "viewer" and viewer.masked and viewer.allows(54)
    assert not viewer.allows(77) and not viewer.is_admin
    assert viewer.visible([{"id": 54}, {"id": 77}]) == [{"id": 54}]


def test_email_match_is_exact_and_case_insensitive():
    p = Policy.from_toml(POLICY)
    assert p.grant_for(who("ALICE@corp.EXAMPLE")).role == "admin"
    assert p.grant_for(who("alice@corp.example.evil.test")) is None
    assert p.grant_for(who("xalice@corp.example")) is None


def test_an_email_rule_needs_a_verified_email():
    """Suspected, and proven: an email rule ignored ``email_verified``, so with a provider
    where users set their own address, anyone could claim the admin's address. It
    needs a verified one now (or a policy that says the provider vouches for all)."""
    p = Policy.from_toml(POLICY)
    assert p.grant_for(who("alice@corp.example", verified=False)) is None
    assert p.grant_for(Identity.from_claims({"email": "alice@corp.example"})) is None
    trusting = Policy.from_toml("trust_unverified_email = true\n" + POLICY)
    assert trusting.grant_for(who("alice@corp.example", verified=False)).role == "admin"
    with pytest.raises(E.ConfigError, match="trust_unverified_email must be true or false"):
        Policy.from_toml('trust_unverified_email = "yes"\n' + POLICY)


def test_domain_needs_a_verified_email_and_the_exact_domain():
    p = Policy.from_toml(POLICY)
    assert p.grant_for(who("carol@customer.example", verified=False)) is None
    assert p.grant_for(Identity.from_claims({"email": "carol@customer.example",
                                             "email_verified": "true"})).role == "viewer"
    assert p.grant_for(who("carol@evil-customer.example")) is None
    assert p.grant_for(who("carol@sub.customer.example")) is None
    assert p.grant_for(who("customer.example")) is None


def test_no_rule_no_access_and_no_policy_denies_everyone():
    assert Policy.from_toml(POLICY).grant_for(who("mallory@else.example", groups=["x"])) is None
    assert Policy().grant_for(who("alice@corp.example")) is None
    assert Hosting().policy().grant_for(who("alice@corp.example")) is None


def test_group_claim_name_is_configurable_and_a_string_claim_counts():
    p = Policy.from_toml('groups_claim = "roles"\n[[rule]]\ngroup = "soc"\nrole = "analyst"\n'
                         'sensors = [1]\n')
    ident = Identity.from_claims({"email": "x@y.example", "roles": "soc"}, groups_claim="roles")
    assert p.grant_for(ident).role == "analyst"
    other = Identity.from_claims({"email": "x@y.example", "groups": ["soc"]},
                                 groups_claim=p.groups_claim)
    assert p.grant_for(other) is None  # the "groups" claim is not read


@pytest.mark.parametrize("text, message", [
    ("[[rule]]\nrole = 'admin'\nsensors = ['*']", "exactly one of email, domain or group"),
    ("[[rule]]\nemail = 'a@b.c'\ngroup = 'x'\nrole = 'admin'\nsensors = ['*']", "exactly one"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'root'\nsensors = ['*']", "role must be one of"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'admin'\nsensors = []", "sensors must be a list"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'admin'\nsensors = ['*', 54]", "stands alone"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'admin'\nsensors = ['54']", "whole numbers"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'admin'\nsensors = [true]", "whole numbers"),
    ("[[rule]]\nemail = 'not-an-email'\nrole = 'admin'\nsensors = [1]", "not an email"),
    ("[[rule]]\ndomain = '@corp.example'\nrole = 'admin'\nsensors = [1]", "domain"),
    ("[[rule]]\nemail = 'a@b.c'\nrole = 'admin'\nsensors = [1]\nsensor = [2]", "unknown key"),
    ("[rules]\n", "unknown setting"),
    ("this is = not toml [", "not valid TOML"),
])
def test_invalid_policies_are_refused_with_one_plain_line(text, message):
    with pytest.raises(E.ConfigError, match=message) as err:
        Policy.from_toml(text)
    assert "\n" not in str(err.value)


def test_policy_file_errors_are_plain(tmp_path: Path):
    with pytest.raises(E.ConfigError, match="Cannot read the access policy"):
        Policy.from_file(tmp_path / "missing.toml")
    good = tmp_path / "access.toml"
    good.write_text(POLICY)
    assert len(Policy.from_file(good).rules) == 3


def test_example_policy_in_the_repo_is_valid():
    example = Path(__file__).resolve().parents[1] / "deploy" / "access.example.toml"
    policy = Policy.from_file(example)
    assert {r.role for r in policy.rules} == {"admin", "analyst", "viewer"}


# ------------------------------------------------------------------ sessions and anonymity
def test_sessions_expire_after_the_configured_hours_from_iat():
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    fresh = who("a@b.example", iat=(now - timedelta(hours=11, minutes=59)).timestamp())
    old = who("a@b.example", iat=(now - timedelta(hours=12, minutes=1)).timestamp())
    assert not session_expired(fresh, now, 12)
    assert session_expired(old, now, 12)
    assert not session_expired(old, now, 24)
    assert session_expired(who("a@b.example"), now, 12)  # no iat: expired


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("127.0.0.2", True), ("0.0.0.0", False), ("", False), (None, False), ("10.1.2.3", False),
    ("example.com", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_a_real_key_on_the_network_without_sign_in_is_refused():
    real = load_settings(env={"SERENICITY_API_KEY": "k" * 20}, secrets={})
    demo = load_settings(env={}, secrets={})
    plain = Hosting()
    msg = anonymous_refusal(real, plain, "0.0.0.0")
    assert msg and "FLUX_ALLOW_ANONYMOUS=1" in msg and "[auth]" in msg and "k" * 20 not in msg
    assert msg.count(". ") == 0  # one sentence
    assert anonymous_refusal(real, plain, None)  # Streamlit's default: every interface
    assert anonymous_refusal(real, plain, "127.0.0.1") is None
    assert anonymous_refusal(demo, plain, "0.0.0.0") is None
    # a URL without a key (a local simulator over HTTP) is not a real key either
    local = load_settings(env={"SERENICITY_API_URL": "http://127.0.0.1:9/api/v1"}, secrets={})
    assert not local.demo and anonymous_refusal(local, plain, "0.0.0.0") is None
    assert anonymous_refusal(real, Hosting(allow_anonymous=True), "0.0.0.0") is None
    assert anonymous_refusal(real, Hosting(auth=True), "0.0.0.0") is None


def test_hosting_settings_from_environment(tmp_path: Path):
    cfg = load_settings(env={"FLUX_CACHE_DIR": str(tmp_path)}, secrets={})
    h = Hosting.load(cfg, {"auth": {"client_id": "x"}},
                     {"FLUX_ACCESS_FILE": "~/a.toml", "FLUX_SESSION_HOURS": "8",
                      "FLUX_USER_DAILY_BUDGET": "500", "FLUX_ALLOW_ANONYMOUS": "yes"})
    assert h.auth and h.session_hours == 8 and h.user_daily_budget == 500 and h.allow_anonymous
    assert h.access_file == Path("~/a.toml").expanduser()
    assert h.audit_file == tmp_path / "audit.jsonl"
    assert not Hosting.load(cfg, {}, {}).auth
    with pytest.raises(E.ConfigError, match="FLUX_SESSION_HOURS"):
        Hosting.load(cfg, {}, {"FLUX_SESSION_HOURS": "twelve"})


def test_guarded_loader_refuses_before_any_request():
    calls = []

    class Loader:
        def load(self, sensor_id, *a, **kw):
            calls.append(sensor_id)
            return "rows"

        def cached_coverage(self, sensor_id, *a, **kw):
            calls.append(sensor_id)
            return 1.0

        def estimate(self, sensor_id, *a, **kw):
            calls.append(sensor_id)
            return "estimate"

        def future_method(self, sensor_id):
            calls.append(sensor_id)

    grant = Policy.from_toml(POLICY).grant_for(who("bob@corp.example", groups=["soc"]))
    guarded = GuardedLoader(Loader(), grant)
    assert guarded.load(54) == "rows"
    for bad in (3, "3", None, "54; drop"):
        with pytest.raises(E.AccessDeniedError):
            guarded.load(bad)
        with pytest.raises(E.AccessDeniedError):
            guarded.cached_coverage(bad)
        with pytest.raises(E.AccessDeniedError):
            guarded.estimate(bad)
    assert calls == [54]
    assert guarded.estimate(54) == "estimate"
    for name in ("store", "client", "future_method"):  # unguarded ways around: refused
        with pytest.raises(AttributeError):
            getattr(guarded, name)
    assert GuardedLoader(Loader(), ANONYMOUS).load(3) == "rows"


# ------------------------------------------------------------------ audit
def test_audit_lines_are_json_scrubbed_and_filterable(tmp_path: Path):
    path = tmp_path / "audit" / "audit.jsonl"
    log = audit.AuditLog(path, secret="SECRET-KEY-123")
    t0 = datetime(2026, 11, 26, 9, tzinfo=UTC)
    log.record("sign_in", user="alice@corp.example", role="admin", now=t0)
    log.record("page_view", user="bob@corp.example", role="analyst", sensor=54, page="toxic",
               range=["2026-11-25T00:00:00+00:00", "2026-11-26T00:00:00+00:00"],
               filters="toxic flows only", requests=12, now=t0 + timedelta(minutes=5))
    log.record("denied", user="bob@corp.example", role="analyst", sensor=3,
               reason="sensor not allowed with SECRET-KEY-123",
               now=t0 + timedelta(minutes=6))
    raw = path.read_text()
    assert "SECRET-KEY-123" not in raw and len(raw.splitlines()) == 3
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    first = json.loads(raw.splitlines()[1])
    assert first["event"] == "page_view" and first["sensor"] == 54 and first["requests"] == 12
    df = audit.read(path)
    assert df["event"].to_list() == ["denied", "page_view", "sign_in"]  # newest first
    assert audit.read(path, user="bob@corp.example").height == 2
    assert audit.read(path, sensor=54)["page"].to_list() == ["toxic"]
    assert audit.read(path, event="denied").height == 1
    assert audit.read(path, since=t0 + timedelta(minutes=1)).height == 2
    assert audit.read(path, until=t0 + timedelta(minutes=1)).height == 1
    with pytest.raises(ValueError):
        log.record("made_up", user="x", role="y")


def test_audit_filter_choices_are_the_users_and_sensors_seen(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = audit.AuditLog(path)
    t0 = datetime(2026, 11, 26, 9, tzinfo=UTC)
    log.record("page_view", user="bob@corp.example", role="analyst", sensor=54, now=t0)
    log.record("page_view", user="alice@corp.example", role="admin", sensor=7, now=t0)
    log.record("sign_in", user="bob@corp.example", role="analyst", now=t0)  # no sensor
    log.record("load_started", user="", role="server", sensor=54, now=t0)  # no user
    # sorted, once each; sensors as numbers (7 before 54)
    assert audit.choices(audit.read(path)) == (["alice@corp.example", "bob@corp.example"],
                                               [7, 54])
    assert audit.choices(audit.read(tmp_path / "none.jsonl")) == ([], [])


def test_audit_survives_a_damaged_line_and_concurrent_writers(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = audit.AuditLog(path)

    def write(n: int) -> None:
        for i in range(50):
            log.record("export", user=f"user{n}", role="analyst", rows=i, name="x" * 300)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with path.open("a") as fh:
        fh.write('{"ts": "2026-11-26T10:00:00+00:00", "event": "expo')  # cut mid-line
    df = audit.read(path)
    assert df.height == 200
    assert all(json.loads(line) for line in path.read_text().splitlines()[:200])
    assert audit.read(tmp_path / "none.jsonl").height == 0


# ------------------------------------------------------------------ budgets
def test_meter_counts_per_user_day_and_month_across_instances(tmp_path: Path):
    now = [datetime(2026, 11, 30, 23, 50, tzinfo=UTC)]
    path = tmp_path / "meter.json"
    a, b = Meter(path, clock=lambda: now[0]), Meter(path, clock=lambda: now[0])
    a.add("alice", 100)
    b.add("bob", 40)
    assert a.usage("alice") == Usage(user_today=100, today=140, month=140)
    assert b.usage("bob") == Usage(user_today=40, today=140, month=140)
    now[0] += timedelta(minutes=20)  # a new day and a new month
    a.add("alice", 5)
    assert a.usage("alice") == Usage(user_today=5, today=5, month=5)
    path.write_text("{not json")  # damaged: counts restart rather than crash
    assert a.usage("alice") == Usage(0, 0, 0)


def test_a_booking_counts_against_the_budget_until_it_is_settled(tmp_path: Path):
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    meter = Meter(tmp_path / "meter.json", clock=lambda: now)
    budgets = Budgets(user_daily=50)
    first = meter.reserve("bob", 42, budgets)
    with pytest.raises(E.BudgetExceededError, match="daily request budget is spent"):
        meter.reserve("bob", 42, budgets)  # the first load is still running
    assert meter.usage("bob").user_today == 0  # booked, not spent
    meter.settle(first, 30)  # it made fewer requests than booked
    assert meter.usage("bob") == Usage(30, 30, 30)
    second = meter.reserve("bob", 20, budgets)  # 30 spent + 20 = 50: allowed
    with pytest.raises(E.BudgetExceededError):
        meter.reserve("alice", 1, Budgets(global_daily=50))  # the team's budget too
    meter.settle(second, 0)
    meter.reserve("bob", 20, budgets)


def test_a_booking_of_a_process_that_died_lapses(tmp_path: Path, monkeypatch):
    from flux_dashboard import clock

    meter = Meter(tmp_path / "meter.json", clock=lambda: datetime(2026, 11, 30, tzinfo=UTC))
    wall = [datetime(2026, 12, 1, 9, tzinfo=UTC)]
    monkeypatch.setattr(clock, "wall", lambda: wall[0])
    meter.reserve("bob", 50, Budgets(user_daily=50), ttl_s=600)
    with pytest.raises(E.BudgetExceededError):
        meter.reserve("bob", 1, Budgets(user_daily=50))
    wall[0] += timedelta(seconds=601)  # never settled: its process is gone
    meter.reserve("bob", 50, Budgets(user_daily=50))


def test_bookings_made_at_once_never_pass_a_budget_together(tmp_path: Path):
    """Sixteen threads, each with a meter of its own (as processes have), book 10 requests
    each against a budget of 50 at once: exactly five pass (a file lock makes each
    check-and-book atomic)."""
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    path = tmp_path / "meter.json"
    go, passed, refused = threading.Barrier(16), [], []

    def book(i: int) -> None:
        meter = Meter(path, clock=lambda: now)  # one meter each, as separate processes
        go.wait()
        try:
            passed.append(meter.reserve(f"user{i % 3}", 10, Budgets(global_daily=50)))
        except E.BudgetExceededError:
            refused.append(i)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(passed) == 5 and len(refused) == 11


def test_budgets_refuse_in_plain_words():
    b = Budgets(user_daily=1000, global_daily=5000, monthly_quota=100_000)
    assert b.check(Usage(900, 900, 900), 100) is None
    msg = b.check(Usage(950, 950, 950), 100)
    assert msg and "Your daily request budget is spent" in msg and "Cached data" in msg
    assert "team's daily" in b.check(Usage(0, 4950, 4950), 100)
    assert "monthly API quota" in b.check(Usage(0, 0, 99_950), 100)
    assert b.check(Usage(10_000, 10_000, 10_000_000), 0) is None  # cached loads always allowed
    assert Budgets().check(Usage(10**9, 10**9, 10**9), 10**6) is None
    assert "30% of your daily budget" in b.share_of_today(Usage(100, 100, 100), 300)
