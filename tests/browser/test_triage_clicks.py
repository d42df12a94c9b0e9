"""The Findings page in Chromium: triage as an analyst clicks it, kept across reloads.

A demo server of its own (its own cache, so its own findings database), on the
four local days around the planted incident. Rows are selected by their
checkbox, forms filled and submitted as a user does; what the page shows after
a reload is what the database kept. The viewer's side is in test_signin.py
(it needs a real sign-in).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_kit import (
    LOAD_TIMEOUT,
    add_option,
    assert_no_errors,
    download,
    metric_int,
    metric_value,
    open_page,
    read_csv,
    rendered_text,
    set_toggle,
    wait_for_run,
    widget,
)
from playwright.sync_api import Page, expect
from servers import Server, start_server

from tests.kit.clock import PLAN, days_query

pytestmark = pytest.mark.browser

RANGE = days_query(PLAN.day(-6), 4)
ROW_HEIGHT = 35


@pytest.fixture(scope="module")
def findings_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("findings-server"), "demo")
    yield server
    server.stop()


def open_findings(page: Page, server: Server, query: str = RANGE) -> None:
    open_page(page, f"{server.url}/findings?{query}", "Findings")
    expect(page.get_by_text(re.compile(r"This range: [\d,]+ findings detected"))).to_be_visible(
        timeout=LOAD_TIMEOUT)


def inbox(page: Page):
    return page.get_by_test_id("stMain").get_by_test_id("stDataFrame").first


def select_row(page: Page, row: int = 0) -> str:
    """Tick the checkbox of data row ``row``; returns the key the panel then shows."""
    grid = inbox(page)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    wait_for_run(page, lambda: page.mouse.click(
        box["x"] + 18, box["y"] + ROW_HEIGHT * (row + 1) + ROW_HEIGHT / 2))
    shown = re.compile(r"key ([0-9a-f]{20}|f-[0-9a-f]{18})")  # masked: the key's alias
    key = page.get_by_test_id("stMain").get_by_text(shown).first
    expect(key).to_be_visible()
    return shown.search(key.inner_text())[1]


def apply_form(page: Page, key: str) -> None:
    button = widget(page, f"FormSubmitter-triage_{key}-Apply").get_by_role("button")
    wait_for_run(page, button.click)


def history(page: Page, key: str):
    """The finding's history table (its accessible mirror holds the cell text; the grid
    draws it once scrolled into view)."""
    box = widget(page, f"history_{key}")
    box.scroll_into_view_if_needed()
    return box.locator("table")


def test_acknowledge_with_a_comment_is_kept_after_a_reload(page: Page, findings_server,
                                                           screenshot_dir):
    open_findings(page, findings_server)
    new_before = metric_int(page, "New")
    key = select_row(page, 0)
    main = page.get_by_test_id("stMain")
    widget(page, f"action_{key}").get_by_text("Acknowledge", exact=True).click()
    comment = "Checked with the owner: isolating it now"
    widget(page, f"comment_{key}").locator("textarea").fill(comment)
    apply_form(page, key)
    expect(main.get_by_text("Acknowledge: 1 finding(s) saved.")).to_be_visible()
    expect(main.get_by_text(re.compile(r"status \*?\*?Acknowledged"))).to_be_visible()
    assert metric_int(page, "Acknowledged") == 1 and metric_int(page, "New") == new_before - 1
    page.screenshot(path=str(screenshot_dir / "findings-acknowledged.png"), full_page=True)

    # A reload (the link of that finding): the state and its history come from the database.
    open_findings(page, findings_server, f"{RANGE}&finding={key}")
    expect(main.get_by_text(re.compile(r"status \*?\*?Acknowledged"))).to_be_visible()
    for text in (comment, "acknowledge", "detected"):
        expect(history(page, key)).to_contain_text(text)
    assert metric_int(page, "Acknowledged") == 1
    assert_no_errors(page)


def test_false_positive_with_a_reason_leaves_the_open_list(page: Page, findings_server,
                                                           tmp_path):
    open_findings(page, findings_server)
    fp_before = metric_int(page, "False positive")
    key = select_row(page, 1)
    widget(page, f"action_{key}").get_by_text("False positive", exact=True).click()
    reason = widget(page, f"reason_{key}").get_by_role("combobox")
    reason.click()
    page.get_by_role("option").filter(has_text="Known application").first.click()
    apply_form(page, key)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("False positive: 1 finding(s) saved.")).to_be_visible()
    expect(main.get_by_text(re.compile(r"False positive \(Known application\)"))).to_be_visible()
    # The counters are drawn below the message: waited for, not read at once.
    expect(metric_value(page, "False positive")).to_have_text(f"{fp_before + 1:,}")
    # The export holds the open rows shown: not this one any more.
    rows = read_csv(download(page, "findings_dl_csv", tmp_path))
    assert rows and key not in {r["key"] for r in rows}
    assert all(r["status"] in ("new", "acknowledged", "investigating") for r in rows)


def test_a_rule_makes_the_next_detection_expected(page: Page, findings_server):
    first = days_query(PLAN.day(-6), 1)
    open_findings(page, findings_server, first)
    add_option(page, "findings_kind", "Upload anomaly")
    key = select_row(page, 0)
    main = page.get_by_test_id("stMain")
    main.get_by_text("Mark as expected behaviour (a rule)").click()
    widget(page, f"rule_dev_{key}").get_by_text("Any device", exact=True).click()
    widget(page, f"rule_reason_{key}").locator("input").fill("backups upload every night")
    button = widget(page, f"FormSubmitter-rule_{key}-Create-the-rule").get_by_role("button")
    wait_for_run(page, button.click)
    expect(main.get_by_text(re.compile(r"Rule #\d+ created"))).to_be_visible()
    # The message is drawn above the counters: wait for them to be redrawn too (a
    # loaded machine showed the previous run's 0 for a moment).
    expect(metric_value(page, "Expected")).not_to_have_text("0", timeout=LOAD_TIMEOUT)
    expected_before = metric_int(page, "Expected")
    assert expected_before >= 1

    # Days no detection has seen yet (the other tests open days -6 to -3): their upload
    # anomalies come in as expected.
    open_findings(page, findings_server, days_query(PLAN.day(-2), 2))
    caption = main.get_by_text(re.compile(r"This range: [\d,]+ findings detected")).inner_text()
    expected = int(re.search(r"([\d,]+) expected by a rule", caption)[1].replace(",", ""))
    assert expected >= 1, caption
    assert metric_int(page, "Expected") == expected_before + expected


def test_masked_view_shows_no_real_identifier_and_no_triage(page: Page, findings_server,
                                                            originals):
    open_findings(page, findings_server)
    set_toggle(page, "mask", True)
    wait_for_run(page)
    expect(page.get_by_text(re.compile(r"This range: [\d,]+ findings detected"))).to_be_visible(
        timeout=LOAD_TIMEOUT)
    assert select_row(page, 0).startswith("f-")  # no real key either
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(r"Masked view: .* triage is off"))).to_be_visible()
    assert not main.get_by_role("button", name="Apply").count()
    text = rendered_text(page)
    assert not originals.leaks(text), originals.leaks(text)
    assert PLAN.workstation_ip not in text and PLAN.c2_ip not in text
    set_toggle(page, "mask", False)
