"""The hosted link attacked as a whole (AppTest, the example policy's roles).

Each test reproduces a hole a review found by attacking the link end to end, and
fails on the code before its fix: look-backs spending outside budgets, questions
and audit; budgets passed twice by loads running at once; a viewer confirming a
guessed address; files built after the session expired or the rule was removed;
a loopback `make serve` without sign-in; identifier filters staying real under
masking; exports served when the audit trail cannot be written.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from flux_dashboard import clock
from flux_dashboard.budget import Budgets, Meter
from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.apptest import HUNTING, REMOTES, TOXIC, plain, said, use_real_key
from tests.kit.clock import PINNED, days_link, pinned_clock
from tests.kit.demo import FIXED_DAY, INCIDENT_DAY, day_rows
from tests.kit.hosting import ALICE, BOB, CAROL, EXAMPLE_POLICY, audit_lines, hosted, signed_in
from tests.kit.hosting import user as claims


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A hosted deployment of its own per test (policy, audit trail, cache)."""
    with hosted(tmp_path / "deploy"):
        yield tmp_path / "deploy"


@pytest.fixture
def api(monkeypatch) -> Iterator[Simulator]:
    """The simulator over real HTTP, without a key: the app meters it like the API."""
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, now=pinned_clock))
    served = sim.serve(port=0)
    monkeypatch.setenv("SERENICITY_API_URL", served.url)
    monkeypatch.setenv("FLUX_RATE_LIMIT", "60000")
    yield sim
    served.shutdown()


def flux_requests(sim: Simulator) -> int:
    return sum(1 for path, _ in sim.requests if path.endswith("/flux"))


# ------------------------------------------------------------------ 2. look-backs
def test_a_look_back_asks_books_and_audits_like_the_page_load(root, api, monkeypatch):
    """Reproduced: the last 24 h warm, a budget of 1 and a question above 5 requests,
    then Threat hunting: its baseline made 40 flux requests, with no question, no
    refusal, and no audit line. Now a spent budget refuses it before any request, and
    under the threshold of a question it asks first."""
    warm = signed_in(BOB, HUNTING, range="Last 24 hours")  # the page and its baseline
    assert warm.dataframe
    monkeypatch.setenv("FLUX_USER_DAILY_BUDGET", "1")
    monkeypatch.setenv("FLUX_CONFIRM_REQUESTS", "5")
    before = len(api.requests)
    at = signed_in(BOB, HUNTING, range="Last 24 hours")
    at.button_group(key="baseline_days").set_value(28).run()
    assert not at.exception
    assert any("baseline (28 days before the range)" in w.lower() and "daily request "
               "budget is spent" in w for w in said(at.warning)), said(at.warning)
    assert len(api.requests) == before, "the baseline spent requests past the budget"
    assert any(e["event"] == "budget_refused" and e.get("purpose", "").startswith(
        "Baseline (28") for e in audit_lines(root))

    monkeypatch.delenv("FLUX_USER_DAILY_BUDGET")  # no budget: the question remains
    at.run()
    asked = [w for w in said(at.warning) if "Baseline (28 days before the range) needs" in w]
    assert asked and "hours are not cached yet" in asked[0], said(at.warning)
    fetched = flux_requests(api)
    confirm = next(b for b in at.button if b.key.startswith("confirm_"))
    confirm.click().run()
    assert not at.exception and flux_requests(api) > fetched
    assert any(e["event"] == "load_finished" and e.get("purpose", "").startswith(
        "Baseline (28") and e["requests"] > 0 for e in audit_lines(root))


def test_every_load_of_a_page_is_audited_with_its_purpose(root, api):
    at = signed_in(BOB, HUNTING, **days_link(FIXED_DAY))
    assert at.dataframe
    started = [e for e in audit_lines(root) if e["event"] == "load_started"]
    purposes = {e["purpose"] for e in started}
    assert "page" in purposes and any(p.startswith("Baseline") for p in purposes), purposes
    finished = [e for e in audit_lines(root) if e["event"] == "load_finished"]
    # Every flux request is in the trail: the estimates' (with their load's start) and
    # the loads' own.
    assert sum(e["requests"] for e in finished) + sum(e["estimate_requests"]
                                                      for e in started) == \
        sum(1 for path, _ in api.requests if "/flux" in path)


