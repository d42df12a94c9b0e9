"""Loader: every row of [from, to) exactly once, within the request budget, under each hazard.

Ground truth is the simulator's own rows for the range; the loader only ever
sees the API through the real client and the simulator's transport.
"""

from __future__ import annotations

import errno
import json
import math
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import errors as E
from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.hours import ceil_hour
from flux_dashboard.loader import Estimate, Loader, cost, estimate, positions, segments
from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.simulator import LateUpload, Simulator, SimulatorConfig
from flux_dashboard.store import Store

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
H = timedelta(hours=1)
WEEK = (datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))


def make(tmp_path, *, per_page=1000, key="test-key-123", store=True, wrap=None, **sim_kw):
    """``wrap(transport)``, if given, stands between the client and the simulator."""
    sim_kw.setdefault("rate_limit_per_min", None)
    sim = Simulator(SimulatorConfig(now=lambda: NOW, **sim_kw))
    settings = Settings(api_url="http://sim.test/api/v1", api_key=Secret(key),
                        rate_limit_per_min=60_000)
    transport = sim.transport() if wrap is None else wrap(sim.transport())
    client = Client(settings, transport=transport, sleep=lambda s: None,
                    limiter=RateLimiter(60_000, sleep=lambda s: None))
    loader = Loader(client, Store(tmp_path / "cache") if store else None, per_page=per_page,
                    clock=lambda: NOW)
    return sim, loader


def at_once(n: int, call) -> list:
    """``call()`` in ``n`` threads released together; their results."""
    barrier = threading.Barrier(n)
    results = []

    def run():
        barrier.wait()
        results.append(call())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


_TRUTH: dict[tuple, pl.DataFrame] = {}


def truth(sim, start, end, **flt):
    """The simulator's rows of sensor 54 in [start, end) as a frame. Kept per world and
    visible state: most tests check the same week against the same world."""
    t = sim.traffic
    key = (sim.config.seed, sim.config.dense, t.story.today if t.story else None, t.now(),
           t.pending_uploads(54), sim.config.installed, start, end)
    if key not in _TRUTH:
        _TRUTH[key] = to_frame(sim.rows(54, start, end))
    df = _TRUTH[key]
    for k, v in flt.items():
        df = df.filter(pl.col(k) == v)
    return df


def same_rows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.select(pl.struct(NATURAL_KEY).n_unique()).item() == got.height, "doubled rows"
    assert_frame_equal(got.sort(NATURAL_KEY, nulls_last=True),
                       want.sort(NATURAL_KEY, nulls_last=True))


def budget(rows: int, page: int) -> int:
    return 2 * math.ceil(rows / page) + 10


def flux_params(sim):
    return [q for path, q in sim.requests if path.endswith("/flux")]


HAZARDS = {
    "stable": {},
    "unstable-ties": {"unstable_ties": True},
    "inclusive-to": {"inclusive_to": True},
    "per-page-capped": {"max_per_page": 300},
    "numbers-and-plain-meta": {"volumes_as": "mixed", "meta_urls": False},
    "all-hazards": {"unstable_ties": True, "inclusive_to": True, "max_per_page": 400},
}


@pytest.mark.parametrize("hazard", HAZARDS)
def test_week_exactly_once_within_budget(tmp_path, hazard):
    sim, loader = make(tmp_path, **HAZARDS[hazard])
    want = truth(sim, *WEEK)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, want)
    page = sim.config.max_per_page
    assert result.flux_requests == sim.flux_request_count()
    assert result.flux_requests <= budget(want.height, min(page, 1000))
    # Pages are asked large: the documented default of 100 is not a maximum.
    assert all(q["per_page"] == "1000" for q in flux_params(sim))


def test_naive_offset_paging_really_loses_rows_under_unstable_ties(tmp_path):
    """The hazard is real: the loader's tests above would catch a naive loader."""
    sim, loader = make(tmp_path, unstable_ties=True)
    start, end = WEEK[0], WEEK[0] + 24 * H
    rows, page = [], 1
    while True:
        q = {"from": start.isoformat(), "to": end.isoformat(), "page": page, "per_page": 100,
             "sort_by": "startOfHour"}
        resp = loader.client.flux_page(54, q)
        rows += resp.rows
        if page >= resp.meta.last_page:
            break
        page += 1
    got = to_frame(rows)
    distinct = got.select(pl.struct(NATURAL_KEY).n_unique()).item()
    assert distinct < truth(sim, start, end).height  # some rows never came back


def test_dense_hours_split_on_keys_exactly_once(tmp_path):
    # Dense sensor, small pages: hours of several pages each go through the key split,
    # including middle pages and straddling device groups.
    sim, loader = make(tmp_path, dense=True, unstable_ties=True, inclusive_to=True,
                       max_per_page=250)
    start, end = datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 9, 14, tzinfo=UTC)
    want = truth(sim, start, end)
    assert want.height > 6 * 2 * 250  # several pages per hour
    # The key split is the fallback of planned windows (loader.segments): exercised on its own.
    loader.planning = False
    result = loader.load(54, start, end)
    same_rows(result.frame, want)
    assert result.flux_requests <= budget(want.height, 250)
    assert {q["sort_by"] for q in flux_params(sim)} >= {"ip0"}


def counting_faults(faults: Counter):
    """A wrap for ``make`` that counts the faults the simulator injects, by kind."""
    lock = threading.Lock()

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            kind = None
            try:
                resp = inner.handle_request(request)
            except httpx.TimeoutException:
                with lock:
                    faults["timeout"] += 1
                raise
            if resp.status_code >= 500:
                kind = str(resp.status_code)
            elif resp.status_code == 200:
                try:
                    json.loads(resp.read())
                except ValueError:
                    kind = "truncated"
            if kind:
                with lock:
                    faults[kind] += 1
            return resp

        return httpx.MockTransport(handler)

    return wrap


