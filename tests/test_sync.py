"""The sync worker against the simulator over real HTTP: it fills the last days,
resumes after a stop, survives faults, records its state; what it synced opens
with no request; the CLI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.loader import Loader
from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.service import Service
from flux_dashboard.simulator import Simulator, SimulatorConfig
from flux_dashboard.store import Store
from flux_dashboard.sync import SensorStatus, StatusFile, Worker, describe, window
from tests.kit.procs import scrubbed_env

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
DAYS = 3


@pytest.fixture
def served():
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None,
                                    unstable_ties=True, inclusive_to=True))
    with sim.serve() as server:
        yield sim, server


def service(url: str, cache: Path) -> Service:
    settings = Settings(api_url=url, api_key=Secret("sync-key"), rate_limit_per_min=60_000,
                        cache_dir=cache)
    client = Client(settings, limiter=RateLimiter(60_000), sleep=lambda s: None)
    return Service(settings, client, Loader(client, Store(cache), clock=lambda: NOW,
                                            max_concurrency=4))


def flux_count(sim) -> int:
    """Data requests the simulator answered: rows and the planner's hourly counts."""
    return sum(1 for path, _ in sim.requests if "/flux" in path)


def test_window_ends_at_the_last_settled_hour():
    start, end = window(NOW, 30)  # 12:30 - 15 min settle -> hours before 12:00 are final
    assert end == datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert start == end - timedelta(days=30)


def test_worker_fills_the_window_resumes_after_a_stop_and_warm_opens_cost_nothing(
        served, tmp_path):
    sim, server = served
    start, end = window(NOW, DAYS)
    truth = to_frame(sim.rows(54, start, end))

    # A cold sync of the same window in another cache: the reference cost.
    cold = Worker(service(server.url, tmp_path / "cold"), sensors=[54], days=DAYS,
                  clock=lambda: NOW)
    before = flux_count(sim)
    (ref,) = cold.cycle()
    cold_cost = flux_count(sim) - before
    assert ref.coverage == 1.0 and ref.requests == cold_cost > 10

    # Stopped (SIGTERM) after about a third of the requests...
    stop = threading.Event()
    svc = service(server.url, tmp_path / "cache")
    w = Worker(svc, sensors=[54], days=DAYS, stop=stop, clock=lambda: NOW)
    before = flux_count(sim)
    watcher = threading.Thread(target=lambda: _stop_after(sim, before + cold_cost // 3, stop))
    watcher.start()
    assert w.run() == 3  # stopped with the window incomplete
    watcher.join()
    first = flux_count(sim) - before
    st = StatusFile(tmp_path / "cache", svc.settings.source_id).read()[54]
    assert st.coverage < 1.0 and st.last_error and "cancel" in st.last_error.lower()
    assert st.last_success is None

    # ... a restarted worker (new process: new objects, same cache) resumes.
    w2 = Worker(service(server.url, tmp_path / "cache"), sensors=[54], days=DAYS,
                clock=lambda: NOW)
    before = flux_count(sim)
    assert w2.run(once=True) == 0
    second = flux_count(sim) - before
    st = StatusFile(tmp_path / "cache", svc.settings.source_id).read()[54]
    assert st.coverage == 1.0 and st.last_error is None
    assert st.synced_to == end.isoformat() and st.last_success == NOW.isoformat()
    assert 0 < second < cold_cost
    assert first + second <= cold_cost + 10  # what the first run completed was kept

    # Nothing new: the next cycle asks nothing (rechecks were just recorded).
    before = flux_count(sim)
    w2.cycle()
    assert flux_count(sim) == before

    # A dashboard replica opening any range inside the synced days: 0 requests, exact rows.
    replica = service(server.url, tmp_path / "cache").loader
    before = flux_count(sim)
    got = replica.load(54, start, end)
    assert got.flux_requests == 0 and flux_count(sim) == before
    assert got.frame.height == truth.height
    assert got.frame.select(pl.struct(NATURAL_KEY).n_unique()).item() == truth.height


def _stop_after(sim, n: int, stop: threading.Event) -> None:
    deadline = time.monotonic() + 60
    while flux_count(sim) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()


def test_worker_survives_faults_and_a_429_storm(tmp_path):
    # Flux requests 3-30 fail with 503 (a storm longer than the client's retries: two
    # cycles give up), then three 429s with Retry-After (waited out), then the API heals.
    storm = {i: "503" for i in range(3, 31)} | {i: "429" for i in range(31, 34)}
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None,
                                    fault_schedule=storm, fault_kinds=("500",)))
    with sim.serve() as server:
        svc = service(server.url, tmp_path / "cache")
        svc.client._rand = lambda: 0.0  # no backoff jitter: the storm passes at once
        w = Worker(svc, sensors=[54, 77], days=1, clock=lambda: NOW)
        first = {s.sensor: s for s in w.cycle()}
        assert first[54].last_error and first[54].coverage < 1.0  # gave up this cycle
        assert "Traceback" not in first[54].last_error
        for _ in range(4):  # the worker keeps going until the API has healed
            last = {s.sensor: s for s in w.cycle()}
            if all(st.last_error is None for st in last.values()):
                break
        served_429 = sum(1 for i in range(31, 34) if i <= sim._flux_count)
    assert all(st.last_error is None and st.coverage == 1.0 for st in last.values()), last
    assert served_429 == 3  # the 429s were met, waited out and retried


