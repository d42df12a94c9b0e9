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
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from browser_kit import (
    LOAD_TIMEOUT,
    assert_no_errors,
    check_pack,
    check_report,
    dataframes,
    download,
    header_caption,
    metric_int,
    nav_to,
    open_page,
    press,
    query,
    read_csv,
    read_parquet,
    set_segment,
    set_toggle,
    settled_text,
    wait_for_run,
    widget,
)
from playwright.sync_api import Page, expect

from tests.kit.clock import days_query
from tests.kit.demo import INCIDENT_DAY

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


@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_profile_from_a_toxic_row_lists_the_devices_of_the_flow_table(
        page: Page, server, tmp_path, originals, screenshot_dir):
    # A day with toxic flows (an ordinary day may have none): the incident's last
    # brute-force day; the profile's counts are compared with the toxic table's.
    open_page(page, f"{server.url}/toxic?{days_query(INCIDENT_DAY)}", "Toxic flows")
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


@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_profile_pack_look_back_and_close(page: Page, server, api_simulator, browser,
                                          tmp_path):
    """The profile's own controls, clicked: its devices' Parquet, its evidence pack (the
    flows of that IP only, as many as its KPIs say, a report that opens offline), the
    look-back (its count is the simulator's, over HTTP) and Close."""
    days = days_query(INCIDENT_DAY)
    open_page(page, f"{server.url}/toxic?{days}", "Toxic flows")
    ip = _first_row_ip(page, "toxic_table")
    _select_first_row(page, "toxic_table")
    expect(_heading(page, ip)).to_be_visible()
    flows, toxic = metric_int(page, "Flows"), metric_int(page, "Toxic flows")
    devices = metric_int(page, "Local devices")
    assert flows >= toxic > 0 and devices > 0

    frame = read_parquet(download(page, "profile_devices_dl_pq", tmp_path / "devices"))
    assert frame.height == devices and frame["toxic_flows"].sum() == toxic

    pack = download(page, "pack_remote", tmp_path / "pack")
    safe = ip.replace(".", "_")
    assert re.fullmatch(rf"evidence-54-\d{{10}}-{safe}\.zip", pack.name), pack.name
    files = check_pack(pack, flows=flows, toxic=toxic, stories=None)
    assert {r["ip1"] for r in read_csv(files["flows.csv"])} == {ip}
    report = check_report(browser, files, tmp_path / "pack", ip, toxic)
    report.page.context.close()

    set_segment(page, "profile_lookback", "7 days before the range")
    said = page.get_by_text(re.compile(
        rf"^(In the 7 days before the range: [\d,]+ flows with [\d,]+ device\(s\)"
        rf"|No flow with {re.escape(ip)} in the 7 days before the range\.)"))
    expect(said).to_be_visible(timeout=LOAD_TIMEOUT)
    if server.mode == "api":  # the server reads this very simulator: count its rows
        start = datetime.combine(date.fromisoformat(query(page)["from_day"][0]), time(0),
                                 ZoneInfo("Europe/Paris")).astimezone(UTC)
        truth = [r for r in api_simulator.rows(54, start - timedelta(days=7), start)
                 if r["ip1"] == ip]
        if truth:
            n_devices = len({r["ip0"] for r in truth})
            expect(said).to_contain_text(f"{len(truth):,} flows with {n_devices:,} device(s)")
        else:
            expect(said).to_contain_text("No flow with")
    assert_no_errors(page)

    press(page, "profile_close")
    expect(_heading(page, ip)).to_have_count(0)
    assert "remote" not in query(page), page.url
    expect(page.get_by_text(re.compile(r"^[\d,]+ public IPs"))).to_be_visible()
    assert query(page)["from_day"] == [days.split("from_day=")[1].split("&")[0]]
    assert_no_errors(page)
