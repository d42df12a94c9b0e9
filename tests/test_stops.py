"""Clean stops whatever the API does (issue 24's known defects): SIGTERM to the sync
worker while its load waits on an API that stopped answering (connections refused) or
that holds requests open; it exits within 5 s without a traceback, and a restart
resumes, fetching only what was missing."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import load_settings
from flux_dashboard.loader.gate import Gate, Stop, gate_client, gated
from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.procs import scrubbed_env, wait_until

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
DAYS = 3
EXIT_WITHIN_S = 5.0


def flux_count(sim: Simulator) -> int:
    return sum(1 for path, _ in sim.requests if path.endswith("/flux"))


def worker(url: str, cache: Path, *extra: str) -> subprocess.Popen:
    cache.mkdir(parents=True, exist_ok=True)
    # 240 a minute: slow enough to stop it in the middle of its load.
    env = scrubbed_env({"SERENICITY_API_URL": url, "FLUX_NOW": NOW.isoformat(),
                        "FLUX_CACHE_DIR": str(cache), "FLUX_RATE_LIMIT": "240",
                        "PYTHONPATH": str(ROOT)})
    return subprocess.Popen([sys.executable, "-m", "flux_dashboard", "sync", "--sensors", "54",
                             "--days", str(DAYS), "--no-notify", "--no-findings", *extra],
                            cwd=cache.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop_in_time(proc: subprocess.Popen) -> tuple[float, str]:
    """SIGTERM; (seconds to exit, stderr). Fails if it is still running after 5 s."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=EXIT_WITHIN_S + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running {EXIT_WITHIN_S + 10:.0f} s after SIGTERM: {err[-1500:]}")
    took = time.monotonic() - t0
    assert took <= EXIT_WITHIN_S, (took, err[-1500:])
    assert "Traceback" not in err, err[-3000:]
    return took, err


@pytest.mark.parametrize("fault", ["refused", "hangs"])
def test_the_worker_stops_in_seconds_then_resumes(tmp_path, fault):
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None))
    server = sim.serve()
    cold = worker(server.url, tmp_path / "cold" / "cache", "--once")
    assert cold.wait(180) == 0, cold.stderr.read()[-2000:]
    cold_cost = flux_count(sim)
    assert cold_cost > 10

    before = flux_count(sim)
    w = worker(server.url, tmp_path / "run" / "cache")
    wait_until(lambda: flux_count(sim) - before >= cold_cost * 2 // 3, 120,
               what="most of its requests")
    if fault == "refused":
        server.shutdown()  # connections refused from now on: the worker retries
    else:
        sim.config.latency_s = 600  # every request from now on is held open
    time.sleep(1.5)
    took, err = stop_in_time(w)
    if fault == "hangs":
        assert "exiting now" in err  # it did not wait for the API's answer
    first = flux_count(sim) - before
    sim.config.latency_s = 0

    # Restarted against an API that answers again.
    # The same address (the cache is keyed by the API's URL).
    server2 = sim.serve(port=server.port) if fault == "refused" else server
    before = flux_count(sim)
    again = worker(server2.url, tmp_path / "run" / "cache", "--once")
    assert again.wait(180) == 0, again.stderr.read()[-2000:]
    second = flux_count(sim) - before
    server2.shutdown()
    assert 0 < second < cold_cost, (first, second, cold_cost)
    assert first + second <= cold_cost + 15, (first, second, cold_cost)


def test_a_cancelled_load_stops_waiting_for_its_retry_at_once():
    """The client's backoff before a retry watches the load's cancel: against an API
    that refuses every connection, a cancel ends the wait within a fraction of a second
    (the five backoffs would take 15.5 s), and no request is sent after it."""
    sent = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        raise httpx.ConnectError("refused", request=request)

    settings = load_settings(env={"SERENICITY_API_KEY": "k" * 32}, secrets={})
    client = Client(settings, transport=httpx.MockTransport(refuse),
                    limiter=RateLimiter(60_000), rand=lambda: 1.0)
    gate_client(client)
    gate = Gate(cancel=threading.Event())
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            with gated(gate):
                client.flux_page(54, {"page": 1})
        except BaseException as exc:  # noqa: BLE001 - what the load ended with
            outcome.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    wait_until(lambda: len(sent) >= 3, 10, what="three attempts")  # in the 2 s backoff now
    cancelled_at = time.monotonic()
    gate.cancel.set()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - cancelled_at < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Stop) and outcome[0].cancelled
    assert all(s < cancelled_at for s in sent)  # nothing sent after the cancel