def test_faults_are_retried_and_data_stays_exact(tmp_path):
    kinds = ("500", "503", "truncated", "timeout")
    faults: Counter = Counter()
    sim, loader = make(tmp_path, wrap=counting_faults(faults), unstable_ties=True,
                       fault_rate=0.25, fault_kinds=kinds)
    want = truth(sim, *WEEK)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, want)
    # The faults really happened, of every kind, and each cost one retry and nothing more:
    # the requests are those of a clean load plus one per fault.
    assert set(faults) == set(kinds) and sum(faults.values()) >= 5, faults
    _, clean = make(tmp_path / "clean", unstable_ties=True)
    clean_requests = clean.load(54, *WEEK).flux_requests
    assert result.flux_requests == sim.flux_request_count()
    assert result.flux_requests == clean_requests + sum(faults.values())
    assert clean_requests <= budget(want.height, 1000)


def test_warm_revisit_makes_no_request_and_extension_only_new_hours(tmp_path):
    sim, loader = make(tmp_path)
    start, mid, end = WEEK[0], WEEK[0] + 3 * 24 * H, WEEK[1]
    loader.load(54, start, mid)
    sim.reset_counters()
    again = loader.load(54, start, mid, refresh=True)  # bypass memory: disk cache only
    assert again.flux_requests == 0 and sim.flux_request_count() == 0
    assert again.cached_hours == 72
    sim.reset_counters()
    extended = loader.load(54, start, end)
    assert extended.cached_hours == 72 and extended.fetched_hours == 96
    assert all(window_start(q) >= mid for q in flux_params(sim))
    same_rows(extended.frame, truth(sim, start, end))


def test_memory_cache_and_fresh_loader_share_disk(tmp_path):
    sim, loader = make(tmp_path)
    loader.load(54, *WEEK)
    sim.reset_counters()
    assert loader.load(54, *WEEK).flux_requests == 0  # memory
    _, other = make(tmp_path)  # a new process, same cache directory
    assert other.load(54, *WEEK).flux_requests == 0


def test_open_hour_is_always_refetched_and_never_cached(tmp_path):
    sim, loader = make(tmp_path)
    start, end = NOW - 6 * H, NOW + 2 * H  # includes the open hour and the future
    first = loader.load(54, start, end)
    open_hour = datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert open_hour in first.open_hours
    assert first.frame["start_of_hour"].max() == open_hour
    sim.reset_counters()
    second = loader.load(54, start, end, refresh=True)
    params = flux_params(sim)
    assert params and all(window_start(q) >= open_hour for q in params)
    same_rows(second.frame, truth(sim, start, end))
    files = list((tmp_path / "cache").rglob("*.parquet"))
    assert files and all(
        pl.read_parquet(f)["start_of_hour"].max() < open_hour for f in files)


