"""The hosted link as an attacker sees it, in Chromium: values from a crafted link never
become links, tables offer no export of their own, masking leaves no real identifier in
the URL, and a page on another host name (DNS rebinding) gets no websocket."""

from __future__ import annotations

import base64
import os
import re
import socket
from urllib.parse import quote, unquote

import pytest
from browser_kit import (
    dataframes,
    header_caption,
    open_page,
    rendered_text,
    set_toggle,
    sidebar,
    table_toolbar,
    wait_for_run,
    widget,
)
from playwright.sync_api import Page, expect

from tests.kit.clock import days_query
from tests.kit.demo import INCIDENT_DAY

pytestmark = pytest.mark.browser

PHISH = "[Session expired, sign in](https://evil.example/sso) ![](https://evil.example/p.gif)"
BARE = "see https://evil.example/sso http://evil.example/x www.evil.example ops@evil.example"


@pytest.mark.parametrize("value", [PHISH, BARE], ids=["markdown", "bare"])
def test_values_from_a_link_never_become_links(page: Page, demo_server, value):
    """The alerts echo what the link holds, as text: no element links or loads anything
    from it (markdown links, images, bare URLs, www. names, e-mail addresses)."""
    q = quote(value)
    page.goto(f"{demo_server.url}/toxic?remote={q}&sensor={q}&port={q}")
    wait_for_run(page)
    alerts = page.get_by_test_id("stAlert")
    expect(alerts.first).to_be_visible()
    assert "evil.example" in " ".join(alerts.all_inner_texts()).replace("\u2060", "")
    for where in (page.get_by_test_id("stMain"), sidebar(page)):
        expect(where.locator('a[href*="evil"]')).to_have_count(0)
        expect(where.locator('a[href^="mailto:"]')).to_have_count(0)
        expect(where.locator('img[src*="evil"]')).to_have_count(0)
        links = [a.get_attribute("href") for a in where.locator("a[href]").all()]
        assert not [h for h in links if h and "evil" in h], links


def test_tables_and_charts_offer_no_download_of_their_own(page: Page, demo_server):
    """Every table's toolbar shows its other buttons but no "Download as CSV", and no
    chart's mode bar offers "Download plot as a png": the page's own buttons (audited,
    formula-safe) and the evidence pack are the only way out."""
    open_page(page, f"{demo_server.url}/toxic?{days_query(INCIDENT_DAY)}", "Toxic flows")
    tables = dataframes(page)
    expect(tables.nth(1)).to_be_visible()  # the devices' table and the flow table
    for i in range(tables.count()):
        toolbar = table_toolbar(page, tables.nth(i))
        expect(toolbar.get_by_role("button", name=re.compile("download", re.I))).to_have_count(0)
    charts = page.get_by_test_id("stPlotlyChart")
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        charts.nth(i).hover()
        bar = charts.nth(i).locator(".modebar")
        expect(bar.locator(".modebar-btn").first).to_be_attached()
        expect(bar.locator('[data-title*="Download"]')).to_have_count(0)


def test_masking_turns_every_identifier_filter_into_its_alias(page: Page, demo_server,
                                                               originals):
    """Device, MAC and remote IP typed (or linked) before masking is turned on: after it,
    the filters, the caption and the URL hold aliases only, and the data is the same."""
    device, remote = "192.168.1.102", "176.123.8.71"  # the story's workstation and C2
    mac = sorted(originals.macs)[0]
    assert device in originals.ips
    link = (f"{demo_server.url}/?{days_query(INCIDENT_DAY)}&device={device}"
            f"&remote={remote}")
    open_page(page, link, "Overview")
    caption = header_caption(page)
    expect(caption).to_contain_text(remote)
    flows = page.get_by_test_id("stMetricValue").first.inner_text()
    set_toggle(page, "mask", True)
    expect(caption).to_contain_text("masked")
    expect(caption).not_to_contain_text(remote)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text(flows)
    url = unquote(page.url)
    assert originals.leaks(url) == [] and device not in url and remote not in url, url
    assert re.search(r"remote=2001:db8::", url) and re.search(r"device=24[0-3]\.", url), url
    text = rendered_text(page).replace("\u2060", "")
    assert originals.leaks(text) == [] and remote not in text
    # A MAC typed in the box while masking is on becomes its alias too.
    set_toggle(page, "mask", False)
    expect(caption).to_contain_text(remote)
    box = widget(page, "mac").get_by_role("textbox")
    box.fill(mac)
    wait_for_run(page, lambda: box.press("Enter"))
    set_toggle(page, "mask", True)
    expect(caption).to_contain_text("masked")
    expect(box).to_have_value(re.compile(r"^02:"))
    assert mac not in unquote(page.url) and originals.leaks(unquote(page.url)) == []


def _upgrade(port: int, host: str) -> str:
    """The status line a websocket upgrade to Streamlit gets with this Host header."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_a_page_of_another_host_name_gets_no_websocket(demo_server):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 would reach the
    dashboard's websocket. `make run`'s server takes this machine's names only."""
    port = int(demo_server.url.rsplit(":", 1)[1])
    assert " 101 " in _upgrade(port, f"localhost:{port}")
    assert " 101 " in _upgrade(port, f"127.0.0.1:{port}")
    assert " 101 " not in _upgrade(port, f"evil.example:{port}")
