"""Analytics on small hand-built frames; every expected number is worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import analytics as A
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

PARIS = "Europe/Paris"
A_IP, B_IP, C_IP, D_IP = "192.168.1.10", "192.168.1.20", "192.168.1.30", "192.168.1.40"
US1, US2, AU, PRIV = "8.8.8.8", "8.8.4.4", "1.1.1.1", "10.9.9.9"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


T0 = utc(2024, 3, 4, 10)  # a Monday, 11:00 in Paris (CET)


def make_flows(rows: list[dict]) -> pl.DataFrame:
    """Rows of FLOW_SCHEMA with defaults for whatever a test does not care about."""
    defaults = {
        "start_of_hour": T0, "ip0": A_IP, "ip1": US1, "dir": "OUT", "protocol": "TCP",
        "port": 443, "occurrences": 1, "duration_s": 1.0, "first_seen": None,
        "last_seen": None, "out_bytes": 0, "in_bytes": 0, "filtered": False, "toxic": False,
        **dict.fromkeys(THREAT_FLAGS, False),
        "device_name": None, "custom_name": None, "netbios": None, "mac_address": None,
        "vendor": None, "is_critical": False, "device_category": None,
    }
    full = []
    for r in rows:
        row = {**defaults, **r}
        if row["device_name"] is None:
            row["device_name"] = row["ip0"]
        full.append(row)
    return pl.from_dicts(full, schema=FLOW_SCHEMA)


EMPTY = make_flows([])


# ---------------------------------------------------------------------------
# KPIs and cyberweather levels
# ---------------------------------------------------------------------------

def kpi_rows() -> pl.DataFrame:
    return make_flows([
        {"ip1": US1, "dir": "OUT", "in_bytes": 100, "out_bytes": 50, "occurrences": 2},
        {"ip1": US2, "dir": "IN", "toxic": True, "in_bytes": 1000, "occurrences": 1,
         "start_of_hour": utc(2024, 3, 4, 11)},
        {"ip0": B_IP, "ip1": US2, "dir": "OUT", "toxic": True, "trojan": True,
         "in_bytes": 10, "out_bytes": 20, "occurrences": 3, "start_of_hour": utc(2024, 3, 4, 12)},
    ])


def test_kpis_counts_everything_by_hand():
    k = A.kpis(kpi_rows())
    assert k == {
        "flows": 3, "sessions": 6, "bytes_in": 1110, "bytes_out": 70, "devices": 2,
        "remote_hosts": 2, "toxic_in": 1, "toxic_out": 1, "toxic_flows": 2,
        "first_hour": utc(2024, 3, 4, 10), "last_hour": utc(2024, 3, 4, 12),
        "cyt": 11,
    }
    # A range's cyT is a total, never put on the daily scale.
    assert "cyt_level" not in k and "cyt_level_name" not in k


def test_kpis_in_local_time():
    k = A.kpis(kpi_rows(), tz=PARIS)
    assert k["first_hour"] == datetime(2024, 3, 4, 11, tzinfo=ZoneInfo(PARIS))
    assert k["first_hour"].utcoffset().total_seconds() == 3600


def test_kpis_empty():
    k = A.kpis(EMPTY)
    assert k["flows"] == 0 and k["bytes_in"] == 0 and k["sessions"] == 0
    assert k["cyt"] == 0
    assert k["first_hour"] is None and k["last_hour"] is None


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, ""),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1_234_567, "1.2 MB"),
        (999_950, "1.0 MB"),  # 999.95 KB rounds up: shown in the next unit
        (4_800_000_000, "4.8 GB"),
        (-2_000_000, "-2.0 MB"),
    ],
)
def test_human_bytes(n, text):
    assert A.human_bytes(n) == text


def test_cyt_of_counts_an_out_flow_as_ten_in_flows_for_ints_and_columns():
    # 3 toxic IN + 2 toxic OUT -> 3 + 20 = 23; the expression form gives the same.
    assert A.cyt_of(3, 2) == 23 and A.cyt_of(0, 0) == 0
    frame = pl.DataFrame({"toxic_in": [3, 0, 1], "toxic_out": [2, 1, 0]})
    assert frame.select(A.cyt_expr())["cyt"].to_list() == [23, 10, 1]


@pytest.mark.parametrize(
    ("cyt", "level"),
    [(0, 0), (1, 1), (5, 1), (6, 2), (10, 2), (11, 3), (99, 3), (100, 4), (12345, 4)],
)
def test_cyt_level_boundaries(cyt, level):
    assert A.cyt_level(cyt) == level
    expr_level = pl.select(A.cyt_level_expr(pl.lit(cyt))).item()
    assert expr_level == level


def test_cyberweather_levels_table():
    assert [(m, lvl, n) for m, lvl, n, _ in A.CYBERWEATHER_LEVELS] == [
        (0, 0, "Clear"), (1, 1, "Light"), (6, 2, "Moderate"), (11, 3, "Severe"),
        (100, 4, "Critical"),
    ]
    assert all(c.startswith("#") for *_, c in A.CYBERWEATHER_LEVELS)


def _toxic_day(day: int, n_in: int, n_out: int) -> list[dict]:
    t = utc(2024, 3, day, 12)
    rows = [{"start_of_hour": t, "dir": "IN", "toxic": True} for _ in range(n_in)]
    rows += [{"start_of_hour": t, "dir": "OUT", "toxic": True} for _ in range(n_out)]
    return rows or [{"start_of_hour": t}]  # a clean flow so the day exists


def test_cyberweather_daily_levels_at_boundaries_and_gap_filled():
    days = [(1, 0, 0), (2, 1, 0), (3, 5, 0), (4, 6, 0), (5, 0, 1), (6, 1, 1), (7, 9, 9),
            (8, 0, 10), (10, 0, 0)]  # 9 March has no flow at all
    df = make_flows([r for d in days for r in _toxic_day(*d)])
    cw = A.cyberweather(df, PARIS, "1d")
    assert cw.columns == ["bucket", "toxic_in", "toxic_out", "cyt", "level", "level_name",
                          "flows"]
    assert cw["bucket"].dtype == pl.Datetime("us", PARIS)
    assert cw["bucket"].dt.day().to_list() == list(range(1, 11))
    assert cw["cyt"].to_list() == [0, 1, 5, 6, 10, 11, 99, 100, 0, 0]
    assert cw["level"].to_list() == [0, 1, 1, 2, 2, 3, 3, 4, 0, 0]
    assert cw["level_name"].to_list()[:8] == [
        "Clear", "Light", "Light", "Moderate", "Moderate", "Severe", "Severe", "Critical"]
    assert cw["flows"].to_list()[8] == 0  # the filled gap


def test_level_ranges_and_rule():
    assert A.LEVEL_RANGES == {0: "0", 1: "1–5", 2: "6–10", 3: "11–99", 4: "100+"}
    assert A.CYBERWEATHER_RULE.endswith(
        "0 Clear, 1–5 Light, 6–10 Moderate, 11–99 Severe, 100+ Critical.")
    assert "1 × toxic IN flows + 10 × toxic OUT flows" in A.CYBERWEATHER_RULE


def _day_rows(day: date, n_in: int, n_out: int, hour: int = 12) -> list[dict]:
    t = utc(day.year, day.month, day.day, hour)
    rows = [{"start_of_hour": t, "dir": "IN", "toxic": True} for _ in range(n_in)]
    rows += [{"start_of_hour": t, "dir": "OUT", "toxic": True} for _ in range(n_out)]
    return rows + [{"start_of_hour": t}]  # and one clean flow


def test_cyberweather_summary_three_days_of_different_levels():
    # Mon 4 March: 3 toxic IN -> cyT 3, Light. Tue 5: 1 toxic OUT -> cyT 10, Moderate.
    # Wed 6: clean -> cyT 0, Clear. The range's total (13) would read Severe: wrong.
    df = make_flows(_day_rows(date(2024, 3, 4), 3, 0) + _day_rows(date(2024, 3, 5), 0, 1)
                    + _day_rows(date(2024, 3, 6), 0, 0))
    s = A.cyberweather_summary(df, PARIS)
    assert s.days == 3
    assert s.worst == A.DayLevel(date(2024, 3, 5), 10, 2)
    assert s.worst.name == "Moderate"
    assert s.days_per_level == {0: 1, 1: 1, 2: 1, 3: 0, 4: 0}
    assert s.today is None  # not asked for
    assert A.cyberweather_summary(df, PARIS, today=date(2024, 3, 4)).today == A.DayLevel(
        date(2024, 3, 4), 3, 1)
    # Today in range but without any flow yet: Clear, cyT 0.
    assert A.cyberweather_summary(df, PARIS, today=date(2024, 3, 7)).today == A.DayLevel(
        date(2024, 3, 7), 0, 0)


def test_a_week_whose_worst_day_is_moderate_reads_moderate():
    # Seven days, cyT 10, 6, 1, 0, 7, 9, 5: the total is 38 (Severe on the daily scale),
    # the worst day is Mon 4 March at cyT 10: Moderate.
    # Moderate: 10, 6, 7, 9 (four days); Light: 1, 5 (two); Clear: 0 (one).
    plan = [(0, 1), (6, 0), (1, 0), (0, 0), (7, 0), (9, 0), (5, 0)]
    rows = [r for i, (n_in, n_out) in enumerate(plan)
            for r in _day_rows(date(2024, 3, 4 + i), n_in, n_out)]
    s = A.cyberweather_summary(make_flows(rows), PARIS, today=date(2024, 3, 10))
    assert A.kpis(make_flows(rows))["cyt"] == 38
    assert s.days == 7
    assert (s.worst.day, s.worst.cyt, s.worst.name) == (date(2024, 3, 4), 10, "Moderate")
    assert s.days_per_level == {0: 1, 1: 2, 2: 4, 3: 0, 4: 0}
    assert (s.today.cyt, s.today.name) == (5, "Light")


def test_cyberweather_summary_ties_go_to_the_latest_day_and_empty_has_no_worst():
    df = make_flows(_day_rows(date(2024, 3, 4), 0, 1) + _day_rows(date(2024, 3, 6), 0, 1))
    s = A.cyberweather_summary(df, PARIS)
    assert s.worst == A.DayLevel(date(2024, 3, 6), 10, 2)
    assert s.days == 3 and s.days_per_level[0] == 1  # 5 March: a gap, Clear
    e = A.cyberweather_summary(EMPTY, PARIS, today=date(2024, 3, 4))
    assert e.days == 0 and e.worst is None and e.days_per_level == dict.fromkeys(range(5), 0)
    assert e.today == A.DayLevel(date(2024, 3, 4), 0, 0)


def test_cyberweather_days_and_hours_follow_paris_across_dst():
    # Spring forward, Sun 31 March 2024 (23 hours). 22:00 UTC on the 30th is 23:00 CET
    # on the 30th; 23:00 UTC is 00:00 on the 31st; 21:00 UTC on the 31st is 23:00 CEST
    # on the 31st; 22:00 UTC is 00:00 on 1 April.
    spring = make_flows([
        {"start_of_hour": utc(2024, 3, 30, 22), "toxic": True, "dir": "IN"},
        {"start_of_hour": utc(2024, 3, 30, 23), "toxic": True, "dir": "OUT"},
        {"start_of_hour": utc(2024, 3, 31, 21), "toxic": True, "dir": "OUT"},
        {"start_of_hour": utc(2024, 3, 31, 22), "toxic": True, "dir": "IN"},
    ])
    cw = A.cyberweather(spring, PARIS, "1d")
    paris = ZoneInfo(PARIS)
    assert cw["bucket"].to_list() == [datetime(2024, 3, d, tzinfo=paris) for d in (30, 31)] + [
        datetime(2024, 4, 1, tzinfo=paris)]
    assert [b.utcoffset().total_seconds() / 3600 for b in cw["bucket"]] == [1, 1, 2]
    assert cw["cyt"].to_list() == [1, 20, 1]
    assert cw["level_name"].to_list() == ["Light", "Severe", "Light"]
    s = A.cyberweather_summary(spring, PARIS)
    assert s.worst == A.DayLevel(date(2024, 3, 31), 20, 3)

    # Fall back, Sun 27 October 2024 (25 hours): 02:00 happens twice, as two hours.
    autumn = make_flows([
        {"start_of_hour": utc(2024, 10, 26, 22), "toxic": True, "dir": "IN"},  # 00:00 CEST
        {"start_of_hour": utc(2024, 10, 27, 0), "toxic": True, "dir": "IN"},  # 02:00 CEST
        {"start_of_hour": utc(2024, 10, 27, 1), "toxic": True, "dir": "OUT"},  # 02:00 CET
        {"start_of_hour": utc(2024, 10, 27, 22), "toxic": True, "dir": "IN"},  # 23:00 CET
        {"start_of_hour": utc(2024, 10, 27, 23), "toxic": True, "dir": "IN"},  # 00:00, 28th
    ])
    hours = A.cyberweather(autumn.head(3), PARIS, "1h")
    assert [(b.hour, b.utcoffset().total_seconds() / 3600) for b in hours["bucket"]] == [
        (0, 2), (1, 2), (2, 2), (2, 1)]
    assert hours["cyt"].to_list() == [1, 0, 1, 10]
    days = A.cyberweather(autumn, PARIS, "1d")
    assert days["bucket"].dt.date().to_list() == [date(2024, 10, 27), date(2024, 10, 28)]
    assert days["cyt"].to_list() == [13, 1]  # 3 IN + 1 OUT on the 25-hour day
    assert A.cyberweather_summary(autumn, PARIS).worst == A.DayLevel(date(2024, 10, 27), 13, 3)


# ---------------------------------------------------------------------------
# Cybercarbon
# ---------------------------------------------------------------------------

def test_cybercarbon_ten_gigabytes_by_hand():
    # 10 GB at 18 gCO2e/GB = 180 g; 180 / 198 g per km = 0.909 km.
    assert A.carbon_grams(10_000_000_000, 18) == pytest.approx(180.0)
    assert A.car_km(180.0) == pytest.approx(0.90909, abs=1e-5)
    df = make_flows([{"in_bytes": 6_000_000_000, "out_bytes": 1_000_000_000},
                     {"ip0": B_IP, "in_bytes": 0, "out_bytes": 3_000_000_000}])
    c = A.cybercarbon(df, 18.0)
    assert c["bytes"] == 10_000_000_000
    assert c["co2e_g"] == pytest.approx(180.0)
    assert c["car_km"] == pytest.approx(0.90909, abs=1e-5)
    assert A.cybercarbon_text(c) == (
        "≈ 180 g CO2e for 10.0 GB at 18 gCO2e/GB, about 0.91 km driven by an average "
        "petrol car (198 gCO2e/km)")
    # The vendor's mobile factor: 10 GB x 50 = 500 g = 2.53 km.
    m = A.cybercarbon(df, 50.0)
    assert m["co2e_g"] == pytest.approx(500.0) and A.human_km(m["car_km"]) == "2.53 km"
    assert A.cybercarbon(EMPTY, 18.0) == {"bytes": 0, "co2e_g": 0.0, "car_km": 0.0,
                                          "g_per_gb": 18.0}


@pytest.mark.parametrize(("grams", "shown"), [
    (0, "0 g"), (0.00054, "0.00054 g"), (0.5, "0.5 g"), (5, "5 g"), (180, "180 g"),
    (999, "999 g"), (1_840, "1.84 kg"),
    (123_456, "123 kg"), (2_500_000, "2.5 t"), (300_000_000, "300 t"),
])
def test_human_grams(grams, shown):
    assert A.human_grams(grams) == shown


@pytest.mark.parametrize(("km", "shown"), [
    (0, "0.00 km"), (0.909, "0.91 km"), (12.34, "12.3 km"), (1234.5, "1,234 km"),
])
def test_human_km(km, shown):
    assert A.human_km(km) == shown


def test_carbon_by_device_ranks_by_footprint_and_folds_others():
    # A: 5 GB -> 90 g (0.4545 km); B: 2 GB -> 36 g; C: 1 GB + D: 0.5 GB -> Others, 27 g.
    df = make_flows([
        {"ip0": A_IP, "in_bytes": 5_000_000_000},
        {"ip0": B_IP, "out_bytes": 2_000_000_000},
        {"ip0": C_IP, "in_bytes": 1_000_000_000},
        {"ip0": D_IP, "in_bytes": 500_000_000},
    ])
    t = A.carbon_by_device(df, 18.0, top=2)
    assert t["ip0"].to_list() == [A_IP, B_IP, "Others"]
    assert t["co2e_g"].to_list() == pytest.approx([90.0, 36.0, 27.0])
    assert t["car_km"].to_list() == pytest.approx([90 / 198, 36 / 198, 27 / 198])
    assert t["members"].to_list() == [1, 1, 2]


# ---------------------------------------------------------------------------
# Time series
# ---------------------------------------------------------------------------

def test_traffic_over_time_hourly_local_with_gaps_as_zeros():
    df = make_flows([
        {"start_of_hour": utc(2024, 3, 4, 10), "in_bytes": 100, "out_bytes": 1},
        {"start_of_hour": utc(2024, 3, 4, 10), "in_bytes": 5, "out_bytes": 5, "toxic": True},
        {"start_of_hour": utc(2024, 3, 4, 13), "in_bytes": 7, "out_bytes": 0},
    ])
    t = A.traffic_over_time(df, PARIS, "1h")
    local = [datetime(2024, 3, 4, h, tzinfo=ZoneInfo(PARIS)) for h in (11, 12, 13, 14)]
    expected = pl.DataFrame(
        {
            "bucket": local, "bytes_in": [105, 0, 0, 7], "bytes_out": [6, 0, 0, 0],
            "toxic_bytes": [10, 0, 0, 0], "flows": [2, 0, 0, 1], "toxic_flows": [1, 0, 0, 0],
        },
        schema={"bucket": pl.Datetime("us", PARIS), "bytes_in": pl.Int64,
                "bytes_out": pl.Int64, "toxic_bytes": pl.Int64, "flows": pl.Int64,
                "toxic_flows": pl.Int64},
    )
    assert_frame_equal(t, expected)


def test_traffic_over_time_daily_uses_local_midnight():
    # 23:00 UTC on 4 March is 00:00 on 5 March in Paris.
    df = make_flows([
        {"start_of_hour": utc(2024, 3, 4, 22), "in_bytes": 1},
        {"start_of_hour": utc(2024, 3, 4, 23), "in_bytes": 10},
    ])
    t = A.traffic_over_time(df, PARIS, "1d")
    assert t["bucket"].dt.date().to_list() == [date(2024, 3, 4), date(2024, 3, 5)]
    assert t["bytes_in"].to_list() == [1, 10]


def test_auto_every():
    short = make_flows([{"start_of_hour": utc(2024, 3, 1)}, {"start_of_hour": utc(2024, 3, 4)}])
    long = make_flows([{"start_of_hour": utc(2024, 3, 1)}, {"start_of_hour": utc(2024, 3, 4, 1)}])
    assert A.auto_every(short) == "1h"
    assert A.auto_every(long) == "1d"
    assert A.auto_every(EMPTY) == "1h"
    assert A.traffic_over_time(long, PARIS, "auto").height == 4  # 1..4 March, daily


def test_cyberweather_hours_on_dst_days():
    spring = make_flows([
        {"start_of_hour": utc(2024, 3, 31, 0), "toxic": True, "dir": "OUT"},  # 01:00 CET
        {"start_of_hour": utc(2024, 3, 31, 1), "toxic": True, "dir": "OUT"},  # 03:00 CEST
        {"start_of_hour": utc(2024, 3, 30, 12), "toxic": True},  # another day
    ])
    h = A.cyberweather_hours(spring, PARIS, date(2024, 3, 31))
    assert h["hour"].to_list() == list(range(24))
    assert h.filter(pl.col("cyt") > 0)["hour"].to_list() == [1, 3]
    assert h.row(1, named=True) == {"hour": 1, "toxic_in": 0, "toxic_out": 1, "cyt": 10,
                                    "level": 2, "level_name": "Moderate", "flows": 1}
    assert h["cyt"].sum() == 20

    autumn = make_flows([
        {"start_of_hour": utc(2024, 10, 26, 22), "toxic": True, "dir": "IN"},  # 00:00 CEST
        {"start_of_hour": utc(2024, 10, 27, 0), "toxic": True, "dir": "IN"},  # 02:00 CEST
        {"start_of_hour": utc(2024, 10, 27, 1), "toxic": True, "dir": "IN"},  # 02:00 CET
    ])
    h = A.cyberweather_hours(autumn, PARIS, date(2024, 10, 27))
    assert h.height == 24
    assert h["toxic_in"].to_list()[:3] == [1, 0, 2]
    assert A.cyberweather_hours(autumn, PARIS, date(2024, 10, 20)).is_empty()


def test_hour_weekday_heatmap_paris_dst():
    df = make_flows([
        {"start_of_hour": utc(2024, 3, 30, 23), "in_bytes": 5},  # Sun 00:00 CET
        {"start_of_hour": utc(2024, 3, 31, 0), "in_bytes": 100},  # Sun 01:00 CET
        {"start_of_hour": utc(2024, 3, 31, 1), "in_bytes": 150, "out_bytes": 50},  # Sun 03:00
        {"start_of_hour": utc(2024, 4, 1, 22), "out_bytes": 7},  # Tue 00:00 CEST
    ])
    hm = A.hour_weekday_heatmap(df, PARIS, "bytes")
    assert hm.columns == ["weekday", "weekday_name", "hour", "value"]
    assert hm.height == 168
    assert hm["value"].sum() == 312
    cells = {(r["weekday"], r["hour"]): r["value"] for r in hm.iter_rows(named=True)
             if r["value"]}
    assert cells == {(6, 0): 5, (6, 1): 100, (6, 3): 200, (1, 0): 7}
    assert hm.filter(pl.col("weekday") == 6)["weekday_name"].unique().to_list() == ["Sun"]
    assert hm["weekday_name"][0] == "Mon"
    flows = A.hour_weekday_heatmap(df, PARIS, "flows")
    assert flows.filter((pl.col("weekday") == 6) & (pl.col("hour") == 3))["value"].item() == 1
    assert A.hour_weekday_heatmap(EMPTY, PARIS).is_empty()


# ---------------------------------------------------------------------------
# Top N with Others
# ---------------------------------------------------------------------------

def four_devices() -> pl.DataFrame:
    return make_flows([
        {"ip0": A_IP, "device_name": "old name", "in_bytes": 300, "out_bytes": 100},
        {"ip0": A_IP, "device_name": "Printer", "start_of_hour": utc(2024, 3, 4, 11),
         "toxic": True},
        {"ip0": B_IP, "in_bytes": 200, "out_bytes": 100},
        {"ip0": C_IP, "in_bytes": 150, "out_bytes": 50, "toxic": True},
        {"ip0": D_IP, "in_bytes": 60, "out_bytes": 40},
        {"ip0": D_IP},
    ])


def test_top_devices_others_bucket_and_labels():
    t = A.top_devices(four_devices(), top=2)
    assert t.columns == ["ip0", "device_name", "label", "bytes_in", "bytes_out", "bytes",
                         "flows", "toxic_flows", "members"]
    assert t["ip0"].to_list() == [A_IP, B_IP, "Others"]
    assert t["label"].to_list() == [f"Printer ({A_IP})", B_IP, "Others"]  # latest name
    assert t["bytes"].to_list() == [400, 300, 300]
    assert t.row(2, named=True) == {
        "ip0": "Others", "device_name": "Others", "label": "Others", "bytes_in": 210,
        "bytes_out": 90, "bytes": 300, "flows": 3, "toxic_flows": 1, "members": 2,
    }
    assert A.top_devices(four_devices(), top=10)["ip0"].to_list() == [A_IP, B_IP, C_IP, D_IP]
    by_flows = A.top_devices(four_devices(), top=1, by="flows")
    assert by_flows["ip0"].to_list() == [A_IP, "Others"]  # A and D tie on 2: ip order
    assert by_flows["flows"].to_list() == [2, 4]


def test_top_protocols_and_ports():
    df = make_flows([
        {"protocol": "TCP", "port": 443, "in_bytes": 100},
        {"protocol": "UDP", "port": 443, "in_bytes": 50},
        {"protocol": "ICMP", "port": None, "in_bytes": 30, "toxic": True},
        {"protocol": "TCP", "port": 8443, "in_bytes": 20},
        {"protocol": "TCP", "port": 40000, "in_bytes": 10},
    ])
    p = A.top_protocols(df, top=1)
    assert p["label"].to_list() == ["TCP", "Others"]
    assert p["bytes"].to_list() == [130, 80]
    ports = A.top_ports(df, top=3)
    assert ports["port_label"].to_list() == ["443", "ICMP", "8443", "Others"]
    assert ports["label"].to_list() == ["443 (HTTPS)", "ICMP", "8443 (HTTPS-alt)", "Others"]
    assert ports["protocols"].to_list() == ["TCP, UDP", "ICMP", "TCP", None]
    assert ports["port"].to_list() == [443, None, 8443, None]
    assert ports["bytes"].to_list() == [150, 30, 20, 10]
    assert ports["toxic_flows"].to_list() == [0, 1, 0, 0]


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

def test_device_table():
    df = make_flows([
        {"ip0": A_IP, "device_name": "pc", "mac_address": "aa:aa", "vendor": "Dell",
         "in_bytes": 10, "occurrences": 4, "first_seen": utc(2024, 3, 4, 10, 5),
         "last_seen": utc(2024, 3, 4, 10, 50)},
        {"ip0": A_IP, "device_name": "pc-new", "mac_address": None, "ip1": US2,
         "start_of_hour": utc(2024, 3, 4, 12), "in_bytes": 5, "occurrences": 1},
        {"ip0": B_IP, "in_bytes": 1, "toxic": True, "dir": "OUT", "is_critical": True},
        {"ip0": C_IP, "in_bytes": 1000, "toxic": True, "dir": "IN"},
    ])
    t = A.device_table(df)
    assert t["ip0"].to_list() == [B_IP, C_IP, A_IP]  # toxic OUT first, then bytes
    a = t.row(2, named=True)
    assert a["device_name"] == "pc-new"
    assert a["mac_address"] == "aa:aa"  # latest *non-null*
    assert a["vendor"] == "Dell"
    assert a["first_seen"] == utc(2024, 3, 4, 10, 5)
    assert a["last_seen"] == utc(2024, 3, 4, 12)  # falls back to start_of_hour
    assert (a["bytes_in"], a["flows"], a["sessions"], a["remote_hosts"]) == (15, 2, 5, 2)
    b = t.row(0, named=True)
    assert (b["is_critical"], b["toxic_flows"], b["toxic_out_flows"]) == (True, 1, 1)
    assert t.row(1, named=True)["toxic_out_flows"] == 0
    assert A.device_table(df, tz=PARIS)["first_seen"].dtype == pl.Datetime("us", PARIS)


def test_top_remotes_with_threats_country_and_others():
    df = make_flows([
        {"ip1": US1, "in_bytes": 500, "toxic": True, "trojan": True, "tor_node": True},
        {"ip1": US1, "ip0": B_IP, "in_bytes": 100},
        {"ip1": AU, "in_bytes": 300},
        {"ip1": PRIV, "in_bytes": 10, "toxic": True},
        {"ip1": US2, "in_bytes": 5, "toxic": True, "hcard": True},
    ])
    t = A.top_remotes(df, top=2)
    assert t["ip1"].to_list() == [US1, AU, "Others"]
    assert t["country_code"].to_list() == ["US", "AU", None]
    assert t["devices"].to_list() == [2, 1, None]
    assert t["threats"].to_list() == ["Trojan horse, Tor node", "", "Known attacker"]
    assert t["critical"].to_list() == [True, False, True]
    assert t["members"].to_list() == [1, 1, 2]
    assert t["bytes"].to_list() == [600, 300, 15]


def test_threat_label_expr_orders_by_danger():
    df = make_flows([
        {"toxic": True, "trojan": True, "command_center": True},
        {"toxic": True},
        {"toxic": False},
        {"toxic": True, "video": True},
    ])
    labels = df.select(A.threat_label_expr())["threats"].to_list()
    assert labels == ["Command center (C2), Trojan horse", "Unqualified", "", "Video surveillance"]
    assert df.select(A.critical_expr())["critical"].to_list() == [True, False, False, False]


# ---------------------------------------------------------------------------
# Protocols & ports
# ---------------------------------------------------------------------------

def test_protocol_port_tree():
    df = make_flows([
        {"protocol": "TCP", "port": 443, "in_bytes": 100},
        {"protocol": "TCP", "port": 80, "in_bytes": 50},
        {"protocol": "TCP", "port": 22, "in_bytes": 6},
        {"protocol": "TCP", "port": 23, "in_bytes": 4, "toxic": True},
        {"protocol": "UDP", "port": 53, "in_bytes": 5},
        {"protocol": "ICMP", "port": None, "in_bytes": 7},
    ])
    t = A.protocol_port_tree(df, top_ports_per_protocol=2)
    assert t.rows() == [
        ("TCP", "443", 100, 1, 0), ("TCP", "80", 50, 1, 0), ("TCP", "Others", 10, 2, 1),
        ("ICMP", "ICMP", 7, 1, 0), ("UDP", "53", 5, 1, 0),
    ]
    assert t.columns == ["protocol", "port_label", "bytes", "flows", "toxic_flows"]


def test_port_device_matrix_full_grid():
    df = make_flows([
        {"ip0": A_IP, "device_name": "nas", "port": 443, "in_bytes": 100},
        {"ip0": B_IP, "port": 80, "in_bytes": 30},
        {"ip0": B_IP, "port": 22, "in_bytes": 20},
    ])
    m = A.port_device_matrix(df, top_ports=1, top_devices=5)
    assert m.rows() == [
        ("443", f"nas ({A_IP})", A_IP, 100), ("443", B_IP, B_IP, 0),
        ("Others", f"nas ({A_IP})", A_IP, 0), ("Others", B_IP, B_IP, 50),
    ]
    assert A.port_device_matrix(df, top_ports=1, others=False).height == 2
    flows = A.port_device_matrix(df, top_ports=5, top_devices=1, value="flows")
    assert flows.filter(pl.col("device") == "Others")["value"].sum() == 1
    # B has 2 flows vs A's 1: B is kept, A folds into Others.
    assert flows["ip0"].unique(maintain_order=True).to_list() == [B_IP, "Others"]


# ---------------------------------------------------------------------------
# Toxic
# ---------------------------------------------------------------------------

def threat_rows() -> pl.DataFrame:
    return make_flows([
        {"ip0": A_IP, "ip1": US1, "dir": "OUT", "toxic": True, "trojan": True,
         "tor_node": True},
        {"ip0": B_IP, "ip1": US2, "dir": "IN", "toxic": True, "command_center": True},
        {"ip0": A_IP, "ip1": AU, "dir": "OUT", "toxic": True},
        {"ip0": A_IP, "ip1": US1, "dir": "OUT", "toxic": True, "hcard": True},
        {"ip0": C_IP, "ip1": AU, "dir": "IN", "toxic": False, "bruteforce": True},
    ])


def test_threats_by_category_order_and_unqualified():
    t = A.threats_by_category(threat_rows())
    assert t.columns == ["threat", "label", "critical", "danger", "flows", "toxic_in",
                         "toxic_out", "devices", "remotes"]
    assert t["threat"].to_list() == ["command_center", "trojan", "hcard", "tor_node",
                                     "unqualified"]
    assert t["critical"].to_list() == [True, True, True, False, False]
    assert t["label"].to_list()[-1] == "Unqualified"
    assert t.select("flows", "toxic_in", "toxic_out", "devices", "remotes").rows() == [
        (1, 1, 0, 1, 1), (1, 0, 1, 1, 1), (1, 0, 1, 1, 1), (1, 0, 1, 1, 1), (1, 0, 1, 1, 1),
    ]
    full = A.threats_by_category(threat_rows(), include_empty=True)
    assert full.height == 10
    assert full.filter(pl.col("threat") == "bruteforce")["flows"].item() == 0  # not toxic


def test_toxic_out_devices_most_urgent_first():
    df = make_flows([
        *[{"ip0": A_IP, "ip1": ip, "dir": "OUT", "toxic": True, "tor_node": True,
           "out_bytes": 10, "start_of_hour": utc(2024, 3, 4, h)}
          for ip, h in ((US1, 10), (US2, 11), (US1, 12))],
        {"ip0": B_IP, "dir": "OUT", "toxic": True, "trojan": True, "out_bytes": 1},
        *[{"ip0": C_IP, "dir": "OUT", "toxic": True} for _ in range(3)],
        {"ip0": D_IP, "dir": "IN", "toxic": True, "trojan": True},
        {"ip0": D_IP, "dir": "OUT", "toxic": False},
    ])
    t = A.toxic_out_devices(df)
    assert t["ip0"].to_list() == [B_IP, A_IP, C_IP]
    assert t["critical"].to_list() == [True, False, False]
    assert t["flows"].to_list() == [1, 3, 3]
    a = t.row(1, named=True)
    assert (a["remotes"], a["threats"], a["bytes_out"], a["hours_active"]) == (
        2, "Tor node", 30, 3)
    assert (a["first_seen"], a["last_seen"]) == (utc(2024, 3, 4, 10), utc(2024, 3, 4, 12))
    assert t.row(2, named=True)["threats"] == "Unqualified"


def test_top_toxic_remotes():
    t = A.top_toxic_remotes(threat_rows(), top=2)
    assert t["ip1"].to_list() == [US1, AU, "Others"]
    assert t["dirs"].to_list() == ["OUT", "OUT", None]
    assert t["flows"].to_list() == [2, 1, 1]
    assert t["threats"].to_list() == [
        "Trojan horse, Known attacker, Tor node", "Unqualified", "Command center (C2)"]
    assert t["country_code"].to_list() == ["US", "AU", None]


def test_toxic_flow_table():
    df = make_flows([
        {"start_of_hour": utc(2024, 3, 4, 10), "toxic": True, "in_bytes": 3},
        {"start_of_hour": utc(2024, 3, 4, 12), "toxic": True, "trojan": True,
         "filtered": True},
        {"start_of_hour": utc(2024, 3, 4, 13), "toxic": False},
    ])
    t = A.toxic_flow_table(df, tz=PARIS)
    assert t.columns == ["time", "device_name", "ip0", "ip1", "owner", "dir", "protocol",
                         "port", "bytes_in", "bytes_out", "occurrences", "threats", "filtered",
                         "critical"]
    assert t["time"].dt.hour().to_list() == [13, 11]  # newest first, Paris time
    assert t["threats"].to_list() == ["Trojan horse", "Unqualified"]
    assert t["critical"].to_list() == [True, False]
    assert t["filtered"].to_list() == [True, False]


# ---------------------------------------------------------------------------
# Remote hosts / countries
# ---------------------------------------------------------------------------

def remote_rows() -> pl.DataFrame:
    return make_flows([
        {"ip1": US1, "dir": "OUT", "in_bytes": 1000, "out_bytes": 10},
        {"ip1": US2, "dir": "IN", "in_bytes": 5, "toxic": True},
        {"ip1": AU, "dir": "OUT", "in_bytes": 50, "toxic": True, "trojan": True},
        {"ip1": AU, "dir": "OUT", "ip0": B_IP},
        {"ip1": PRIV, "dir": "IN", "in_bytes": 1},
    ])


def test_remote_hosts_sorts_and_filters():
    r = A.remote_hosts(remote_rows())
    assert r.columns == ["ip1", "owner", "owner_net", "country_code", "country", "iso3",
                         "flows", "bytes_in", "bytes_out", "bytes", "devices", "toxic_flows",
                         "threats", "critical"]
    assert r["ip1"].to_list() == [AU, US2, US1, PRIV]  # critical, toxic, then bytes
    assert r.row(0, named=True) == {
        "ip1": AU, "owner": "CLOUDFLARENET", "owner_net": "1.1.1.0/24", "country_code": "AU",
        "country": "Australia", "iso3": "AUS", "flows": 2,
        "bytes_in": 50, "bytes_out": 0, "bytes": 50, "devices": 2, "toxic_flows": 1,
        "threats": "Trojan horse", "critical": True,
    }
    assert r.filter(pl.col("ip1") == US2)["threats"].item() == "Unqualified"
    assert r.filter(pl.col("ip1") == PRIV)["iso3"].item() is None
    # 8.8.4.4 is Google's second resolver: AS15169 announces 8.8.4.0/24.
    assert r.filter(pl.col("ip1") == US2).select("owner", "owner_net").row(0) == (
        "GOOGLE", "8.8.4.0/24")
    assert r.filter(pl.col("ip1") == PRIV).select("owner", "owner_net").row(0) == (
        "Private network", None)
    assert A.remote_hosts(remote_rows(), sort_by="bytes")["ip1"].to_list() == [
        US1, AU, US2, PRIV]
    assert A.remote_hosts(remote_rows(), sort_by="flows")["ip1"].to_list()[0] == AU
    assert A.remote_hosts(remote_rows(), direction="IN")["ip1"].to_list() == [US2, PRIV]
    with pytest.raises(ValueError):
        A.remote_hosts(remote_rows(), direction="sideways")


def test_countries_summary():
    c = A.countries_summary(remote_rows())
    assert c.rows() == [
        ("USA", "US", "United States", 2, 1005, 10, 1015, 2, 1, 1),
        ("AUS", "AU", "Australia", 2, 50, 0, 50, 1, 1, 1),
        (None, "--", "Unknown", 1, 1, 0, 1, 1, 0, 0),
    ]
    out = A.countries_summary(remote_rows(), direction="OUT")
    assert out["iso3"].to_list() == ["USA", "AUS"]


# ---------------------------------------------------------------------------
# Search (the toxic flows' and remote hosts' search boxes)
# ---------------------------------------------------------------------------

def test_search_any_column_case_trimmed_literal_nulls_never_match():
    hosts = pl.DataFrame({
        "ip1": ["51.38.1.1", "8.8.8.8", "1.1.1.1", "5.5.5.5", "9.9.9.9"],
        "owner": ["OVH SAS", "GOOGLE", None, "OVH-like", "QUAD 121"],
        "country": ["France", "United States", "Australia", None, "Switzerland"],
    }).with_columns(pl.col("country").cast(pl.Categorical))
    cols = ("ip1", "owner", "country")
    assert A.search(hosts, "  ovh ", cols)["ip1"].to_list() == ["51.38.1.1", "5.5.5.5"]
    assert A.search(hosts, "STATES", cols)["ip1"].to_list() == ["8.8.8.8"]  # a categorical
    # literal: "1.1" is not a pattern (as one it would match "QUAD 121"); null cells never match
    assert A.search(hosts, "1.1", cols)["ip1"].to_list() == ["51.38.1.1", "1.1.1.1"]
    assert A.search(hosts, "8.8", ("owner",)).height == 0  # only the columns given
    assert A.search(hosts, "   ", cols).equals(hosts)  # blank keeps every row
    assert A.search(hosts, "nowhere", cols).height == 0


# ---------------------------------------------------------------------------
# Empty input: every function returns the same columns, no rows, no exception
# ---------------------------------------------------------------------------

FRAME_FUNCS = {
    "traffic_over_time": lambda d: A.traffic_over_time(d, PARIS, "auto"),
    "cyberweather": lambda d: A.cyberweather(d, PARIS),
    "cyberweather_hourly": lambda d: A.cyberweather(d, PARIS, "1h"),
    "cyberweather_hours": lambda d: A.cyberweather_hours(d, PARIS, date(2024, 3, 4)),
    "top_devices": A.top_devices,
    "top_protocols": A.top_protocols,
    "top_ports": A.top_ports,
    "device_table": lambda d: A.device_table(d, PARIS),
    "top_remotes": A.top_remotes,
    "hour_weekday_heatmap": lambda d: A.hour_weekday_heatmap(d, PARIS),
    "protocol_port_tree": A.protocol_port_tree,
    "port_device_matrix": A.port_device_matrix,
    "threats_by_category": A.threats_by_category,
    "toxic_out_devices": lambda d: A.toxic_out_devices(d, PARIS),
    "top_toxic_remotes": A.top_toxic_remotes,
    "toxic_flow_table": lambda d: A.toxic_flow_table(d, PARIS),
    "remote_hosts": A.remote_hosts,
    "countries_summary": A.countries_summary,
}


@pytest.mark.parametrize("name", list(FRAME_FUNCS))
def test_empty_input_gives_empty_frame_with_same_schema(name):
    f = FRAME_FUNCS[name]
    full = f(threat_rows())
    empty = f(EMPTY)
    assert not full.is_empty()
    assert empty.is_empty()
    assert empty.columns == full.columns
    assert empty.schema == full.schema