def test_corrupt_cache_file_is_refetched(tmp_path):
    sim, loader = make(tmp_path)
    start, end = WEEK[0], WEEK[0] + 48 * H
    loader.load(54, start, end)
    victim = sorted((tmp_path / "cache").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    sim.reset_counters()
    _, fresh = make(tmp_path)
    fresh.client = loader.client  # count on the same simulator
    result = fresh.load(54, start, end)
    assert 0 < result.flux_requests and result.fetched_hours == 24
    same_rows(result.frame, truth(sim, start, end))


def test_unreadable_cache_file_is_fetched_around_and_kept(tmp_path, monkeypatch):
    sim, loader = make(tmp_path)
    start, end = WEEK[0], WEEK[0] + 48 * H
    loader.load(54, start, end)
    def files():  # a rewrite, even with the same bytes, makes a new inode
        return {f: (f.stat().st_ino, f.stat().st_mtime_ns, f.read_bytes())
                for f in (tmp_path / "cache").rglob("*.parquet")}

    before = files()
    assert len(before) == 2
    sim.reset_counters()
    _, fresh = make(tmp_path)
    fresh.client = loader.client  # count on the same simulator

    def too_many_open_files(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    with monkeypatch.context() as m:
        m.setattr(pl, "read_parquet", too_many_open_files)
        result = fresh.load(54, start, end)
    assert result.fetched_hours == 48 and sim.flux_request_count() > 0
    same_rows(result.frame, truth(sim, start, end))
    # Not damage: the files are neither deleted nor overwritten, and serve the next load.
    assert files() == before
    sim.reset_counters()
    _, again = make(tmp_path)
    again.client = loader.client
    assert again.load(54, start, end).cached_hours == 48 and sim.flux_request_count() == 0


def test_interrupted_load_flags_hours_then_resumes(tmp_path):
    sim, loader = make(tmp_path)
    loader.client.max_retries = 1
    # A run of failures longer than one retry: the chunks caught in it give up.
    sim.config.fault_schedule = {n: "503" for n in range(3, 12)}
    with pytest.raises(E.IncompleteDataError) as info:
        loader.load(54, *WEEK)
    err = info.value
    assert err.hours and err.partial is not None
    assert "load again" in str(err)
    assert set(err.partial["start_of_hour"].unique()).isdisjoint(err.hours)
    sim.config.fault_schedule = {}
    sim.reset_counters()
    result = loader.load(54, *WEEK)
    same_rows(result.frame, truth(sim, *WEEK))
    assert result.fetched_hours == len(err.hours)  # only what was missing


def test_two_concurrent_loads_of_one_window_make_one_set_of_requests(tmp_path):
    sim, loader = make(tmp_path, store=False)
    results = at_once(2, lambda: loader.load(54, *WEEK))
    single_sim, single = make(tmp_path / "single", store=False)
    single.load(54, *WEEK)
    assert sim.flux_request_count() == single_sim.flux_request_count()
    assert results[0].frame.height == results[1].frame.height


def test_server_side_filter_cuts_requests(tmp_path):
    month = (datetime(2026, 2, 8, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))
    sim, loader = make(tmp_path)
    result = loader.load(54, *month, server_filters={"only_toxic": True})
    want = truth(sim, *month, toxic=True)
    same_rows(result.frame, want)
    # ~3k toxic rows in a month of ~150k: a handful of requests instead of ~300
    assert 0 < want.height and result.flux_requests <= budget(want.height, 1000) < 20


def test_sources_never_mix_in_the_cache(tmp_path):
    sim, a = make(tmp_path, key="account-a-key")
    a.load(54, *WEEK)
    sim_b, b = make(tmp_path, key="account-b-key")
    assert b.load(54, *WEEK).flux_requests > 0


def test_fatal_errors_surface_plainly(tmp_path):
    sim, loader = make(tmp_path, api_key="the-right-key")
    with pytest.raises(E.AuthenticationError):
        loader.load(54, *WEEK)
    sim, loader = make(tmp_path)
    with pytest.raises(E.NotFoundError):
        loader.load(12345, *WEEK)
    with pytest.raises(E.ForbiddenError):
        loader.load(99, *WEEK)


def test_half_open_range_and_unaligned_bounds(tmp_path):
    sim, loader = make(tmp_path, inclusive_to=True)
    start, end = datetime(2026, 3, 5, 10, 20, tzinfo=UTC), datetime(2026, 3, 5, 14, tzinfo=UTC)
    result = loader.load(54, start, end)
    hours = sorted(result.frame["start_of_hour"].unique().to_list())
    # start_of_hour >= 10:20 means 11:00 onwards; < 14:00 excludes 14:00 even if `to` is inclusive
    assert hours[0] == datetime(2026, 3, 5, 11, tzinfo=UTC)
    assert hours[-1] == datetime(2026, 3, 5, 13, tzinfo=UTC)
    with pytest.raises(E.ConfigError):
        loader.load(54, end, start)


# ------------------------------------------------ late uploads: recent hours rechecked
# Sensor 54 is cut off on Monday 9 March from 01:30 to 05:00 UTC; the buffered rows
# reach the API at 09:00. Until then 02:00-05:00 look empty and 01:00 holds only the
# flows of its first half hour.
OUTAGE = LateUpload(54, datetime(2026, 3, 9, 1, 30, tzinfo=UTC),
                    datetime(2026, 3, 9, 5, tzinfo=UTC), datetime(2026, 3, 9, 9, tzinfo=UTC))
LATE = [datetime(2026, 3, 9, h, tzinfo=UTC) for h in (1, 2, 3, 4)]
EMPTIED = set(LATE[1:])
DAY_BEFORE = (datetime(2026, 3, 8, 8, tzinfo=UTC), datetime(2026, 3, 9, 8, tzinfo=UTC))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_clocked(tmp_path, clock: Clock, **sim_kw):
    """A simulator on ``clock`` and a factory of fresh loaders (empty memory, same disk)."""
    sim_kw.setdefault("rate_limit_per_min", None)
    sim = Simulator(SimulatorConfig(now=clock, late_uploads=(OUTAGE,), **sim_kw))

    def new_loader(cache: str = "cache", **kw) -> Loader:
        settings = Settings(api_url="http://sim.test/api/v1", api_key=Secret("test-key-123"),
                            rate_limit_per_min=60_000)
        client = Client(settings, transport=sim.transport(), sleep=lambda s: None,
                        limiter=RateLimiter(60_000, sleep=lambda s: None))
        return Loader(client, Store(tmp_path / cache), clock=clock, **kw)

    return sim, new_loader


def count_params(sim):
    return [q for q in flux_params(sim) if q["per_page"] == "1"]


def window_start(q: dict) -> datetime:
    """The first hour a request asked for (``from`` may be sent a little early)."""
    return ceil_hour(datetime.fromisoformat(q["from"]))


def hours_of(frame: pl.DataFrame) -> set[datetime]:
    return set(frame["start_of_hour"].unique().to_list())


def test_late_rows_are_found_by_counting_and_only_changed_hours_refetched(tmp_path):
    clock = Clock(datetime(2026, 3, 9, 8, tzinfo=UTC))
    sim, new_loader = make_clocked(tmp_path, clock)
    first = new_loader().load(54, *DAY_BEFORE)
    same_rows(first.frame, truth(sim, *DAY_BEFORE))
    assert not hours_of(first.frame) & EMPTIED  # cached as final, and empty
    half = first.frame.filter(pl.col("start_of_hour") == LATE[0]).height
    assert first.rechecked_hours == 0 and first.late_hours == []

    clock.now = datetime(2026, 3, 9, 10, tzinfo=UTC)  # uploaded at 09:00
    want = truth(sim, *DAY_BEFORE)
    assert set(LATE) <= hours_of(want)
    assert 0 < half < want.filter(pl.col("start_of_hour") == LATE[0]).height
    sim.reset_counters()
    second = new_loader().load(54, *DAY_BEFORE)
    same_rows(second.frame, want)
    assert second.late_hours == LATE
    # 23 cached hours re-counted (07:00 was still open at the first load: fetched anew).
    assert second.rechecked_hours == 23
    assert second.cached_hours == 19 and second.fetched_hours == 5
    # Counting: the run of 23 hours, then halving [0,23) -> [0,11) ok | [11,23):
    # [11,17) ok | [17,23): [17,20) differs: [17,18) changed, [18,20): [18,19) changed,
    # [19,20) deduced changed; [20,23): [20,21) changed, [21,23) deduced ok. 7 counts, then
    # one request per refetched run (01:00-05:00 and 07:00-08:00 each fit in one page).
    assert want.filter(pl.col("start_of_hour").is_in(LATE)).height < 1000
    assert len(count_params(sim)) == 7
    refetched = [q for q in flux_params(sim) if q["per_page"] != "1"]
    assert sorted(window_start(q) for q in refetched) == [LATE[0], DAY_BEFORE[1] - H]
    assert second.flux_requests == sim.flux_request_count() == 9

    # The refetched hours replaced their cached rows: a new process reads them, no request.
    clock.now += timedelta(minutes=10)
    sim.reset_counters()
    third = new_loader().load(54, *DAY_BEFORE)
    assert third.flux_requests == 0 and sim.flux_request_count() == 0
    same_rows(third.frame, want)
    # Once the interval has passed, nothing changed: one count for the whole run.
    clock.now += timedelta(minutes=5)
    sim.reset_counters()
    fourth = new_loader().load(54, *DAY_BEFORE)
    assert fourth.flux_requests == 1 and len(count_params(sim)) == 1
    assert fourth.rechecked_hours == 24 and fourth.late_hours == []
    same_rows(fourth.frame, want)


def test_hours_older_than_the_horizon_are_not_rechecked_until_refresh_range(tmp_path):
    clock = Clock(datetime(2026, 3, 9, 8, 30, tzinfo=UTC))  # every hour settled and cached
    sim, new_loader = make_clocked(tmp_path, clock)
    first = new_loader().load(54, *DAY_BEFORE)

    # Three days on: the whole range is older than 48 h, nothing is asked.
    clock.now = datetime(2026, 3, 12, 8, tzinfo=UTC)
    sim.reset_counters()
    stale = new_loader().load(54, *DAY_BEFORE)
    assert stale.flux_requests == 0 and sim.flux_request_count() == 0
    same_rows(stale.frame, first.frame)

    # Horizon at 05:00 on the 9th: only 05:00-08:00 is counted (unchanged), not the
    # late hours before it.
    clock.now = datetime(2026, 3, 11, 5, 30, tzinfo=UTC)
    sim.reset_counters()
    partly = new_loader().load(54, *DAY_BEFORE)
    assert partly.flux_requests == 1 and partly.rechecked_hours == 3
    (q,) = count_params(sim)
    assert window_start(q) == datetime(2026, 3, 9, 5, tzinfo=UTC)
    same_rows(partly.frame, first.frame)  # the late rows are not seen

    # "range": every hour fetched again as on a cold load, and the cache rewritten.
    want = truth(sim, *DAY_BEFORE)
    sim.reset_counters()
    ranged = new_loader().load(54, *DAY_BEFORE, refresh="range")
    same_rows(ranged.frame, want)
    assert ranged.cached_hours == 0 and ranged.fetched_hours == 24
    assert count_params(sim) == []
    ranged_requests = sim.flux_request_count()
    sim.reset_counters()
    cold = new_loader(cache="elsewhere").load(54, *DAY_BEFORE)
    assert ranged.flux_requests == ranged_requests == cold.flux_requests > 0
    sim.reset_counters()
    after = new_loader().load(54, *DAY_BEFORE)
    assert after.flux_requests == 0
    same_rows(after.frame, want)


def test_refresh_values(tmp_path):
    sim, loader = make(tmp_path)
    start, end = NOW - 6 * H, NOW + H
    loader.load(54, start, end)
    for value in (True, "open"):  # the open hour again, settled hours from disk
        sim.reset_counters()
        result = loader.load(54, start, end, refresh=value)
        assert not result.from_memory and result.fetched_hours == 1
        assert all(window_start(q) >= datetime(2026, 3, 10, 12, tzinfo=UTC)
                   for q in flux_params(sim))
    assert loader.load(54, start, end).from_memory
    with pytest.raises(E.ConfigError):
        loader.load(54, start, end, refresh="all")


def test_a_failed_recheck_serves_the_cache_and_waits(tmp_path):
    clock = Clock(datetime(2026, 3, 9, 8, tzinfo=UTC))
    sim, new_loader = make_clocked(tmp_path, clock)
    first = new_loader().load(54, *DAY_BEFORE)
    clock.now = datetime(2026, 3, 9, 10, tzinfo=UTC)
    loader = new_loader()
    loader.client.max_retries = 1
    sim.reset_counters()
    sim.config.fault_schedule = {1: "503", 2: "503"}  # the count and its one retry
    result = loader.load(54, *DAY_BEFORE, refresh=True)  # 07:00 was open: still fetched
    sim.config.fault_schedule = {}
    assert sim.flux_request_count() == 3
    assert result.late_hours == [] and not hours_of(result.frame) & EMPTIED
    settled = pl.col("start_of_hour") < DAY_BEFORE[1] - H
    same_rows(result.frame.filter(settled), first.frame.filter(settled))
    sim.reset_counters()
    clock.now += timedelta(minutes=5)
    assert loader.load(54, *DAY_BEFORE, refresh=True).flux_requests == 0  # no retry yet
    clock.now += timedelta(minutes=10)
    sim.reset_counters()
    assert loader.load(54, *DAY_BEFORE, refresh=True).late_hours == LATE


# -- `from` sent one second early; nothing with a row twice reaches the disk
def exclusive_from(sent: list):
    """A wrap for ``make``: an API that treats ``from`` as exclusive (``start_of_hour >
    from``). The simulator's ``from`` is inclusive, so it gets ``from`` + 1 ms; what the
    client sent is recorded in ``sent``."""

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/flux"):
                sent.append(dict(request.url.params))
                t = datetime.fromisoformat(request.url.params["from"].replace("Z", "+00:00"))
                t += timedelta(milliseconds=1)
                shifted = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
                request = httpx.Request(request.method,
                                        request.url.copy_set_param("from", shifted),
                                        headers=request.headers)
            return inner.handle_request(request)

        return httpx.MockTransport(handler)

    return wrap


@pytest.mark.parametrize("hazards", [
    {}, {"unstable_ties": True, "inclusive_to": True, "max_per_page": 400}])
def test_exclusive_from_loses_no_hour(tmp_path, hazards):
    sent: list[dict] = []
    sim, loader = make(tmp_path, wrap=exclusive_from(sent), **hazards)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, truth(sim, *WEEK))
    # Every window starts one second before a whole hour, as `to` ends one second early.
    # Every request but the hourly counts (a separate endpoint) is a flux page.
    assert sent and len(sent) + sim.stats_request_count() == result.flux_requests
    for q in sent:
        start = datetime.fromisoformat(q["from"].replace("Z", "+00:00")) + timedelta(seconds=1)
        assert start == ceil_hour(start) and WEEK[0] <= start < WEEK[1], q["from"]
    assert min(q["from"] for q in sent) == "2026-03-02T23:59:59.000Z"


def test_dense_hours_with_exclusive_from(tmp_path):
    sent: list[dict] = []
    sim, loader = make(tmp_path, wrap=exclusive_from(sent), dense=True, unstable_ties=True,
                       max_per_page=250)
    start, end = datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 9, 11, tzinfo=UTC)
    loader.planning = False  # the key split on its own (the fallback of planned windows)
    result = loader.load(54, start, end)
    same_rows(result.frame, truth(sim, start, end))
    assert {q["sort_by"] for q in sent} >= {"ip0"}  # the key split ran too


