"""Real-browser tests: Streamlit servers driven by Playwright and Debian's Chromium.

What they cover: every page renders in demo mode and against the simulator over
HTTP (charts, tables, metrics, no exception, no error alert); a sidebar filter
lands in the URL and that URL reproduces the view in a fresh browser; a page URL
as the very first request of a fresh server still gets the whole frame; HTML in
a device name stays text; demo masking leaves no original identifier in the page
or the URL; the CSV download holds exactly the rows the page says. Every page is
also saved as a screenshot under ``test-output/screenshots/``.

Waiting: after an action the script state is read from ``stApp`` (see
``wait_for_run``); content is then asserted with ``expect`` (auto-retrying),
never with fixed sleeps.
"""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from flux_dashboard.simulator import HTML_NAME

pytestmark = pytest.mark.browser

LOAD_TIMEOUT = 90_000  # a cold first load can take tens of seconds on a small machine
UI_TIMEOUT = 30_000
expect.set_options(timeout=15_000)

# (url path, h1, sidebar nav label, needs chart, needs table, needs metric)
PAGES = [
    ("", "Overview", "Overview", True, False, True),
    ("devices", "Devices", "Devices", True, True, True),
    ("protocols", "Protocols & ports", "Protocols & ports", True, True, False),
    ("toxic", "Toxic flows", "Toxic flows", True, True, False),
    ("remotes", "Remote hosts", "Remote hosts", True, True, False),
    ("hunting", "Threat hunting", "Threat hunting", False, True, False),  # metrics: in a tab
]
PAGE_IDS = [p[0] or "overview" for p in PAGES]

# st.error boxes that are findings shown by design, not failures.
EXPECTED_ERRORS = (
    re.compile(r"device\(s\) on the LAN reached out to toxic hosts"),
    re.compile(r"possible beaconing"),
)
ORIGINAL_IP = re.compile(r"192\.168\.1\.\d{1,3}")
ORIGINAL_NAMES = ("PC-Compta", "NAS-Synology", "Caméra", "SRV-AD01")


# ------------------------------------------------------------------ helpers
def wait_for_run(page: Page, action=None, timeout: int = LOAD_TIMEOUT) -> None:
    """Run ``action`` (if any) and wait until the Streamlit script run it caused is over."""
    app = page.get_by_test_id("stApp")
    if action is not None:
        action()
        try:  # the state stays "notRunning" for ~100-300 ms after an interaction
            expect(app).to_have_attribute("data-test-script-state", "running", timeout=2_000)
        except AssertionError:
            pass  # a very fast run may already be over
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout)
    expect(app).not_to_have_attribute("data-test-script-state", "compilationError", timeout=1)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)


def open_page(page: Page, url: str, h1: str) -> None:
    page.goto(url)
    wait_for_run(page)
    expect(page.locator("h1")).to_have_text(h1, timeout=UI_TIMEOUT)
    expect(sidebar(page).get_by_test_id("stSelectbox").filter(has_text="Sensor")).to_be_visible()


def assert_no_errors(page: Page) -> None:
    app = page.get_by_test_id("stApp")
    expect(app).not_to_have_attribute("data-test-script-state", "compilationError", timeout=1)
    expect(page.get_by_test_id("stException")).to_have_count(0, timeout=1)
    expect(page.get_by_test_id("stErrorCodeBlock")).to_have_count(0, timeout=1)
    expect(page.get_by_test_id("stDialog")).to_have_count(0, timeout=1)
    errors = page.get_by_test_id("stAlertContentError").all_inner_texts()
    unexpected = [e for e in errors if not any(p.search(e) for p in EXPECTED_ERRORS)]
    assert not unexpected, f"error alert(s) on {page.url}: {unexpected}"
    warnings = page.get_by_test_id("stAlertContentWarning").all_inner_texts()
    bad = [w for w in warnings if re.search(r"link|could not|went wrong|invalid", w, re.I)]
    assert not bad, f"warning(s) on {page.url}: {bad}"


def wait_for_charts(page: Page) -> None:
    """Plotly containers appear after the run ends; wait until each one has drawn."""
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.first).to_be_visible(timeout=UI_TIMEOUT)
    for i in range(charts.count()):
        expect(charts.nth(i).locator(".main-svg").first).to_be_attached(timeout=UI_TIMEOUT)


def metric_value(page: Page, label: str) -> Locator:
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
    return metric.first.get_by_test_id("stMetricValue")


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def nav_to(page: Page, label: str, h1: str) -> None:
    link = sidebar(page).get_by_test_id("stSidebarNavLink").filter(has_text=label)
    wait_for_run(page, link.click)
    expect(page.locator("h1")).to_have_text(h1, timeout=UI_TIMEOUT)


def rendered_text(page: Page) -> str:
    """What a viewer can read: main area + sidebar text, table cells, chart labels."""
    parts = [page.get_by_test_id("stMain").inner_text(), sidebar(page).inner_text()]
    # st.dataframe draws on a canvas; its accessible mirror table holds the cell text.
    parts += page.locator('[data-testid="stDataFrame"] table').all_text_contents()
    parts += page.locator('[data-testid="stPlotlyChart"] svg text').all_text_contents()
    return "\n".join(parts)


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


# ------------------------------------------------------------------ every page, both modes
@pytest.mark.parametrize(("path", "h1", "nav", "chart", "table_", "metric"), PAGES,
                         ids=PAGE_IDS)