# ------------------------------------------------------------------ 3. budgets at once
def test_a_load_running_elsewhere_counts_against_the_budget(root, api, monkeypatch):
    """Reproduced: two tabs at once with disjoint 7-day ranges and a budget of 50 both
    passed (42 + 42 requests, the meter at 100): usage was read before a load and
    counted when its thread ended. Another tab's load in flight (its booking) now
    counts: the second load is refused, and nothing is fetched for it."""
    meter = Meter(root / "cache" / "request-meter.json", clock=pinned_clock)
    monkeypatch.setenv("FLUX_USER_DAILY_BUDGET", "50")
    booking = meter.reserve("bob@corp.example", 42, Budgets(user_daily=50))  # tab 1, running
    before = flux_requests(api)
    at = signed_in(BOB, range="Last 7 days")
    assert any("daily request budget is spent" in e for e in said(at.error)), said(at.error)
    assert flux_requests(api) - before <= 8  # the estimate's counts, no load
    meter.settle(booking, 42)
    assert meter.usage("bob@corp.example").user_today <= 50 + 8  # + the estimate's counts


# ------------------------------------------------------------------ cancel: one's own wait only
def test_a_cancel_stops_a_shared_load_only_when_nobody_else_waits():
    """Suspected, and proven: any user waiting on a shared window could cancel it for
    everyone, leaving another user's view incomplete. A click now stops the clicker's
    own wait; the load stops when nobody else waits for it."""
    import threading

    from flux_dashboard.loads import Load, Registry

    loads = Registry()
    entry = Load(("src", 54), threading.Event())
    loads.attach(entry, "tab-a")  # another user's tab waits for it
    loads.attach(entry, "tab-b")  # the canceller's run, not detached yet
    assert loads.request_cancel(entry, "tab-b") is False and not entry.cancel.is_set()
    del entry.waiters["tab-a"]  # that tab stops waiting (without its grace timer)
    assert loads.request_cancel(entry, "tab-b") is True and entry.cancel.is_set()


# ------------------------------------------------------------------ 4. guessing under masking
REAL_SEEN = "109.70.100.71"  # a Tor relay of the demo's ordinary days: the analyst sees it
REAL_ABSENT = "198.51.100.77"  # in no flow of the demo


@pytest.mark.parametrize("guess", [REAL_SEEN, REAL_ABSENT], ids=["present", "absent"])
def test_a_viewer_cannot_confirm_a_guessed_address(root, guess):
    """Reproduced: as the viewer, a real IP in ?remote= (or the profile box) became its
    alias and the profile showed its flows; an address not in the data said "No flow
    with…". Now a real value is cleared with the same words whatever it is."""
    link = {**days_link(INCIDENT_DAY - timedelta(days=2), days=6), "remote": guess}
    if guess == REAL_SEEN:  # the analyst does see it in that range
        seen = signed_in(BOB, REMOTES, **link)
        assert any("Remote host" in s for s in said(seen.subheader))
    at = signed_in(CAROL, REMOTES, **link)
    assert at.session_state["remote"] == ""
    warnings = said(at.warning)
    assert any("filters take masked values only" in w for w in warnings), warnings
    assert not [s for s in said(at.subheader) if "Remote host" in s]
    assert not any(guess in t for t in [*said(at.warning), *said(at.caption),
                                        *said(at.info), *said(at.error)])
    # The profile box: the same answer for any address that is not an alias.
    at.text_input(key="rh_profile_search").input(guess).run()
    assert not at.exception
    answer = [w for w in said(at.warning) if "not a masked remote address" in w]
    assert answer == ["That is not a masked remote address: with masking on, open a "
                      "profile from a table or a masked link."], said(at.warning)
    assert not [s for s in said(at.subheader) if "Remote host" in s]


