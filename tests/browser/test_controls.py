"""Every control of the sidebar and of each page, changed in Chromium, then checked.

One test per control group, in both modes (demo = embedded simulator, api =
the simulator over HTTP) unless the group only makes sense in one. Each test
changes a control by its widget key and checks what it was meant to change:
the URL, the caption, a metric, a chart (its title and traces as drawn by
plotly in the browser), a table's row count, or the rows of a download. Every
test also ends on ``assert_no_errors``; the ``server_logs_clean`` fixture fails
it if a server logged a traceback.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from browser_kit import (
    add_option,
    assert_no_errors,
    choose,
    dataframes,
    download,
    expect_chart_title,
    expect_rows,
    figure,
    fill_text,
    header_caption,
    metric_int,
    metric_value,
    nav_to,
    open_page,
    pick_date,
    press,
    query,
    read_csv,
    selected,
    set_segment,
    set_toggle,
    sidebar,
    slide,
    table_rows,
    wait_for_charts,
    wait_for_run,
    widget,
)
from playwright.sync_api import Page, expect

from flux_dashboard.hours import hour_label, preset_range
from tests.kit.clock import PINNED, PLAN, days_before, days_query, local_days
from tests.kit.clock import today as pinned_today

pytestmark = pytest.mark.browser

RANGE_KEYS = ("range", "from_day", "from_hour", "to_day", "to_hour")


def _bar_totals(fig: dict) -> list[float]:
    """Per-category totals of a horizontal stacked bar chart, in drawing order."""
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert bars, fig
    n = len(bars[0]["x"])
    return [sum((t["x"][i] or 0) for t in bars if len(t["x"]) == n) for i in range(n)]


def _categories(fig: dict) -> set[str]:
    return {str(c) for t in fig["data"] if t["type"] == "bar" for c in t["y"]}


# ------------------------------------------------------------------ time range: Pin these dates
def expected_pin(preset: str, now: datetime, tz: str) -> dict[str, str]:
    """The URL a pinned preset must produce: the range of hours.preset_range (tested by
    hand in test_hours.py) in the sensor's time zone, an edge in the hour a DST
    fall-back repeats labelled "(2nd)" when it is the second (hours.hour_label)."""
    zone = ZoneInfo(tz)
    code = {"Last 24 hours": "24h", "Last 7 days": "7d", "Yesterday": "yesterday"}[preset]
    (a, a_hour), (b, b_hour) = (hour_label(t, zone) for t in preset_range(code, now, zone))
    return {"range": "Custom", "from_day": a.isoformat(), "from_hour": a_hour,
            "to_day": b.isoformat(), "to_hour": b_hour}


@pytest.mark.parametrize(("mode", "sensor_id", "preset"),
                         [("demo", 54, "Last 24 hours"), ("api", 77, "Yesterday")],
                         ids=["demo-54-last24h", "api-77-yesterday"])
def test_pin_these_dates_puts_fixed_dates_in_the_url(page: Page, request, browser, sensors,
                                                      mode, sensor_id, preset):
    server = request.getfixturevalue(f"{mode}_server")
    tz = sensors[sensor_id]["timezone"]
    open_page(page, f"{server.url}/?sensor={sensor_id}", "Overview")
    expect(sidebar(page)).to_contain_text(f"Times in the sensor's time zone: {tz}")
    if selected(page, "range") != preset:
        choose(page, "range", preset)
    caption = header_caption(page)
    expect(caption).to_contain_text(f"({tz})")
    range_text = caption.inner_text()

    expected = expected_pin(preset, PINNED, tz)
    press(page, "pin_btn")
    expect(widget(page, "range").get_by_role("combobox")).to_have_value("Custom")
    expect(widget(page, "pin_btn")).to_have_count(0)  # only offered for relative ranges
    expect(page).to_have_url(re.compile(r"[?&]range=Custom(&|$)"))
    q = query(page)
    got = {k: q.get(k, ["<absent>"])[-1] for k in RANGE_KEYS}
    # The days must be in the link: their widget defaults move with the calendar, so
    # an absent day would mean "today" tomorrow. An hour may only be absent when it is
    # the fixed default 00:00 (Streamlit drops bound values equal to the default).
    for k in ("from_hour", "to_hour"):
        if got[k] == "<absent>" and expected[k] == "00:00":
            got[k] = "00:00"
    assert got == expected, f"URL after Pin: {page.url}\nexpected: {expected}"
    expect(caption).to_have_text(range_text)  # the same range, now fixed
    assert_no_errors(page)

    # The pinned link shows that range in a fresh browser.
    context = browser.new_context(viewport=page.viewport_size)
    try:
        other = context.new_page()
        open_page(other, page.url, "Overview")
        expect(widget(other, "range").get_by_role("combobox")).to_have_value("Custom")
        expect(header_caption(other)).to_have_text(range_text)
        assert_no_errors(other)
    finally:
        context.close()


@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_custom_range_inputs(page: Page, server, sensors):
    """Custom range: the From/To days and hours change the range, the caption and the URL."""
    zone = ZoneInfo(sensors[54]["timezone"])
    today = pinned_today(zone)
    # Two whole past days, the first not the 1st, so its day before is in the same month
    # (the calendar opens on the month of the current value).
    start = today - timedelta(days=3 if (today - timedelta(days=2)).day == 1 else 2)
    end = today - timedelta(days=1)
    open_page(page, f"{server.url}/?range=Custom&from_day={start}&from_hour=08:00"
                    f"&to_day={end}&to_hour=12:00", "Overview")
    caption = header_caption(page)
    expect(caption).to_contain_text(f"{start:%a %d %b %Y} 08:00 → {end:%a %d %b %Y} 12:00")
    flows = metric_int(page, "Flows")

    choose(page, "to_hour", "18:00")
    expect(caption).to_contain_text(f"{start:%a %d %b %Y} 08:00 → {end:%a %d %b %Y} 18:00")
    expect(page).to_have_url(re.compile(r"[?&]to_hour=18%3A00(&|$)"))
    longer = metric_int(page, "Flows")
    assert longer > flows

    earlier = start - timedelta(days=1)
    pick_date(page, "from_day", earlier)
    expect(caption).to_contain_text(f"{earlier:%a %d %b %Y} 08:00 → {end:%a %d %b %Y} 18:00")
    expect(page).to_have_url(re.compile(rf"[?&]from_day={earlier}(&|$)"))
    assert metric_int(page, "Flows") > longer

    choose(page, "from_hour", "20:00")
    expect(caption).to_contain_text(f"{earlier:%a %d %b %Y} 20:00 → ")
    expect(page).to_have_url(re.compile(r"[?&]from_hour=20%3A00(&|$)"))
    assert_no_errors(page)

    # The link reproduces the range.
    link = page.url
    page.goto("about:blank")
    open_page(page, link, "Overview")
    expect(header_caption(page)).to_contain_text(
        f"{earlier:%a %d %b %Y} 20:00 → {end:%a %d %b %Y} 18:00")
    assert_no_errors(page)


# ------------------------------------------------------------------ Refresh buttons
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_refresh_buttons_fetch_again(page: Page, server, api_simulator):
    open_page(page, f"{server.url}/", "Overview")
    wait_for_charts(page)
    flows = metric_int(page, "Flows")
    url = page.url
    counted = server.mode == "api"  # the demo simulator lives inside the server

    n0 = api_simulator.flux_request_count()
    expect(widget(page, "refresh_btn")).to_contain_text(re.compile("open hour", re.I))
    press(page, "refresh_btn")
    expect(page.locator("h1")).to_have_text("Overview")
    assert metric_int(page, "Flows") >= flows  # the open hour only grows
    n1 = api_simulator.flux_request_count()
    if counted:
        assert n1 > n0, "Refresh (open hour) made no flux request"

    expect(widget(page, "refresh_all_btn")).to_contain_text(re.compile("whole range", re.I))
    press(page, "refresh_all_btn")
    expect(page.locator("h1")).to_have_text("Overview")
    assert metric_int(page, "Flows") >= flows
    n2 = api_simulator.flux_request_count()
    if counted:
        # The whole range (24 hours) costs more requests than the open hour alone.
        assert n2 - n1 > n1 - n0, (n0, n1, n2)

    # A plain rerun afterwards (another control) does not fetch again.
    set_segment(page, "dir", "IN")
    set_segment(page, "dir", "all")
    if counted:
        assert api_simulator.flux_request_count() == n2
    assert page.url == url  # refreshing is not a link state
    wait_for_charts(page)
    assert_no_errors(page)


# ------------------------------------------------------------------ sensor select
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_sensor_select_switches_the_whole_view(page: Page, server, sensors, api_simulator):
    open_page(page, f"{server.url}/", "Overview")
    caption = header_caption(page)
    expect(caption).to_contain_text("(#54)")
    flows_54, devices_54 = metric_int(page, "Flows"), metric_int(page, "Devices")

    # The page shows the rows the simulator holds for these 24 hours (both at the
    # pinned clock: the open hour is the same for both).
    end = PINNED.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    rows = api_simulator.rows(77, end - timedelta(hours=24), end)
    choose(page, "sensor_id", "#77")
    small = sensors[77]
    expect(widget(page, "sensor_id").get_by_role("combobox")).to_have_value(
        re.compile("disconnected"))
    expect(page).to_have_url(re.compile(r"[?&]sensor=77(&|$)"))
    expect(caption).to_contain_text(f"{small['full_name']} (#77)")
    expect(caption).to_contain_text(f"({small['timezone']})")
    expect(sidebar(page)).to_contain_text(f"Times in the sensor's time zone: {small['timezone']}")
    expect(metric_value(page, "Flows")).not_to_have_text(f"{flows_54:,}")
    assert metric_int(page, "Flows") == len(rows) > 0
    assert metric_int(page, "Devices") == len({r["ip0"] for r in rows}) != devices_54
    wait_for_charts(page)
    assert_no_errors(page)

    # The choice follows the navigation, then the select goes back.
    nav_to(page, "Devices", "Devices")
    expect(header_caption(page)).to_contain_text("(#77)")
    assert query(page)["sensor"] == ["77"]
    choose(page, "sensor_id", "#54")
    expect(header_caption(page)).to_contain_text("(#54)")
    expect(page).to_have_url(re.compile(r"[?&]sensor=54(&|$)"))
    assert_no_errors(page)


# ------------------------------------------------------------------ sidebar filters
def _toxic_caption(page: Page) -> tuple[int, int]:
    caption = page.get_by_text(re.compile(r"[\d,]+ of [\d,]+ toxic flows"))
    expect(caption).to_be_visible()
    m = re.search(r"([\d,]+) of ([\d,]+) toxic flows", caption.inner_text())
    assert m
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_threat_and_off_hours_filters(page: Page, server, sensors, tmp_path):
    # A closed week: it holds the demo story's C2 beacon days (the last 24 hours are quiet).
    open_page(page, f"{server.url}/toxic?{days_before(7)}", "Toxic flows")
    _, total = _toxic_caption(page)
    assert total > 0

    add_option(page, "threat", "Command center (C2)")
    expect(page).to_have_url(re.compile(r"[?&]threat=command_center(&|$)"))
    expect(header_caption(page)).to_contain_text("Command center (C2)")
    expect(page.get_by_text(re.compile(rf"of {total:,} toxic flows"))).to_have_count(0)
    _, c2_total = _toxic_caption(page)
    assert 0 < c2_total < total
    rows = read_csv(download(page, "toxic_dl_csv", tmp_path / "threat"))
    assert len(rows) == c2_total
    assert all("Command center" in r["threats"] for r in rows), {r["threats"] for r in rows}

    # Off-hours on top: only the sensor's non-working hours, in its time zone.
    hno = set(sensors[54]["hno_hours"])
    set_toggle(page, "offhours", True)
    expect(page).to_have_url(re.compile(r"[?&]offhours=true(&|$)"))
    expect(header_caption(page)).to_contain_text("non-working hours")
    expect(page.get_by_text(re.compile(rf"of {c2_total:,} toxic flows"))).to_have_count(0)
    _, off_total = _toxic_caption(page)
    assert off_total < c2_total
    if off_total:
        rows = read_csv(download(page, "toxic_dl_csv", tmp_path / "offhours"))
        assert len(rows) == off_total
        zone = ZoneInfo(sensors[54]["timezone"])
        hours = {datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(zone).hour
                 for r in rows}
        assert hours <= hno, f"working hours in the off-hours view: {sorted(hours - hno)}"

    # Both off again: the full table is back and the URL is clean.
    set_toggle(page, "offhours", False)
    clear = widget(page, "threat").get_by_role("button", name=re.compile("Clear|Delete", re.I))
    wait_for_run(page, clear.first.click)
    expect(page.get_by_text(re.compile(rf"^{total:,} of {total:,} toxic flows"))).to_be_visible(
        timeout=30_000)
    assert "threat" not in query(page) and "offhours" not in query(page), page.url
    assert_no_errors(page)


@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_text_filters(page: Page, server):
    """Remote IP, MAC, protocol and port inputs: bound to the URL, applied to the data."""
    open_page(page, f"{server.url}/?{days_before(1)}", "Overview")  # counts compared later
    wait_for_charts(page)
    flows = metric_int(page, "Flows")

    fill_text(page, "port", "443")
    expect(page).to_have_url(re.compile(r"[?&]port=443(&|$)"))
    expect(metric_value(page, "Flows")).not_to_have_text(f"{flows:,}")
    assert _categories(figure(page, "top_port")) == {"443 (HTTPS)"}

    fill_text(page, "protocol", "UDP")
    expect(page).to_have_url(re.compile(r"[?&]protocol=UDP(&|$)"))
    expect(header_caption(page)).to_contain_text("UDP/443")
    assert _categories(figure(page, "top_proto")) == {"UDP"}  # QUIC
    fill_text(page, "protocol", "")
    fill_text(page, "port", "")
    expect(metric_value(page, "Flows")).to_have_text(f"{flows:,}")

    # One remote host (the Remote hosts page then shows its profile), then one device by MAC.
    nav_to(page, "Remote hosts", "Remote hosts")
    grid = dataframes(page).first
    col = grid.locator("th", has_text=re.compile(r"^Remote IP$")).get_attribute("aria-colindex")
    first = grid.locator(f'tr[aria-rowindex="2"] td[aria-colindex="{col}"]')
    expect(first).to_have_text(re.compile(r"^\d+\.\d+\.\d+\.\d+$"))
    ip = first.inner_text().strip()
    fill_text(page, "remote", ip)
    expect(page).to_have_url(re.compile(rf"[?&]remote={re.escape(ip)}(&|$)"))
    expect(page.get_by_role("heading", name=re.compile(rf"Remote host {re.escape(ip)}$"))) \
        .to_be_visible()
    fill_text(page, "remote", "")
    expect(page.get_by_text(re.compile(r"^[\d,]+ public IPs"))).to_be_visible()

    nav_to(page, "Devices", "Devices")
    mac_caption = page.get_by_test_id("stCaptionContainer").filter(has_text="MAC ")
    mac = re.search(r"MAC ([0-9a-f:]{17})", mac_caption.first.inner_text())
    assert mac, mac_caption.first.inner_text()
    ip0 = page.get_by_test_id("stMain").locator("h4").first.inner_text().split(" · ")[-1]
    fill_text(page, "mac", mac[1])
    expect(page).to_have_url(re.compile(r"[?&]mac="))
    expect(page.get_by_text(re.compile(r"^1 devices · "))).to_be_visible()
    expect(page.get_by_test_id("stMain").locator("h4").first).to_contain_text(ip0)
    fill_text(page, "mac", "")
    expect(page.get_by_text(re.compile(r"^1 devices · "))).to_have_count(0)
    assert_no_errors(page)


# ------------------------------------------------------------------ navigation links
@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_nav_links_keep_the_filters(page: Page, server):
    open_page(page, f"{server.url}/", "Overview")
    set_toggle(page, "toxic", True)
    set_segment(page, "dir", "OUT")
    expect(page).to_have_url(re.compile(r"[?&]dir=OUT(&|$)"))
    for path, h1 in [("devices", "Devices"), ("protocols", "Protocols & ports"),
                     ("toxic", "Toxic flows"), ("remotes", "Remote hosts"),
                     ("hunting", "Threat hunting"), ("", "Overview")]:
        nav_to(page, h1, h1)
        assert page.url.split("?")[0].rstrip("/") == f"{server.url}/{path}".rstrip("/")
        q = query(page)
        assert q.get("toxic") == ["true"] and q.get("dir") == ["OUT"], page.url
        assert q.get("sensor") == ["54"], page.url
        expect(widget(page, "toxic").get_by_role("switch")).to_be_checked()
        expect(header_caption(page)).to_contain_text("OUT · toxic only")
        assert_no_errors(page)


# ------------------------------------------------------------------ Overview selects
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_overview_day_selects(page: Page, server):
    # Seven closed days: the selects offer several days ("Last 24 hours" holds one
    # local day when it starts at the sensor's midnight), and a day's cyT read before
    # a choice is still that day's after it (a relative range's first day shrinks
    # when the clock turns an hour).
    open_page(page, f"{server.url}/?{days_before(7)}", "Overview")
    wait_for_charts(page)
    heading = page.get_by_test_id("stMain").locator("h3").filter(has_text="What changed on")
    expect(heading).to_be_visible()
    shown = selected(page, "digest_day")
    widget(page, "digest_day").get_by_role("combobox").click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    labels = [o.strip() for o in options.all_inner_texts()]
    assert len(labels) >= 2, labels
    other = next(label for label in labels if label != shown)
    page.keyboard.press("Escape")
    choose(page, "digest_day", other)
    day = datetime.strptime(other.replace(" (so far)", ""), "%a %d %b %Y").date()
    prev = day - timedelta(days=7)
    expect(heading).to_have_text(f"What changed on {day:%a %d %b} vs {prev:%a %d %b}")
    expect(page.get_by_text(re.compile(rf"Selected day: flows of {day:%a %d %b} 00:00"))) \
        .to_be_visible()

    before = figure(page, "cw_hours")["title"]
    # cyT of each day, from the "cyT per day" chart (a separate analysis of the frame).
    per_day = _cyt_by_day(figure(page, "cw_days"))
    choose_day = selected(page, "cw_day")
    widget(page, "cw_day").get_by_role("combobox").click()
    labels = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")

    def cyt_of(label: str) -> float:
        return per_day.get(datetime.strptime(label, "%a %d %b %Y").date().isoformat(), 0)

    others = [label for label in labels if label != choose_day]
    # A day whose cyT differs from the one shown, when there is one: then hours that
    # ignored the choice would not add up to the chosen day's cyT.
    other = next((lb for lb in others if cyt_of(lb) != cyt_of(choose_day)), others[0])
    choose(page, "cw_day", other)
    day = datetime.strptime(other, "%a %d %b %Y").date()
    expect_chart_title(page, "cw_hours", f"Cyberweather by hour, {day.isoformat()}")
    hours = figure(page, "cw_hours")
    assert hours["title"] != before
    assert sum(v for t in hours["data"] for v in t["y"] or [] if v is not None) == cyt_of(other)
    assert_no_errors(page)


def _cyt_by_day(fig: dict) -> dict[str, float]:
    """cyT per day (ISO date) of the "cyT per day" chart: one bar trace per level."""
    return {str(x)[:10]: y for t in fig["data"]
            for x, y in zip(t["x"] or [], t["y"] or [], strict=True) if y is not None}


# ------------------------------------------------------------------ Protocols heatmap value
@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_heatmap_value_switch(page: Page, server):
    open_page(page, f"{server.url}/protocols", "Protocols & ports")
    wait_for_charts(page)
    expect_chart_title(page, "port_device", re.compile(r"^Port × device \(bytes"))
    bytes_z = figure(page, "port_device")["data"][0]["z"]
    set_segment(page, "heat_value", "flows")
    expect_chart_title(page, "port_device", re.compile(r"^Port × device \(flows"))
    flows_z = figure(page, "port_device")["data"][0]["z"]
    assert flows_z != bytes_z
    cells = [v for row in flows_z for v in row if v is not None]
    assert cells and all(float(v).is_integer() for v in cells), "flow counts are whole numbers"
    set_segment(page, "heat_value", "bytes")
    expect_chart_title(page, "port_device", re.compile(r"^Port × device \(bytes"))
    assert_no_errors(page)


# ------------------------------------------------------------------ Remote hosts
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_remote_hosts_direction_and_sort(page: Page, server, api_simulator):
    open_page(page, f"{server.url}/remotes?{days_before(1)}", "Remote hosts")  # total kept
    wait_for_charts(page)
    count = page.get_by_text(re.compile(r"^[\d,]+ public IPs · \d+ countries"))
    # The remote hosts of yesterday, by direction, from the simulator the server reads
    # (on a quiet Saturday every remote has OUT flows: IN shows fewer, OUT all of them).
    rows = api_simulator.rows(54, *local_days(pinned_today() - timedelta(days=1)))
    want = {d: len({r["ip1"] for r in rows if r["dir"] == d}) for d in ("IN", "OUT")}
    total = len({r["ip1"] for r in rows})
    expect(count).to_have_text(re.compile(rf"^{total:,} public IPs"))
    expect_rows(dataframes(page).first, total)
    assert 0 < want["IN"] < total
    for direction in ("IN", "OUT"):
        set_segment(page, "rh_dir", direction)
        expect(count).to_have_text(re.compile(rf"^{want[direction]:,} public IPs"))
        expect_rows(dataframes(page).first, want[direction])
    set_segment(page, "rh_dir", "all")
    expect(count).to_have_text(re.compile(rf"^{total:,} public IPs"))

    expect_chart_title(page, "map", "Remote hosts by country (toxic flows)")
    for option, value, title in [("Volume", "bytes", "bytes"), ("Flow count", "flows", "flows"),
                                 ("Threat", "toxic_flows", "toxic flows")]:
        choose(page, "rh_sort", option)
        expect_chart_title(page, "map", f"Remote hosts by country ({title})")
        expect_chart_title(page, "remote_bar", f"Top remote hosts by {title}")
        if value != "toxic_flows":  # threat sorts critical first, then toxic flows
            totals = _bar_totals(figure(page, "remote_bar"))
            assert totals == sorted(totals, reverse=True) or totals == sorted(totals), totals
            assert len(set(totals)) > 1
    assert_no_errors(page)


# ------------------------------------------------------------------ Threat hunting
@pytest.mark.parametrize("server", ["demo"], indirect=True)
def test_hunting_baseline_and_sensitivity(page: Page, server):
    # The story's night-upload day: its upload anomalies are there at k = 3 whatever the
    # pinned date (an ordinary day may have none).
    upload_day = days_query(PLAN.day(PLAN.upload_day))
    open_page(page, f"{server.url}/hunting?{upload_day}", "Threat hunting")  # 7 vs 14
    expect(page.get_by_text(re.compile(r"Baseline \(7 days before the range\): flows of"))) \
        .to_be_visible()
    page.get_by_role("tab", name=re.compile("First-seen remotes")).click()
    new_pairs = metric_value(page, "New device → remote pairs")
    expect(new_pairs).to_have_text(re.compile(r"^\d[\d,]*$"))
    pairs_7 = int(new_pairs.inner_text().replace(",", ""))
    expect(page.get_by_text(re.compile(r"never in the 7 days before it"))).to_be_visible()

    set_segment(page, "baseline_days", "14 days before the range")
    expect(page.get_by_text(re.compile(r"Baseline \(14 days before the range\): flows of"))) \
        .to_be_visible(timeout=90_000)
    page.get_by_role("tab", name=re.compile("First-seen remotes")).click()
    expect(page.get_by_text(re.compile(r"never in the 14 days before it"))).to_be_visible()
    expect(new_pairs).to_have_text(re.compile(r"^\d[\d,]*$"))
    pairs_14 = int(new_pairs.inner_text().replace(",", ""))
    assert pairs_14 <= pairs_7, "a longer baseline cannot make more remotes new"

    upload_tab = page.get_by_role("tab", name=re.compile("Upload anomalies"))
    upload_tab.click()
    expect(upload_tab).to_have_attribute("aria-selected", "true")
    anomalies = page.get_by_test_id("stTabPanel").filter(has=widget(page, "anomaly_k"))
    table = anomalies.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    rows_k3 = table_rows(table)
    assert rows_k3 > 0
    assert slide(page, "anomaly_k", 14) == "10.00"
    expect(page.get_by_role("tab", name=re.compile("Upload anomalies"))) \
        .to_have_attribute("aria-selected", "true")
    success = anomalies.get_by_test_id("stAlertContentSuccess")
    changed = table.locator(f'table:not([aria-rowcount="{rows_k3 + 1}"])')
    expect(success.or_(changed).first).to_be_attached()  # the grid redraws after the run
    rows_k10 = 0 if success.count() else table_rows(table)
    assert rows_k10 < rows_k3, "a higher threshold must flag fewer device-hours"
    assert_no_errors(page)


def test_hunting_tab_survives_a_baseline_change(page: Page, fresh_server):
    """The reader stays on the tab they were reading when the baseline changes.

    On a fresh server (cold caches, as after a restart): on a warm one the
    baseline loads fast enough that the tabs keep their state, so the result
    would depend on which tests ran before.
    """
    server = fresh_server()
    open_page(page, f"{server.url}/hunting", "Threat hunting")
    first_seen = page.get_by_role("tab", name=re.compile("First-seen remotes"))
    first_seen.click()
    expect(first_seen).to_have_attribute("aria-selected", "true")
    set_segment(page, "baseline_days", "14 days before the range")
    expect(page.get_by_text(re.compile(r"Baseline \(14 days before the range\): flows of"))) \
        .to_be_visible(timeout=90_000)
    expect(first_seen, "changing the baseline switched the page back to the first tab") \
        .to_have_attribute("aria-selected", "true", timeout=1)
    expect(page.get_by_text(re.compile(r"never in the 14 days before it"))).to_be_visible()
    assert_no_errors(page)


# ------------------------------------------------------------------ Devices drill-down
@pytest.mark.parametrize("server", ["api"], indirect=True)
def test_device_drill_down(page: Page, server):
    open_page(page, f"{server.url}/devices", "Devices")
    wait_for_charts(page)
    heading = page.get_by_test_id("stMain").locator("h4").first
    first_heading = heading.inner_text()
    flows_first = metric_value(page, "Flows").inner_text()

    choose(page, "drill", "SRV-AD01 · 192.168.1.10")
    expect(heading).to_have_text("SRV-AD01 · 192.168.1.10")
    assert first_heading != heading.inner_text()
    meta = page.get_by_test_id("stCaptionContainer").filter(has_text="MAC ")
    expect(meta).to_contain_text(re.compile(
        r"MAC 18:db:f2(:[0-9a-f]{2}){3} · vendor Dell Inc\. · NetBIOS SRV-AD01 · critical device"))
    expect(metric_value(page, "Flows")).not_to_have_text(flows_first)
    wait_for_charts(page)
    expect_chart_title(page, "drill_time", "Timeline of this device")
    assert _categories(figure(page, "drill_ports"))
    toxic = page.get_by_text(re.compile(r"^Toxic flows of this device \((\d+)\)"))
    expect(toxic).to_be_visible()
    n = int(re.search(r"\((\d+)\)", toxic.inner_text())[1])
    if n:
        expect_rows(dataframes(page).last, n)  # the grid redraws after the run ends
        assert n == metric_int(page, "Toxic IN") + metric_int(page, "Toxic OUT")
    assert_no_errors(page)
