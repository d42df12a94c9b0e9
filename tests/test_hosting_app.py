"""Hosted use through AppTest: sign-in required, roles, per-sensor access, masked viewers, audit.

Sign-in is configured with an ``[auth]`` section (never contacted here:
``at.user`` stands for a signed-in user, as STACK.md 1.10b describes; the real
OIDC flow is tested in the browser suite). The data comes from the embedded
simulator, whose request log shows which sensors were asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator.world import FLEET
from tests.kit.apptest import APP, demo_api, said, use_real_key
from tests.kit.clock import PLAN, days_link, pinned_clock
from tests.kit.demo import FIXED_DAY
from tests.kit.hosting import ALICE, AUTH, BOB, CAROL, EVE, audit_lines, hosted, signed_in, user
from tests.kit.procs import free_port

POLICY = """
[[rule]]
email = "alice@corp.example"
role = "admin"
sensors = ["*"]

[[rule]]
group = "soc"
role = "analyst"
sensors = [54]

[[rule]]
domain = "customer.example"
role = "viewer"
sensors = [54]
"""
PAGES = ["pages/1_overview.py", "pages/2_devices.py", "pages/3_protocols.py",
         "pages/4_toxic.py", "pages/5_remotes.py", "pages/6_hunting.py",
         "pages/7_activity.py"]
run = signed_in


@pytest.fixture(scope="module", autouse=True)
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("hosting")
    with hosted(root, POLICY, FLUX_MASK_SECRET="hosting-test-mask-secret"):
        yield root


def sensor_requests(sensor_id: int) -> int:
    return sum(1 for path, _ in demo_api().requests
               if f"/sensors/{sensor_id}" in path)


def sidebar_sensors(at: AppTest) -> list[int]:
    """The sensor ids the picker offers (its labels end in "· #<id>[ · status]")."""
    # The picker's widget key is "sensor_id_masked" when masking is on (sidebar.py).
    pickers = [s for s in at.sidebar.selectbox if s.key in ("sensor_id", "sensor_id_masked")]
    assert len(pickers) == 1, [s.key for s in at.sidebar.selectbox]
    return [int(o.rsplit("#", 1)[1].split(" ")[0]) for o in pickers[0].options]


# ------------------------------------------------------------------ sign-in
@pytest.mark.parametrize("page", PAGES)
def test_every_page_requires_sign_in(page):
    at = run(None, page)
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe and not at.metric and not at.get("plotly_chart")
    assert not at.get("download_button")
    assert not at.sidebar.selectbox  # no sensor picker, no filters


def test_without_auth_the_demo_needs_no_sign_in():
    at = run(None, auth=False)
    assert at.title[0].value == "Overview" and at.metric
    assert "Not signed in" in " ".join(c.value for c in at.sidebar.caption)


def test_expired_session_must_sign_in_again():
    at = run(user("alice@corp.example", age_h=12.5))
    assert "expired" in at.warning[0].value
    assert [b.label for b in at.button] == ["Sign in again", "Sign out"]
    assert not at.metric
    fresh = run(user("alice@corp.example", age_h=11.5))
    assert fresh.metric


def test_unknown_user_gets_the_ask_an_administrator_page(env):
    at = run(EVE)
    assert "eve@else.example" in said(at.error)[0] and "Ask an administrator" in \
        said(at.error)[0]
    assert [b.label for b in at.button] == ["Sign out"]
    assert not at.metric and not at.sidebar.selectbox
    assert any(e["event"] == "denied" and e["user"] == "eve@else.example"
               for e in audit_lines(env))


def test_sidebar_shows_who_is_signed_in():
    at = run(BOB)
    shown = " ".join(said(at.sidebar.caption))
    assert "bob@corp.example · analyst" in shown
    assert "Sign out" in [b.label for b in at.sidebar.button]


# ------------------------------------------------------------------ per-sensor access
def test_sensor_picker_lists_only_allowed_sensors():
    assert sidebar_sensors(run(ALICE)) == [54, 77, *(f[0] for f in FLEET)]  # the demo fleet
    assert sidebar_sensors(run(BOB)) == [54]
    assert sidebar_sensors(run(CAROL)) == [54]


def test_denied_sensor_link_is_refused_without_a_request(env):
    before = sensor_requests(77)
    at = run(BOB, sensor="77")
    assert at.error and "not allowed to see sensor" in at.error[0].value
    assert not at.metric and not at.dataframe
    assert sensor_requests(77) == before
    page_text = " ".join(str(e.value) for e in [*at.error, *at.caption, *at.markdown])
    assert "Pharmacie" not in page_text  # sensor 77's name never shown
    assert any(e["event"] == "denied" and e.get("sensor") == 77 for e in audit_lines(env))
    # the admin may open it
    assert run(ALICE, sensor="77").metric


def test_activity_page_is_for_admins_only(env):
    admin = run(ALICE, "pages/7_activity.py")
    assert admin.title[0].value.endswith("Activity")
    events = set(admin.dataframe[0].value["event"])
    assert {"sign_in", "page_view"} <= events
    admin.selectbox(key="act_event").set_value("page_view").run()
    assert set(admin.dataframe[0].value["event"]) == {"page_view"}
    admin.selectbox(key="act_event").set_value("budget_refused").run()
    assert not admin.dataframe and "No event matches" in admin.info[0].value
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        run(BOB, "pages/7_activity.py")  # not in an analyst's navigation at all
    # The pages/ trap: the file run on its own (a fresh server's first request).
    direct = AppTest.from_file(str(Path(APP).parent / "pages" / "7_activity.py"),
                               default_timeout=120)
    direct.secrets["auth"] = AUTH
    direct.user = BOB
    direct.run()
    assert not direct.exception
    assert not any(t.value.endswith("Activity") for t in direct.title)
    assert not any("event" in d.value.columns for d in direct.dataframe)


# ------------------------------------------------------------------ masked viewers
def test_viewer_cannot_unmask_through_link_or_switch():
    plain = run(ALICE, "pages/2_devices.py")
    real_ips = set(plain.dataframe[0].value["ip0"])
    at = run(CAROL, "pages/2_devices.py", mask="false")
    toggle = at.sidebar.toggle(key="mask")
    assert toggle.value is True and toggle.disabled
    shown = set(at.dataframe[0].value["ip0"])
    assert shown and not shown & real_ips
    at.session_state["mask"] = False  # a forged widget update, as a crafted client could send
    at.run()
    assert not set(at.dataframe[0].value["ip0"]) & real_ips
    assert "Sensor-" in at.sidebar.selectbox(key="sensor_id_masked").options[0]


def test_viewer_downloads_and_evidence_pack_are_masked(env, captured_downloads):
    import io
    import zipfile
    from datetime import timedelta

    # Ordinary days are quiet (the last 24 h may hold a handful of toxic flows): open the
    # story's last brute-force day, a beacon day too, with dozens of toxic flows.
    day = PLAN.day(PLAN.bruteforce_days[-1])
    link = {"range": "Custom", "from_day": day.isoformat(), "from_hour": "00:00",
            "to_day": (day + timedelta(days=1)).isoformat(), "to_hour": "00:00"}
    got = captured_downloads
    real = run(ALICE, "pages/4_toxic.py", **link)
    originals = {v for col in ("ip0", "ip1") for v in real.dataframe[-1].value[col]}
    assert len(originals) > 5
    # Every real identifier of the sensor's LAN, not only the toxic rows' (the pack's
    # digest names devices with no toxic flow, e.g. "Télé salon (192.168.1.50)").
    site = demo_api().traffic.sites[54]
    lan = [d.ip for d in site.devices]
    names = {site.name, site.full_name} | {d.mac for d in site.devices} | {
        n for d in site.devices for n in (d.netbios, (d.custom or {}).get("name"))
        if n and len(n) >= 6}

    def leaks(body: str) -> list[str]:
        return [o for o in originals if o in body] + [n for n in names if n in body] + [
            ip for ip in lan if re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", body)]

    got.clear()
    run(CAROL, "pages/4_toxic.py", mask="false", **link)
    csv = next(f for n, f in got.items() if n.endswith(".csv"))()
    assert csv.count("\n") > 5 and not leaks(csv)
    assert csv.count("\n") == len(real.dataframe[-1].value) + 1  # header + the rows shown
    run(CAROL, "pages/1_overview.py", mask="false", **link)
    pack = next(f for n, f in got.items() if n.endswith(".zip"))
    z = zipfile.ZipFile(io.BytesIO(pack()))
    for member in z.namelist():
        body = z.read(member).decode(errors="replace")
        assert not leaks(body), member
    exports = [e for e in audit_lines(env) if e["user"] == "carol@customer.example"
               and e["event"] in ("export", "evidence_pack")]
    assert {e["event"] for e in exports} == {"export", "evidence_pack"}
    assert all(e["masked"] for e in exports)


def test_page_views_and_sign_ins_are_audited(env):
    run(BOB, "pages/4_toxic.py")
    mine = [e for e in audit_lines(env) if e["user"] == "bob@corp.example"]
    assert any(e["event"] == "sign_in" for e in mine)
    views = [e for e in mine if e["event"] == "page_view"]
    assert {"toxic", "overview"} <= {e["page"] for e in views}
    assert all(e["sensor"] == 54 and e["role"] == "analyst" and len(e["range"]) == 2
               for e in views)


def test_requests_are_metered_and_shown(env):
    from flux_dashboard.budget import Meter

    at = run(ALICE, "pages/6_hunting.py", range="Last 7 days")  # a cold window: requests
    usage = Meter(env / "cache" / "request-meter.json", clock=pinned_clock).usage(
        "alice@corp.example")
    assert usage.user_today > 0 and usage.today >= usage.user_today
    at.run()  # the sidebar is drawn before this run's loads: the next run shows them
    shown = " ".join(c.value for c in at.sidebar.caption)
    assert f"{usage.today:,} today" in shown
    # Data requests: rows (/flux) and the loader's hourly counts (/flux-hour-sensor).
    simulator_requests = sum(1 for path, _ in demo_api().requests
                             if "/flux" in path)
    assert usage.today <= simulator_requests


# ------------------------------------------------------------------ request budgets
@pytest.fixture
def api(monkeypatch, tmp_path):
    """The simulator over real HTTP (a URL without a key: no sign-in needed)."""
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, now=pinned_clock))
    served = sim.serve(port=0)
    monkeypatch.setenv("SERENICITY_API_URL", served.url)
    monkeypatch.setenv("FLUX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLUX_RATE_LIMIT", "60000")
    yield sim
    served.shutdown()


def flux_requests(sim) -> int:
    return sum(1 for path, _ in sim.requests if path.endswith("/flux"))


def test_a_big_load_asks_first_and_loads_on_confirmation(api, monkeypatch):
    monkeypatch.setenv("FLUX_CONFIRM_REQUESTS", "5")
    at = run(None, auth=False, range="Last 7 days")
    box = [w.value for w in at.warning if "API requests" in w.value]
    assert box and "hours are not cached yet" in box[0] and "requests/min" in box[0]
    assert not at.metric and not at.dataframe  # nothing loaded yet
    asked = flux_requests(api)
    assert 0 < asked <= 8  # the estimate's counts only
    at.button(key="confirm_load").click().run()
    assert not at.exception and at.metric
    assert flux_requests(api) > asked + 5
    # below the threshold: no question
    monkeypatch.setenv("FLUX_CONFIRM_REQUESTS", "100000")
    assert run(None, auth=False, range="Last 30 days").metric


def test_spent_budget_refuses_the_load_but_shows_cached_hours(api, monkeypatch, env):
    assert run(None, auth=False).metric  # last 24 hours, now cached
    monkeypatch.setenv("FLUX_USER_DAILY_BUDGET", "1")
    before = flux_requests(api)
    at = run(None, auth=False, range="Last 7 days")
    assert any("daily request budget is spent" in e.value for e in at.error)
    assert at.metric  # cached hours stay available
    assert any("cached hours only" in w.value for w in at.warning)
    assert flux_requests(api) - before <= 8  # the estimate, no load
    assert any(e["event"] == "budget_refused" for e in audit_lines(env))

    # Reruns of that cached-only view reuse one result (one token): no new copy of the
    # frame, prepared or not, per rerun.
    from flux_dashboard.ui import loading, state

    loading._PARTIAL.clear()
    at.run()
    assert len(loading._PARTIAL) == 1
    (first, *_), = loading._PARTIAL.values()
    derived = state._derived.currsize
    at.run()
    at.run()
    assert not at.exception and at.metric
    (again, *_), = loading._PARTIAL.values()
    assert again is first and len(loading._PARTIAL) == 1
    assert state._derived.currsize == derived, (state._derived.currsize, derived)


# ------------------------------------------------------------------ shared state (Redis)
def test_with_redis_the_app_counts_in_redis_and_a_dead_redis_is_a_plain_message(
        api, monkeypatch, redis_url):
    from flux_dashboard.shared import RedisMeter

    monkeypatch.setenv("FLUX_REDIS_URL", redis_url)
    monkeypatch.setenv("FLUX_CONFIRM_REQUESTS", "100000")
    at = run(None, auth=False, range="Last 24 hours")
    assert at.metric
    # Every request (rows, hourly counts, the sensor list) is counted once, in Redis.
    data = sum(1 for path, _ in api.requests if "/flux" in path or path.endswith("/sensors"))
    assert RedisMeter(redis_url, clock=pinned_clock).usage().today == data > 0


    monkeypatch.setenv("FLUX_REDIS_URL", f"redis://:pw-s3cret@127.0.0.1:{free_port()}/0")
    before = flux_requests(api)
    at = run(None, auth=False, range="Last 7 days")  # run() asserts: no exception box
    shown = [e.value.replace("\\", "") for e in at.error] + [c.value for c in at.caption]
    assert any("Redis at 127.0.0.1:" in m for m in shown), shown
    assert any("counters unavailable" in m for m in shown), shown
    assert not any("pw-s3cret" in m for m in shown)
    assert flux_requests(api) == before  # no request without the shared rate limit


# ------------------------------------------------------------------ no sign-in, real key
def test_a_real_key_served_beyond_loopback_without_sign_in_shows_no_data(api, monkeypatch):
    from streamlit import config

    use_real_key(monkeypatch, "a-real-key-0123456789")
    assert config.get_option("server.address") is None  # Streamlit's default: every interface
    at = run(None, auth=False)
    refusal = " ".join(e.value for e in at.error).replace("\\", "")  # markdown escapes
    assert "FLUX_ALLOW_ANONYMOUS=1" in refusal and "secrets.toml" in refusal
    assert not at.metric and not at.dataframe and not at.sidebar.selectbox
    assert not at.get("download_button")
    assert api.requests == []  # not even the sensor list
    assert "a-real-key" not in refusal

    monkeypatch.setenv("FLUX_ALLOW_ANONYMOUS", "1")  # explicit: data, and a banner
    # (A key: the app's clock is the real one. A closed day before the simulator's
    # pinned "now" has data whatever the real date.)
    at = run(None, auth=False, **days_link(FIXED_DAY))
    assert at.metric
    assert any("Anonymous access is on" in w.value for w in at.warning)
    at.switch_page("pages/2_devices.py").run()
    assert any("Anonymous access is on" in w.value for w in at.warning)  # on every page

    monkeypatch.delenv("FLUX_ALLOW_ANONYMOUS")
    import streamlit as st

    monkeypatch.setattr(st, "get_option", lambda name, _get=st.get_option:
                        "127.0.0.1" if name == "server.address" else _get(name))
    at = run(None, auth=False, **days_link(FIXED_DAY))  # `make run`: loopback, no sign-in
    assert at.metric and not any("Anonymous" in w.value for w in at.warning)


def test_session_length_is_the_setting(monkeypatch):
    monkeypatch.setenv("FLUX_SESSION_HOURS", "2")
    at = run(user("alice@corp.example", age_h=2.5))
    assert "expired" in at.warning[0].value and "2 hours" in at.warning[0].value
    assert not at.metric
    assert run(user("alice@corp.example", age_h=1.5)).metric


@pytest.mark.parametrize("page", ["pages/1_overview.py", "pages/2_devices.py"])
def test_a_page_file_run_on_its_own_still_requires_sign_in(page):
    """The pages/ trap: a fresh server runs the page URL's file without the entrypoint."""
    direct = AppTest.from_file(str(Path(APP).parent / page), default_timeout=120)
    direct.secrets["auth"] = AUTH
    direct.run()
    assert not direct.exception, [e.message for e in direct.exception]
    assert [b.label for b in direct.button] == ["Sign in"]
    assert not direct.metric and not direct.dataframe and not direct.get("plotly_chart")
    assert not direct.sidebar.selectbox and not direct.get("download_button")


def test_the_monthly_quota_is_shown_as_used_of_quota(monkeypatch):
    monkeypatch.setenv("FLUX_MONTHLY_QUOTA", "5000")
    at = run(ALICE)
    assert any(" / 5,000 this month" in c.value for c in at.sidebar.caption), [
        c.value for c in at.sidebar.caption]
    admin = run(ALICE, "pages/7_activity.py")
    month = next(m for m in admin.metric if m.label == "This month")
    assert month.value.endswith(" / 5,000")
