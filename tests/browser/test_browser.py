"""Real-browser tests: Streamlit servers driven by Playwright and Debian's Chromium.

What they cover here: every page renders in demo mode and against the simulator
over HTTP (charts, tables, metrics, no exception, no error alert); a sidebar
filter lands in the URL and that URL reproduces the view in a fresh browser; a
page URL as the very first request of a fresh server still gets the whole frame;
HTML in a device name stays text. Every page is also saved as a screenshot under
``test-output/screenshots/``. Controls are in ``test_controls.py``, downloads and
masking in ``test_downloads.py``; helpers in ``browser_kit.py``. Any traceback in
any server's log fails the test that was running (``conftest.server_logs_clean``).
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

import pytest
from browser_kit import (
    NAV_LABELS,
    PAGE_IDS,
    PAGES,
    UI_TIMEOUT,
    assert_no_errors,
    choose,
    metric_value,
    open_page,
    query,
    sidebar,
    wait_for_charts,
    wait_for_run,
)
from playwright.sync_api import Page, expect
from servers import STARTED, Server, server_log_tracebacks

from flux_dashboard.simulator import HTML_NAME
from tests.kit.clock import days_before, days_query
from tests.kit.demo import INCIDENT_DAY

pytestmark = pytest.mark.browser


# ------------------------------------------------------------------ every page, both modes
# The toxic and hunting pages open the incident's last brute-force day: an ordinary day
# may have no toxic flow to chart and no storyline to list.
PAGE_QUERY = {"toxic": days_query(INCIDENT_DAY), "hunting": days_query(INCIDENT_DAY)}


@pytest.mark.parametrize(("path", "h1", "nav", "chart", "table_", "metric"), PAGES,
                         ids=PAGE_IDS)
def test_page_renders(page: Page, server, screenshot_dir, path, h1, nav, chart, table_,
                      metric):
    query = f"?{PAGE_QUERY[path]}" if path in PAGE_QUERY else ""
    open_page(page, f"{server.url}/{path}{query}", h1)
    source = {"demo": "Demo sensor, simulated data",
              "api": "Serenicity API · 127.0.0.1:"}[server.mode]
    expect(sidebar(page)).to_contain_text(source)
    expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(len(NAV_LABELS))
    if chart:
        wait_for_charts(page)
    if table_:
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=UI_TIMEOUT)
    if metric:
        expect(page.get_by_test_id("stMetricValue").first).to_be_visible(timeout=UI_TIMEOUT)
    if path == "":
        for label in ("Flows", "Bytes in", "Bytes out", "Devices", "Toxic OUT"):
            expect(metric_value(page, label)).to_have_text(re.compile(r"\d"))
    assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / f"{server.mode}-{path or 'overview'}.png"))


# ------------------------------------------------------------------ filters in the URL
def test_filter_lands_in_url_and_link_reproduces_view(page: Page, server, browser):
    # A week: it holds the demo story's beacon days, so toxic OUT flows exist (the last
    # 24 hours of the story are quiet: inbound scans only).
    open_page(page, f"{server.url}/?{days_before(7)}", "Overview")  # closed hours: counts stay put
    flows = metric_value(page, "Flows")
    expect(flows).to_have_text(re.compile(r"^\d[\d,]*$"))
    all_flows = flows.inner_text()

    toxic = sidebar(page).get_by_role("switch", name="Toxic flows only")
    wait_for_run(page, lambda: toxic.click(force=True))
    expect(page).to_have_url(re.compile(r"[?&]toxic=true(&|$)"))
    expect(toxic).to_be_checked()
    expect(flows).not_to_have_text(all_flows)
    toxic_flows = flows.inner_text()

    out = sidebar(page).locator(".st-key-dir").get_by_role("radio", name="OUT")
    wait_for_run(page, out.click)
    expect(page).to_have_url(re.compile(r"[?&]dir=OUT(&|$)"))
    expect(flows).not_to_have_text(toxic_flows)
    shown = flows.inner_text()
    assert int(shown.replace(",", "")) < int(toxic_flows.replace(",", "")) \
        < int(all_flows.replace(",", ""))
    assert_no_errors(page)
    link = page.url

    context = browser.new_context(viewport=page.viewport_size)
    try:
        other = context.new_page()
        open_page(other, link, "Overview")
        expect(sidebar(other).get_by_role("switch", name="Toxic flows only")).to_be_checked()
        expect(sidebar(other).locator(".st-key-dir").get_by_role("radio", name="OUT")) \
            .to_have_attribute("aria-checked", "true")
        expect(metric_value(other, "Flows")).to_have_text(shown)
        assert query(other) == query(page)
        assert_no_errors(other)
    finally:
        context.close()


# ------------------------------------------------------------------ first request, fresh server
@pytest.mark.parametrize(("path", "h1"), [("devices", "Devices"), ("hunting", "Threat hunting"),
                                          ("toxic", "Toxic flows")])
def test_page_url_as_first_request_gets_the_frame(page: Page, fresh_server, path, h1):
    server = fresh_server()
    open_page(page, f"{server.url}/{path}", h1)
    expect(page.locator("h1")).to_have_count(1)  # rendered once, not Overview + page
    sb = sidebar(page)
    expect(sb).to_contain_text("Demo sensor, simulated data")
    expect(sb.get_by_test_id("stSelectbox").filter(has_text="Sensor")).to_be_visible()
    expect(sb.get_by_role("switch", name="Demo masking")).to_be_attached()
    # The navigation lists the app's pages (not "app" + the files of pages/).
    links = page.get_by_test_id("stSidebarNavLink")
    expect(links).to_have_count(len(NAV_LABELS))
    expect(links.filter(has_text=h1)).to_have_count(1)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    assert urlsplit(page.url).path == f"/{path}"
    assert_no_errors(page)


# ------------------------------------------------------------------ safety
def test_html_device_name_renders_as_text(page: Page, demo_server):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_page(page, f"{demo_server.url}/devices", "Devices")
    wait_for_charts(page)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    literal = "<img src=x onerror=alert(1)>"
    # In the chart labels and in the device table (its accessible mirror).
    expect(page.locator('[data-testid="stPlotlyChart"] svg text')
           .filter(has_text=literal).first).to_be_attached()
    expect(page.locator('[data-testid="stDataFrame"] table').first).to_contain_text(HTML_NAME)

    # Drill into that device: its name is a markdown heading there.
    choose(page, "drill", "192.168.1.30")
    heading = page.get_by_test_id("stMain").locator("h4").filter(has_text="Caméra")
    expect(heading).to_contain_text(HTML_NAME)
    expect(heading).to_be_visible()
    wait_for_charts(page)

    main = page.get_by_test_id("stMain")
    assert literal in main.inner_text()
    expect(page.locator('img[src="x"]')).to_have_count(0)
    expect(main.locator("b", has_text="Caméra")).to_have_count(0)
    expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
    assert_no_errors(page)
    assert dialogs == []


# ------------------------------------------------------------------ the server-log check
def test_log_check_reads_every_server_from_where_it_stopped(tmp_path):
    """The autouse check sees a traceback in any registered server's log, once."""
    log = tmp_path / "server.log"
    log.write_text("started\n")
    fake = Server("http://127.0.0.1:9", subprocess.Popen(["true"]), log, "fake")
    fake.proc.wait()
    STARTED.append(fake)
    try:
        assert server_log_tracebacks(only=[fake]) == []
        with log.open("a") as fh:
            fh.write("Traceback (most recent call last):\n  boom\n")
        found = server_log_tracebacks(only=[fake])
        assert len(found) == 1 and "boom" in found[0]
        assert server_log_tracebacks(only=[fake]) == []  # each line is read once
    finally:
        STARTED.remove(fake)


