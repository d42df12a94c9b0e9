"""The benchmark phases; each runs in its own process (see ``bench.py``) and returns a dict.

* ``http``: the loader against a naive page-through, over real HTTP, with the
  simulator's hazards on, checked against the simulator's ground truth; then
  warm revisits from the disk cache.
* ``dense_load``: fills the disk cache with the dense month (and the windows
  the pages look back at) through the loader and the in-process simulator.
* ``render``: the server time of every page on that cached month, without and
  with a filter.
* ``owners``: the owner (ASN) look-up of that month's remote IPs, once per
  distinct IP, cold (first load of a process) and warm.
* ``findings``: the Findings page's server work (``pagedata.findings_page`` and
  the table's serialisation) over 100,000 findings of 50 sensors, on SQLite and,
  when Debian's PostgreSQL is installed, on a throwaway PostgreSQL cluster.

Every phase's simulator has ``hostile_names`` on: the world the published
figures were measured on (two device names with markup, as the tests have them).
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from flux_dashboard import geo
from flux_dashboard import simulator as simulator_module
from flux_dashboard.client import Client
from flux_dashboard.config import Secret, Settings
from flux_dashboard.filters import Filters
from flux_dashboard.geo import enrich, with_country, with_owner
from flux_dashboard.hours import iso
from flux_dashboard.loader import Loader
from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.simulator import Simulator, SimulatorConfig
from flux_dashboard.store import Store

from . import workloads as W

SENSOR = 54
BENCH_RATE = 60_000  # client-side limit during the bench: high enough never to dominate
REAL_RATE = 100  # the documented limit: requests per minute per key
NAIVE_PAGE = 100
OUR_PAGE = 1000


@dataclass
class Plan:
    """Sizes and knobs, shared by the parent and the phase processes."""

    now: datetime
    windows: list[tuple[str, datetime, datetime]]  # HTTP phase: (label, start, end)
    dense_window: tuple[str, datetime, datetime]  # render phase: (label, start, end)
    dense: bool  # the render phase's simulator density (False only for smoke runs)
    baseline_days: int
    latency_s: float
    repeats: int
    cache_dir: Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def budget(rows: int, page: int = OUR_PAGE) -> int:
    return 2 * math.ceil(rows / page) + 10


def _clock(plan: Plan):
    now = plan.now
    return lambda: now


# --------------------------------------------------------------------------- correctness
def truth_keys(sim: Simulator, start: datetime, end: datetime) -> pl.DataFrame:
    return to_frame(sim.rows(SENSOR, start, end)).select(NATURAL_KEY)


def compare(got: pl.DataFrame, truth: pl.DataFrame) -> dict:
    """Rows, missing, doubled and out-of-range rows of ``got`` against the ground truth."""
    keys = got.select(NATURAL_KEY)
    distinct = keys.unique()
    return {
        "rows": keys.height,
        "missing": truth.join(distinct, on=list(NATURAL_KEY), how="anti",
                              nulls_equal=True).height,
        "doubled": keys.height - distinct.height,
        "extra": distinct.join(truth, on=list(NATURAL_KEY), how="anti",
                               nulls_equal=True).height,
    }


# --------------------------------------------------------------------------- phase: http
def naive_load(client: Client, start: datetime, end: datetime) -> pl.DataFrame:
    """What a straightforward client does: sort by hour, pages 1..last_page, in sequence."""
    params = {"from": iso(start), "to": iso(end), "sort_by": "startOfHour",
              "per_page": NAIVE_PAGE}
    rows: list[dict] = []
    page, last = 1, 1
    while page <= last:
        answer = client.flux_page(SENSOR, {**params, "page": page})
        rows += answer.rows
        last = answer.meta.last_page
        page += 1
    return to_frame(rows)


def _timed_load(loader: Loader, start: datetime, end: datetime, truth: pl.DataFrame,
                sim: Simulator, **kw) -> dict:
    server_before = sim.flux_request_count()
    t0 = time.perf_counter()
    try:
        result = loader.load(SENSOR, start, end, **kw)
    except Exception as exc:  # a failed load is a result too
        return {"error": f"{exc.__class__.__name__}: {exc}",
                "wall_s": time.perf_counter() - t0,
                "requests": sim.flux_request_count() - server_before}
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "requests": result.flux_requests,
            "server_requests": sim.flux_request_count() - server_before,
            "cached_hours": result.cached_hours, **compare(result.frame, truth)}


def http_phase(plan: Plan) -> dict:
    clock = _clock(plan)
    sim = Simulator(SimulatorConfig(now=clock, latency_s=plan.latency_s, unstable_ties=True,
                                    inclusive_to=True, max_per_page=OUR_PAGE,
                                    rate_limit_per_min=None, hostile_names=True))
    out: dict = {"latency_s": plan.latency_s, "windows": []}
    with sim.serve(port=0) as server, tempfile.TemporaryDirectory(prefix="flux-bench-") as tmp:
        settings = Settings(api_url=server.url, api_key=Secret("bench-key"),
                            rate_limit_per_min=BENCH_RATE, max_concurrency=8,
                            cache_dir=Path(tmp))

        def loader(cache: Path) -> Loader:
            return Loader(Client(settings), Store(cache), per_page=OUR_PAGE, max_concurrency=8,
                          clock=clock)

        for label, start, end in plan.windows:
            t0 = time.perf_counter()
            truth = truth_keys(sim, start, end)  # also generates every hour for both methods
            sim.count_rows(SENSOR, start, end + timedelta(hours=1))  # and the extra `to` hour
            truth_s = time.perf_counter() - t0
            row: dict = {"label": label, "start": iso(start), "end": iso(end),
                         "truth_rows": truth.height, "truth_s": truth_s,
                         "budget": budget(truth.height)}
            print(f"  [{label}] {truth.height:,} rows in the ground truth; naive "
                  f"page-through…", flush=True)

            client = Client(settings)
            server_before = sim.flux_request_count()
            t0 = time.perf_counter()
            frame = naive_load(client, start, end)
            naive_wall = time.perf_counter() - t0
            row["naive"] = {"wall_s": naive_wall, "requests": client.flux_request_count,
                            "server_requests": sim.flux_request_count() - server_before,
                            **compare(frame, truth)}
            client.close()
            del frame

            print(f"  [{label}] loader, cold then warm…", flush=True)
            cache = Path(tmp) / label  # one cache per window: a cold load starts empty
            ours = loader(cache)
            row["ours"] = _timed_load(ours, start, end, truth, sim)
            row["warm"] = _timed_load(ours, start, end, truth, sim, refresh=True)
            fresh = loader(cache)  # a new process on the same cache directory
            row["fresh"] = _timed_load(fresh, start, end, truth, sim)
            for ld in (ours, fresh):
                ld.client.close()
            out["windows"].append(row)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --------------------------------------------------------------------------- phase: cold
COLD_HAZARDS = {"unstable_ties": True, "inclusive_to": True, "max_per_page": OUR_PAGE,
                "volumes_as": "mixed", "meta_urls": False, "hostile_names": True}


def _cold_load(sim: Simulator, settings: Settings, clock, start: datetime, end: datetime,
               truth: pl.DataFrame, planning: bool, transport=None) -> dict:
    with tempfile.TemporaryDirectory(prefix="flux-cold-") as tmp:
        loader = Loader(Client(settings, transport=transport), Store(Path(tmp)),
                        per_page=OUR_PAGE, max_concurrency=8, clock=clock)
        loader.planning = planning
        stats_before = sim.stats_request_count()
        out = _timed_load(loader, start, end, truth, sim)
        out["hint_requests"] = sim.stats_request_count() - stats_before
        loader.client.close()
    return out


def cold_phase(plan: Plan) -> dict:
    """Cold loads before (keyset walk alone) and after (planned windows), hazards on.

    The week and the month go over HTTP; the dense month through the in-process
    transport (same ``handle()``, no sockets: it is 1.16 M rows twice).
    """
    clock = _clock(plan)
    out: dict = {"windows": []}
    jobs = [(label, start, end, False) for label, start, end in plan.windows]
    if plan.dense:
        label, start, end = plan.dense_window
        jobs.append((label, start, end, True))
    for label, start, end, dense in jobs:
        sim = Simulator(SimulatorConfig(now=clock, latency_s=0 if dense else plan.latency_s,
                                        dense=dense, rate_limit_per_min=None, **COLD_HAZARDS))
        truth = truth_keys(sim, start, end)
        sim.count_rows(SENSOR, start, end + timedelta(hours=1))
        row: dict = {"label": label, "rows": truth.height,
                     "limit": math.ceil(truth.height / OUR_PAGE), "http": not dense}
        with (sim.serve(port=0) if not dense else _nullctx()) as server:
            settings = Settings(api_url=server.url if server else "http://cold.invalid/api/v1",
                                api_key=Secret("bench-key"), rate_limit_per_min=BENCH_RATE,
                                max_concurrency=8)
            transport = None if server else sim.transport()
            for key, planning in (("before", False), ("after", True)):
                print(f"  [{label}] cold load, {'planned windows' if planning else 'keyset walk'}"
                      "…", flush=True)
                row[key] = _cold_load(sim, settings, clock, start, end, truth, planning,
                                      transport)
        out["windows"].append(row)
        del truth, sim
    out["peak_rss_mb"] = peak_rss_mb()
    return out


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


# --------------------------------------------------------------------------- dense phases
def _dense_sim(plan: Plan) -> Simulator:
    return Simulator(SimulatorConfig(dense=plan.dense, now=_clock(plan), rate_limit_per_min=None,
                                     hostile_names=True))


def _dense_loader(plan: Plan, sim: Simulator) -> Loader:
    # The key names the simulator's code: a changed simulator never reuses an old cache.
    code = hashlib.blake2b(digest_size=6)
    for source in sorted(Path(simulator_module.__file__).parent.glob("*.py")):
        code.update(source.read_bytes())
    settings = Settings(api_url="http://bench-sim.invalid/api/v1",
                        api_key=Secret(f"bench-{plan.dense}-{code.hexdigest()}"),
                        rate_limit_per_min=BENCH_RATE, cache_dir=plan.cache_dir)
    client = Client(settings, transport=sim.transport())
    # compact=True: the dashboard's loader (ui.state._service), categoricals in memory.
    return Loader(client, Store(plan.cache_dir), per_page=OUR_PAGE, max_concurrency=8,
                  clock=_clock(plan), compact=True)


def _sensor_tz(loader: Loader) -> tuple[str, tuple[int, ...]]:
    sensor = loader.client.sensor(SENSOR)
    return sensor.get("timezone") or "UTC", tuple(int(h) for h in sensor.get("hno_hours") or ())


def dense_load_phase(plan: Plan) -> dict:
    sim = _dense_sim(plan)
    loader = _dense_loader(plan, sim)
    label, start, end = plan.dense_window
    tz, _ = _sensor_tz(loader)
    slug = "".join(c if c.isalnum() else "-" for c in label)
    stamp = plan.cache_dir / f"first-load-{slug}-{plan.dense}.json"
    t0 = time.perf_counter()
    result = loader.load(SENSOR, start, end)
    main = {"rows": result.frame.height, "requests": result.flux_requests,
            "wall_s": time.perf_counter() - t0, "budget": budget(result.frame.height),
            "cached_hours": result.cached_hours, "fetched_hours": result.fetched_hours}
    extra_requests = 0
    for a, b in W.lookback_windows(tz, start, end, plan.now, plan.baseline_days):
        extra_requests += loader.load(SENSOR, a, b).flux_requests
    out = {"label": label, "start": iso(start), "end": iso(end), "load": main,
           "lookback_requests": extra_requests, "peak_rss_mb": peak_rss_mb()}
    if main["requests"]:  # a real cold load: remember it for runs that reuse the cache
        stamp.write_text(json.dumps({**out, "measured_at": datetime.now(UTC).isoformat()}))
        out["first_load"] = None
    elif stamp.exists():
        out["first_load"] = json.loads(stamp.read_text())
    loader.client.close()
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def render_phase(plan: Plan) -> dict:
    sim = _dense_sim(plan)
    loader = _dense_loader(plan, sim)
    label, start, end = plan.dense_window
    tz, hno = _sensor_tz(loader)
    before = loader.client.flux_request_count

    t0 = time.perf_counter()
    result = loader.load(SENSOR, start, end, refresh=True)
    read_s = time.perf_counter() - t0
    if result.flux_requests:
        raise RuntimeError("the dense month is not in the disk cache: run the dense_load phase")
    t0 = time.perf_counter()
    # ui.loading.prepare, once per load
    base = enrich(result.frame, "ip1")
    prepare_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()

    reads = max(3, plan.repeats)
    baseline_s = _median_time(lambda: base.filter(pl.col("dir") == "OUT").height, 2 * reads + 1)
    read_s = min(read_s, _median_time(lambda: loader.load(SENSOR, start, end, refresh=True),
                                      reads))

    states = [("all flows", Filters()), ("dir = OUT", Filters(direction="OUT"))]
    pages: dict[str, dict] = {name: {} for name, _ in W.PAGES}
    for state, filters in states:
        for name, page in W.PAGES:
            samples = []
            for i in range(plan.repeats + 1):  # the first pass warms imports and is dropped
                t0 = time.perf_counter()
                frame = filters.apply(base, tz, hno)
                t1 = time.perf_counter()
                ctx = W.Ctx(loader, SENSOR, tz, hno, start, end, plan.now, filters, frame,
                            plan.baseline_days)
                outputs = page(ctx)
                t2 = time.perf_counter()
                size = W.serialize(outputs)
                t3 = time.perf_counter()
                if i:
                    samples.append((t1 - t0, t2 - t1, t3 - t2, size, frame.height))
                # The app holds one filtered frame per filter state (memoised); this
                # loop's previous one must not stay alive while the next is built.
                del frame, ctx, outputs
            med = sorted(samples, key=lambda s: s[1] + s[2])[len(samples) // 2]
            pages[name][state] = {"filter_s": med[0], "compute_s": med[1],
                                  "serialize_s": med[2], "bytes": med[3], "rows": med[4],
                                  "max_s": max(s[0] + s[1] + s[2] for s in samples),
                                  "peak_rss_mb": peak_rss_mb()}
            print(f"  {name:<18} {state:<10} {med[1] + med[2]:6.2f} s  "
                  f"(peak RSS so far {peak_rss_mb():,.0f} MB)", flush=True)
    # Findings' detection over the month against its baseline (the Findings page and the
    # sync worker call the same function on loaded, unmasked flows).
    from flux_dashboard.hours import days_before
    from flux_dashboard.triage import run as triage_run

    lo, hi = days_before(start, plan.baseline_days)
    before_month = loader.load(SENSOR, lo, hi, refresh=True).frame
    meta = {"id": SENSOR, "timezone": tz, "hno_hours": list(hno)}
    found = triage_run.detect_loaded(result.frame, before_month, meta)
    detect_s = _median_time(lambda: triage_run.detect_loaded(result.frame, before_month, meta),
                            reads)
    print(f"  detection          {detect_s:6.2f} s  ({found.height:,} findings)", flush=True)
    out = {"label": label, "rows": base.height, "tz": tz, "read_s": read_s,
           "detect_s": detect_s, "findings": found.height,
           "prepare_s": prepare_s, "baseline_s": baseline_s, "pages": pages,
           "repeats": plan.repeats, "rss_loaded_mb": rss_loaded,
           "frame_mb": base.estimated_size() / 2**20,
           "requests": loader.client.flux_request_count - before, "peak_rss_mb": peak_rss_mb()}
    loader.client.close()
    return out


def owners_phase(plan: Plan) -> dict:
    """Owner look-ups on the cached dense month, as ``ui.loading.prepare`` does them."""
    sim = _dense_sim(plan)
    loader = _dense_loader(plan, sim)
    label, start, end = plan.dense_window
    result = loader.load(SENSOR, start, end)
    t0 = time.perf_counter()
    geo._db()  # the database load, once per process (shared with the country look-up)
    db_s = time.perf_counter() - t0
    frame = with_country(result.frame, "ip1")
    distinct = frame["ip1"].n_unique()
    geo.owner.cache_clear()
    t0 = time.perf_counter()
    with_owner(frame, "ip1")
    cold_s = time.perf_counter() - t0
    warm_s = _median_time(lambda: with_owner(frame, "ip1"), max(3, plan.repeats))
    t0 = time.perf_counter()
    per_row = [geo._db().lookup(ip).asn_name for ip in frame["ip1"].head(100_000).to_list()]
    per_row_s = (time.perf_counter() - t0) * frame.height / min(frame.height, 100_000)
    out = {"label": label, "rows": frame.height, "distinct_ips": distinct, "db_load_s": db_s,
           "cold_s": cold_s, "warm_s": warm_s, "per_row_estimate_s": per_row_s,
           "requests": result.flux_requests, "peak_rss_mb": peak_rss_mb()}
    assert len(per_row) == min(frame.height, 100_000)
    loader.client.close()
    return out


# --------------------------------------------------------------------------- growth
GROWTH_DAYS = (7, 31, 92)  # a week, the month, the longest range the dashboard allows


def growth_window(plan: Plan, days: int) -> tuple[datetime, datetime]:
    _, _, end = plan.dense_window
    return end - timedelta(days=days), end


def growth_fill_phase(plan: Plan) -> dict:
    """Fills the cache with the 92 days before the dense month's end (and each growth
    window's lookbacks): the two months before it are new to the cache once."""
    sim = _dense_sim(plan)
    loader = _dense_loader(plan, sim)
    tz, _ = _sensor_tz(loader)
    t0 = time.perf_counter()
    requests = 0
    start, end = growth_window(plan, max(GROWTH_DAYS))
    result = loader.load(SENSOR, start, end)
    requests += result.flux_requests
    for days in GROWTH_DAYS:
        a, b = growth_window(plan, days)
        for lo, hi in W.lookback_windows(tz, a, b, plan.now, plan.baseline_days):
            requests += loader.load(SENSOR, lo, hi).flux_requests
    loader.client.close()
    return {"rows": result.frame.height, "requests": requests,
            "wall_s": time.perf_counter() - t0}


