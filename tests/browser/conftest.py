"""Fixtures for the real-browser suite: Streamlit servers and Debian's Chromium.

Each server is ``streamlit run app.py`` in a child process with its own empty
cache directory and no API key in its environment. Two session-scoped servers
serve most tests: one in demo mode (embedded simulator) and one reading a
simulator served over HTTP from this test process. ``fresh_server`` starts a
throw-away server for checks that need a page URL to be the very first request.

Server output goes to a log file per server (under pytest's tmp dir); the last
lines are printed when a server fails to start, and ``Server.log_text()`` lets
tests look for tracebacks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1500, "height": 2400}
START_TIMEOUT_S = 60.0


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: Path
    mode: str  # "demo" | "api"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, mode: str, extra_env: dict[str, str] | None = None) -> Server:
    """Start ``streamlit run app.py`` and wait until ``/_stcore/health`` answers ``ok``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cache = workdir / "cache"
    cache.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SERENICITY_API_KEY", "SERENICITY_API_URL", "FLUX_RATE_LIMIT")}
    env.update({"FLUX_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    log_path = workdir / "server.log"
    last_error = ""
    for _attempt in range(3):  # a port taken between bind() and the child's bind: retry
        port = _free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py",
                 "--server.headless", "true", "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                 # Others edit the app while tests run: no reload in the middle of a test.
                 "--server.fileWatcherType", "none"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", proc, log_path, mode)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"{server.url}/_stcore/health", timeout=2)
                if r.status_code == 200 and r.text.strip() == "ok":
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        last_error = server.log_text()[-3000:]
        server.stop()
        if "is not available" not in last_error:
            break
    raise RuntimeError(f"streamlit did not become healthy ({mode}); log tail:\n{last_error}")


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
def simulator_api():
    """The simulator served over HTTP by this process (no rate limit on its side)."""
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    served = Simulator(SimulatorConfig(rate_limit_per_min=None)).serve(port=0)
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
    """Parametrises a test over both session servers."""
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


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = ROOT / "test-output" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
