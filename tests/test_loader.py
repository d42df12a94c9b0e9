"""Loader: every row of [from, to) exactly once, within the request budget, under each hazard.

Ground truth is the simulator's own rows for the range; the loader only ever
sees the API through the real client and the simulator's transport.
"""

from __future__ import annotations

import errno
import math
import threading
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import errors as E
from flux_dashboard import loader as loader_mod
from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.loader import Loader, ceil_hour
from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.simulator import Simulator, SimulatorConfig
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


def truth(sim, start, end, **flt):
    df = to_frame(sim.rows(54, start, end))
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
    result = loader.load(54, start, end)
    same_rows(result.frame, want)
    assert result.flux_requests <= budget(want.height, 250)
    assert {q["sort_by"] for q in flux_params(sim)} >= {"ip0"}


def test_faults_are_retried_and_data_stays_exact(tmp_path):
    sim, loader = make(tmp_path, unstable_ties=True, fault_rate=0.15,
                       fault_kinds=("500", "503", "truncated", "timeout"))
    want = truth(sim, *WEEK)
    result = loader.load(54, *WEEK)
    same_rows(result.frame, want)


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
    results = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(loader.load(54, *WEEK))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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


def window_start(q: dict) -> datetime:
    """The first hour a request asked for (``from`` is sent a little early)."""
    return ceil_hour(datetime.fromisoformat(q["from"]))


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
    assert sent and len(sent) == result.flux_requests
    for q in sent:
        start = datetime.fromisoformat(q["from"].replace("Z", "+00:00")) + timedelta(seconds=1)
        assert start == ceil_hour(start) and WEEK[0] <= start < WEEK[1], q["from"]
    assert min(q["from"] for q in sent) == "2026-03-02T23:59:59.000Z"


def test_dense_hours_with_exclusive_from(tmp_path):
    sent: list[dict] = []
    sim, loader = make(tmp_path, wrap=exclusive_from(sent), dense=True, unstable_ties=True,
                       max_per_page=250)
    start, end = datetime(2026, 3, 9, 8, tzinfo=UTC), datetime(2026, 3, 9, 11, tzinfo=UTC)
    result = loader.load(54, start, end)
    same_rows(result.frame, truth(sim, start, end))
    assert {q["sort_by"] for q in sent} >= {"ip0"}  # the key split ran too


def test_rows_twice_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    """A loader bug that fetches every chunk twice: the load fails, the disk stays clean."""
    sim, loader = make(tmp_path, per_page=100)
    real_split = loader_mod._split
    monkeypatch.setattr(loader_mod, "_split",
                        lambda a, b, n, rho: real_split(a, b, n, rho) * 2)
    # The range reaches the open hour, so the per-segment count (which would see the
    # doubling) is skipped and only the final check stands between the rows and the disk.
    start, end = NOW - 6 * H, NOW + H
    with pytest.raises(E.IncompleteDataError, match="came back twice"):
        loader.load(54, start, end)
    assert sim.flux_request_count() > 0
    assert not list((tmp_path / "cache").rglob("*.parquet"))
