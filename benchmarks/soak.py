"""The chaos soak: the whole hosted deployment on this machine while the API misbehaves.

``python -m benchmarks.soak [--minutes 10] [--sessions 10]`` (``make soak``);
``--short``: 2 sessions, 90 s, one of each fault (what ``make test`` runs).

Everything runs on loopback and stops by itself:

* the simulator over HTTP, its rate limit on (``--rate``), with faults from the end
  of the calm first fifth: about 5 % 5xx and 2 % truncated bodies throughout, one
  storm of 429s, one outage (connections refused, 60 s) and one hang (every request
  held 30 s);
* Redis, PostgreSQL (findings and the delivery ledger), a webhook receiver for the
  morning report and alerts;
* two replicas under ``make serve``'s module (``python -m flux_dashboard.serve``,
  ``FLUX_ALLOW_ANONYMOUS=1`` on loopback) and the sync worker, one cache directory;
* ``--sessions`` analysts over Streamlit's websocket (``soak_sessions``): pages,
  filters, warm and cold ranges, cancelled loads, downloads, triage.

During the run each replica is restarted once with SIGTERM, the worker is killed
once with SIGKILL and restarted, and Redis is restarted once. Then every process
is stopped with SIGTERM and the table is printed; the run fails when a target is
missed (``problems``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.load_test.metrics import Phase
from benchmarks.replicas import peak_per_minute
from benchmarks.soak_sessions import Outcome, Shared, SoakAnalyst, cold_ranges
from tests.kit.procs import ROOT, free_port, scrubbed_env
from tests.kit.services import PostgresServer, RedisServer, WebhookReceiver

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)  # every process's pinned clock
SENSORS = (54, 77)
EXIT_WITHIN_S = 5.0
CALM = 0.2  # the first fifth of the run: no fault at all (the baseline of the p95s)
# Row requests of the whole deployment at most WORK_RATIO × one process alone (fresh
# cache, no faults) + WORK_SLACK: faults, cancels and the restarts waste what was in
# flight; the slack is the fixed part (4 interruptions, each may cut up to 8 windows
# with a retry), which a short run would otherwise see as a large ratio.
WORK_RATIO = 1.5
WORK_SLACK = 40


@dataclass
class Plan:
    minutes: float
    sessions: int
    rate: int = 300
    outage_s: float = 60.0
    hang_s: float = 30.0
    storm: int = 30  # consecutive flux requests answered 429
    synced_days: int = 7
    think: tuple[float, float] = (1.0, 4.0)
    seed: int = 24

    @classmethod
    def short(cls) -> Plan:
        return cls(minutes=1.5, sessions=2, outage_s=10.0, hang_s=8.0, storm=10,
                   synced_days=3, think=(0.5, 2.0))


@dataclass
class Log:
    """Every request the simulator answered: (monotonic time, path, params, outcome)."""

    rows: list[tuple[float, str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Replica:
    """``python -m flux_dashboard.serve`` on a fixed port (a restart keeps its URL)."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.env, self.port = name, env, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.log_path.unlink(missing_ok=True)  # this run's log only
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flux_dashboard.serve"], cwd=ROOT,
                env={**self.env, "FLUX_PORT": str(self.port), "FLUX_ADDRESS": "127.0.0.1",
                     "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/_stcore/health", timeout=2).text.strip() == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")