def test_rows_twice_are_refused_before_they_are_written(tmp_path, monkeypatch):
    """A loader bug that fetches every chunk twice: the load fails, and the disk, written
    as the load goes, holds each row once and exactly the API's rows of its hours."""
    sim, loader = make(tmp_path, per_page=100)
    real_split = segments.split
    monkeypatch.setattr(segments, "split",
                        lambda a, b, n, rho: real_split(a, b, n, rho) * 2)
    # The range reaches the open hour, so the per-segment count (which would see the
    # doubling) is skipped: only the checks on accepted hours stand in the way.
    start, end = NOW - 6 * H, NOW + H
    with pytest.raises(E.IncompleteDataError, match="came back twice"):
        loader.load(54, start, end)
    assert sim.flux_request_count() > 0
    files = list((tmp_path / "cache").rglob("*.parquet"))
    assert files  # saved as they came (loader.fetch, point 5)
    disk = pl.concat([pl.read_parquet(f) for f in files])
    same_rows(disk, truth(sim, start, end).filter(
        pl.col("start_of_hour").is_in(sorted(hours_of(disk)))))


def test_server_rate_limit_on_is_never_exceeded(tmp_path):
    """The simulator's own rate limit stays on (a small one, on a virtual clock shared by
    the simulator and the client's limiter, so nothing really waits): the load never
    bursts past it. One worker keeps the virtual timeline exact; the limiter's sharing
    between threads is tested in test_client."""
    limit = 30
    lock = threading.Lock()
    elapsed = [0.0]  # virtual seconds since NOW

    def clock() -> float:
        with lock:
            return elapsed[0]

    def sleep(seconds: float) -> None:
        with lock:
            elapsed[0] += seconds

    answers: list[tuple[float, int]] = []

    def record(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            resp = inner.handle_request(request)
            answers.append((clock(), resp.status_code))
            return resp

        return httpx.MockTransport(handler)

    sim = Simulator(SimulatorConfig(now=lambda: NOW + timedelta(seconds=clock()),
                                    rate_limit_per_min=limit, limit_clock=clock))
    settings = Settings(api_url="http://sim.test/api/v1", api_key=Secret("test-key-123"),
                        rate_limit_per_min=limit)
    client = Client(settings, transport=record(sim.transport()), sleep=sleep,
                    limiter=RateLimiter(limit, clock=clock, sleep=sleep))
    loader = Loader(client, Store(tmp_path / "cache"), max_concurrency=1, clock=lambda: NOW)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, truth(sim, *WEEK))
    assert len(answers) > limit  # the limit was really in play
    assert [status for _, status in answers if status != 200] == []  # no 429 at all
    times = [t for t, _ in answers]
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= limit
    assert times[-1] >= (len(times) - 1) * 60 / limit - 1e-6  # evenly spaced, no burst