def growth_phase(plan: Plan, days: int) -> dict:
    """One window of the dense sensor in a fresh process: read from the cache,
    prepared as the dashboard does, then every page (all flows, then dir = OUT).
    Peak RSS is this process's; page time is the slowest page's server time."""
    sim = _dense_sim(plan)
    loader = _dense_loader(plan, sim)
    tz, hno = _sensor_tz(loader)
    start, end = growth_window(plan, days)
    rss_start = peak_rss_mb()
    t0 = time.perf_counter()
    result = loader.load(SENSOR, start, end)
    base = enrich(result.frame, "ip1")
    read_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mb()
    pages: dict[str, dict[str, float]] = {}
    for state, filters in (("all flows", Filters()), ("dir = OUT", Filters(direction="OUT"))):
        for name, page in W.PAGES:
            best = math.inf
            for _ in range(2):  # the first pass also warms imports: the faster one counts
                t1 = time.perf_counter()
                frame = filters.apply(base, tz, hno)
                ctx = W.Ctx(loader, SENSOR, tz, hno, start, end, plan.now, filters, frame,
                            plan.baseline_days)
                W.serialize(page(ctx))
                best = min(best, time.perf_counter() - t1)
                del frame, ctx  # as in the render phase: one filtered frame at a time
            pages.setdefault(name, {})[state] = best
    out = {"days": days, "rows": base.height, "frame_mb": base.estimated_size() / 2**20,
           "read_s": read_s, "pages": pages, "rss_start_mb": rss_start,
           "rss_loaded_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(),
           "requests": loader.client.flux_request_count}
    loader.client.close()
    return out