def test_status_line_for_the_sidebar():
    paris = ZoneInfo("Europe/Paris")
    st = SensorStatus(sensor=54, days=30, synced_to="2026-03-10T12:00:00+00:00",
                      coverage=1.0, last_success=NOW.isoformat())
    assert describe(st, paris, NOW) == "Synced up to 13:00 · 30 days warm"
    older = SensorStatus(sensor=54, days=30, synced_to="2026-03-08T12:00:00+00:00",
                         coverage=0.5, last_success=None, last_error="HTTP 503")
    assert describe(older, paris, NOW) == ("Synced up to 08 Mar 13:00 · 50% of 30 days warm"
                                           " · last cycle failed, retrying")
    assert describe(None, paris, NOW) is None
    bad = SensorStatus(sensor=54, days=30, synced_to="not a date", coverage=1.0,
                       last_success=None)
    assert describe(bad, paris, NOW) is None


def test_status_file_ignores_damage_and_other_sources(tmp_path):
    a = StatusFile(tmp_path, "api|https://x|fp1")
    b = StatusFile(tmp_path, "api|https://y|fp2")
    a.write(SensorStatus(sensor=54, days=30, synced_to=None, coverage=0.0, last_success=None))
    assert 54 in a.read() and b.read() == {}
    raw = json.loads((tmp_path / "sync-status.json").read_text())
    assert "https://x" not in json.dumps(raw)  # the source is hashed
    raw[a.source]["77"] = {"sensor": "x", "unexpected": 1}
    (tmp_path / "sync-status.json").write_text(json.dumps(raw))
    assert set(a.read()) == {54}
    (tmp_path / "sync-status.json").write_text("{not json")
    assert a.read() == {}


def _cli(args, url, cache):
    # A key (to check it never shows): the worker then runs on the real clock, like its
    # simulator; nothing checked here depends on the date.
    env = scrubbed_env({"SERENICITY_API_URL": url, "SERENICITY_API_KEY": "cli-sync-key",
                        "FLUX_RATE_LIMIT": "60000", "FLUX_CACHE_DIR": str(cache)})
    return subprocess.run([sys.executable, "-m", "flux_dashboard", "sync", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_sync_once_and_bad_arguments(tmp_path):
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None))  # real clock, as the worker
    with sim.serve() as server:
        done = _cli(["--sensors", "77", "--days", "1", "--once"], server.url, tmp_path)
        assert done.returncode == 0, done.stderr
        lines = [ln for ln in done.stderr.splitlines() if "sync sensor 77" in ln]
        assert len(lines) == 1 and "requests" in lines[0] and "1 days warm" in lines[0]
        assert "cli-sync-key" not in done.stderr
        status = json.loads((tmp_path / "sync-status.json").read_text())
        (entries,) = status.values()
        assert entries["77"]["coverage"] == 1.0
        meter = json.loads((tmp_path / "request-meter.json").read_text())
        day = next(iter(meter["days"].values()))
        assert day["sync-worker"] == entries["77"]["requests"] > 0
        for bad in (["--sensors", "54;rm"], ["--share", "2"], ["--days", "0"],
                    ["--days", "400"]):
            r = _cli([*bad, "--once"], server.url, tmp_path)
            assert r.returncode == 2, (bad, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ------------------------------------------------------------------ findings
def test_the_worker_detects_findings_once_per_key_on_both_databases(served, tmp_path,
                                                                    database_url):
    """After a complete sync the worker detects over its last 7 days against the days
    before them in its window, from the cache (no request), and stores the findings; a second
    cycle finds the same ones again: no new row, one more detection each."""
    from dataclasses import replace

    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore

    sim, server = served
    svc = service(server.url, tmp_path / "cache")
    svc = Service(replace(svc.settings, database_url=database_url), svc.client, svc.loader)
    w = Worker(svc, sensors=[54], days=8, clock=lambda: NOW)  # 7 days against 1
    (st,) = w.cycle()
    assert st.coverage == 1.0
    store = FindingsStore(db.connect(database_url))
    first = store.list()
    assert first.height > 0 and set(first["sensor"]) == {54}
    assert "toxic_out" in set(first["kind"])
    # Detected in the sensor's own zone: day-bound findings carry local days.
    assert first.filter(pl.col("day").is_not_null()).height > 0
    before = flux_count(sim)
    (st,) = w.cycle()
    assert flux_count(sim) - before == st.requests  # detection itself fetched nothing
    again = store.list()
    assert sorted(again["key"]) == sorted(first["key"])
    assert set(again["detections"]) == {2}
    assert store.events().filter(pl.col("action") == "detected").height == first.height


def test_a_worker_without_its_database_keeps_syncing(served, tmp_path):
    from dataclasses import replace

    from tests.kit.procs import free_port

    sim, server = served
    svc = service(server.url, tmp_path / "cache")
    down = f"postgresql+psycopg://flux:pw@127.0.0.1:{free_port()}/flux"
    svc = Service(replace(svc.settings, database_url=down), svc.client, svc.loader)
    (st,) = Worker(svc, sensors=[54], days=DAYS, clock=lambda: NOW).cycle()
    assert st.coverage == 1.0 and st.last_error is None
