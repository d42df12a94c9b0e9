"""Every analysis gives the same answer on a compact frame (categoricals) as on the
String frame it came from.

The dashboard holds loaded flows with their repeated strings as ``pl.Categorical``
(``schema.compact``, for memory). The analyses are tested by hand on
``String`` frames; this suite runs each one on both forms of a story window (the
C2 beacon, the night upload, bruteforce: every hunting finding fires) and
requires equal results once categoricals are read back as strings.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import analytics as A
from flux_dashboard import hunting as Hn
from flux_dashboard import remote_profile as P
from flux_dashboard.digest import digest
from flux_dashboard.filters import Filters
from flux_dashboard.geo import with_country, with_owner
from flux_dashboard.masking import Masker
from flux_dashboard.schema import COMPACT_COLUMNS, compact, to_frame
from flux_dashboard.simulator import Simulator, SimulatorConfig

NOW = datetime(2026, 3, 20, 12, 30, tzinfo=UTC)
TZ = "Europe/Paris"
HNO = (8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None))
    plan = sim.story
    start, end = plan.window(-13, -1)
    main = to_frame(sim.rows(54, start, end))
    base = to_frame(sim.rows(54, start - timedelta(days=7), start))
    day_start, day_end = plan.window(-5)
    prev_start, prev_end = plan.window(-12)
    day = main.filter(pl.col("start_of_hour").is_between(day_start, day_end, closed="left"))
    prev = main.filter(pl.col("start_of_hour").is_between(prev_start, prev_end,
                                                          closed="left"))

    def prep(df: pl.DataFrame) -> pl.DataFrame:
        return with_owner(with_country(df, "ip1"), "ip1")

    out = {"main": prep(main), "base": prep(base), "day": prep(day), "prev": prep(prev)}
    assert out["main"].height > 5_000 and out["base"].height > 1_000
    return out


def strings(value):
    """A result with every categorical read back as a string, for comparison."""
    if isinstance(value, pl.DataFrame):
        return value.with_columns(pl.col(pl.Categorical).cast(pl.String))
    if is_dataclass(value):
        return strings(asdict(value))
    if isinstance(value, dict):
        return {k: strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strings(v) for v in value]
    return value


def same(a, b) -> None:
    a, b = strings(a), strings(b)
    if isinstance(a, pl.DataFrame):
        assert_frame_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b


def test_compact_casts_the_repeated_strings_and_keeps_the_values(frames) -> None:
    df = frames["main"]
    small = compact(df)
    cats = [c for c, t in small.schema.items() if t == pl.Categorical]
    assert sorted(cats) == sorted(c for c in COMPACT_COLUMNS if c in df.columns)
    assert_frame_equal(strings(small), df)
    assert small.estimated_size() < 0.75 * df.estimated_size()
    assert compact(small) is small  # nothing left to cast: the same frame


def _c2(frames) -> str:
    toxic = frames["main"].filter(pl.col("command_center"))
    return toxic.get_column("ip1").mode().sort().item(0)


CASES = {
    "kpis": lambda f: A.kpis(f["main"], TZ),
    "auto_every": lambda f: A.auto_every(f["main"]),
    "traffic_over_time": lambda f: A.traffic_over_time(f["main"], TZ, "auto"),
    "cyberweather": lambda f: A.cyberweather(f["main"], TZ, "1d"),
    "cyberweather_hours": lambda f: A.cyberweather_hours(
        f["main"], TZ, f["day"]["start_of_hour"].min().astimezone().date()),
    "cyberweather_summary": lambda f: A.cyberweather_summary(f["main"], TZ),
    "cybercarbon": lambda f: A.cybercarbon(f["main"], 6.0),
    "carbon_by_device": lambda f: A.carbon_by_device(f["main"], 6.0),
    "top_devices": lambda f: [A.top_devices(f["main"], 15), A.top_devices(f["main"], 15,
                                                                          by="toxic_flows")],
    "top_protocols": lambda f: A.top_protocols(f["main"], 8),
    "top_ports": lambda f: A.top_ports(f["main"], 10),
    "device_table": lambda f: A.device_table(f["main"], TZ),
    "top_remotes": lambda f: A.top_remotes(f["main"], 15),
    "hour_weekday_heatmap": lambda f: [A.hour_weekday_heatmap(f["main"], TZ, v)
                                       for v in ("bytes", "flows")],
    "protocol_port_tree": lambda f: A.protocol_port_tree(f["main"]),
    "port_device_matrix": lambda f: A.port_device_matrix(f["main"]),
    "threats_by_category": lambda f: A.threats_by_category(f["main"], include_empty=True),
    "toxic_out_devices": lambda f: A.toxic_out_devices(f["main"], TZ),
    "top_toxic_remotes": lambda f: A.top_toxic_remotes(f["main"]),
    "toxic_flow_table": lambda f: A.toxic_flow_table(f["main"], TZ),
    "remote_hosts": lambda f: [A.remote_hosts(f["main"], d, s) for d in ("all", "OUT")
                               for s in ("threat", "bytes")],
    "countries_summary": lambda f: A.countries_summary(f["main"], "OUT"),
    "time_window": lambda f: A.time_window(f["main"]),
    "off_hours_by_device": lambda f: Hn.off_hours_by_device(f["main"], TZ, HNO),
    "off_hours_toxic": lambda f: Hn.off_hours_toxic(f["main"], TZ, HNO),
    "first_seen_remotes": lambda f: Hn.first_seen_remotes(f["main"], f["base"]),
    "storylines": lambda f: Hn.storylines(f["main"]),
    "upload_anomalies": lambda f: Hn.upload_anomalies(f["main"], f["base"]),
    "digest": lambda f: digest(f["day"], f["prev"], TZ,
                                  f["day"]["start_of_hour"].min().date(),
                                  f["prev"]["start_of_hour"].min().date()),
    "remote_summary": lambda f: P.remote_summary(f["main"], _c2(f)),
    "remote_devices": lambda f: P.remote_devices(f["main"], _c2(f), TZ),
    "remote_regularity": lambda f: P.remote_regularity(f["main"], _c2(f)),
    "same_owner_remotes": lambda f: P.same_owner_remotes(
        f["main"], _c2(f), f["main"].filter(pl.col("ip1") == _c2(f))["owner"].item(0)),
    "first_contacts": lambda f: P.first_contacts([f["base"], f["main"]]),
    "filters": lambda f: [Filters(direction="OUT", toxic_only=True).apply(f["main"], TZ, HNO),
                          Filters(threats=("command_center",)).apply(f["main"], TZ, HNO)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_result_on_a_compact_frame(frames, name: str) -> None:
    small = {k: compact(v) for k, v in frames.items()}
    want = CASES[name](frames)
    got = CASES[name](small)
    same(got, want)


def test_the_story_findings_are_there_to_compare(frames) -> None:
    """The comparisons above are only worth something if the analyses find things."""
    small = {k: compact(v) for k, v in frames.items()}
    assert Hn.storylines(small["main"]).height > 0
    assert Hn.upload_anomalies(small["main"], small["base"]).height > 0
    assert Hn.first_seen_remotes(small["main"], small["base"]).height > 0
    assert P.remote_regularity(small["main"], _c2(frames)).height > 0


def test_masking_a_compact_frame_masks_the_same_values(frames) -> None:
    masker = Masker(b"k" * 32)
    want = masker.mask_frame(frames["main"])
    got = masker.mask_frame(compact(frames["main"]))
    same(got, want)


@pytest.mark.parametrize("shape", ["string", "compact"])
def test_enrich_adds_countries_and_owners_like_the_joins(frames, shape: str) -> None:
    from flux_dashboard.geo import enrich

    raw = frames["main"].drop("country_code", "country", "iso3", "owner", "owner_net")
    raw = compact(raw) if shape == "compact" else raw
    got = enrich(raw)
    want = with_owner(with_country(raw, "ip1"), "ip1")
    assert got.columns == want.columns
    same(got, want)
    assert got["country_code"].dtype == pl.Categorical
    assert got["country_code"].drop_nulls().n_unique() > 3  # countries were found
    assert got["owner"].drop_nulls().n_unique() > 3
