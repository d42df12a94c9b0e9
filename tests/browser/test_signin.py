"""Real sign-in in Chromium: a local OIDC provider, the app started by ``make serve``'s module.

The provider is ``oidc-provider-mock`` on a free loopback port, with four
users: an admin, an analyst (group ``soc``), a viewer (verified email of the
customer's domain) and a stranger. The app is started the hosted way,
``python -m flux_dashboard.serve`` (startup check, production flags), with the
example access policy of the repo and an ``[auth]`` section pointing at the
provider, reading a simulator served over real HTTP. The browser opens the
app at ``localhost`` (the origin must match ``redirect_uri``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_kit import LOAD_TIMEOUT, choose, download, read_csv, wait_for_run
from playwright.sync_api import Browser, Page, expect
from servers import Server, register

from tests.kit.clock import PINNED_ISO, days_query
from tests.kit.demo import INCIDENT_DAY
from tests.kit.procs import ROOT, StreamlitServer, scrubbed_env
from tests.kit.services import WebhookReceiver

pytestmark = pytest.mark.browser

USERS = {
    "alice": {"email": "alice@corp.example", "email_verified": True, "groups": ["it"],
              "name": "Alice Admin"},
    "bob": {"email": "bob@corp.example", "email_verified": True, "groups": ["soc"],
            "name": "Bob Analyst"},
    "carol": {"email": "carol@customer.example", "email_verified": True, "groups": [],
              "name": "Carol Viewer"},
    "eve": {"email": "eve@else.example", "email_verified": True, "groups": [],
            "name": "Eve Stranger"},
}


@dataclass
class Hosted:
    """A server started by ``make serve``'s module, in the suite's log registry."""

    server: Server
    audit_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    def log(self) -> str:
        return self.server.log_text()

    def audit(self) -> list[dict]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def oidc() -> Iterator[str]:
    import oidc_provider_mock

    users = [oidc_provider_mock.User(sub=u["email"], claims=u) for u in USERS.values()]
    with oidc_provider_mock.run_server_in_thread(port=0, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def start_hosted(workdir: Path, oidc_url: str, api_url: str,
                 extra_env: dict[str, str] | None = None) -> Hosted:
    """``make serve``'s module with the repo's example policy and an ``[auth]`` pointing
    at the local provider; its log is checked after every test."""
    workdir.mkdir(parents=True, exist_ok=True)
    audit = workdir / "audit.jsonl"
    secrets = workdir / "secrets.toml"

    def command(port: int) -> tuple[list[str], dict[str, str]]:
        # redirect_uri names the port, chosen by the kit: written just before the start.
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{"k" * 48}"\n'
            'client_id = "flux-dashboard"\n'
            'client_secret = "flux-test-client-secret"\n'
            f'server_metadata_url = "{oidc_url}/.well-known/openid-configuration"\n')
        return [sys.executable, "-m", "flux_dashboard.serve"], {"FLUX_PORT": str(port)}

    env = scrubbed_env({
        "FLUX_SECRETS_FILE": str(secrets), "FLUX_ADDRESS": "127.0.0.1",
        "FLUX_ACCESS_FILE": str(ROOT / "deploy" / "access.example.toml"),
        "FLUX_AUDIT_FILE": str(audit), "FLUX_CACHE_DIR": str(workdir / "cache"),
        "SERENICITY_API_URL": api_url, "AUTHLIB_INSECURE_TRANSPORT": "1",
        "FLUX_NOW": PINNED_ISO, "HOME": str(workdir), **(extra_env or {})})
    # localhost, not 127.0.0.1: the browser's origin must match redirect_uri
    server = StreamlitServer.start(workdir, env, mode="hosted", command=command,
                                   host="localhost")
    return Hosted(register(server), audit)


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def hosted(tmp_path_factory, oidc, simulator_api, hook) -> Iterator[Hosted]:
    workdir = tmp_path_factory.mktemp("hosted")
    routes = workdir / "routes.toml"
    routes.write_text('[routes.soc]\nsensors = [54]\nurls = ["SOC_HOOK"]\n', encoding="utf-8")
    server = start_hosted(workdir, oidc, simulator_api.url, {
        "FLUX_NOTIFY_FILE": str(routes), "SOC_HOOK": hook.url("hook-s3cret")})
    yield server
    server.stop()


def sign_in(page: Page, base: str, who: str, path: str = "") -> None:
    page.goto(f"{base}/{path}")
    wait_for_run(page)
    button = page.get_by_role("button", name="Sign in")
    expect(button).to_be_visible(timeout=LOAD_TIMEOUT)
    button.click()
    page.wait_for_url("**/oauth2/authorize**", timeout=30_000)
    page.locator(f'button[name="sub"][value="{USERS[who]["email"]}"]').click()
    page.wait_for_url(f"{base}/**", timeout=30_000)
    wait_for_run(page)


def sidebar_text(page: Page) -> str:
    """The sidebar as a reader sees it: without the invisible word joiners that
    keep an e-mail address (the signed-in user's) from becoming a mailto link."""
    return page.get_by_test_id("stSidebar").inner_text().replace("\u2060", "")


@pytest.fixture
def context_page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1500, "height": 2000})
    page = ctx.new_page()
    yield page
    ctx.close()