def test_every_server_a_test_starts_is_checked(tmp_path, monkeypatch, request):
    """``start_server`` registers every server, shared or fresh, and the autouse check
    (``server_log_tracebacks()`` with no argument) reads all of them, not only the two
    shared ones: a traceback in the third server started is found. No process is
    started (Popen and the health check are stand-ins)."""
    import httpx
    import servers

    from tests.kit import procs

    class Running:  # a child that is up until stopped
        def poll(self):
            return None

        def terminate(self):
            pass

        def send_signal(self, sig):
            pass

        def wait(self, timeout=None):
            return 0

    assert "server_logs_clean" in request.fixturenames  # autouse: runs after every test
    monkeypatch.setattr(procs.subprocess, "Popen", lambda *a, **k: Running())
    monkeypatch.setattr(procs.httpx, "get", lambda *a, **k: httpx.Response(200, text="ok"))
    started = [servers.start_server(tmp_path / f"s{i}", "demo") for i in range(3)]
    try:
        assert STARTED[-3:] == started
        with started[2].log_path.open("a") as fh:
            fh.write("Traceback (most recent call last):\n  third server boom\n")
        found = [f for f in server_log_tracebacks() if "third server boom" in f]
        assert len(found) == 1 and started[2].url in found[0]
    finally:
        for s in started:
            if s in STARTED:
                STARTED.remove(s)
