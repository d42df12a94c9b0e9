"""A first view in seconds for a cold range, in Chromium: the app against a simulator
that allows 100 requests a minute, as the API does. The Overview shows the hourly
totals' metrics while the flows are still loading (the simulator's request count says
so), then the full view with the same numbers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_kit import LOAD_TIMEOUT, metric_value
from playwright.sync_api import Page, expect
from servers import Server, start_server

from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.clock import PLAN, days_query, pinned_clock

pytestmark = pytest.mark.browser
FIGURES = ("Flows", "Bytes in", "Bytes out", "Toxic IN", "Toxic OUT",
           "Cyberweather, worst day", "Cybercarbon (CO2e)")


@pytest.fixture(scope="module")
def limited() -> Iterator[tuple[Simulator, Server]]:
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=100,
                                    hostile_names=True))
    served = sim.serve(port=0)
    import tempfile
    from pathlib import Path

    server = start_server(Path(tempfile.mkdtemp(prefix="flux-first-view-")), "rate-limited",
                          {"SERENICITY_API_URL": served.url})
    yield sim, server
    server.stop()
    served.shutdown()


def flux_requests(sim: Simulator) -> int:
    return sum(1 for path, _ in sim.requests if path.endswith("/flux"))


def test_the_overview_shows_hourly_totals_first_then_the_same_numbers(
        page: Page, limited, screenshot_dir):
    sim, server = limited
    page.goto(f"{server.url}/?{days_query(PLAN.day(-9), 3)}")
    first = page.get_by_test_id("stMain").locator(".st-key-first_view")
    expect(first).to_contain_text("First view", timeout=LOAD_TIMEOUT)
    expect(page.get_by_text("Loading flows:")).to_be_visible(timeout=LOAD_TIMEOUT)
    early = {f: metric_value(page, f).inner_text() for f in FIGURES}
    during = flux_requests(sim)
    page.screenshot(path=str(screenshot_dir / "first-view.png"), full_page=True)
    assert all(early.values()), early
    # The full view: the first view gone, the Overview's title and the same figures.
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(first).to_have_count(0)
    after = flux_requests(sim)
    assert during < after, (during, after)  # the flows were still loading
    full = {f: metric_value(page, f).inner_text() for f in FIGURES}
    assert full == early
