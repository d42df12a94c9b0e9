"""The Sensors page (every sensor at a glance) through AppTest: the demo's fleet with its
silent sensor listed first and its bad night, the cost of a cold and a warm visit, the
level strip equal to the Overview's cyberweather per day, links to each sensor, the
download, a viewer's masked names and sensors, and the simulator served over HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from flux_dashboard.analytics import LEVEL_NAMES
from flux_dashboard.simulator import Simulator, SimulatorConfig
from flux_dashboard.simulator.world import FLEET
from tests.kit.apptest import chart_specs, demo_api, hermetic, plain, run_page
from tests.kit.clock import PINNED, pinned_clock
from tests.kit.hosting import CAROL, hosted, signed_in

PAGE = "pages/0_sensors.py"
SILENT = next(f for f in FLEET if f[6] == "silent")
BAD_NIGHT = next(f for f in FLEET if f[6] == "bad night")


def hourly_calls(sim: Simulator) -> int:
    return sum(1 for path, _ in sim.requests if "/flux-hour-" in path)


def table(at) -> pl.DataFrame:
    return pl.from_pandas(at.dataframe[0].value)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fleet")
    with hermetic(root / "cache"):
        yield root


def open_sensors(sim: Simulator):
    """The Sensors page after the app's first run (the Overview, whose load counts its
    own hours with /flux-hour-sensor): (the run, the page's hourly requests)."""
    at = run_page(None)
    before = hourly_calls(sim)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at, hourly_calls(sim) - before


def test_every_sensor_silent_first_one_request_each_then_none(fresh):
    at, cold = open_sensors(demo_api())
    rows = table(at)
    assert rows.height == 12 == cold  # one request per sensor for a cold month
    assert f"refreshed with {cold} requests" in at.caption[0].value
    first = rows.row(0, named=True)
    assert first["name"] == SILENT[2] and first["alert"].startswith("⚠ silent ")
    assert rows.filter(pl.col("alert").str.starts_with("⚠")).height == 1
    night = rows.filter(pl.col("name") == BAD_NIGHT[2]).row(0, named=True)
    assert night["today"] == "Critical" and night["today_cyt"] >= 100
    assert first["open"] == f"overview?sensor={SILENT[0]}&range=Last+30+days"
    # A second visit: nothing asked (cached days, today's hours kept five minutes).
    again, warm = open_sensors(demo_api())
    assert warm == 0 and "refreshed with 0 requests" in again.caption[0].value
    # Filters: a name, a level.
    again.text_input(key="fleet_search").set_value("girard").run()
    assert table(again)["name"].to_list() == [SILENT[2]]
    again.text_input(key="fleet_search").set_value("").run()
    again.selectbox(key="fleet_level").set_value("Severe").run()
    levels = table(again)["yesterday"].to_list()
    assert levels and set(levels) <= {"Severe", "Critical"}
    again.selectbox(key="fleet_level").set_value("any level").run()
    again.toggle(key="fleet_silent").set_value(True).run()
    assert table(again)["name"].to_list() == [SILENT[2]]


def test_the_strip_equals_the_overviews_cyberweather_per_day(fresh):
    at = run_page(PAGE)
    main = table(at).filter(pl.col("open").str.contains("sensor=54&")).row(0, named=True)
    strip = main["levels"]  # 30 local days, oldest first; -1: no data
    today = PINNED.astimezone(ZoneInfo("Europe/Paris")).date()
    first = today - timedelta(days=30)
    overview = run_page(None, {"sensor": "54", "range": "Custom",
                               "from_day": first.isoformat(), "from_hour": "00:00",
                               "to_day": today.isoformat(), "to_hour": "00:00"})
    spec = chart_specs(overview)["cw_days"]
    shown = {}
    for trace in spec["data"]:
        for when, level in zip([c[0] for c in trace.get("customdata") or []],
                               [c[1] for c in trace.get("customdata") or []], strict=True):
            shown[when[4:14]] = level
    days = [(first + timedelta(days=i)).isoformat() for i in range(30)]
    assert len(shown) == 30
    assert [LEVEL_NAMES[v] for v in strip] == [shown[d] for d in days]


def test_the_download_holds_the_rows_shown(fresh, captured_downloads):
    at = run_page(PAGE)
    at.toggle(key="fleet_silent").set_value(True).run()
    csv = captured_downloads["sensors.csv"]()
    got = pl.read_csv(io.BytesIO(csv if isinstance(csv, bytes) else csv.encode()))
    assert got["name"].to_list() == [SILENT[2]] and got["silent"].to_list() == [True]


def test_a_viewer_sees_only_their_sensors_masked(tmp_path):
    policy = ('[[rule]]\ndomain = "customer.example"\nrole = "viewer"\nsensors = [54, 105]\n')
    with hosted(tmp_path, policy, FLUX_MASK_SECRET="fleet-test-mask-secret"):
        at = signed_in(CAROL, PAGE)
        rows = table(at)
        assert sorted(int(u.split("sensor=")[1].split("&")[0]) for u in rows["open"]) == [
            54, 105]
        assert all(n.startswith("Sensor-") for n in rows["name"])
        assert all(u.endswith("&mask=true") for u in rows["open"])
        shown = json.dumps(rows.to_dicts(), default=str) + json.dumps(
            chart_specs(at)["fleet_strip"])
        for real in ("Cabinet Martin", "Étude notariale Roux", "Roux"):
            assert real not in shown


def test_the_simulator_over_http_through_the_budget(tmp_path):
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None, fleet=True))
    with sim.serve() as server, hermetic(tmp_path / "cache",
                                         SERENICITY_API_URL=server.url,
                                         FLUX_AUDIT_FILE=str(tmp_path / "audit.jsonl")):
        at, cost = open_sensors(sim)
        rows = table(at)
        assert rows.height == 12 and rows.row(0, named=True)["name"] == SILENT[2]
        assert cost == 12
        audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text()
                 .splitlines()]
        fleet = [e for e in audit if e.get("purpose") == "fleet"]  # (the Overview's too)
        assert [e["event"] for e in fleet].count("load_started") == 12
        assert sum(e["requests"] for e in fleet if e["event"] == "load_finished") == 12


