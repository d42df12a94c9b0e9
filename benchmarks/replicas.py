"""Two dashboard replicas and the sync worker on one Redis and one cache directory.

``python -m benchmarks.replicas [--rate 600] [--days 30]`` (also part of ``make bench``).
Every process is a separate OS process, built from the environment exactly as a
deployment is (``FLUX_REDIS_URL``, ``FLUX_CACHE_DIR``, ``FLUX_RATE_LIMIT``); the
simulator serves them over HTTP with its own rate limit set to ``--rate`` and a
few 429s injected on purpose. The bench process times every request the
simulator answers, then checks:

* every 60-second window (sliding) holds at most ``rate`` requests;
* no 429 beyond the injected ones;
* the processes together sent no more flux requests than one process loading
  the union of their windows alone (the same simulator, a fresh cache, measured
  in the same run), and no identical flux request twice;
* every load returned exactly the simulator's rows (count and key hash);
* after the worker's cycle, opening the synced 30-day range from either
  replica makes no request.

Every process and the simulator share one pinned clock (``FLUX_NOW``, the
bench's ``--now``): what a load must return never depends on the hour it runs at
(on the wall clock, a run that crossed an hour saw late uploads land between a
load and its check). Windows end at the last settled hour of that instant. The
processes read the simulator as a simulator served over HTTP (no API key: a
pinned clock is refused with one), metered and rate limited like the API.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.kit.procs import ROOT, scrubbed_env
from tests.kit.services import RedisServer

NOW = datetime(2026, 4, 1, 12, 30, tzinfo=UTC)  # bench.DEFAULT_NOW
INJECTED_429 = (40, 160)  # flux request numbers answered 429 on purpose

# A replica: loads its windows in order, prints one JSON line per load.
CHILD = """
import hashlib, json, sys
from datetime import datetime
import polars as pl
from flux_dashboard.config import load_settings
from flux_dashboard.schema import NATURAL_KEY
from flux_dashboard.service import build_service
svc = build_service(load_settings())
for spec in json.loads(sys.argv[1]):
    sensor, start, end = spec[0], datetime.fromisoformat(spec[1]), datetime.fromisoformat(spec[2])
    r = svc.loader.load(sensor, start, end)
    keys = r.frame.select(pl.struct(NATURAL_KEY).hash(seed=7).alias("h"))["h"]
    print(json.dumps({"sensor": sensor, "start": spec[1], "end": spec[2],
                      "rows": r.frame.height, "requests": r.flux_requests,
                      "keys": int(keys.sum() % (1 << 61)) if r.frame.height else 0}),
          flush=True)
