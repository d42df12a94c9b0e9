"""Every download, clicked in Chromium and opened; the same with masking on.

- Toxic flows: CSV and Parquet hold exactly the rows the caption says are shown
  (and the table's own CSV export too), through the "critical only", "not
  blocked" and search controls, and each row satisfies them.
- Threat storylines: CSV and Parquet rows = the rows of the table shown.
- Remote hosts: CSV and Parquet rows = the caption's count, with and without
  the filter box.
- Evidence packs (sensor, device): the zip holds the three CSVs (row counts =
  the page's metrics and tables), the digest, a README and an HTML report
  that opens in an offline browser, draws its charts, asks for nothing on the
  network, and shows API strings (device names with HTML) as text.
- Masked: every page, its URL and every file of every download (each member
  of the evidence pack, each table export) hold none of the original
  identifiers, taken from the simulator itself (``originals``).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from browser_kit import (
    PACK_FIGURES,
    PAGES,
    assert_no_errors,
    check_pack,
    check_report,
    choose,
    dataframes,
    download,
    expect_rows,
    file_texts,
    fill_text,
    header_caption,
    metric_int,
    nav_to,
    open_offline,
    open_page,
    query,
    read_csv,
    read_parquet,
    read_zip,
    rendered_text,
    set_toggle,
    table_rows,
    table_toolbar,
    wait_for_charts,
    wait_for_run,
    widget,
)
from playwright.sync_api import Locator, Page, expect

from flux_dashboard.simulator import HTML_NAME
from tests.kit.clock import days_before, days_query
from tests.kit.demo import INCIDENT_DAY

pytestmark = pytest.mark.browser

# ------------------------------------------------------------------ toxic table
def _toxic_counts(page: Page) -> tuple[int, int]:
    caption = page.get_by_text(re.compile(r"[\d,]+ of [\d,]+ toxic flows"))
    expect(caption).to_be_visible()
    m = re.search(r"([\d,]+) of ([\d,]+) toxic flows", caption.inner_text())
    assert m
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def _toxic_downloads(page: Page, table: Locator, dest: Path, shown: int) -> list[dict]:
    """CSV and Parquet: each holds exactly ``shown`` rows. The table's toolbar offers no
    export of its own (it would skip the audit and the formula guard)."""
    expect_rows(table, shown)
    rows = read_csv(download(page, "toxic_dl_csv", dest))
    assert len(rows) == shown, f"CSV has {len(rows)} rows, the page shows {shown}"
    frame = read_parquet(download(page, "toxic_dl_pq", dest))
    assert frame.height == shown, f"Parquet has {frame.height} rows, the page shows {shown}"
    if rows:
        assert frame.columns == list(rows[0])
    toolbar = table_toolbar(page, table)
    expect(toolbar.get_by_role("button", name="Download as CSV")).to_have_count(0)
    return rows


@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_toxic_table_toggles_search_and_downloads(page: Page, server, tmp_path):
    # A week of the demo story: the C2 beacon (critical, partly blocked) and a
    # bruteforce wave (not critical) give both toggles something to remove.
    open_page(page, f"{server.url}/toxic?{days_before(7)}", "Toxic flows")  # totals stay put
    table = dataframes(page).last
    shown, total = _toxic_counts(page)
    assert shown == total > 0
    rows = _toxic_downloads(page, table, tmp_path / "all", total)
    assert {"device_name", "ip0", "ip1", "threats", "critical", "filtered"} <= set(rows[0])
    n_critical = sum(r["critical"] == "true" for r in rows)
    n_open = sum(r["filtered"] == "false" for r in rows)
    assert 0 < n_critical < total and 0 < n_open < total, "the toggles would prove nothing"

    set_toggle(page, "toxic_critical", True)
    expect(page.get_by_text(f"{n_critical:,} of {total:,} toxic flows", exact=False)) \
        .to_be_visible()
    rows = _toxic_downloads(page, table, tmp_path / "critical", n_critical)
    assert all(r["critical"] == "true" for r in rows)

    set_toggle(page, "toxic_unblocked", True)
    shown, _ = _toxic_counts(page)
    assert shown <= min(n_critical, n_open)
    rows = _toxic_downloads(page, table, tmp_path / "critical-open", shown)
    assert all(r["critical"] == "true" and r["filtered"] == "false" for r in rows)
    # The rows drawn in the grid satisfy the filters too (its accessible mirror, which
    # holds the columns in view: scroll the grid to its last columns first).
    table.hover()
    page.mouse.wheel(4000, 0)
    filtered_col = table.locator('th', has_text="Filtered").get_attribute("aria-colindex")
    cells = table.locator(f'td[aria-colindex="{filtered_col}"]').all_text_contents()
    assert all(c == "false" for c in cells), cells
    assert cells or shown == 0

    set_toggle(page, "toxic_critical", False)
    expect(page.get_by_text(f"{n_open:,} of {total:,} toxic flows", exact=False)).to_be_visible()
    set_toggle(page, "toxic_unblocked", False)
    expect(page.get_by_text(f"{total:,} of {total:,} toxic flows", exact=False)).to_be_visible()

    # The search box narrows the table; the downloads follow.
    search = widget(page, "toxic_search").get_by_role("textbox")
    search.fill("Command center")
    search.press("Enter")
    expect(page.get_by_text(f"{total:,} of {total:,} toxic flows", exact=False)) \
        .to_have_count(0)
    shown, _ = _toxic_counts(page)
    assert 0 < shown < total
    rows = _toxic_downloads(page, table, tmp_path / "search", shown)
    assert all("Command center" in r["threats"] for r in rows)
    assert_no_errors(page)


# ------------------------------------------------------------------ storylines
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_storyline_downloads_match_the_table(page: Page, server, tmp_path):
    # The incident's beacon day: storylines to list (an ordinary day may have none).
    open_page(page, f"{server.url}/hunting?{days_query(INCIDENT_DAY)}", "Threat hunting")
    panel = page.get_by_test_id("stTabPanel").filter(has=widget(page, "stories_dl_csv"))
    table = panel.get_by_test_id("stDataFrame")
    shown = table_rows(table)
    assert shown > 0
    rows = read_csv(download(page, "stories_dl_csv", tmp_path))
    frame = read_parquet(download(page, "stories_dl_pq", tmp_path))
    assert len(rows) == frame.height == shown
    assert {"device_name", "ip0", "ip1", "threats", "regularity"} <= set(rows[0])
    assert_no_errors(page)



# ------------------------------------------------------------------ remote hosts
@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_remote_host_downloads_follow_the_filter(page: Page, server, tmp_path):
    """CSV and Parquet of the Remote hosts table hold the rows its caption counts, before
    and after the filter box; the filtered rows are those holding the text in their IP,
    owner or country (counted here from the unfiltered file)."""
    open_page(page, f"{server.url}/remotes?{days_before(1)}", "Remote hosts")  # total kept
    count = page.get_by_text(re.compile(r"^[\d,]+ (of [\d,]+ )?public IPs · \d+ countries"))
    expect(count).to_be_visible()
    total = int(count.inner_text().split()[0].replace(",", ""))
    rows = read_csv(download(page, "remote_dl_csv", tmp_path / "all"))
    assert len(rows) == total > 0
    assert read_parquet(download(page, "remote_dl_pq", tmp_path / "all")).height == total

    def holds(row: dict, needle: str) -> bool:
        return any(needle in (row[c] or "").lower() for c in ("ip1", "owner", "country"))

    # A country some rows hold and others do not: the filter has something to remove.
    countries = sorted({r["country"] for r in rows if r["country"]})
    needle, want = next((c.lower(), n) for c in countries
                        if 0 < (n := sum(holds(r, c.lower()) for r in rows)) < total)
    fill_text(page, "rh_filter", needle)
    expect(count).to_have_text(re.compile(rf"^{want:,} of {total:,} public IPs"))
    expect_rows(dataframes(page).first, want)
    got = read_csv(download(page, "remote_dl_csv", tmp_path / "filtered"))
    assert len(got) == want and all(holds(r, needle) for r in got)
    assert read_parquet(download(page, "remote_dl_pq", tmp_path / "filtered")).height == want
    fill_text(page, "rh_filter", "")
    expect(count).to_have_text(re.compile(rf"^{total:,} public IPs"))
    assert_no_errors(page)


# ------------------------------------------------------------------ evidence packs
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_evidence_packs_hold_what_the_pages_show(page: Page, server, browser, tmp_path,
                                                 sensors):
    # The incident's last brute-force day (a beacon day too: storylines, toxic flows both
    # ways); the pack's counts are checked against the hunting page's next run.
    open_page(page, f"{server.url}/?{days_query(INCIDENT_DAY)}", "Overview")
    wait_for_charts(page)
    flows = metric_int(page, "Flows")
    toxic = metric_int(page, "Toxic IN") + metric_int(page, "Toxic OUT")
    pack = download(page, "pack_sensor", tmp_path / "sensor")
    assert pack.name.startswith("evidence-54-") and pack.suffix == ".zip"

    nav_to(page, "Threat hunting", "Threat hunting")
    stories = table_rows(page.get_by_test_id("stTabPanel").first.get_by_test_id("stDataFrame"))
    files = check_pack(pack, flows=flows, toxic=toxic, stories=stories)
    report = check_report(browser, files, tmp_path / "sensor",
                           f"Evidence pack – {sensors[54]['full_name']}", toxic)
    try:
        text = report.page.locator("body").inner_text()
        assert f"{flows:,}" in text  # the Flows KPI
    finally:
        report.page.context.close()

    # The device pack of the camera whose name is HTML: shown as text, never as markup.
    nav_to(page, "Devices", "Devices")
    choose(page, "drill", "192.168.1.30")
    heading = page.get_by_test_id("stMain").locator("h4").first
    expect(heading).to_contain_text(HTML_NAME)
    wait_for_charts(page)
    toxic_dev = page.get_by_text(re.compile(r"^Toxic flows of this device \((\d+)\)"))
    expect(toxic_dev).to_be_visible()
    n_toxic = int(re.search(r"\((\d+)\)", toxic_dev.inner_text())[1])
    dev_flows = metric_int(page, "Flows")
    pack = download(page, "pack_device", tmp_path / "device")
    assert re.fullmatch(r"evidence-54-\d{10}-192_168_1_30\.zip", pack.name), pack.name
    files = check_pack(pack, flows=dev_flows, toxic=n_toxic, stories=None)
    assert {r["ip0"] for r in read_csv(files["flows.csv"])} == {"192.168.1.30"}
    report = check_report(browser, files, tmp_path / "device", "Evidence pack – ", n_toxic)
    try:
        expect(report.page.locator("h1")).to_contain_text(HTML_NAME)
        labels = report.page.locator(".js-plotly-plot svg text").all_text_contents()
        assert any("<b>Caméra</b>" in t for t in labels), "HTML name not shown as text in charts"
        expect(report.page.locator("b", has_text="Caméra")).to_have_count(0)
    finally:
        report.page.context.close()
    assert_no_errors(page)


# ------------------------------------------------------------------ masked
# Page-specific downloads: (path, download keys)
DOWNLOADS = {
    "": ["pack_sensor"],
    "devices": ["pack_device"],
    "toxic": ["toxic_dl_csv", "toxic_dl_pq"],
    "remotes": ["remote_dl_csv", "remote_dl_pq"],
    "hunting": ["stories_dl_csv", "stories_dl_pq"],
}


def test_masked_pages_urls_and_downloads_leak_nothing(page: Page, server, browser, originals,
                                                       tmp_path, screenshot_dir):
    # The incident's last brute-force day: toxic flows and storylines on every page and
    # in every file (an ordinary day may have none, and its scan would prove nothing).
    open_page(page, f"{server.url}/?{days_query(INCIDENT_DAY)}", "Overview")
    wait_for_charts(page)
    # Unmasked, originals are on the page and in each file (or the scans below would
    # prove nothing).
    assert len(originals.leaks(rendered_text(page))) > 5
    unmasked = file_texts(download(page, "pack_sensor", tmp_path / "unmasked"))
    for member in ("flows.csv", "toxic_flows.csv", "storylines.csv", "report.html"):
        hits = {k: originals.leaks(v) for k, v in unmasked.items() if k.endswith(f":{member}")}
        assert hits, sorted(unmasked)
        assert all(hits.values()), f"the scan finds no original in unmasked {member}"

    set_toggle(page, "mask", True)
    expect(page).to_have_url(re.compile(r"[?&]mask=true(&|$)"))
    expect(header_caption(page)).to_contain_text("masked")

    leaks: dict[str, list[str]] = {}
    files: list[Path] = []
    for path, h1, nav, chart, table_, _metric in PAGES:
        if path:
            nav_to(page, nav, h1)
        if chart:
            wait_for_charts(page)
        if table_:
            expect(dataframes(page).first).to_be_visible()
        dest = tmp_path / (path or "overview")
        tabs = page.get_by_role("tab")
        for t in range(max(tabs.count(), 1)):  # hunting: each tab's tables in turn
            if tabs.count():
                wait_for_run(page, tabs.nth(t).click)  # each tab reruns the page
            # the tables' cells are in the page text (their accessible mirror)
            leaks[f"{h1} page text (tab {t})"] = originals.leaks(rendered_text(page))
        if tabs.count():
            wait_for_run(page, tabs.first.click)  # the storyline downloads live there
        leaks[f"{h1} URL"] = originals.leaks(unquote(page.url))
        files += [download(page, key, dest) for key in DOWNLOADS.get(path, [])]
        assert_no_errors(page)
        page.screenshot(path=str(screenshot_dir / f"{server.mode}-masked-{path or 'overview'}.png"))

    assert len(files) == sum(len(keys) for keys in DOWNLOADS.values()), [f.name for f in files]
    for f in files:
        for name, text in file_texts(f).items():
            leaks[name] = originals.leaks(text)
    # The evidence report, opened: what a reader sees.
    report_html = tmp_path / "report.html"
    report_html.write_bytes(read_zip(next(f for f in files if f.name.startswith("evidence-")))
                            ["report.html"])
    report = open_offline(browser, report_html)
    try:
        expect(report.page.locator(".js-plotly-plot")).to_have_count(PACK_FIGURES)
        leaks["report.html as rendered"] = originals.leaks(
            report.page.locator("body").inner_text()
            + "\n".join(report.page.locator("svg text").all_text_contents()))
    finally:
        report.page.context.close()

    found = {where: what for where, what in leaks.items() if what}
    assert not found, f"original identifiers while masked: {found}"

    # One device picked in the sidebar filter: the link holds its alias, and that link
    # reproduces the selection in a fresh browser (no fallback warning).
    nav_to(page, "Devices", "Devices")
    widget(page, "device").get_by_role("combobox").click()
    options = page.get_by_role("option").filter(has_text=re.compile(r"\d+\.\d+\.\d+\.\d+"))
    expect(options.first).to_be_visible()
    chosen = options.first.inner_text().strip()
    options.first.click()
    page.keyboard.press("Escape")
    expect(page).to_have_url(re.compile(r"[?&]device="))
    assert not originals.leaks(unquote(page.url)), page.url
    assert not originals.leaks(rendered_text(page))
    context = browser.new_context(viewport=page.viewport_size)
    try:
        other = context.new_page()
        open_page(other, page.url, "Devices")
        tags = widget(other, "device").get_by_test_id("stMultiSelectTagsContainer")
        expect(tags).to_contain_text(chosen)
        expect(header_caption(other)).to_contain_text("masked")
        assert not originals.leaks(rendered_text(other))
        assert_no_errors(other)
    finally:
        context.close()

    # Masking off again: the originals come back, and the link says so.
    set_toggle(page, "mask", False)
    assert "mask" not in query(page), page.url
    expect(header_caption(page)).not_to_contain_text("masked")
    expect(dataframes(page).first).to_be_visible()
    assert originals.leaks(rendered_text(page))
    assert_no_errors(page)