def test_analyst_signs_in_and_sees_data(hosted, context_page, screenshot_dir):
    page = context_page
    sign_in(page, hosted.url, "bob")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible(timeout=LOAD_TIMEOUT)
    side = sidebar_text(page)
    assert "bob@corp.example · analyst" in side
    assert "Activity" not in side  # admins only
    page.screenshot(path=str(screenshot_dir / "signin-analyst-overview.png"), full_page=True)
    events = [e for e in hosted.audit() if e["user"] == "bob@corp.example"]
    assert {"sign_in", "page_view"} <= {e["event"] for e in events}


def test_viewer_sees_only_masked_identifiers(hosted, context_page, tmp_path, screenshot_dir):
    page = context_page
    sign_in(page, hosted.url, "carol")
    # A shared link asking for the real names, on a day with toxic flows to list.
    page.goto(f"{hosted.url}/toxic?mask=false&{days_query(INCIDENT_DAY)}")
    wait_for_run(page)
    expect(page.get_by_role("heading", name="Toxic flows")).to_be_visible(timeout=LOAD_TIMEOUT)
    assert "carol@customer.example · viewer" in sidebar_text(page)
    text = page.locator("body").inner_text()
    assert not re.search(r"\b192\.168\.\d+\.\d+\b", text)
    assert "Pharmacie" not in text and "Cabinet Martin" not in text
    assert "mask=true" in page.url or "mask=false" not in page.url
    rows = read_csv(download(page, "toxic_dl_csv", tmp_path))
    assert rows
    for row in rows:
        assert not row["ip0"].startswith("192.168."), row
        assert re.fullmatch(r"2001:db8::[0-9a-f:]+", row["ip1"]), row
    page.screenshot(path=str(screenshot_dir / "signin-viewer-toxic.png"), full_page=True)
    exports = [e for e in hosted.audit() if e["event"] == "export"
               and e["user"] == "carol@customer.example"]
    assert exports and all(e["masked"] for e in exports)


def test_viewer_link_to_another_sensor_is_refused(hosted, context_page, api_simulator):
    """The example policy gives the viewer sensor 54 only: a link to 77 is refused."""
    page = context_page
    sign_in(page, hosted.url, "carol")
    asked = sum(1 for path, _ in api_simulator.requests if "/sensors/77" in path)
    page.goto(f"{hosted.url}/devices?sensor=77")
    wait_for_run(page)
    expect(page.get_by_text("not allowed to see sensor")).to_be_visible(timeout=LOAD_TIMEOUT)
    text = page.locator("body").inner_text()
    assert "Pharmacie" not in text and "Saint-Denis" not in text  # sensor 77's name
    assert page.get_by_test_id("stDataFrame").count() == 0
    assert page.get_by_test_id("stMetricValue").count() == 0
    assert sum(1 for path, _ in api_simulator.requests if "/sensors/77" in path) == asked
    # The picker offers the viewer's own sensor only, masked.
    combo = page.locator(".st-key-sensor_id_masked").get_by_role("combobox")
    combo.click()
    options = page.get_by_role("option").all_inner_texts()
    assert len(options) == 1 and "#54" in options[0] and "Cabinet" not in options[0], options
    page.keyboard.press("Escape")
    assert any(e["event"] == "denied" and e.get("sensor") == 77
               and e["user"] == "carol@customer.example" for e in hosted.audit())