FINDINGS_N, FINDINGS_SENSORS = 100_000, 50


def _seed_findings(engine, n: int, sensors: int, now: datetime) -> None:
    """``n`` findings over ``sensors`` sensors as months of detections leave them: every
    kind and severity, a tenth triaged (statuses, assignees, reasons), one detected
    event each plus a triage event for the triaged ones."""
    import random

    from flux_dashboard.findings import KINDS, SEVERITIES, finding_key
    from flux_dashboard.triage.tables import finding_events, findings

    rnd = random.Random(7)
    statuses = ["new"] * 18 + ["acknowledged", "investigating", "resolved", "false_positive",
                               "expected"]
    rows, events = [], []
    for i in range(n):
        sensor, kind = 1000 + i % sensors, KINDS[i % len(KINDS)]
        ip0 = f"10.{i % 200}.{(i // 200) % 250}.{i % 7 + 1}"
        ip1 = f"45.{i % 250}.{i // 250 % 250}.9"
        first = now - timedelta(hours=rnd.randrange(24 * 90))
        status = rnd.choice(statuses)
        key = finding_key(sensor, kind, ip0, None, ip1, first.date() + timedelta(days=i))
        rows.append({
            "key": key, "sensor": sensor, "kind": kind, "severity": rnd.choice(SEVERITIES),
            "day": first.date(), "ip0": ip0, "device_name": f"PC-{i % 997:03d}",
            "mac_address": None, "is_critical": i % 11 == 0, "ip1": ip1,
            "owner": f"Hosting {i % 40}", "country_code": "FR", "country": "France",
            "first_contact": first.replace(tzinfo=None),
            "last_contact": (first + timedelta(hours=3)).replace(tzinfo=None),
            "flows": rnd.randrange(1, 500), "bytes": rnd.randrange(10**3, 10**9),
            "hours": rnd.randrange(1, 24), "threats": "Bruteforce" if i % 3 else None,
            "critical": i % 13 == 0, "deviation": None, "regularity": None,
            "note": "first contact", "status": status,
            "reason": "other" if status == "false_positive" else None,
            "assignee": "ann@corp.example" if status in ("acknowledged", "investigating")
            else None, "rule_id": None, "first_detected": now.replace(tzinfo=None),
            "last_seen": now.replace(tzinfo=None), "detections": 1,
            "updated_at": now.replace(tzinfo=None), "updated_by": "detector", "version": 1})
        events.append({"key": key, "at": now.replace(tzinfo=None), "actor": "detector",
                       "action": "detected", "to_status": "new"})
        if status != "new":
            events.append({"key": key, "at": now.replace(tzinfo=None),
                           "actor": "ann@corp.example", "action": status,
                           "from_status": "new", "to_status": status,
                           "comment": "checked"})
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(findings.insert(), rows[chunk:chunk + 5000])
        for chunk in range(0, len(events), 5000):
            conn.execute(finding_events.insert(), [
                {"from_status": None, "comment": None, **e} for e in events[chunk:chunk + 5000]])