def test_page_renders(page: Page, server, screenshot_dir, path, h1, nav, chart, table_,
                      metric):
    open_page(page, f"{server.url}/{path}", h1)
    source = {"demo": "Demo sensor, simulated data",
              "api": "Serenicity API · 127.0.0.1:"}[server.mode]
    expect(sidebar(page)).to_contain_text(source)
    expect(page.get_by_test_id("stSidebarNavLink")).to_have_count(len(PAGES))
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
    open_page(page, f"{server.url}/", "Overview")
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
    # The navigation lists the six app pages (not "app" + the files of pages/).
    links = page.get_by_test_id("stSidebarNavLink")
    expect(links).to_have_count(len(PAGES))
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
    drill = page.locator(".st-key-drill")
    drill.get_by_role("combobox").click()
    option = page.get_by_role("option").filter(has_text=literal)
    wait_for_run(page, option.click)
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


# ------------------------------------------------------------------ masking
def test_demo_masking_hides_identifiers_everywhere(page: Page, server, browser, screenshot_dir):
    open_page(page, f"{server.url}/", "Overview")
    # Unmasked, the originals are there (else the checks below would prove nothing).
    wait_for_charts(page)
    before = rendered_text(page)
    assert ORIGINAL_IP.search(before), "no original device IP on the unmasked Overview"

    mask = sidebar(page).get_by_role("switch", name="Demo masking")
    wait_for_run(page, lambda: mask.click(force=True))
    expect(page).to_have_url(re.compile(r"[?&]mask=true(&|$)"))
    expect(page.locator("h1")).to_have_text("Overview")

    for path, h1, nav, chart, table_, _metric in PAGES:
        if path:
            nav_to(page, nav, h1)
        assert query(page).get("mask") == ["true"], page.url
        if chart:
            wait_for_charts(page)
        if table_:
            expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
        text = rendered_text(page)
        assert not ORIGINAL_IP.findall(text), \
            f"{h1}: original IPs shown while masked: {sorted(set(ORIGINAL_IP.findall(text)))}"
        leaked = [n for n in ORIGINAL_NAMES if n in text]
        assert not leaked, f"{h1}: original names shown while masked: {leaked}"
        assert_no_errors(page)
        page.screenshot(path=str(screenshot_dir / f"{server.mode}-masked-{path or 'overview'}.png"))

    # Pick one device in the sidebar filter while masked: the link must not leak it.
    nav_to(page, "Devices", "Devices")
    page.locator(".st-key-device").get_by_role("combobox").click()
    options = page.get_by_role("option").filter(has_text=re.compile(r"\d+\.\d+\.\d+\.\d+"))
    expect(options.first).to_be_visible()
    chosen = options.first.inner_text().strip()
    wait_for_run(page, options.first.click)
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(r"[?&]device="))
    link = unquote(page.url)
    assert not ORIGINAL_IP.search(link), link
    assert not any(n in link for n in ORIGINAL_NAMES), link
    text = rendered_text(page)
    assert not ORIGINAL_IP.findall(text)
    assert_no_errors(page)

    # The masked link reproduces the selection in a fresh browser (no fallback warning).
    context = browser.new_context(viewport=page.viewport_size)
    try:
        other = context.new_page()
        open_page(other, page.url, "Devices")
        tags = other.locator(".st-key-device").get_by_test_id("stMultiSelectTagsContainer")
        expect(tags).to_contain_text(chosen)
        expect(other.get_by_test_id("stMain")).to_contain_text("masked")
        assert not ORIGINAL_IP.findall(rendered_text(other))
        assert_no_errors(other)
    finally:
        context.close()


# ------------------------------------------------------------------ downloads
def _caption_counts(page: Page) -> tuple[int, int]:
    caption = page.get_by_text(re.compile(r"[\d,]+ of [\d,]+ toxic flows"))
    expect(caption).to_be_visible()
    m = re.search(r"([\d,]+) of ([\d,]+) toxic flows", caption.inner_text())
    assert m
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def _download_csv(page: Page) -> list[list[str]]:
    button = page.get_by_test_id("stDownloadButton").filter(has_text="CSV")
    with page.expect_download(timeout=UI_TIMEOUT) as info:
        button.get_by_role("button").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8", newline="") as fh:
        return list(csv.reader(io.StringIO(fh.read())))


def test_toxic_csv_download_matches_caption(page: Page, server):
    open_page(page, f"{server.url}/toxic", "Toxic flows")
    shown, total = _caption_counts(page)
    assert shown == total > 0
    rows = _download_csv(page)
    header, data = rows[0], rows[1:]
    assert {"device_name", "ip0", "ip1"} <= set(header), header
    assert len(data) == shown

    # Narrow the table with its search box: the download follows.
    search = page.locator(".st-key-toxic_search").get_by_role("textbox")
    search.fill("Command center")
    wait_for_run(page, lambda: search.press("Enter"))
    expect(page.get_by_text(re.compile(rf"[\d,]+ of {total:,} toxic flows"))).not_to_have_text(
        re.compile(rf"^{total:,} of"))
    shown2, total2 = _caption_counts(page)
    assert 0 < shown2 < total2 == total
    rows = _download_csv(page)
    assert rows[0] == header
    assert len(rows) - 1 == shown2
    assert all(any("Command center" in cell for cell in r) for r in rows[1:])
    assert_no_errors(page)


# ------------------------------------------------------------------ server logs
def test_server_logs_have_no_traceback(demo_server, api_server):
    """Runs last: nothing the suite did made a server log a traceback."""
    for s in (demo_server, api_server):
        log = s.log_text()
        assert "Traceback" not in log, f"{s.mode} server log:\n{log[-4000:]}"