svc.close()
"""


def _keys_hash(frame) -> int:
    import polars as pl

    from flux_dashboard.schema import NATURAL_KEY

    keys = frame.select(pl.struct(NATURAL_KEY).hash(seed=7).alias("h"))["h"]
    return int(keys.sum() % (1 << 61)) if frame.height else 0


def peak_per_minute(times) -> int:
    """The most of ``times`` (seconds) in any sliding 60-second window."""
    stamps = sorted(times)
    j = peak = 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 60:
            j += 1
        peak = max(peak, i - j + 1)
    return peak


def run(rate: int, days: int, now: datetime = NOW) -> dict:
    from flux_dashboard.hours import SETTLE, floor_hour
    from flux_dashboard.schema import to_frame
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    schedule = dict.fromkeys(INJECTED_429, "429")
    sim = Simulator(SimulatorConfig(rate_limit_per_min=rate, unstable_ties=True,
                                    inclusive_to=True, fault_schedule=schedule,
                                    hostile_names=True, now=lambda: now))
    log: list[tuple[float, str, str, int]] = []
    lock = threading.Lock()
    handle = sim.handle

    def timed(method, path, params, headers):
        status, extra, body = handle(method, path, params, headers)
        with lock:
            log.append((time.monotonic(), path, path + " " + json.dumps(sorted(params.items())),
                        status))
        return status, extra, body

    sim.handle = timed
    end = floor_hour(now - SETTLE)
    month = (end - timedelta(days=days), end)
    week = (end - timedelta(days=7), end)
    a_windows = [(54, *week), (77, *month)]
    b_windows = [(54, *month), (77, *week)]
    out: dict = {"rate": rate, "days": days}
    with tempfile.TemporaryDirectory(prefix="flux-replicas-") as tmp, sim.serve() as server:
        redis = RedisServer(Path(tmp))
        try:
            env = scrubbed_env({
                "SERENICITY_API_URL": server.url, "FLUX_NOW": now.isoformat(),
                "FLUX_RATE_LIMIT": str(rate), "FLUX_CACHE_DIR": f"{tmp}/cache",
                "FLUX_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)})

            def replica(windows) -> subprocess.Popen:
                spec = json.dumps([(s, a.isoformat(), b.isoformat()) for s, a, b in windows])
                return subprocess.Popen([sys.executable, "-c", CHILD, spec], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)

            t0 = time.monotonic()
            worker = subprocess.Popen(
                [sys.executable, "-m", "flux_dashboard", "sync", "--sensors", "54,77",
                 "--days", str(days), "--share", "0.5", "--once"], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs = {"replica A": replica(a_windows), "replica B": replica(b_windows)}
            loads: list[dict] = []
            for name, p in procs.items():
                o, e = p.communicate(timeout=3600)
                if p.returncode:
                    raise SystemExit(f"{name} failed:\n{e[-3000:]}")
                loads += [{"process": name, **json.loads(line)} for line in o.splitlines()]
            w_out, w_err = worker.communicate(timeout=3600)
            if worker.returncode:
                raise SystemExit(f"sync worker failed:\n{w_err[-3000:]}")
            out["wall_s"] = time.monotonic() - t0
            out["worker_log"] = [ln for ln in w_err.splitlines() if "sync sensor" in ln]
            with lock:
                busy = list(log)

            # Warm opens: the synced range from either replica, now.
            warm = []
            for name in ("replica A", "replica B"):
                p = replica([(54, *month), (77, *month)])
                o, e = p.communicate(timeout=600)
                if p.returncode:
                    raise SystemExit(f"{name} (warm) failed:\n{e[-3000:]}")
                warm += [{"process": name, **json.loads(line)} for line in o.splitlines()]
        finally:
            redis.stop()

        # Ground truth, and one process alone loading the union of the windows.
        truth = {}
        for s, a, b in {*a_windows, *b_windows, (54, *month), (77, *month)}:
            truth[(s, a.isoformat(), b.isoformat())] = to_frame(sim.rows(s, a, b))
        from flux_dashboard.config import load_settings
        from flux_dashboard.service import build_service

        solo_env = {"SERENICITY_API_URL": server.url, "FLUX_NOW": now.isoformat(),
                    "FLUX_RATE_LIMIT": str(rate), "FLUX_CACHE_DIR": f"{tmp}/solo"}
        before = len(log)
        svc = build_service(load_settings(env=solo_env, secrets={}))
        for s in (54, 77):  # the union of every window asked for this sensor
            svc.loader.load(s, min(end - timedelta(days=days), week[0]), end)
        svc.close()
        solo = sum(1 for _, path, _, st in log[before:] if path.endswith("/flux") and st == 200)

    flux = [(t, q, st) for t, path, q, st in busy if path.endswith("/flux")]
    peak = peak_per_minute(t for t, _, _ in flux)
    out.update({
        "requests": len(busy), "flux_requests": sum(1 for *_, st in flux if st == 200),
        "peak_per_minute": peak,
        "status_429": sum(1 for _, _, st in flux if st == 429),
        "injected_429": sum(1 for n in INJECTED_429 if n <= sim.flux_request_count()),
        # Row fetches only: a per_page=1 count (late-data recheck, estimate) asks for
        # no rows, and two processes may each count the same recent hours.
        "repeated_identical": sum(c - 1 for c in Counter(
            q for _, q, st in flux if st == 200 and '"per_page", "1"' not in q).values()
            if c > 1),
        "repeated_examples": [q for q, c in Counter(q for _, q, st in flux
                                                     if st == 200).items() if c > 1][:5],
        "solo_flux_requests": solo,
        "loads": loads, "warm": warm,
    })
    exact = []
    for ld in loads + warm:
        want = truth[(ld["sensor"], ld["start"], ld["end"])]
        exact.append(ld["rows"] == want.height and ld["keys"] == _keys_hash(want))
    out["rows_exact"] = all(exact)
    out["warm_requests"] = sum(ld["requests"] for ld in warm)
    return out


def table(r: dict) -> tuple[list[str], list[str]]:
    problems = []
    if r["peak_per_minute"] > r["rate"]:
        problems.append(f"{r['peak_per_minute']} requests in one minute (limit {r['rate']})")
    if r["status_429"] > r["injected_429"]:
        problems.append(f"{r['status_429'] - r['injected_429']} unexpected 429s")
    if r["flux_requests"] > r["solo_flux_requests"] * 1.05 + 10:
        problems.append(f"{r['flux_requests']} flux requests across processes, "
                        f"{r['solo_flux_requests']} for one process alone")
    if r["repeated_identical"]:
        problems.append(f"{r['repeated_identical']} identical row fetches repeated: "
                        f"{r['repeated_examples']}")
    if not r["rows_exact"]:
        problems.append("a load's rows differ from the simulator's")
    if r["warm_requests"]:
        problems.append(f"warm opens made {r['warm_requests']} requests")
    lines = [
        "| measure | value | target |", "|---|---:|---|",
        f"| flux requests, 2 replicas + worker | {r['flux_requests']:,} | ≤ one process "
        f"alone: {r['solo_flux_requests']:,} (ratio "
        f"{r['flux_requests'] / max(1, r['solo_flux_requests']):.2f}) |",
        f"| busiest 60 s window | {r['peak_per_minute']} | ≤ {r['rate']} (the simulator's "
        "limit) |",
        f"| 429 answers | {r['status_429']} | ≤ {r['injected_429']} injected on purpose |",
        f"| identical row fetch sent twice | {r['repeated_identical']} | 0 |",
        f"| loads with exact rows | {'all' if r['rows_exact'] else 'NOT ALL'} "
        f"({len(r['loads']) + len(r['warm'])}) | all |",
        f"| requests to open the synced {r['days']}-day range, both replicas | "
        f"{r['warm_requests']} | 0 |",
        f"| wall time (worker + replicas) | {r['wall_s']:.0f} s | — |",
    ]
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.replicas")
    p.add_argument("--rate", type=int, default=600, help="the simulator's and the key's "
                   "limit, requests per minute (default 600)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--now", default=NOW.isoformat(), help="the pinned clock of every process")
    args = p.parse_args(argv)
    r = run(args.rate, args.days, datetime.fromisoformat(args.now.replace("Z", "+00:00")))
    lines, problems = table(r)
    print("\n".join(lines))
    for ln in r["worker_log"]:
        print("  worker:", ln.split(" INFO ", 1)[-1])
    if problems:
        print("PROBLEMS:\n" + "\n".join(f"- {x}" for x in problems))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