def test_unknown_user_is_refused(hosted, context_page, screenshot_dir):
    page = context_page
    sign_in(page, hosted.url, "eve")
    expect(page.get_by_text("no sensor is shared with this account")).to_be_visible()
    assert page.get_by_test_id("stMetricValue").count() == 0
    page.screenshot(path=str(screenshot_dir / "signin-refused.png"), full_page=True)
    assert any(e["event"] == "denied" and e["user"] == "eve@else.example"
               for e in hosted.audit())


def test_admin_sees_the_activity_page(hosted, context_page, tmp_path):
    """The admin's Activity page: its filters narrow the trail to what the audit file
    holds, and its download holds what the caption counts."""
    page = context_page
    sign_in(page, hosted.url, "alice")
    link = page.get_by_test_id("stSidebarNavLink").filter(has_text="Activity")
    wait_for_run(page, link.click)
    expect(page.get_by_role("heading", name="Activity")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    caption = page.get_by_text(re.compile(r"^[\d,]+ of [\d,]+ events · newest first"))

    def shown() -> int:
        expect(caption).to_be_visible()
        return int(caption.inner_text().split()[0].replace(",", ""))

    everything = shown()
    alice = USERS["alice"]["email"]
    for event in ("sign_in", "page_view"):
        choose(page, "act_user", alice)
        choose(page, "act_event", event)
        n = shown()
        truth = [e for e in hosted.audit() if e["user"] == alice and e["event"] == event]
        # Every run records a page view, possibly after the page read the trail.
        assert 0 < n < everything and (n == len(truth) if event == "sign_in"
                                       else n <= len(truth) <= n + 1), (n, len(truth))
        rows = read_csv(download(page, "activity_dl_csv", tmp_path / event))
        assert len(rows) == n and {(r["user"], r["event"]) for r in rows} == {(alice, event)}
    choose(page, "act_user", "all")
    choose(page, "act_event", "all")
    assert shown() >= everything


def test_log_out_loses_access(hosted, context_page):
    page = context_page
    sign_in(page, hosted.url, "bob")
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible(timeout=LOAD_TIMEOUT)
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    # Streamlit clears its identity cookie, then sends the browser to the provider's
    # end-session page, which sends it back to the app.
    end = page.get_by_role("button", name="End session")
    expect(end).to_be_visible(timeout=LOAD_TIMEOUT)
    end.click()
    page.wait_for_url(f"{hosted.url}/**", timeout=30_000)
    page.goto(f"{hosted.url}/devices")
    wait_for_run(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=LOAD_TIMEOUT)
    assert page.get_by_test_id("stMetricValue").count() == 0
    assert any(e["event"] == "sign_out" and e["user"] == "bob@corp.example"
               for e in hosted.audit())


def test_page_url_as_first_request_of_a_fresh_server_goes_to_sign_in(
        tmp_path, oidc, simulator_api, context_page):
    server = start_hosted(tmp_path / "fresh", oidc, simulator_api.url)
    try:
        page = context_page
        page.goto(f"{server.url}/devices")
        wait_for_run(page)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=LOAD_TIMEOUT)
        assert page.get_by_test_id("stDataFrame").count() == 0
        assert page.get_by_test_id("stSidebarNavLink").count() == 0
    finally:
        server.stop()