def _findings_n(plan: Plan) -> int:
    return FINDINGS_N if plan.dense else 5_000  # --quick (the smoke test): a small table


def _findings_on(url: str, plan: Plan) -> dict:
    from flux_dashboard import pagedata as PD
    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore

    engine = db.connect(url)
    t0 = time.perf_counter()
    _seed_findings(engine, _findings_n(plan), FINDINGS_SENSORS, plan.now)
    seed_s = time.perf_counter() - t0
    store = FindingsStore(engine)
    sensors = store.sensors()
    reads = max(3, plan.repeats)

    def page() -> int:  # the page's default view: every granted sensor, open findings
        got = PD.findings_page(store, sensors)
        return W.serialize([got.table])

    def one_sensor() -> int:
        return W.serialize([PD.findings_page(store, sensors[:1]).table])

    page()  # warm imports
    page_s = _median_time(page, reads)
    one_s = _median_time(one_sensor, reads)
    shown = PD.findings_page(store, sensors).table
    frame = store.list(sensors)
    baseline_s = _median_time(lambda: frame.filter(pl.col("status").is_in(
        ["new", "acknowledged", "investigating"])).height, 2 * reads + 1)
    engine.dispose()
    return {"seed_s": seed_s, "page_s": page_s, "one_sensor_s": one_s, "shown": shown.height,
            "baseline_s": baseline_s}


