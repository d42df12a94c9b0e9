"""Hourly totals (/flux-hour-sensor, /flux-hour-ip0) against the simulator over real HTTP:
exact under its paging, type and fault hazards; cached per day (0 requests warm, the open
hour and due rechecks only); what a month costs; the agreement check with the flows, both
ways; nonsense answers refused in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from flux_dashboard import errors as E
from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.hourly import (
    FIGURES,
    HourlyLoader,
    agreement,
    agreement_text,
    from_flows,
)
from flux_dashboard.schema import to_frame
from flux_dashboard.simulator import LateUpload, Simulator, SimulatorConfig

NOW = datetime(2026, 11, 18, 7, 20, tzinfo=UTC)
SETTLED_END = datetime(2026, 11, 18, 7, tzinfo=UTC)  # 07:00-08:00 is the open hour at 07:20


def client(url: str, transport=None) -> Client:
    settings = Settings(api_url=url, api_key=Secret("hourly-key"), rate_limit_per_min=60_000)
    return Client(settings, limiter=RateLimiter(60_000), sleep=lambda s: None,
                  **({"transport": transport} if transport else {}))


def hourly_requests(sim: Simulator) -> int:
    return sum(1 for path, _ in sim.requests if "/flux-hour-" in path)


def truth(sim: Simulator, start: datetime, end: datetime, per_device: bool) -> pl.DataFrame:
    return from_flows(to_frame(sim.rows(54, start, end)), per_device)


@pytest.mark.parametrize("per_device", [False, True], ids=["sensor", "per-device"])
def test_exact_under_paging_types_and_faults(tmp_path, per_device):
    sim = Simulator(SimulatorConfig(
        now=lambda: NOW, rate_limit_per_min=None, unstable_ties=True, inclusive_to=True,
        volumes_as="mixed", meta_urls=False, max_per_page=150 if per_device else 50,
        fault_rate=0.08, fault_kinds=("500", "503", "truncated"), fault_schedule={2: "429"}))
    start = SETTLED_END - timedelta(days=4)
    with sim.serve() as server:
        h = HourlyLoader(client(server.url), tmp_path, per_device=per_device, clock=lambda: NOW)
        got = h.load(54, start, SETTLED_END)
    want = truth(sim, start, SETTLED_END, per_device)
    keys = ["start_of_hour", "ip0"] if per_device else ["start_of_hour"]
    assert got.frame.select(pl.struct(keys).n_unique()).item() == got.frame.height
    if not per_device:  # every hour, the quiet ones as zeros
        assert got.frame.height == 96
        got_busy = got.frame.filter(pl.col("flows") > 0)
    else:
        got_busy = got.frame
    assert got_busy.sort(keys).select(keys + list(FIGURES)).equals(
        want.sort(keys).select(keys + list(FIGURES)))
    assert got.flux_requests > 2  # the capped pages forced windows to split


def test_cached_per_day_warm_costs_nothing_and_open_hours_are_asked_again(tmp_path):
    clock = [NOW]
    sim = Simulator(SimulatorConfig(now=lambda: clock[0], rate_limit_per_min=None))
    start = SETTLED_END - timedelta(days=30)
    with sim.serve() as server:
        h = HourlyLoader(client(server.url), tmp_path, clock=lambda: clock[0])
        cold = h.load(54, start, NOW)
        assert cold.flux_requests == 1 == hourly_requests(sim)  # a month: one request
        assert cold.open_hours == [SETTLED_END] and cold.frame.height == 30 * 24 + 1
        # Settled hours only: nothing asked, from a new loader (another process).
        again = HourlyLoader(client(server.url), tmp_path, clock=lambda: clock[0])
        assert not again.holds(54, start, NOW) and again.holds(54, start, SETTLED_END)
        warm = again.load(54, start, SETTLED_END)
        assert warm.flux_requests == 0 and hourly_requests(sim) == 1
        assert warm.frame.equals(cold.frame.filter(pl.col("start_of_hour") < SETTLED_END))
        # The open hour is asked again, alone.
        opened = again.load(54, start, NOW)
        assert opened.flux_requests == 1
        assert opened.frame.filter(pl.col("start_of_hour") < SETTLED_END).equals(warm.frame)
        # 20 minutes later the recent hours are due for their recheck: one request too.
        clock[0] = NOW + timedelta(minutes=20)
        assert again.estimate(54, start, SETTLED_END).requests == 1
        assert again.load(54, start, SETTLED_END).flux_requests == 1
        assert again.load(54, start, SETTLED_END).flux_requests == 0
    # The cache-only read of a range never loaded: plain refusal, nothing asked.
    with pytest.raises(E.IncompleteDataError, match="hourly totals are not cached"):
        HourlyLoader(client("http://127.0.0.1:9/api/v1"), tmp_path / "empty",
                     clock=lambda: NOW).load(54, start, SETTLED_END, max_requests=0)


def test_a_late_upload_is_picked_up_by_the_recheck(tmp_path):
    clock = [NOW]
    gap = LateUpload(54, SETTLED_END - timedelta(hours=5), SETTLED_END - timedelta(hours=3),
                     uploaded=NOW + timedelta(minutes=30))
    sim = Simulator(SimulatorConfig(now=lambda: clock[0], rate_limit_per_min=None,
                                    late_uploads=(gap,)))
    start = SETTLED_END - timedelta(days=1)
    with sim.serve() as server:
        h = HourlyLoader(client(server.url), tmp_path, clock=lambda: clock[0])
        before = h.load(54, start, SETTLED_END).frame
        hidden = before.filter(pl.col("start_of_hour").is_between(
            gap.start, gap.end, closed="left"))
        assert hidden["flows"].sum() == 0  # the sensor had not uploaded them yet
        clock[0] = NOW + timedelta(minutes=40)
        after = h.load(54, start, SETTLED_END).frame
    want = truth(sim, start, SETTLED_END, False)
    assert after.filter(pl.col("flows") > 0).select(want.columns).equals(want)


def test_agreement_with_the_flows_both_ways(tmp_path):
    bad = SETTLED_END - timedelta(hours=6)
    for skew, expected in (((), 0), ((bad,), 1)):
        sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None,
                                        inconsistent_hours=skew))
        start = SETTLED_END - timedelta(days=1)
        with sim.serve() as server:
            h = HourlyLoader(client(server.url), tmp_path / str(expected), clock=lambda: NOW)
            totals = h.load(54, start, SETTLED_END).frame
        flows = to_frame(sim.rows(54, start, SETTLED_END))
        diff = agreement(totals, flows, totals["start_of_hour"].to_list())
        assert diff.height == expected
        if expected:
            row = diff.row(0, named=True)
            assert row["start_of_hour"] == bad
            assert row["flows_totals"] == row["flows_flows"] + 1
            assert row["bytes_in_totals"] == row["bytes_in_flows"]
            text = agreement_text(diff, "Europe/Paris")
            assert text.startswith("Data quality: the API's hourly totals and its flows "
                                   "disagree for 1 hour: 18 Nov 02:00 (flows ")
        else:
            assert agreement_text(diff, "Europe/Paris") is None


@pytest.mark.parametrize("item, words", [
    ({"utc_hour": "2026-11-17T10:00:00.000Z", "count": "many"}, "'many' as count"),
    ({"utc_hour": "2026-11-17T10:30:00.000Z", "count": 1}, "does not start on the hour"),
    ({"utc_hour": "yesterday", "count": 1}, "'yesterday' as an hour"),
    ({"utc_hour": "2026-11-17T10:00:00.000Z", "count": True}, "a boolean as count"),
], ids=["text count", "half hour", "bad hour", "boolean"])
def test_nonsense_answers_are_refused_in_plain_words(tmp_path, item, words):
    full = {"in_flux": "10", "out_flux": 5, "in_toxic_flux": 0, "out_toxic_flux": 0,
            "cyt": 0, **item}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"meta": {"total": 1, "per_page": 1000,
                                                  "current_page": 1, "last_page": 1,
                                                  "first_page": 1}, "data": [full]})

    h = HourlyLoader(client("http://api.test/api/v1", httpx.MockTransport(answer)),
                     tmp_path, clock=lambda: NOW)
    with pytest.raises(E.SchemaError, match=words):
        h.load(54, datetime(2026, 11, 17, 9, tzinfo=UTC), datetime(2026, 11, 17, 12,
                                                                     tzinfo=UTC))
    assert not list(Path(tmp_path).rglob("*.parquet"))  # nothing cached from it


def test_the_first_view_says_what_the_overview_says_from_the_flows(tmp_path):
    """Every number the first view shows equals the Overview's from the flows."""
    from flux_dashboard import pagedata as PD
    from flux_dashboard.hourly import first_view

    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None))
    start, end = SETTLED_END - timedelta(days=5), SETTLED_END
    with sim.serve() as server:
        c = client(server.url)
        totals = HourlyLoader(c, tmp_path, clock=lambda: NOW).load(54, start, end).frame
        devices = HourlyLoader(c, tmp_path, per_device=True, clock=lambda: NOW) \
            .load(54, start, end).frame
    flows = to_frame(sim.rows(54, start, end))
    tz, today = "Europe/Paris", None
    fv = first_view(totals, tz, today, 18.0, devices)
    ov = PD.overview(flows, tz, today, 18.0)
    for k in ("flows", "bytes_in", "bytes_out", "toxic_in", "toxic_out", "cyt"):
        assert fv.kpis[k] == ov.kpis[k], k
    assert fv.weather == ov.weather and fv.carbon == ov.carbon
    assert fv.days.equals(ov.days.select(fv.days.columns))
    assert fv.every == ov.every
    cols = ["bucket", "bytes_in", "bytes_out", "flows", "toxic_flows"]
    assert fv.traffic.select(cols).equals(ov.traffic.select(cols))
    top = ov.top_devices.filter(pl.col("ip0").is_not_null()).head(10)
    assert fv.top_devices["ip0"].to_list()[:5] == top["ip0"].to_list()[:5]
    assert fv.top_devices["bytes"].to_list()[:5] == top["bytes"].to_list()[:5]


def test_per_device_costs_are_counted_before_they_are_spent(tmp_path):
    """The per-device estimate asks the API how many items there are (one request of one
    item, ``spent``), so the first view can leave an expensive month to the flows."""
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None,
                                    max_per_page=300))
    with sim.serve() as server:
        for days in (1, 7):
            h = HourlyLoader(client(server.url), tmp_path / str(days), per_device=True,
                             clock=lambda: NOW, per_page=300)
            start = SETTLED_END - timedelta(days=days)
            est = h.estimate(54, start, SETTLED_END)
            got = h.load(54, start, SETTLED_END)
            assert est.spent == 1 and est.rows == got.frame.height
            assert got.flux_requests <= est.requests <= 2 * got.flux_requests + 2, (
                days, est, got.flux_requests)
        assert h.estimate(54, start, SETTLED_END) == h.estimate(54, start, SETTLED_END)
        assert h.estimate(54, start, SETTLED_END).requests == 0  # cached now
