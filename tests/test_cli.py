"""CLI end to end: a real subprocess against the simulator served over real HTTP."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.simulator import Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
KEY = "cli-test-key-0123456789"


@pytest.fixture(scope="module")
def server():
    sim = Simulator(SimulatorConfig(now=lambda: NOW, api_key=KEY, rate_limit_per_min=None,
                                    unstable_ties=True, inclusive_to=True))
    srv = sim.serve(port=0)
    yield sim, srv
    srv.shutdown()


def run(args, *, url, key=KEY, cwd=None, timeout=120):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SERENICITY_", "FLUX_"))}
    env.update({"SERENICITY_API_URL": url, "FLUX_RATE_LIMIT": "60000"})
    if key is not None:
        env["SERENICITY_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "flux_dashboard", *args], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_export_exact_rows_within_budget_then_warm(server, tmp_path):
    sim, srv = server
    start, end = "2026-03-02T00:00Z", "2026-03-06T06:00Z"
    out = tmp_path / "flows.parquet"
    sim.reset_counters()
    r = run(["export", "--sensor", "54", "--from", start, "--to", end, "--out", str(out),
             "--cache-dir", str(tmp_path / "cache")], url=srv.url)
    assert r.returncode == 0, r.stderr
    assert "rows written" in r.stderr and "requests" in r.stderr  # progress on stderr
    assert r.stdout == ""
    got = pl.read_parquet(out)
    want = to_frame(sim.rows(54, datetime(2026, 3, 2, tzinfo=UTC),
                             datetime(2026, 3, 6, 6, tzinfo=UTC)))
    assert_frame_equal(got.sort(NATURAL_KEY, nulls_last=True),
                       want.sort(NATURAL_KEY, nulls_last=True))
    cold = sim.flux_request_count()
    assert 0 < cold <= 2 * math.ceil(want.height / 1000) + 10

    sim.reset_counters()
    out_csv = tmp_path / "again.csv"
    r = run(["export", "--sensor", "54", "--from", start, "--to", end, "--out", str(out_csv),
             "--cache-dir", str(tmp_path / "cache")], url=srv.url)
    assert r.returncode == 0, r.stderr
    assert sim.flux_request_count() == 0  # warm revisit: nothing asked
    assert pl.read_csv(out_csv).height == want.height


def test_export_with_filters(server, tmp_path):
    sim, srv = server
    out = tmp_path / "toxic.csv"
    r = run(["export", "--sensor", "54", "--from", "2026-03-01", "--to", "2026-03-08",
             "--only-toxic", "--only-out", "--out", str(out), "-q",
             "--cache-dir", str(tmp_path / "c")], url=srv.url)
    assert r.returncode == 0, r.stderr
    got = pl.read_csv(out)
    want = to_frame(sim.rows(54, datetime(2026, 3, 1, tzinfo=UTC),
                             datetime(2026, 3, 8, tzinfo=UTC))).filter(
        pl.col("toxic") & (pl.col("dir") == "OUT"))
    assert got.height == want.height > 0
    assert set(got["dir"]) == {"OUT"}


def test_sensors_lists(server):
    sim, srv = server
    r = run(["sensors"], url=srv.url)
    assert r.returncode == 0, r.stderr
    ids = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert "54" in ids and "77" in ids
    assert "127.0.0.1" in r.stderr  # says which source it read


def one_line_error(r):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert KEY not in r.stderr + r.stdout
    return lines[-1]


def test_bad_key(server, tmp_path):
    _, srv = server
    r = run(["export", "--sensor", "54", "--from", "2026-03-01", "--to", "2026-03-02",
             "--out", str(tmp_path / "x.csv")], url=srv.url, key="wrong-" + KEY)
    line = one_line_error(r)
    assert "API key" in line and ("wrong-" + KEY) not in r.stderr


def test_unknown_sensor(server, tmp_path):
    _, srv = server
    line = one_line_error(run(["export", "--sensor", "12345", "--from", "2026-03-01", "--to",
                               "2026-03-02", "--out", str(tmp_path / "x.csv")], url=srv.url))
    assert "12345" in line


def test_bad_dates_and_range(server, tmp_path):
    _, srv = server
    for dates in (["--from", "yesterday-ish", "--to", "2026-03-02"],
                  ["--from", "2026-03-05", "--to", "2026-03-02"]):
        r = run(["export", "--sensor", "54", *dates, "--out", str(tmp_path / "x.csv")],
                url=srv.url)
        assert r.returncode == 2
        one_line_error(r)


def test_unreachable_api(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(["sensors"], url=f"http://127.0.0.1:{port}/api/v1")
    line = one_line_error(r)
    assert "Could not reach" in line and f"127.0.0.1:{port}" in line


def test_demo_mode_without_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERENICITY_", "FLUX_"))}
    env.update({"FLUX_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)})
    # Run from an empty folder: no secrets.toml, no configuration at all.
    r = subprocess.run([sys.executable, "-m", "flux_dashboard", "sensors"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Demo sensor, simulated data" in r.stderr and "54" in r.stdout