def findings_phase(plan: Plan) -> dict:
    with tempfile.TemporaryDirectory(prefix="flux-bench-findings-") as tmp:
        out = {"n": _findings_n(plan), "sensors": FINDINGS_SENSORS,
               "sqlite": _findings_on(f"sqlite:///{tmp}/findings.sqlite3", plan)}
    try:
        from tests.kit.services import PostgresServer
    except ImportError:  # outside the repository checkout
        return out
    try:
        pg = PostgresServer()
    except RuntimeError as exc:  # PostgreSQL is not installed: SQLite only
        out["postgresql_skipped"] = str(exc)
        return out
    try:
        out["postgresql"] = _findings_on(pg.database(), plan)
    finally:
        pg.stop()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --------------------------------------------------------------------------- first view
def first_view_phase(plan: Plan) -> dict:
    """Time to the first Overview charts of a cold range at the documented 100 requests
    a minute (the client's own limiter on, the first request is not delayed), from the
    hourly totals: their load, the first view's numbers and its figures; against the
    full load of the same range at that rate, from its request count (the cold phase
    measures that count; at 100 a minute each request takes 0.6 s, so the limit, not
    the network, sets its time). The dense month (a week with --quick)."""
    from flux_dashboard import charts as C
    from flux_dashboard.client import RateLimiter
    from flux_dashboard.hourly import HourlyLoader, first_view
    from flux_dashboard.ui.firstview import DEVICES_AT_MOST

    clock = _clock(plan)
    label, start, end = plan.dense_window
    sim = Simulator(SimulatorConfig(dense=plan.dense, now=clock, rate_limit_per_min=None,
                                    hostile_names=True))
    settings = Settings(api_url="http://first-view.invalid/api/v1",
                        api_key=Secret("bench-first-view"), rate_limit_per_min=REAL_RATE)
    out: dict = {"label": label}
    with tempfile.TemporaryDirectory(prefix="flux-first-view-") as tmp:
        client = Client(settings, transport=sim.transport(), limiter=RateLimiter(REAL_RATE))
        tz = client.sensor(SENSOR).get("timezone") or "UTC"
        before = client.flux_request_count
        t0 = time.perf_counter()
        totals = HourlyLoader(client, tmp, clock=clock).load(SENSOR, start, end).frame
        fv = first_view(totals, tz, None, 18.0)
        figures = [C.traffic_over_time_fig(fv.traffic), C.cyberweather_calendar_fig(fv.days)]
        out["first_view_s"] = time.perf_counter() - t0
        out["first_view_requests"] = client.flux_request_count - before
        # Then the per-device totals, counted first, loaded only when cheap (as the page).
        devices_loader = HourlyLoader(client, tmp, per_device=True, clock=clock)
        devices_estimate = devices_loader.estimate(SENSOR, start, end).requests
        devices = (devices_loader.load(SENSOR, start, end).frame
                   if devices_estimate <= DEVICES_AT_MOST else None)
        if devices is not None:
            figures.append(C.top_bar_fig(first_view(totals, tz, None, 18.0, devices)
                                         .top_devices))
        out["with_devices_s"] = time.perf_counter() - t0
        out["with_devices_requests"] = client.flux_request_count - before
        out["devices_shown"] = devices is not None
        out["devices_estimate"] = devices_estimate
        client.close()
        full = Loader(Client(settings, transport=sim.transport(),
                             limiter=RateLimiter(BENCH_RATE)), Store(Path(tmp) / "flows"),
                      per_page=OUR_PAGE, clock=clock)
        estimate = full.estimate(SENSOR, start, end)
        out["full_requests"] = estimate.requests
        out["full_at_limit_s"] = estimate.requests * 60 / REAL_RATE
        out["flows"] = int(fv.kpis["flows"])
        full.client.close()
    # The fleet: a cold month of every demo sensor's totals, then a warm one.
    fleet_sim = Simulator(SimulatorConfig(now=clock, rate_limit_per_min=None, fleet=True))
    with tempfile.TemporaryDirectory(prefix="flux-fleet-") as tmp:
        client = Client(settings, transport=fleet_sim.transport(),
                        limiter=RateLimiter(BENCH_RATE))
        sensors = [int(s["id"]) for s in client.sensors()]
        loader = HourlyLoader(client, tmp, clock=clock)
        settled = end.replace(minute=0, second=0, microsecond=0)
        costs = []
        for _pass in ("cold", "warm"):
            spent = client.flux_request_count
            for sid in sensors:
                loader.load(sid, settled - timedelta(days=31), settled)
            costs.append(client.flux_request_count - spent)
        out["fleet"] = {"sensors": len(sensors), "cold_requests": costs[0],
                        "warm_requests": costs[1]}
        client.close()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


PHASES = {"http": http_phase, "findings": findings_phase, "cold": cold_phase,
          "first_view": first_view_phase,
          "dense_load": dense_load_phase,
          "render": render_phase, "owners": owners_phase, "growth_fill": growth_fill_phase,
          **{f"growth_{d}": (lambda plan, d=d: growth_phase(plan, d)) for d in GROWTH_DAYS}}
