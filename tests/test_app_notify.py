"""The Notifications page (admins only) through AppTest: the routes by service and host,
never their URLs; the demo's digest preview, masked on request; a test message clicked
and received by an HTTP webhook on loopback, then listed and audited; analysts refused;
a bad routes file said in one plain line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.kit.apptest import APP
from tests.kit.clock import PLAN
from tests.kit.hosting import ALICE, AUTH, BOB, audit_lines, hosted, signed_in
from tests.kit.services import WebhookReceiver

POLICY = """
[[rule]]
email = "alice@corp.example"
role = "admin"
sensors = ["*"]

[[rule]]
group = "soc"
role = "analyst"
sensors = [54]
"""
PAGE = "pages/9_notifications.py"
SECRET_PATH = "hook-s3cret-t0ken"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[tuple[Path, pytest.MonkeyPatch, WebhookReceiver]]:
    root = tmp_path_factory.mktemp("notify-app")
    hook = WebhookReceiver()
    routes = root / "routes.toml"
    routes.write_text('[routes.soc]\nsensors = [54]\nurls = ["SOC_HOOK"]\n\n'
                      '[routes.customer]\nurls = ["SOC_HOOK"]\nmasked = true\n'
                      'receives = ["daily"]\n', encoding="utf-8")
    with hosted(root, POLICY, FLUX_NOTIFY_FILE=str(routes),
                SOC_HOOK=hook.url(SECRET_PATH)) as mp:
        yield root, mp, hook
    hook.stop()


def page_text(at: AppTest) -> str:
    parts = [str(e.value) for e in [*at.markdown, *at.caption, *at.error, *at.info,
                                    *at.success, *at.code]]
    parts += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(parts)


def test_admin_sees_routes_previews_and_sends_a_test(env):
    root, _, hook = env
    at = signed_in(ALICE, PAGE)
    assert at.title[0].value.endswith("Notifications")
    routes = at.dataframe[0].value
    assert routes["route"].to_list() == ["soc", "customer"]
    assert routes["channels"].to_list() == ["JSON · 127.0.0.1"] * 2
    assert routes["masked"].to_list() == [False, True]
    assert SECRET_PATH not in page_text(at) and str(hook.port) not in page_text(at)
    assert "Nothing sent yet" in " ".join(i.value for i in at.info)

    # The demo's digest of yesterday, from its data: the story's calm day, with figures.
    preview = " ".join(m.value for m in at.markdown if "Flux daily digest" in m.value)
    assert "Tue 17 Nov 2026" in preview and "- Flows: " in preview
    # Day 0 - 6: the first contact with the command server and the beaconing.
    at.date_input(key="notify_day").set_value(PLAN.day(PLAN.first_day)).run()
    story = " ".join(m.value for m in at.markdown if "Flux daily digest" in m.value)
    assert "Beaconing" in story and f"→ {PLAN.c2_ip}" in story
    at.toggle(key="notify_masked").set_value(True).run()
    masked = " ".join(m.value for m in at.markdown if "Flux daily digest" in m.value)
    assert "Beaconing" in masked and "mask=true" in masked
    for real in (PLAN.c2_ip, PLAN.workstation_ip, PLAN.workstation_name):
        assert real not in masked

    before = len(hook.received)
    at.selectbox(key="notify_test_route").set_value("soc").run()
    at.button(key="FormSubmitter:notify_test-Send a test message").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == [
        "Test message sent to soc (JSON · 127.0.0.1)."]
    assert len(hook.received) == before + 1
    path, body = hook.received[-1]
    assert path == f"/{SECRET_PATH}" and body["title"] == "Flux · test message to soc"
    at.run()
    deliveries = at.dataframe[1].value
    assert deliveries[["route", "kind", "status", "attempts"]].values.tolist() == [
        ["soc", "test", "sent", 1]]
    events = [e for e in audit_lines(root) if e["event"] == "notification"]
    assert [(e["user"], e["route"], e["kind"], e["status"]) for e in events] == [
        ("alice@corp.example", "soc", "test", "sent")]
    assert SECRET_PATH not in (root / "audit.jsonl").read_text()


def test_analysts_never_reach_the_page(env):
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        signed_in(BOB, PAGE)
    direct = AppTest.from_file(str(Path(APP).parent / "pages" / "9_notifications.py"),
                               default_timeout=120)
    direct.secrets["auth"] = AUTH
    direct.user = BOB
    direct.run()
    assert not direct.exception
    assert not any(t.value.endswith("Notifications") for t in direct.title)
    assert SECRET_PATH not in page_text(direct)


def test_a_bad_routes_file_is_one_plain_message(env):
    root, mp, _ = env
    bad = root / "bad.toml"
    bad.write_text('[routes.soc]\nurls = ["json://u:pw-777@127.0.0.1:9/x"]\n', encoding="utf-8")
    mp.setenv("FLUX_NOTIFY_FILE", str(bad))
    try:
        at = signed_in(ALICE, PAGE)
        assert not at.exception
        assert "Name each Apprise URL" in at.error[0].value
        assert "pw-777" not in page_text(at)
    finally:
        mp.setenv("FLUX_NOTIFY_FILE", str(root / "routes.toml"))