# ------------------------------------------------ load control: cancel, resume, budgets
# Estimates, cancellation, request allowances, and hours saved as they complete
# (loader.estimate, loader.gate, loader.fetch). Requests are counted at the simulator.
ALL_WEEK = [WEEK[0] + i * H for i in range(7 * 24)]


@pytest.fixture(scope="module")
def cold_week(tmp_path_factory) -> int:
    """Flux requests of a cold load of WEEK, with nothing cached."""
    _, loader = make(tmp_path_factory.mktemp("cold"))
    return loader.load(54, *WEEK).flux_requests


def rows_of(frame: pl.DataFrame, hours) -> pl.DataFrame:
    return frame.filter(pl.col("start_of_hour").is_in(sorted(hours)))


@pytest.mark.parametrize("hazard", ["stable", "per-page-capped"])
def test_estimate_is_near_the_cold_load_then_free(tmp_path, hazard):
    sim, loader = make(tmp_path, **HAZARDS[hazard])
    est = loader.estimate(54, *WEEK)
    # One count for the one missing segment (a full page: it also shows the page granted),
    # and single hours to learn the sensor's daily profile.
    assert est.spent == sim.flux_request_count() == 1 + estimate.SAMPLE_HOURS
    assert est.exact and est.missing_hours == 7 * 24
    sim.reset_counters()
    assert loader.estimate(54, *WEEK) == replace(est, spent=0)  # kept: reruns ask again
    assert sim.flux_request_count() == 0
    other = loader.estimate(54, WEEK[0] - 24 * H, WEEK[1] - 24 * H)  # the profile is kept
    assert other.spent == sim.flux_request_count() == 1
    result = loader.load(54, *WEEK)
    assert est.rows == result.frame.height
    assert abs(est.requests - result.flux_requests) <= 0.25 * result.flux_requests, (
        est.requests, result.flux_requests)
    sim.reset_counters()
    assert loader.estimate(54, *WEEK) == Estimate(requests=0, missing_hours=0, rows=0)
    _, fresh = make(tmp_path)  # a new process: from the disk cache, metadata only
    fresh.client = loader.client
    assert fresh.estimate(54, *WEEK) == Estimate(requests=0, missing_hours=0, rows=0)
    assert sim.flux_request_count() == 0


def test_estimate_asks_nothing_when_only_the_open_hour_is_missing(tmp_path):
    sim, loader = make(tmp_path)
    start, end = NOW - 6 * H, NOW + 2 * H
    loader.load(54, start, end)
    sim.reset_counters()
    _, fresh = make(tmp_path)
    fresh.client = loader.client
    assert fresh.estimate(54, start, end) == Estimate(requests=1, missing_hours=1, rows=None)
    assert sim.flux_request_count() == 0
    assert fresh.load(54, start, end).flux_requests == 1 == sim.flux_request_count()