@pytest.mark.parametrize("skewed", [False, True], ids=["consistent", "one hour off"])
def test_the_overview_says_where_totals_and_flows_disagree(tmp_path, skewed):
    """The Sensors page caches the hourly totals; the Overview of a day then compares
    them with its flows: silent when they agree, a data-quality note when the API's
    statistics count one flow more in one hour."""
    from flux_dashboard.hours import local_day_window
    from tests.kit.clock import PLAN, days_link

    day = PLAN.day(-2)
    bad = local_day_window(day, "Europe/Paris")[0] + timedelta(hours=10)
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None,
                                    inconsistent_hours=(bad,) if skewed else ()))
    with sim.serve() as server, hermetic(tmp_path / "cache", SERENICITY_API_URL=server.url):
        # The day's totals cached as the Sensors page or the worker leaves them.
        from flux_dashboard.client import Client
        from flux_dashboard.config import load_settings
        from flux_dashboard.hourly import HourlyLoader

        cfg = load_settings(secrets={})
        start, end = local_day_window(day, "Europe/Paris")
        HourlyLoader(Client(cfg), cfg.cache_dir, clock=cfg.now).load(54, start, end)
        at = run_page(None, days_link(day))
        notes = [plain(w.value) for w in at.warning if "Data quality" in plain(w.value)]
        if not skewed:
            assert notes == []
        else:
            when = bad.astimezone(ZoneInfo("Europe/Paris"))
            assert notes == [
                f"Data quality: the API's hourly totals and its flows disagree for 1 hour: "
                f"{when:%d %b %H}:00 (flows {notes[0].split('(flows ')[1].split(' vs')[0]} vs "
                f"{int(notes[0].split('(flows ')[1].split(' vs')[0].replace(',', '')) - 1:,})"
                " (totals vs flows). The figures on this page come from the flows."]