def test_the_presenters_masking_still_turns_a_real_address_into_its_alias(root):
    """The analyst who turns masking on (and may turn it off) keeps the convenience."""
    at = signed_in(BOB, REMOTES, **days_link(FIXED_DAY), remote="176.123.8.71", mask="true")
    assert at.session_state["remote"].startswith("2001:db8::")
    assert any("Remote host 2001:db8::" in s for s in said(at.subheader))


# ------------------------------------------------------------------ 5. files built later
def _built(captured: dict, suffix: str):
    name = next(n for n in captured if n.endswith(suffix))
    return name, captured[name]()


def test_a_pack_built_after_the_session_expired_is_refused(root, monkeypatch,
                                                           captured_downloads):
    """Reproduced: a token 11 h 59 min 57 s old drew the page; 5 s later the evidence pack
    still built a full zip and audited it. The build checks the session when it runs."""
    late = claims("bob@corp.example", groups=["soc"], age_h=12 - 3 / 3600)
    at = signed_in(late, TOXIC, **days_link(INCIDENT_DAY))
    assert at.dataframe and not at.warning
    monkeypatch.setattr(clock, "wall", lambda: PINNED + timedelta(seconds=5))
    name, data = _built(captured_downloads, ".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["REFUSED.txt"]
        assert "session has expired" in zf.read("REFUSED.txt").decode()
    csv = _built(captured_downloads, ".csv")[1]
    assert pl.read_csv(io.BytesIO(csv if isinstance(csv, bytes) else csv.encode())
                       ).columns == ["refused"]
    events = audit_lines(root)
    assert not [e for e in events if e["event"] in ("evidence_pack", "export")]
    assert any(e["event"] == "denied" and "expired" in e.get("reason", "") for e in events)


def test_a_download_after_the_rule_is_removed_is_refused(root, captured_downloads):
    at = signed_in(BOB, TOXIC, **days_link(INCIDENT_DAY))
    assert at.dataframe
    policy = EXAMPLE_POLICY.replace('group = "soc"', 'group = "soc-retired"')
    (root / "access.toml").write_text(policy)
    _, data = _built(captured_downloads, ".parquet")
    assert pl.read_parquet(io.BytesIO(data)).columns == ["refused"]
    (root / "access.toml").write_text(EXAMPLE_POLICY)
    _, data = _built(captured_downloads, ".parquet")
    assert pl.read_parquet(io.BytesIO(data)).height == len(
        [r for r in day_rows(INCIDENT_DAY) if r["toxic"]])


def test_a_viewer_grant_cannot_build_an_unmasked_file(root, captured_downloads):
    at = signed_in(ALICE, TOXIC, **days_link(INCIDENT_DAY))
    assert at.dataframe
    (root / "access.toml").write_text(
        '[[rule]]\nemail = "alice@corp.example"\nrole = "viewer"\nsensors = ["*"]\n')
    _, data = _built(captured_downloads, ".csv")
    text = data.decode() if isinstance(data, bytes) else data
    assert text.startswith("refused") and "masked identifiers only" in text


# ------------------------------------------------------------------ 6. make serve on loopback
def test_a_hosted_server_on_loopback_without_sign_in_shows_no_data(root, api, monkeypatch):
    """Reproduced: a real key, no [auth], `make serve` bound to 127.0.0.1 (the deploy
    README's systemd setup behind a proxy) served every sensor with no banner."""
    import streamlit as st

    use_real_key(monkeypatch, "a-real-key-0123456789")
    monkeypatch.setattr(st, "get_option", lambda name, _get=st.get_option:
                        "127.0.0.1" if name == "server.address" else _get(name))
    monkeypatch.setenv("FLUX_HOSTED", "1")  # what serve.py hands the app
    at = signed_in(None, auth=False, **days_link(FIXED_DAY))
    assert any("FLUX_ALLOW_ANONYMOUS=1" in e for e in said(at.error)), said(at.error)
    assert not at.metric and api.requests == []
    monkeypatch.delenv("FLUX_HOSTED")  # `make run`: this machine only, no sign-in
    assert signed_in(None, auth=False, **days_link(FIXED_DAY)).metric


# ------------------------------------------------------------------ 7. filters before masking
def test_identifier_filters_typed_before_masking_become_aliases(root):
    """Reproduced: with a MAC filter set, turning masking on left the real MAC in the
    caption, in the box and in the link. Now every identifier filter is converted."""
    at = signed_in(BOB, **days_link(INCIDENT_DAY), device="192.168.1.102",
                   remote="176.123.8.71")
    rows = [r for r in day_rows(INCIDENT_DAY) if r["ip0"] == "192.168.1.102"]
    mac = rows[0]["last_mac_address"]
    at.sidebar.text_input(key="mac").set_value(mac.upper()).run()
    flows = at.metric[0].value
    assert mac.upper() in plain(at.caption[0].value) or mac in plain(at.caption[0].value)
    at.sidebar.toggle(key="mask").set_value(True).run()
    assert not at.exception
    caption = plain(at.caption[0].value)
    for real in (mac, mac.upper(), "192.168.1.102", "176.123.8.71"):
        assert real not in caption, caption
    assert at.sidebar.text_input(key="mac").value.startswith("02:")
    assert at.sidebar.text_input(key="remote").value.startswith("2001:db8::")
    assert at.session_state["device"][0].startswith("24")
    assert at.metric[0].value == flows  # the same flows, in the masking's terms
    at.sidebar.toggle(key="mask").set_value(False).run()  # and back
    assert at.sidebar.text_input(key="remote").value == "176.123.8.71"
    assert at.session_state["device"] == ["192.168.1.102"]


# ------------------------------------------------------------------ 8. audit unavailable
def test_an_export_is_refused_when_its_audit_line_cannot_be_written(root, monkeypatch,
                                                                     captured_downloads):
    """Reproduced: with FLUX_AUDIT_FILE unwritable, an analyst's CSV export was served
    with no audit line, only a log warning. Hosted, it is refused with a plain message."""
    at = signed_in(BOB, TOXIC, **days_link(INCIDENT_DAY))
    assert at.dataframe
    trail = root / "audit.jsonl"  # now a folder: no line can be appended any more
    trail.unlink()
    trail.mkdir()
    _, data = _built(captured_downloads, ".csv")
    text = data.decode() if isinstance(data, bytes) else data
    assert text.startswith("refused") and "audit trail cannot be written" in text
    _, pack = _built(captured_downloads, ".zip")
    with zipfile.ZipFile(io.BytesIO(pack)) as zf:
        assert zf.namelist() == ["REFUSED.txt"]
    # A load that would fetch is refused too, with the same plain words.
    at = signed_in(BOB, TOXIC, **days_link(INCIDENT_DAY - timedelta(days=20)))
    assert any("audit trail cannot be written" in e for e in said(at.error)), said(at.error)
    assert not at.dataframe


# ------------------------------------------------------------------ own pass: a refresh
def test_a_whole_range_refresh_is_priced_as_a_cold_load_and_asks(root, api, monkeypatch):
    """Found in our own pass: "Refresh the whole range" fetches every hour again, but
    skipped the question and was priced as the (cached, free) load: a month refreshed
    with no question, stopped by the booking halfway. It asks first now."""
    warm = signed_in(BOB, range="Last 7 days")
    assert warm.metric
    monkeypatch.setenv("FLUX_CONFIRM_REQUESTS", "5")
    at = signed_in(BOB, range="Last 7 days")
    before = flux_requests(api)
    at.sidebar.button(key="refresh_all_btn").click().run()
    asked = [w for w in said(at.warning) if w.startswith("Refreshing the whole range needs")]
    assert asked, said(at.warning)
    cost = int(asked[0].split("about ")[1].split(" API")[0].replace(",", ""))
    assert cost > 20 and flux_requests(api) - before <= 8  # the estimate's counts only
    at.button(key="confirm_load").click().run()
    assert not at.exception and at.metric and not at.error
    assert flux_requests(api) - before > 20  # every hour again
    at.sidebar.button(key="refresh_all_btn").click().run()  # a new refresh asks again
    assert [w for w in said(at.warning) if w.startswith("Refreshing the whole range")]