def test_estimate_falls_back_when_the_api_fails_and_raises_what_a_load_would(tmp_path):
    day = (WEEK[0], WEEK[0] + 24 * H)
    sim, loader = make(tmp_path, fault_rate=1.0, fault_kinds=("503",))
    est = loader.estimate(54, *day)
    # One count and two retries, then a cautious default: one per hour and per segment.
    assert est.spent == sim.flux_request_count() == 3
    assert not est.exact and est.rows is None
    assert est.missing_hours == 24 and est.requests == 25
    _, clean = make(tmp_path / "clean")
    assert est.requests >= clean.load(54, *day).flux_requests
    with pytest.raises(E.ForbiddenError):
        clean.estimate(99, *day)


def LOST_ON_STOP(loader) -> int:  # noqa: N802 - a bound, read like a constant
    """Requests a stopped load may have spent without saving them (module docstring,
    point 10): the started planned windows' pages, and the next load's head + counts."""
    return loader.max_concurrency * (cost.WINDOW_PAGES - 1) + 2


def test_cancel_halfway_keeps_what_completed_and_the_next_load_fetches_the_rest(
        tmp_path, cold_week):
    sim, loader = make(tmp_path)
    want = truth(sim, *WEEK)
    assert loader.estimate(54, *WEEK).missing_hours == 7 * 24
    cancel = threading.Event()
    seen: list[int] = []

    def progress(p):
        if p.requests_done >= 30 and not cancel.is_set():
            seen.append(sim.flux_request_count())
            cancel.set()

    with pytest.raises(E.LoadCancelledError) as info:
        loader.load(54, *WEEK, cancel=cancel, progress=progress)
    err = info.value
    spent = sim.flux_request_count()
    # Nothing started after the cancel: at most one request in flight per other worker.
    assert seen and spent <= seen[0] + loader.max_concurrency - 1
    assert "cancelled" in str(err) and isinstance(err, E.IncompleteDataError)
    kept = set(ALL_WEEK) - set(err.hours)
    assert err.hours and kept
    same_rows(err.partial, rows_of(want, kept))
    # The estimate kept from before the load is dropped: it counts what is left.
    left = loader.estimate(54, *WEEK)
    assert left.missing_hours == len(err.hours) and left.spent >= 1

    # A new process finds the completed hours on disk and fetches only the others.
    _, fresh = make(tmp_path)
    fresh.client = loader.client
    assert fresh.cached_coverage(54, *WEEK) == len(kept) / len(ALL_WEEK)
    sim.reset_counters()
    resumed = fresh.load(54, *WEEK)
    same_rows(resumed.frame, want)
    assert resumed.cached_hours == len(kept) and resumed.fetched_hours == len(err.hours)
    assert resumed.flux_requests == sim.flux_request_count() < cold_week
    # What the cancelled load spent is saved, less the pages of the planned windows it
    # had started (a window's hours are kept once all its pages are in: at most
    # WINDOW_PAGES - 1 per worker), the requests already in flight when it was cancelled
    # (a busy machine answers them after the cancel), and the resumed load's own head
    # and hourly counts.
    lost = LOST_ON_STOP(loader) + (spent - seen[0])
    assert -loader.max_concurrency <= resumed.flux_requests - (cold_week - spent) <= lost, (
        resumed.flux_requests, cold_week, spent, lost)
    assert abs(left.requests - resumed.flux_requests) <= 0.25 * resumed.flux_requests, (
        left.requests, resumed.flux_requests)


def test_a_load_cancelled_before_it_starts_makes_no_request(tmp_path):
    sim, loader = make(tmp_path)
    day1 = (WEEK[0], WEEK[0] + 24 * H)
    loader.load(54, *day1)
    sim.reset_counters()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(E.LoadCancelledError) as info:
        loader.load(54, WEEK[0], WEEK[0] + 48 * H, cancel=cancel)
    assert sim.flux_request_count() == 0
    assert info.value.hours == ALL_WEEK[24:48]
    same_rows(info.value.partial, truth(sim, *day1))


def test_a_cancel_stops_the_wait_for_a_rate_limit_slot(tmp_path):
    sim, loader = make(tmp_path)
    loader.client.limiter = RateLimiter(6)  # real time: one slot every 10 s
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()  # while the workers wait for their slots
    began = time.monotonic()
    with pytest.raises(E.LoadCancelledError):
        loader.load(54, *WEEK, cancel=cancel)
    assert time.monotonic() - began < 5
    assert sim.flux_request_count() == 1  # the first slot only


def test_an_allowance_stops_the_load_at_exactly_that_many_requests(tmp_path):
    sim, loader = make(tmp_path)
    want = truth(sim, *WEEK)
    with pytest.raises(E.BudgetExceededError) as info:
        loader.load(54, *WEEK, max_requests=10)
    err = info.value
    assert sim.flux_request_count() == 10
    assert "allowance of 10" in str(err) and isinstance(err, E.IncompleteDataError)
    kept = set(ALL_WEEK) - set(err.hours)
    assert err.hours and kept
    same_rows(err.partial, rows_of(want, kept))

    # Cache only: not one request, the saved hours, the others reported missing.
    sim.reset_counters()
    with pytest.raises(E.BudgetExceededError) as info0:
        loader.load(54, *WEEK, max_requests=0)
    assert sim.flux_request_count() == 0
    assert info0.value.hours == err.hours
    same_rows(info0.value.partial, err.partial)

    rest = loader.load(54, *WEEK)
    assert rest.fetched_hours == len(err.hours)
    same_rows(rest.frame, want)
    _, fresh = make(tmp_path)
    fresh.client = loader.client
    sim.reset_counters()
    cached = fresh.load(54, *WEEK, max_requests=0)
    assert sim.flux_request_count() == 0 == cached.flux_requests and cached.open_hours == []
    same_rows(cached.frame, want)


def test_retries_count_against_the_allowance(tmp_path):
    sim, loader = make(tmp_path)
    sim.config.fault_schedule = {1: "503", 2: "503"}
    with pytest.raises(E.BudgetExceededError):
        loader.load(54, WEEK[0], WEEK[0] + 24 * H, max_requests=3)
    assert sim.flux_request_count() == 3  # two failures and an answer; no fourth attempt