def sigterm(proc: subprocess.Popen) -> float:
    """SIGTERM; seconds until it exited (killed, and reported as 99, after 20 s)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return 99.0
    return time.monotonic() - t0


def run(plan: Plan, out_dir: Path | None = None) -> dict:
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(
        now=lambda: NOW, rate_limit_per_min=plan.rate, unstable_ties=True, inclusive_to=True,
        hostile_names=True, fault_kinds=("500", "503", "500", "502", "503", "truncated",
                                         "truncated")))
    log = Log()
    handle = sim.handle

    def logged(method, path, params, headers):
        t = time.monotonic()
        status, extra, body = handle(method, path, params, headers)
        if status == 429:
            outcome = "limit429" if b"per minute" in body else "injected429"
        elif status >= 500:
            outcome = "5xx"
        elif "x-sim-truncate" in extra:
            outcome = "truncated"
        else:
            outcome = str(status)
        with log.lock:
            log.rows.append((t, path, json.dumps(sorted(params.items())), outcome))
        return status, extra, body

    sim.handle = logged
    tmp = Path(tempfile.mkdtemp(prefix="flux-soak-"))
    work = out_dir or tmp
    work.mkdir(parents=True, exist_ok=True)
    served = sim.serve()
    redis = RedisServer(tmp)
    pg = PostgresServer()
    hook = WebhookReceiver()
    result: dict = {"plan": plan.__dict__ | {"think": list(plan.think)}, "stops": [],
                    "events": []}
    t_start = time.monotonic()

    def event(what: str) -> None:
        result["events"].append((round(time.monotonic() - t_start, 1), what))
        print(f"  [{time.monotonic() - t_start:6.1f} s] {what}", flush=True)

    replicas: list[Replica] = []
    worker: subprocess.Popen | None = None
    try:
        database = pg.database()
        routes = tmp / "notify.toml"
        routes.write_text('[routes.soc]\nsensors = "*"\nurls = ["SOAK_HOOK"]\n'
                          'receives = ["daily", "alerts"]\n')
        env = scrubbed_env({
            "SERENICITY_API_URL": served.url, "FLUX_NOW": NOW.isoformat(),
            "FLUX_RATE_LIMIT": str(plan.rate), "FLUX_CACHE_DIR": str(tmp / "cache"),
            "FLUX_REDIS_URL": redis.url, "FLUX_DATABASE_URL": database,
            "FLUX_ALLOW_ANONYMOUS": "1", "FLUX_NOTIFY_FILE": str(routes),
            "SOAK_HOOK": hook.url(), "FLUX_PUBLIC_URL": "http://127.0.0.1:8501",
            "FLUX_CONFIRM_REQUESTS": "400", "PYTHONPATH": str(ROOT)})
        worker_log = work / "worker.log"
        worker_log.unlink(missing_ok=True)

        def start_worker() -> subprocess.Popen:
            with worker_log.open("ab") as fh:
                return subprocess.Popen(
                    [sys.executable, "-m", "flux_dashboard", "sync", "--sensors",
                     ",".join(map(str, SENSORS)), "--days", str(plan.synced_days)],
                    cwd=tmp, env=env, stdout=fh, stderr=subprocess.STDOUT)

        worker = start_worker()
        replicas = [Replica("replica-a", env, work), Replica("replica-b", env, work)]
        for r in replicas:
            r.start()
        event("simulator, Redis, PostgreSQL, webhook, worker and two replicas up")

        # The ranges: warm ones inside the worker's days, cold ones weeks before.
        today = NOW.date()
        warm = [(today - timedelta(days=d + 2), today - timedelta(days=d))
                for d in range(1, plan.synced_days - 1)] or [(today - timedelta(days=2), today)]
        cold = cold_ranges(today - timedelta(days=80), today - timedelta(days=20), 2, 40,
                           plan.seed)
        shared = Shared()
        duration = plan.minutes * 60
        deadline = time.monotonic() + duration
        findings_db = _findings(database)
        phase = Phase("soak", plan.sessions)
        analysts = [SoakAnalyst(i, replicas[i % 2].url, warm, cold, plan.seed, phase, shared,
                                plan.think) for i in range(plan.sessions)]

        def chaos() -> None:
            nonlocal worker
            at = t_start_sessions

            def until(frac: float) -> bool:
                left = at + duration * frac - time.monotonic()
                if left > 0:
                    time.sleep(left)
                return True

            until(CALM)
            sim.config.fault_rate = 0.07
            event("faults on: 5% 5xx, 2% truncated bodies")
            shared.findings.extend(findings_db())
            until(0.25)
            n = sim.flux_request_count() if hasattr(sim, "flux_request_count") else 0
            sim.config.fault_schedule.update({n + i: "429" for i in range(1, plan.storm + 1)})
            result["storm"] = (n + 1, n + plan.storm)
            event(f"429 storm: flux requests {n + 1}-{n + plan.storm}")
            until(0.30)
            _restart(replicas[0], shared, result, event)
            until(0.38)
            served.shutdown()
            event(f"API outage: connections refused for {plan.outage_s:.0f} s")
            time.sleep(plan.outage_s)
            nonlocal_served[0] = sim.serve(port=served.port)
            event("API back")
            shared.findings.extend(findings_db())
            until(0.55)
            worker.kill()
            worker.wait()
            event("worker killed (SIGKILL)")
            result["worker_restarted_at"] = worker_log.stat().st_size
            worker = start_worker()
            event("worker restarted")
            until(0.62)
            event("Redis restart: down for 2 s")
            redis.restart(down_s=2.0)
            event("Redis restarted (empty)")
            until(0.70)
            sim.config.latency_s = plan.hang_s
            event(f"API hang: every request held {plan.hang_s:.0f} s")
            time.sleep(plan.hang_s)
            sim.config.latency_s = 0
            event("hang over")
            until(0.80)
            _restart(replicas[1], shared, result, event)

        nonlocal_served = [served]
        t_start_sessions = time.monotonic()
        chaos_thread = threading.Thread(target=chaos, name="chaos", daemon=True)
        chaos_thread.start()
        event(f"{plan.sessions} sessions for {plan.minutes:g} min")
        _sessions(analysts, deadline)
        chaos_thread.join(timeout=max(1.0, plan.outage_s + plan.hang_s + 60))
        event("sessions done")
        result["calm_until"] = t_start_sessions + duration * CALM
        result["t0"] = t_start
        result["outcomes"] = shared.outcomes
        result["assigned"] = list(shared.assigned)
        result["pruned_downloads"] = shared.pruned_downloads

        # The restarted worker must have completed its window; then stop everything.
        result["worker_complete"] = _settle_worker(
            worker_log, result.get("worker_restarted_at", 0), time.monotonic() + 150)
        for r in replicas:
            took = sigterm(r.proc)
            result["stops"].append((f"{r.name} (end)", took))
        result["worker_exited"] = worker.poll()  # None: still working, as it should be
        took = sigterm(worker)
        result["stops"].append(("worker (end)", took))
        event("every process stopped")
        served = nonlocal_served[0]
        sim.config.fault_rate = 0.0
        sim.config.fault_schedule.clear()
        result.update(_check_cache(sim, tmp / "cache"))
        result.update(_check_limits(log))
        result.update(_check_work(log, result["cached"], served.url, tmp))
        result.update(_check_triage(database, shared.assigned))
        result.update(_check_deliveries(database, hook))
        logs = [r.log_path for r in replicas] + [worker_log]
        result["tracebacks"] = {p.name: p.read_text(errors="replace").count("Traceback")
                                for p in logs}
    finally:
        for r in replicas:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.kill()
        if worker is not None and worker.poll() is None:
            worker.kill()
        for s in {id(x): x for x in (served, *locals().get("nonlocal_served", []))}.values():
            try:
                s.shutdown()
            except Exception:  # noqa: BLE001 - already down
                pass
        redis.stop()
        pg.stop()
        hook.stop()
    return result


def _restart(replica: Replica, shared: Shared, result: dict, event) -> None:
    shared.restarting[replica.url] = time.monotonic() + 3600
    took = sigterm(replica.proc)
    result["stops"].append((replica.name, took))
    event(f"{replica.name} stopped (SIGTERM) in {took:.1f} s")
    replica.start()
    shared.restarting[replica.url] = time.monotonic()
    event(f"{replica.name} restarted")


def _sessions(analysts: list[SoakAnalyst], deadline: float) -> None:
    """The sessions on an event loop of their own thread (the caller's thread may run
    one already: a test process that drove Playwright's sync API)."""
    async def all_of_them() -> None:
        ends = await asyncio.gather(*(a.run(deadline) for a in analysts),
                                    return_exceptions=True)
        for a, end in zip(analysts, ends, strict=True):
            if isinstance(end, BaseException):  # a session that crashed is a failure
                a.shared.outcomes.append(Outcome(a.idx, "session", "failed", time.monotonic(),
                                                 None, f"crashed: {end!r}"[:300]))

    t = threading.Thread(target=asyncio.run, args=(all_of_them(),), name="soak-sessions")
    t.start()
    t.join()


def _settle_worker(worker_log: Path, since: int, deadline: float) -> bool:
    """Whether the restarted worker (its log from byte ``since``) completed every
    sensor's window: the load the kill interrupted, finished. Waits until the deadline."""
    import re

    while True:
        with worker_log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
        if all(re.search(rf"sync sensor {s}: .* 100% of", text) for s in SENSORS):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


def _findings(database: str):
    """A reader of the findings still new and unassigned: (key, sensor)."""
    def read() -> list[tuple[str, int]]:
        from flux_dashboard.triage import db
        from flux_dashboard.triage.store import FindingsStore

        eng = db.connect(database)
        try:
            df = FindingsStore(eng).list(list(SENSORS))
        except Exception:  # noqa: BLE001 - the database may not have been created yet
            return []
        finally:
            eng.dispose()
        if df.is_empty():
            return []
        df = df.filter((df["status"] == "new") & df["assignee"].is_null())
        return list(zip(df["key"].to_list(), df["sensor"].to_list(), strict=True))[:60]
    return read


# --------------------------------------------------------------------------- checks
def _check_cache(sim, cache: Path) -> dict:
    """Every hour the flows cache holds equals the simulator's rows for it."""
    import polars as pl

    from flux_dashboard.schema import NATURAL_KEY, to_frame

    lost = doubled = wrong_hours = checked = 0
    filtered = 0
    cached: dict[int, set[datetime]] = defaultdict(set)
    for path in cache.glob("*/sensor-*/*/*.parquet"):
        if path.name.startswith("."):  # a write a killed process left unfinished
            continue
        if path.parent.name != "all":
            filtered += 1
            continue
        sensor = int(path.parent.parent.name.split("-")[1])
        day = datetime.fromisoformat(path.stem).replace(tzinfo=UTC)
        hours = json.loads(pl.read_parquet_metadata(path)["flux_hours"])
        frame = pl.read_parquet(path)
        for h in hours:
            hour = day + timedelta(hours=int(h))
            got = frame.filter(pl.col("start_of_hour") == hour).select(NATURAL_KEY)
            want = to_frame(sim.rows_for_hour(sensor, hour)).select(NATURAL_KEY)
            got_keys = {tuple(map(str, r)) for r in got.iter_rows()}
            want_keys = {tuple(map(str, r)) for r in want.iter_rows()}
            checked += 1
            cached[sensor].add(hour)
            missing = len(want_keys - got_keys)
            extra = got.height - len(got_keys) + len(got_keys - want_keys)
            lost += missing
            doubled += extra
            wrong_hours += bool(missing or extra)
    return {"hours_checked": checked, "rows_lost": lost, "rows_doubled": doubled,
            "hours_wrong": wrong_hours, "filtered_files": filtered,
            "cached": {s: sorted(h) for s, h in cached.items()}}


def _check_limits(log: Log) -> dict:
    with log.lock:
        rows = list(log.rows)
    peak = peak_per_minute(t for t, _, _, o in rows if o != "limit429")
    kinds = Counter(o for *_, o in rows)
    return {"requests": len(rows), "peak_per_minute": peak, "outcomes_api": dict(kinds)}


def _check_work(log: Log, cached: dict, url: str, tmp: Path) -> dict:
    """Row requests the deployment needed, against one process loading the same hours
    from a fresh cache without faults (measured now, on the same simulator)."""
    from flux_dashboard.config import load_settings
    from flux_dashboard.loader.segments import segments_of
    from flux_dashboard.service import build_service

    with log.lock:
        rows = list(log.rows)
    useful = sum(1 for _, p, _, o in rows if p.endswith("/flux") and o == "200")
    before = len(log.rows)
    svc = build_service(load_settings(env={
        "SERENICITY_API_URL": url, "FLUX_NOW": NOW.isoformat(), "FLUX_RATE_LIMIT": "60000",
        "FLUX_CACHE_DIR": str(tmp / "solo")}, secrets={}))
    try:
        for sensor, hours in cached.items():
            for a, b in segments_of(hours):
                svc.loader.load(int(sensor), a, b)
    finally:
        svc.close()
    with log.lock:
        solo = sum(1 for _, p, _, o in log.rows[before:] if p.endswith("/flux") and o == "200")
    seen: dict[str, float] = {}
    refetched = []  # (first time, again, query): the same rows asked twice
    for t, p, q, o in rows:
        if p.endswith("/flux") and o == "200" and '"per_page", "1"' not in q:
            if q in seen:
                refetched.append((seen[q], t, f"{p} {q}"))
            seen[q] = t
    return {"flux_ok": useful, "solo_flux": solo, "identical_refetches": len(refetched),
            "refetched": refetched}


def _check_triage(database: str, assigned: list[str]) -> dict:
    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore

    eng = db.connect(database)
    try:
        events = FindingsStore(eng).events(assigned) if assigned else None
    finally:
        eng.dispose()
    per_key = Counter()
    if events is not None and not events.is_empty():
        per_key = Counter(events.filter(events["action"] == "assign")["key"].to_list())
    wrong = [k for k in assigned if per_key.get(k, 0) != 1]
    return {"triage_done": len(assigned), "triage_wrong": wrong}


def _check_deliveries(database: str, hook: WebhookReceiver) -> dict:
    from flux_dashboard.notify.ledger import Ledger
    from flux_dashboard.triage import db

    eng = db.connect(database)
    try:
        rows = Ledger(eng).recent(limit=10_000)
    finally:
        eng.dispose()
    titles = Counter(str(body.get("title", "")) for _, body in hook.received)
    statuses = Counter(rows["status"].to_list()) if not rows.is_empty() else Counter()
    sent = rows.filter(rows["status"] == "sent") if not rows.is_empty() else rows
    # One message per batch (grouped alerts), else one per row.
    messages = 0 if sent.is_empty() else (sent["batch"].drop_nulls().n_unique()
                                           + sent["batch"].null_count())
    return {"delivered": len(hook.received), "ledger": dict(statuses), "messages": messages,
            "digests": sum(1 for k in rows["kind"].to_list() if k == "daily")
            if not rows.is_empty() else 0,
            "duplicate_messages": sum(c - 1 for c in titles.values() if c > 1)}


# --------------------------------------------------------------------------- table
def p95(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


def table(r: dict) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    outcomes = r["outcomes"]
    by_kind = Counter(o.kind for o in outcomes)
    by_action = defaultdict(Counter)
    for o in outcomes:
        by_action[o.action][o.kind] += 1
    failed = [o for o in outcomes if o.kind == "failed"]
    calm = [o.seconds for o in outcomes if o.seconds and o.started < r["calm_until"]
            and o.kind == "completed" and o.action not in ("range", "cancel", "open")]
    faulty = [o.seconds for o in outcomes if o.seconds and o.started >= r["calm_until"]
              and o.kind == "completed" and o.action not in ("range", "cancel", "open")]
    injected = r["outcomes_api"].get("injected429", 0)
    limit429 = r["outcomes_api"].get("limit429", 0)
    stops = r["stops"]
    slow_stops = [(n, t) for n, t in stops if t > EXIT_WITHIN_S]
    tb = sum(r["tracebacks"].values())
    ratio = r["flux_ok"] / max(1, r["solo_flux"])
    if r["rows_lost"] or r["rows_doubled"] or r["hours_wrong"]:
        problems.append(f"cache: {r['rows_lost']} rows lost, {r['rows_doubled']} doubled, "
                        f"{r['hours_wrong']} hours wrong")
    if not r["hours_checked"]:
        problems.append("no cached hour to check")
    if limit429 or r["peak_per_minute"] > r["plan"]["rate"]:
        problems.append(f"rate limit: {limit429} refusals by the simulator's limit, busiest "
                        f"minute {r['peak_per_minute']} (limit {r['plan']['rate']})")
    if r["flux_ok"] > WORK_RATIO * r["solo_flux"] + WORK_SLACK:
        problems.append(f"work: {r['flux_ok']} row requests, {r['solo_flux']} for one process "
                        f"alone (more than {WORK_RATIO} times + {WORK_SLACK})")
    if failed:
        problems.append(f"{len(failed)} actions failed: " + "; ".join(
            f"{o.action}: {o.detail}" for o in failed[:5]))
    if tb:
        problems.append(f"{tb} tracebacks in the logs: {r['tracebacks']}")
    if slow_stops:
        problems.append(f"slow stops: {slow_stops}")
    if r["triage_wrong"]:
        problems.append(f"triage without exactly one event: {r['triage_wrong'][:5]}")
    if not r["worker_complete"]:
        problems.append("the restarted worker did not complete its window")
    if r["worker_exited"] is not None:
        problems.append(f"the sync worker had exited (status {r['worker_exited']})")
    if r["duplicate_messages"]:
        problems.append(f"{r['duplicate_messages']} messages delivered twice")
    if not r["digests"] or r["messages"] != r["delivered"] \
            or set(r["ledger"]) - {"sent", "dropped"}:
        problems.append(f"deliveries: {r['delivered']} received, ledger {r['ledger']}")
    cp95, fp95 = p95(calm), p95(faulty)
    ratio_p95 = f"{fp95 / cp95:.1f}×" if cp95 and fp95 else "—"
    kinds = ", ".join(f"{k} {by_kind[k]}" for k in ("completed", "message", "cancelled",
                                                    "interrupted", "failed") if by_kind[k])
    per_action = "; ".join(f"{a}: " + " ".join(f"{k} {n}" for k, n in sorted(c.items()))
                           for a, c in sorted(by_action.items()))
    plan = r["plan"]
    lines = [
        "| measure | value | target |", "|---|---|---|",
        f"| cached hours equal to the simulator's | {r['hours_checked'] - r['hours_wrong']} "
        f"of {r['hours_checked']}: {r['rows_lost']} rows lost, {r['rows_doubled']} doubled | "
        "all; 0; 0 |",
        f"| busiest 60 s (requests the API admitted) | {r['peak_per_minute']} | ≤ "
        f"{plan['rate']} |",
        f"| 429s: injected / by the API's limit | {injected} / {limit429} | — / 0 |",
        f"| row requests, whole deployment / one process, fresh cache, no faults | "
        f"{r['flux_ok']:,} / {r['solo_flux']:,} ({ratio:.2f}×); identical refetches "
        f"{r['identical_refetches']} | ≤ {WORK_RATIO}× + {WORK_SLACK} |",
        f"| the worker's window complete after its kill | "
        f"{'yes' if r['worker_complete'] else 'NO'} | yes |",
        f"| actions ({plan['sessions']} sessions, {plan['minutes']:g} min) | {kinds} | 0 failed |",
        f"| p95 time to settled: calm / faults | {_s(cp95)} / {_s(fp95)} ({ratio_p95}) | — |",
        f"| downloads whose file Streamlit pruned before the GET (clicked again) | "
        f"{r['pruned_downloads']} | — (reported) |",
        f"| tracebacks in the logs | {tb} | 0 |",
        "| SIGTERM to exit | " + ", ".join(f"{n} {t:.1f} s" for n, t in stops) +
        f" | ≤ {EXIT_WITHIN_S:.0f} s each |",
        f"| triage clicks / exactly one event each | {r['triage_done']} / "
        f"{r['triage_done'] - len(r['triage_wrong'])} | all |",
        f"| messages received / sent by the ledger / received twice | {r['delivered']} / "
        f"{r['messages']} ({r['ledger']}) / {r['duplicate_messages']} | each due message "
        "once |",
    ]
    return lines + ["", "Per action: " + per_action], problems


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--rate", type=int, default=300, help="the simulator's and the key's "
                   "limit, requests a minute (default 300)")
    p.add_argument("--short", action="store_true", help="2 sessions, 90 s, each fault once")
    p.add_argument("--out", type=Path, default=ROOT / "bench-output" / "soak",
                   help="the logs, soak.md (the table) and outcomes.jsonl")
    args = p.parse_args(argv)
    plan = Plan.short() if args.short else Plan(args.minutes, args.sessions, args.rate)
    print(f"soak: {plan.sessions} sessions, {plan.minutes:g} min, API limit {plan.rate}/min",
          flush=True)
    r = run(plan, args.out)
    lines, problems = table(r)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.md").write_text("\n".join(lines) + "\n")
    with (args.out / "refetched.jsonl").open("w") as fh:
        for first, again, q in r["refetched"]:
            fh.write(json.dumps({"first_s": round(first - r["t0"], 1),
                                 "again_s": round(again - r["t0"], 1), "query": q}) + "\n")
    with (args.out / "outcomes.jsonl").open("w") as fh:
        for o in r["outcomes"]:
            fh.write(json.dumps(o.__dict__ | {"at_s": round(o.started - r["t0"], 1)}) + "\n")
    messages = Counter(o.detail for o in r["outcomes"] if o.kind == "message")
    for text, n in messages.most_common(8):
        print(f"  message ×{n}: {text}")
    if problems:
        print("PROBLEMS:\n" + "\n".join(f"- {x}" for x in problems))
        return 1
    print("soak passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