def test_viewer_sees_finding_statuses_but_no_action_and_no_comment(hosted, context_page,
                                                                   screenshot_dir):
    """Carol (viewer) opens the Findings page: the detection stores the range's findings;
    an analyst then acknowledges the incident's one with a comment naming a person. Carol
    sees the new status, masked identifiers, no action, and the comment withheld."""
    import polars as pl

    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore
    from tests.kit.clock import PINNED, PLAN

    page = context_page
    sign_in(page, hosted.url, "carol")
    link = days_query(INCIDENT_DAY)  # a beacon day: the C2 contact is a finding
    page.goto(f"{hosted.url}/findings?{link}")
    wait_for_run(page)
    expect(page.get_by_text(re.compile(r"This range: [\d,]+ findings detected"))).to_be_visible(
        timeout=LOAD_TIMEOUT)
    store = FindingsStore(db.connect(
        f"sqlite:///{hosted.audit_path.parent / 'cache' / 'findings.sqlite3'}"))
    key = store.list(kinds=["toxic_out"]).filter(pl.col("ip1") == PLAN.c2_ip)["key"][0]
    store.change(key, 1, "bob@corp.example", "acknowledge",
                 comment="Call Jean Dupont before isolating", now=PINNED)

    from flux_dashboard.masking import Masker, load_secret

    secret = load_secret(hosted.audit_path.parent / "cache" / "mask-secret")
    alias = Masker(secret).mask_value("finding", key)  # a masked view's link holds it
    page.goto(f"{hosted.url}/findings?{link}&finding={alias}")
    wait_for_run(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(r"status \*?\*?Acknowledged"))).to_be_visible(
        timeout=LOAD_TIMEOUT)
    expect(main.get_by_text("Viewers see findings and their status; triage is for "
                            "analysts.")).to_be_visible()
    assert not main.get_by_role("button", name="Apply").count()
    assert not main.get_by_role("button", name="Assign to me").count()
    hist = page.locator(f".st-key-history_{key}")
    hist.scroll_into_view_if_needed()  # the grid draws its text mirror once in view
    expect(hist.locator("table")).to_contain_text("(hidden)")
    text = main.inner_text() + " ".join(
        page.locator('[data-testid="stDataFrame"] table').all_text_contents())
    assert "Jean Dupont" not in text and "bob@corp.example" not in text
    assert not re.search(r"\b192\.168\.\d+\.\d+\b", text) and PLAN.c2_ip not in text
    assert "acknowledged" in text
    page.screenshot(path=str(screenshot_dir / "signin-viewer-findings.png"), full_page=True)


def test_admin_sends_a_test_notification(hosted, context_page, hook, screenshot_dir):
    """The Notifications page: the route by service and host (never its URL), the preview
    of yesterday's digest from the cache (the Overview that sign-in lands on compared
    yesterday with a week before, so both days are cached: the preview spends nothing),
    and "Send a test message" clicked: the webhook receives it."""
    page = context_page
    sign_in(page, hosted.url, "alice")
    link = page.get_by_test_id("stSidebarNavLink").filter(has_text="Notifications")
    wait_for_run(page, link.click)
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible(
        timeout=LOAD_TIMEOUT)
    preview = page.locator(".st-key-notify_preview")
    expect(preview).to_contain_text("Flux daily digest", timeout=LOAD_TIMEOUT)
    expect(preview).to_contain_text("Flows: ")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    assert "hook-s3cret" not in page.content()
    page.screenshot(path=str(screenshot_dir / "notifications.png"), full_page=True)
    before = len(hook.received)
    wait_for_run(page, page.locator(
        ".st-key-FormSubmitter-notify_test-Send-a-test-message button").click)
    expect(page.get_by_text("Test message sent to soc (JSON · 127.0.0.1).")).to_be_visible(
        timeout=LOAD_TIMEOUT)
    assert len(hook.received) == before + 1
    path, body = hook.received[-1]
    assert path == "/hook-s3cret" and body["title"] == "Flux · test message to soc"
    assert any(e["event"] == "notification" and e["user"] == USERS["alice"]["email"]
               and e["status"] == "sent" for e in hosted.audit())