def test_cache_only_serves_the_cached_hours_without_the_open_hour(tmp_path):
    sim, loader = make(tmp_path)
    start, end = NOW - 6 * H, NOW + H
    open_hour = datetime(2026, 3, 10, 12, tzinfo=UTC)
    loader.load(54, start, end)
    sim.reset_counters()
    _, fresh = make(tmp_path)
    fresh.client = loader.client
    cached = fresh.load(54, start, end, max_requests=0)
    assert sim.flux_request_count() == 0
    assert cached.open_hours == [open_hour] and open_hour not in hours_of(cached.frame)
    same_rows(cached.frame, truth(sim, start, open_hour))
    # Never kept in memory as the window: the next load still fetches the open hour.
    full = fresh.load(54, start, end)
    assert not full.from_memory and full.flux_requests == 1
    same_rows(full.frame, truth(sim, start, end))


CRASH = """
import os, signal, sys
from pathlib import Path
import httpx
sys.path.insert(0, {tests!r})
from test_loader import WEEK, make

def dies_after(inner):
    sent = [0]
    def handler(request):
        if request.url.path.endswith("/flux"):
            sent[0] += 1
            if sent[0] > {after}:  # the process is killed as it sends this one
                os.kill(os.getpid(), signal.SIGKILL)
        return inner.handle_request(request)
    return httpx.MockTransport(handler)

make(Path({tmp!r}), wrap=dies_after)[1].load(54, *WEEK)
"""


def test_a_killed_load_resumes_in_a_new_process(tmp_path, cold_week):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    after = 40
    script = CRASH.format(tests=str(tests), after=after, tmp=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], cwd=tests.parent, timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    sim, loader = make(tmp_path)
    coverage = loader.cached_coverage(54, *WEEK)
    assert 0 < coverage < 1  # hours reached the disk before the kill, not all of them
    result = loader.load(54, *WEEK)
    same_rows(result.frame, truth(sim, *WEEK))
    assert result.cached_hours == round(coverage * len(ALL_WEEK))
    assert result.flux_requests == sim.flux_request_count() < cold_week
    assert result.flux_requests <= cold_week - after + LOST_ON_STOP(loader)


def test_concurrent_writes_of_one_day_keep_every_hour(tmp_path):
    sim, _ = make(tmp_path, store=False)
    hours = ALL_WEEK[:24]
    rows = truth(sim, hours[0], hours[-1] + H)
    # Two Store objects on one directory, as two loaders of one process would have.
    stores = [Store(tmp_path / "c"), Store(tmp_path / "c")]
    barrier = threading.Barrier(len(hours))

    def write(i: int) -> None:
        barrier.wait()
        stores[i % 2].write("src", 54, "all", [hours[i]], rows_of(rows, [hours[i]]))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(hours))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got, covered = Store(tmp_path / "c").read("src", 54, "all", hours)
    assert covered == set(hours)
    same_rows(got, rows)


def announces_one_more_row_first(inner: httpx.BaseTransport) -> httpx.BaseTransport:
    """A wrap for ``make``: the first flux answer's ``meta.total`` is one too many."""
    sent = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if not request.url.path.endswith("/flux"):
            return resp
        sent[0] += 1
        if sent[0] > 1:
            return resp
        resp.read()
        data = json.loads(resp.content)
        data["meta"]["total"] += 1
        return httpx.Response(resp.status_code, json=data)

    return httpx.MockTransport(handler)


def test_a_segment_that_does_not_add_up_is_taken_back_out_of_the_cache(tmp_path):
    sim, loader = make(tmp_path, wrap=announces_one_more_row_first)
    day = (WEEK[0], WEEK[0] + 24 * H)
    with pytest.raises(E.IncompleteDataError, match="announced"):
        loader.load(54, *day)
    # Its hours were written as they came, then taken back: none is served.
    assert loader.cached_coverage(54, *day) == 0.0
    assert not list((tmp_path / "cache").rglob("*.parquet"))


# ------------------------------------------------ planned windows: hourly counts, splits
# loader.segments: hourly counts plan windows sorted by sumFlux.
# Pages of 250 rows keep these fast; hazards on.
PLANNED_HAZARDS = {"unstable_ties": True, "inclusive_to": True, "max_per_page": 250,
                   "volumes_as": "mixed", "meta_urls": False}


# A week here; the month is `make bench`'s (it exits 1 over its request budget).
@pytest.mark.parametrize("days", [7])
def test_cold_load_within_1_3_times_the_limit(tmp_path, days):
    start = WEEK[1] - days * 24 * H
    sim, loader = make(tmp_path, **PLANNED_HAZARDS)
    want = truth(sim, start, WEEK[1])
    result = loader.load(54, start, WEEK[1])
    same_rows(result.frame, want)
    limit = math.ceil(want.height / 250)  # the least any client can make at 250 a page
    assert result.flux_requests == sim.flux_request_count()
    # The hourly counts: one request per page of hours (250 granted here, as for flux).
    assert sim.stats_request_count() == math.ceil(days * 24 / 250)
    assert result.flux_requests <= 1.3 * limit + 3, (result.flux_requests, limit)
    # The keyset walk alone, on the same window: the planner is what brings it down.
    sim2, before = make(tmp_path / "before", **PLANNED_HAZARDS)
    before.planning = False
    assert before.load(54, start, WEEK[1]).flux_requests > 1.6 * limit
    assert sim2.stats_request_count() == 0


def lying_counts(how: str):
    """A wrap for ``make``: /flux-hour-sensor answers wrong counts, or fails."""

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            resp = inner.handle_request(request)
            if not request.url.path.endswith("/flux-hour-sensor"):
                return resp
            if how == "missing":
                return httpx.Response(404, json={"message": "Cannot GET"})
            resp.read()
            data = json.loads(resp.content)
            counts = [item["count"] for item in data["data"]]
            if how == "shifted":  # right total, wrong hours: each count moved 5 hours on
                counts = counts[-5:] + counts[:-5]
            elif how == "tenfold":  # ten times too many rows in every hour
                counts = [10 * c for c in counts]
            for item, c in zip(data["data"], counts, strict=True):
                item["count"] = c
            return httpx.Response(resp.status_code, json=data)

        return httpx.MockTransport(handler)

    return wrap


