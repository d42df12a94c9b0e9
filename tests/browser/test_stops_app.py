"""The dashboard stops in seconds whatever the API does (issue 24's known defect).

A browser opens a cold range; once some hours are saved, the API stops answering
(connections refused) or holds every request open. SIGTERM to the server must end it
within 5 s without a traceback in its log (the autouse log check). A new server on
the same cache then finishes the range: it asks the API only for hours the first one
had not saved, and shows every row of the range once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from browser_kit import LOAD_TIMEOUT, metric_int
from playwright.sync_api import Page, expect
from servers import start_server

from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.clock import PLAN, days_query, local_days, pinned_clock
from tests.kit.procs import wait_until

pytestmark = pytest.mark.browser

SENSOR = 54  # the page's default sensor


def cached_hours(cache: Path) -> set[datetime]:
    """Hours the flows cache claims to hold for the sensor (its files' own metadata)."""
    out: set[datetime] = set()
    for path in cache.glob(f"*/sensor-{SENSOR}/*/*.parquet"):
        if path.name.startswith("."):  # a write in progress (atomic: renamed when done)
            continue
        day = datetime.fromisoformat(path.stem).replace(tzinfo=UTC)
        hours = json.loads(pl.read_parquet_metadata(path)["flux_hours"])
        out |= {day + timedelta(hours=int(h)) for h in hours}
    return out


def asked_hours(requests: list[tuple[str, dict[str, str]]]) -> set[datetime]:
    """Hours the flux requests covered (``from`` and ``to`` sit 1 s before whole hours)."""
    out: set[datetime] = set()
    for path, q in requests:
        if not path.endswith("/flux"):
            continue
        a = datetime.fromisoformat(q["from"].replace("Z", "+00:00")) + timedelta(seconds=1)
        b = datetime.fromisoformat(q["to"].replace("Z", "+00:00")) + timedelta(seconds=1)
        while a < b:
            out.add(a)
            a += timedelta(hours=1)
    return out


@pytest.mark.parametrize("fault", ["refused", "hangs"])
def test_sigterm_during_a_load_on_a_dead_api_exits_in_seconds_then_resumes(
        page: Page, tmp_path, fault):
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None,
                                    hostile_names=True))
    served = sim.serve()
    env = {"SERENICITY_API_URL": served.url, "FLUX_RATE_LIMIT": "120"}
    first_day = PLAN.day(-9)
    start, end = local_days(first_day, 3)
    link = f"/?{days_query(first_day, 3)}"
    server = start_server(tmp_path, f"api-{fault}", env)
    cache = tmp_path / "cache"
    try:
        page.goto(server.url + link)
        expect(page.get_by_text("Loading flows:")).to_be_visible(timeout=LOAD_TIMEOUT)
        wait_until(lambda: len(cached_hours(cache)) >= 3, 90, what="some hours saved")
        if fault == "refused":
            served.shutdown()  # connections refused from now on
        else:
            sim.config.latency_s = 600  # every request from now on is held open
        time.sleep(1.5)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("the server still runs 10 s after SIGTERM")
        took = time.monotonic() - t0
        assert took <= 5.0, f"SIGTERM took {took:.1f} s"
    finally:
        server.stop()
        sim.config.latency_s = 0

    saved = cached_hours(cache)
    wanted = {start + timedelta(hours=i) for i in range(int((end - start) / timedelta(hours=1)))}
    assert saved and saved < wanted, (len(saved), len(wanted))
    # Restarted on the same cache, the API answering again at the same address.
    served2 = sim.serve(port=served.port) if fault == "refused" else served
    sim.requests.clear()
    server2 = start_server(tmp_path, f"api-{fault}-again", env)
    try:
        page.goto(server2.url + link)
        wait_until(lambda: cached_hours(cache) >= wanted, LOAD_TIMEOUT / 1000,
                   what="the rest of the range saved")
        expect(page.get_by_text("Loading flows:")).to_have_count(0, timeout=LOAD_TIMEOUT)
        expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=LOAD_TIMEOUT)
        assert metric_int(page, "Flows") == sim.count_rows(SENSOR, start, end)
        asked = asked_hours(list(sim.requests))
        assert asked, "the rest of the range was fetched"
        assert not asked & saved, sorted(asked & saved)[:5]  # only what was missing
    finally:
        server2.stop()
        served2.shutdown()
