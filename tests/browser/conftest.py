"""Fixtures for the real-browser suite: Streamlit servers and Debian's Chromium.

Each server is ``streamlit run app.py`` in a child process with its own empty
cache directory, no API key in its environment and the clock pinned to the
suite's instant (``tests.kit.clock.PINNED``), like the simulator it reads.
Two session-scoped servers serve most tests: one in demo mode (embedded simulator) and one reading a
simulator served over HTTP from this test process. ``fresh_server`` starts a
throw-away server for checks that need a page URL to be the very first request.

Server output goes to a log file per server (under pytest's tmp dir); the last
lines are printed when a server fails to start. Every server started here is
registered, and the autouse fixture ``server_logs_clean`` fails any test after
which a server log (shared or fresh, whatever the test order) holds a new
traceback: each check reads every log from where the previous check stopped,
so nothing written between two tests is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from servers import ROOT, STARTED, Server, server_log_tracebacks, start_server

from tests.kit.clock import PINNED, pinned_clock

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1500, "height": 2400}


# ------------------------------------------------------------------ pytest-playwright
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT, "accept_downloads": True,
            "locale": "en-GB"}


# ------------------------------------------------------------------ servers
@pytest.fixture(scope="session")
def demo_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("demo-server"), "demo")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_simulator():
    """The simulator behind ``simulator_api`` (tests count its flux requests), with the
    demo server's hostile device names (the escaping and masking checks run in both)."""
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    return Simulator(SimulatorConfig(rate_limit_per_min=None, hostile_names=True,
                                     now=pinned_clock))


@pytest.fixture(scope="session")
def simulator_api(api_simulator):
    """The simulator served over HTTP by this process (no rate limit on its side)."""
    served = api_simulator.serve(port=0)
    yield served
    served.shutdown()


@pytest.fixture(scope="session")
def api_server(tmp_path_factory, simulator_api) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("api-server"), "api",
                          {"SERENICITY_API_URL": simulator_api.url,
                           "FLUX_RATE_LIMIT": "60000"})
    yield server
    server.stop()


@pytest.fixture(params=["demo", "api"])
def server(request) -> Server:
    """Parametrises a test over both session servers. The modes differ only in how the
    data arrives (the embedded simulator, or the same simulator over HTTP), so each
    control test runs in one of them (``parametrize("server", ["api"], indirect=True)``),
    alternating across the suite, and in the mode its checks need (request counts: api);
    every page's render, the filter link and the masked scan run in both."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[Callable[..., Server]]:
    """Factory: a brand-new demo server nobody has requested anything from yet."""
    started: list[Server] = []

    def make() -> Server:
        s = start_server(tmp_path / f"fresh-{len(started)}", "demo")
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# ------------------------------------------------------------------ the simulated world
@pytest.fixture(scope="session")
def sensors(api_simulator) -> dict[int, dict]:
    """The sensor objects both modes serve (same simulator, same seed)."""
    return {int(s["id"]): s for s in api_simulator.sensors()}


@pytest.fixture(scope="session")
def originals(sensors):
    """Every original identifier of the last two days, read from the simulator directly
    (a twin of the demo and API simulators: same seed, so the same devices and remotes)."""
    from browser_kit import identifiers_from_api_rows

    from flux_dashboard.simulator import Simulator, SimulatorConfig

    twin = Simulator(SimulatorConfig(rate_limit_per_min=None, hostile_names=True,
                                     now=pinned_clock))
    end = PINNED + timedelta(hours=1)
    rows = [r for sid in sensors for r in twin.rows(sid, end - timedelta(days=2), end)]
    found = identifiers_from_api_rows(rows, list(sensors.values()))
    assert len(found.ips) > 100 and len(found.macs) > 30 and len(found.names) > 30, found
    return found


# ------------------------------------------------------------------ server logs
@pytest.fixture(autouse=True)
def server_logs_clean(request) -> Iterator[None]:
    """Fail the test if any server log got a traceback since the previous check.

    Autouse and function-scoped, so it is set up before and torn down after the
    test's other function fixtures: a fresh server is already stopped (its log
    complete) when this reads it. Session servers are read from where the last
    check stopped, so the order of tests does not matter.
    """
    yield
    found = server_log_tracebacks()
    if found:
        pytest.fail("server log holds a traceback (written during this test or just "
                    "before it):\n" + "\n".join(found), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def server_logs_clean_at_exit() -> Iterator[None]:
    """What the session servers log while stopping, after the last test."""
    yield
    for s in STARTED:
        s.stop()
    found = server_log_tracebacks()
    assert not found, "server log holds a traceback:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = ROOT / "test-output" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