@pytest.mark.parametrize("how", ["shifted", "tenfold", "missing"])
def test_wrong_hourly_counts_cost_requests_never_rows(tmp_path, how):
    sim, loader = make(tmp_path, wrap=lying_counts(how), **PLANNED_HAZARDS)
    want = truth(sim, *WEEK)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, want)
    assert sim.stats_request_count() == 1
    assert result.flux_requests == sim.flux_request_count()
    if how == "shifted":  # total right, so windows are planned on it: every window verified
        assert "sumFlux" in {q["sort_by"] for q in flux_params(sim)}
    else:  # counts that do not add up to meta.total (or none): the keyset walk
        assert "sumFlux" not in {q["sort_by"] for q in flux_params(sim)}
    # The next load of this loader does not ask for counts that failed within the hour.
    if how == "missing":
        loader.load(54, WEEK[0] - 48 * H, WEEK[0])
        assert sim.stats_request_count() == 1


def test_sum_runs_resolve_from_positions():
    """_resolve_sums on hand-made pages: a tied run across a page edge is asked again."""
    def page(sums: list[int], tag: str) -> pl.DataFrame:
        rows = [{"start_of_hour": "2026-03-03T10:00:00.000Z", "ip0": "10.0.0.1",
                 "ip1": f"1.1.{tag}.{i}", "dir": "OUT", "protocol": "TCP", "port": 443,
                 "occurrences": 1, "duration": {}, "timestamps": [], "out_flux": str(v),
                 "in_flux": "0", "filtered": False, "toxic": False} for i, v in enumerate(sums)]
        return to_frame(rows)

    # 7 rows, pages of 3, sums 1 2 5 5 5 8 9: ascending pages [1 2 5] [5 5 8], page 1
    # descending [9 8 5]. The run of 5 at positions [2, 5) lies whole in no page of either
    # grid (ascending [0, 3) [3, 6), descending [4, 7) [1, 4) [0, 1)): no page can help.
    got = {(False, 1): page([1, 2, 5], "a"), (False, 2): page([5, 5, 8], "b"),
           (True, 1): page([9, 8, 5], "c")}
    frame, need = positions.resolve_sums(got, 7, 3)
    assert frame is None and need == []  # a run of 3 at [2, 5) fits no page of the two grids
    # 8 rows, sums 1 2 5 5 6 7 8 9: asc pages [1 2 5] [5 6 7], desc page 1 [9 8 7].
    # The run of 5 at [2, 4) straddles the edge at 3; descending page 2 holds [2, 5): ask it.
    got = {(False, 1): page([1, 2, 5], "a"), (False, 2): page([5, 6, 7], "b"),
           (True, 1): page([9, 8, 7], "c")}
    frame, need = positions.resolve_sums(got, 8, 3)
    assert frame is None and need == [(True, 2)]
    got[(True, 2)] = page([6, 5, 5], "d")  # positions 4, 3, 2 descending: the whole run
    frame, need = positions.resolve_sums(got, 8, 3)
    assert need == [] and frame is not None
    assert sorted((frame["in_bytes"] + frame["out_bytes"]).to_list()) == [1, 2, 5, 5, 6, 7, 8, 9]


def test_compact_loader_returns_the_same_rows_as_categoricals(tmp_path):
    """The dashboard's loader (``compact=True``): cold, warm from disk, partial."""
    from flux_dashboard.schema import COMPACT_COLUMNS, FLOW_SCHEMA

    sim, plain = make(tmp_path)
    loader = Loader(plain.client, Store(tmp_path / "cache"), clock=lambda: NOW, compact=True)
    want = truth(sim, *WEEK)
    strings = pl.col(pl.Categorical).cast(pl.String)
    cold = loader.load(54, *WEEK)
    cats = {c for c, t in cold.frame.schema.items() if t == pl.Categorical}
    assert cats == {c for c in COMPACT_COLUMNS if c in FLOW_SCHEMA}
    same_rows(cold.frame.with_columns(strings), want)
    assert cold.frame.estimated_size() < 0.75 * want.estimated_size()
    # Warm: every day read back from disk, each cast as it is read.
    warm = Loader(plain.client, Store(tmp_path / "cache"), clock=lambda: NOW,
                  compact=True).load(54, *WEEK)
    assert warm.flux_requests == 0 and warm.frame.schema == cold.frame.schema
    same_rows(warm.frame.with_columns(strings), want)
    assert warm.frame.get_column("start_of_hour").is_sorted()
    # A partial load (cache only, with hours missing) hands over a compact frame too.
    later = (WEEK[0], WEEK[1] + timedelta(hours=6))
    with pytest.raises(E.BudgetExceededError) as info:
        loader.load(54, *later, max_requests=0)
    assert info.value.partial.schema == cold.frame.schema
    same_rows(info.value.partial.with_columns(strings), want)


def test_sessions_pricing_one_cold_range_at_once_spend_one_estimate(tmp_path):
    """Found by the soak: five sessions opening the same cold range on a fresh server
    each priced it, each with the same full-page request (the page size not learned
    yet). The estimate is single-flight: they all get one estimate's result."""
    slow = threading.Event()

    def wrap(inner):
        def handler(request):
            slow.wait(0.3)  # every estimate is still running when the others ask
            return inner.handle_request(request)
        return httpx.MockTransport(handler)

    sim, loader = make(tmp_path, wrap=wrap)
    alone_sim, alone = make(tmp_path / "alone")
    want = alone.estimate(54, *WEEK)
    got = at_once(5, lambda: loader.estimate(54, *WEEK))
    assert len(got) == 5 and {g.requests for g in got} == {want.requests}
    flux = sum(1 for p, _ in sim.requests if p.endswith("/flux"))
    assert flux == sum(1 for p, _ in alone_sim.requests if p.endswith("/flux")) > 0
