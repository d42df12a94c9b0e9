"""The Sensors page in Chromium on the demo server: the fleet listed silent first, a
filter that changes the table, the download opened and read, and a click on a
sensor's link that opens its Overview on the last 30 days."""

from __future__ import annotations

import re

import pytest
from browser_kit import (
    LOAD_TIMEOUT,
    download,
    fill_text,
    read_csv,
    selected,
    wait_for_run,
)
from playwright.sync_api import Page, expect

from flux_dashboard.simulator.world import FLEET

pytestmark = pytest.mark.browser
SILENT = next(f for f in FLEET if f[6] == "silent")
ROW_HEIGHT = 35


def open_sensors(page: Page, base: str) -> None:
    page.goto(f"{base}/sensors")
    wait_for_run(page)
    expect(page.get_by_role("heading", name="Sensors")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_text(re.compile(r"^12 sensors · 1 silent"))).to_be_visible(
        timeout=LOAD_TIMEOUT)


def test_sensors_page_lists_filters_downloads_and_opens_a_sensor(
        page: Page, demo_server, tmp_path, screenshot_dir):
    open_sensors(page, demo_server.url)
    page.screenshot(path=str(screenshot_dir / "sensors.png"), full_page=True)
    rows = read_csv(download(page, "fleet_dl_csv", tmp_path / "all"))
    assert len(rows) == 12 and rows[0]["name"] == SILENT[2] and rows[0]["silent"] == "true"

    fill_text(page, "fleet_search", "girard")
    rows = read_csv(download(page, "fleet_dl_csv", tmp_path / "one"))
    assert [r["name"] for r in rows] == [SILENT[2]]
    fill_text(page, "fleet_search", "")

    # The first row's "overview" link: that sensor's Overview, last 30 days, in a new tab.
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    x, y = box["x"] + 30, box["y"] + ROW_HEIGHT * 1.5
    page.mouse.click(x, y)  # the first click selects the cell, the second follows its link
    with page.context.expect_page() as opened:
        page.mouse.click(x, y)
    overview = opened.value
    overview.wait_for_load_state()
    # /overview, which Streamlit serves at the root (the default page).
    assert re.search(rf"/(overview)?\?sensor={SILENT[0]}&range=Last\+30\+days$",
                     overview.url), overview.url
    wait_for_run(overview)
    expect(overview.locator("h1")).to_have_text("Overview", timeout=LOAD_TIMEOUT)
    assert selected(overview, "sensor_id").startswith(f"{SILENT[2]} · #{SILENT[0]}")
    assert selected(overview, "range") == "Last 30 days"
    overview.close()
