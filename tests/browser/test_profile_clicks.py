"""The remote-host profile in Chromium, in demo mode and over HTTP.

A row of the toxic table is selected (its checkbox, as a user clicks it): the
Remote hosts page opens on that row's IP, with the IP in the link. The
profile's devices (its own CSV download) are then compared with the rows of
that IP in the toxic flow table (its CSV download, with the Remote IP filter
the profile set): the same devices, and per device as many toxic flows. With
masking switched on, neither the IP nor any original device name is on the
page or in the link, and the owner is still shown.
"""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import unquote

import pytest
from browser_kit import (
    assert_no_errors,
    dataframes,
    download,
    header_caption,
    nav_to,
    open_page,
    query,
    read_csv,
    set_toggle,
    settled_text,
    wait_for_run,
    widget,
)
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

ROW_HEIGHT = 35  # st.dataframe's default row (and header) height, px


def _first_row_ip(page: Page, key: str) -> str:
    """The Remote IP of the first data row of a table (its accessible mirror)."""
    table = widget(page, key)
    col = table.locator("th", has_text=re.compile(r"^Remote IP$")).get_attribute(
        "aria-colindex")
    cell = table.locator(f'tr[aria-rowindex="2"] td[aria-colindex="{col}"]')
    expect(cell).to_have_text(re.compile(r"\d"))
    return cell.inner_text().strip()


def _heading(page: Page, ip_start: str):
    """The profile's heading (its icon's ligature text comes first in the name)."""
    return page.get_by_role("heading", name=re.compile(rf"Remote host {re.escape(ip_start)}"))


def _select_first_row(page: Page, key: str) -> None:
    """Click the selection checkbox of the first data row (drawn on a canvas)."""
    grid = widget(page, key)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    wait_for_run(page, lambda: page.mouse.click(box["x"] + 18,
                                                box["y"] + ROW_HEIGHT + ROW_HEIGHT / 2))


def test_profile_from_a_toxic_row_lists_the_devices_of_the_flow_table(
        page: Page, server, tmp_path, originals, screenshot_dir):
    open_page(page, f"{server.url}/toxic", "Toxic flows")
    ip = _first_row_ip(page, "toxic_table")
    _select_first_row(page, "toxic_table")

    # The Remote hosts page, on that IP, with the IP in the link.
    expect(page.locator("h1")).to_have_text("Remote hosts")
    expect(_heading(page, ip)).to_be_visible()
    assert query(page).get("remote") == [ip]
    main = page.get_by_test_id("stMain")
    owner_line = main.get_by_text(re.compile(r"^Owner .+ · network .+ · country "))
    expect(owner_line).to_be_visible()
    owner = re.match(r"Owner (.+?) · network", owner_line.inner_text())[1]
    assert owner not in ("unknown", "Unknown owner"), owner
    assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / f"{server.mode}-remote-profile.png"))

    devices = read_csv(download(page, "profile_devices_dl_csv", tmp_path / "profile"))
    assert devices and all(d["ip0"] for d in devices)
    profile_toxic = {d["ip0"]: int(d["toxic_flows"]) for d in devices}
    metric = main.get_by_test_id("stMetric").filter(has_text="Local devices")
    expect(metric).to_contain_text(str(len(devices)))

    # Back to the toxic table: the Remote IP filter the profile set narrows it.
    nav_to(page, "Toxic flows", "Toxic flows")
    expect(header_caption(page)).to_contain_text(f"remote {ip}")
    rows = read_csv(download(page, "toxic_dl_csv", tmp_path / "toxic"))
    assert rows and {r["ip1"] for r in rows} == {ip}
    assert {r["owner"] for r in rows} == {owner}
    assert dict(Counter(r["ip0"] for r in rows)) == profile_toxic

    # Masked: neither the IP nor the device names, in the page or the link; the owner stays.
    nav_to(page, "Remote hosts", "Remote hosts")
    expect(_heading(page, ip)).to_be_visible()
    names = {d["device_name"] for d in devices} - {d["ip0"] for d in devices}
    assert names <= originals.names, names - originals.names
    set_toggle(page, "mask", True)
    expect(header_caption(page)).to_contain_text("masked")
    expect(_heading(page, "2001:db8::")).to_be_visible()
    expect(main.get_by_text(re.compile(rf"^Owner {re.escape(owner)} · network hidden "
                                       r"\(masking\)"))).to_be_visible()
    expect(dataframes(page).first).to_be_visible()
    secrets = names | {d["ip0"] for d in devices} | {ip}
    _, leaked = settled_text(
        page, lambda t: [n for n in secrets if n in t] + originals.leaks(t))
    assert leaked == [], leaked
    assert ip not in unquote(page.url)
    assert query(page)["remote"][0].startswith("2001:db8::")
    assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / f"{server.mode}-remote-profile-masked.png"))
