"""Long loads in the browser: cancel one from the page, then resume it where it stopped.

The app reads a deliberately slow simulator over HTTP (latency on every
request, small pages, one request at a time), so a day takes long enough to
click "Cancel the load" halfway. Requests are counted at the simulator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from browser_kit import LOAD_TIMEOUT, wait_for_run
from playwright.sync_api import Browser, Page, expect
from servers import Server, start_server

from tests.kit.clock import (
    PINNED_ISO,
    days_before,
    days_query,
    local_days,
    pinned_clock,
    working_day,
)
from tests.kit.procs import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def slow_sim():
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, latency_s=0.25, max_per_page=100,
                                    now=pinned_clock))
    served = sim.serve(port=0)
    yield sim, served.url
    served.shutdown()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory, slow_sim) -> Iterator[Server]:
    _, url = slow_sim
    server = start_server(tmp_path_factory.mktemp("slow"), "api",
                          {"SERENICITY_API_URL": url, "FLUX_RATE_LIMIT": "60000",
                           "FLUX_PER_PAGE": "100", "FLUX_MAX_CONCURRENCY": "1",
                           "FLUX_CONFIRM_REQUESTS": "100000"})
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1500, "height": 1600})
    p = ctx.new_page()
    yield p
    ctx.close()


def flux_requests(sim) -> int:
    return sum(1 for path, _ in sim.requests if path.endswith("/flux"))


def test_cancel_then_resume_fetches_only_the_rest(slow_server, slow_sim, page, tmp_path):
    sim, _ = slow_sim
    # Remote hosts: a page without lookbacks, so only the main load is timed here. A
    # working day: a weekend night's load may be over before 30 requests.
    day = working_day()
    page.goto(f"{slow_server.url}/remotes?{days_query(day)}")
    cancel = page.get_by_role("button", name="Cancel the load")
    expect(cancel).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    # Let it fetch a part of the day, then cancel.
    deadline = time.monotonic() + 60
    while flux_requests(sim) < 30 and time.monotonic() < deadline:
        time.sleep(0.2)
    cancel.click()
    expect(page.get_by_text("Load cancelled.")).to_be_visible(timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    spent = flux_requests(sim)
    time.sleep(2.0)
    assert flux_requests(sim) <= spent + 1, "the load went on after Cancel"
    spent = flux_requests(sim)
    # The page shows what was cached, and says so.
    expect(page.get_by_text("cached hours of this range only", exact=False)).to_be_visible()
    resume = page.get_by_role("button", name="Resume the load")
    resume.click()
    expect(page.get_by_role("button", name="Cancel the load")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel the load")).to_have_count(0,
                                                                            timeout=LOAD_TIMEOUT)
    wait_for_run(page)
    expect(page.get_by_role("heading", name="Remote hosts")).to_be_visible()
    expect(page.get_by_text("Load cancelled.")).to_have_count(0)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()

    # A cold load of the same day from scratch, for comparison (same data, new cache).

    from flux_dashboard.client import Client
    from flux_dashboard.config import load_settings
    from flux_dashboard.loader import Loader
    from flux_dashboard.store import Store

    cfg = load_settings(env={"SERENICITY_API_URL": slow_sim[1], "FLUX_RATE_LIMIT": "60000",
                             "FLUX_CACHE_DIR": str(tmp_path), "FLUX_NOW": PINNED_ISO},
                        secrets={})
    latency, sim.config.latency_s = sim.config.latency_s, 0.0  # a count: no need to wait
    try:
        cold = Loader(Client(cfg), Store(tmp_path), per_page=100, max_concurrency=1,
                      clock=cfg.now).load(54, *local_days(day)).flux_requests
    finally:
        sim.config.latency_s = latency
    # The loads' own requests, as the app audited them (its cost estimates aside).
    audit = slow_server.log_path.parent / "cache" / "audit.jsonl"
    events = [json.loads(x) for x in audit.read_text().splitlines()]
    cancelled = [e["requests"] for e in events if e["event"] == "load_cancelled"]
    finished = [e["requests"] for e in events if e["event"] == "load_finished"]
    assert cancelled and cancelled[0] > 0 and finished, events
    resumed = finished[-1]
    assert 0 < resumed < cold, (cancelled, resumed, cold)
    assert resumed <= cold - cancelled[0] + 10, (cancelled, resumed, cold)


def test_closing_the_tab_cancels_a_load_nobody_waits_for(slow_server, slow_sim, browser):
    sim, _ = slow_sim
    ctx = browser.new_context(viewport={"width": 1500, "height": 1600})
    page = ctx.new_page()
    # Three days no other test loaded (the other one loads the last 24 hours): over a
    # hundred requests at 0.25 s each, so the load outlasts the grace period.
    audit = slow_server.log_path.parent / "cache" / "audit.jsonl"

    def cancelled() -> int:
        lines = audit.read_text().splitlines() if audit.exists() else []
        return sum(1 for x in lines if json.loads(x)["event"] == "load_cancelled")

    before = cancelled()  # the other test of this module cancels a load too
    page.goto(f"{slow_server.url}/remotes?{days_before(3, ago=7)}")
    expect(page.get_by_role("button", name="Cancel the load")).to_be_visible(timeout=LOAD_TIMEOUT)
    ctx.close()  # the tab is gone while the load runs
    closed = flux_requests(sim)
    # The grace period (loads.DETACH_GRACE_S, 8 s), then the load stops: audited.
    wait_until(lambda: cancelled() == before + 1, timeout=60, what="the load's cancellation")
    stopped_at = flux_requests(sim)
    assert stopped_at > closed, "the load stopped at once: the grace period is not there"
    time.sleep(2)
    assert flux_requests(sim) <= stopped_at + 1, "the load went on with nobody waiting"
