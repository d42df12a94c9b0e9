"""Disk cache: per-day files with covered hours, atomic, damage detected and never served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from flux_dashboard.schema import FLOW_SCHEMA, empty_frame
from flux_dashboard.store import Store, filters_key

H = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 0, tzinfo=UTC)


def frame_for(hours, per_hour=3):
    rows = []
    for h in hours:
        for i in range(per_hour):
            rows.append({"start_of_hour": h, "ip0": "192.168.1.2", "ip1": f"1.1.1.{i}",
                         "dir": "OUT", "protocol": "TCP", "port": 443, "occurrences": 1,
                         "out_bytes": 10, "in_bytes": 20, "toxic": False, "device_name": "pc"})
    return pl.DataFrame(rows).with_columns(
        pl.col("start_of_hour").dt.cast_time_unit("us")).select(
        [pl.col(c) if c in rows[0] else pl.lit(None).alias(c) for c in FLOW_SCHEMA]
    ).cast(dict(FLOW_SCHEMA)) if rows else empty_frame()


def test_roundtrip_and_coverage_includes_empty_hours(tmp_path):
    store = Store(tmp_path)
    hours = [T0 + i * H for i in range(30)]  # spans two days
    df = frame_for(hours[:-2])  # the last two hours had no flows: still covered
    store.write("src", 54, "all", hours, df)
    got, covered = store.read("src", 54, "all", hours)
    assert covered == set(hours)
    assert_frame_equal(got.sort("start_of_hour", "ip1"), df.sort("start_of_hour", "ip1"))
    assert len(list((tmp_path).rglob("*.parquet"))) == 2


def test_partial_day_then_extension_merges(tmp_path):
    store = Store(tmp_path)
    first = [T0 + i * H for i in range(5)]
    more = [T0 + i * H for i in range(5, 9)]
    store.write("src", 54, "all", first, frame_for(first))
    store.write("src", 54, "all", more, frame_for(more))
    got, covered = store.read("src", 54, "all", first + more + [T0 + 10 * H])
    assert covered == set(first + more) and got.height == 27


def test_sources_sensors_and_filters_never_mix(tmp_path):
    store = Store(tmp_path)
    hours = [T0]
    store.write("demo|x", 54, "all", hours, frame_for(hours))
    assert store.read("api|y", 54, "all", hours)[1] == set()
    assert store.read("demo|x", 77, "all", hours)[1] == set()
    fk = filters_key({"only_toxic": True})
    assert fk != "all" and store.read("demo|x", 54, fk, hours)[1] == set()
    assert filters_key({"a": 1, "b": 2}) == filters_key({"b": 2, "a": 1})


def test_truncated_file_is_detected_deleted_and_not_served(tmp_path):
    store = Store(tmp_path)
    hours = [T0 + i * H for i in range(3)]
    store.write("src", 54, "all", hours, frame_for(hours))
    (path,) = list(tmp_path.rglob("*.parquet"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    got, covered = store.read("src", 54, "all", hours)
    assert covered == set() and got.height == 0 and not path.exists()


def test_rows_outside_covered_hours_are_rejected(tmp_path):
    store = Store(tmp_path)
    hours = [T0]
    store.write("src", 54, "all", hours, frame_for(hours))
    (path,) = list(tmp_path.rglob("*.parquet"))
    # Rewrite with a lying row count in the metadata: detected.
    df = pl.read_parquet(path)
    df.write_parquet(path, metadata={"flux_format": "1", "flux_hours": "[0]", "flux_rows": "99"})
    assert store.read("src", 54, "all", hours)[1] == set()


def test_no_temporary_files_left_behind(tmp_path):
    store = Store(tmp_path)
    hours = [T0 + i * H for i in range(3)]
    store.write("src", 54, "all", hours, frame_for(hours))
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_covered_reads_metadata_and_agrees_with_read(tmp_path):
    store = Store(tmp_path)
    hours = [T0 + i * H for i in range(30)]
    store.write("src", 54, "all", hours[:20], frame_for(hours[:20]))
    assert store.covered("src", 54, "all", hours) == set(hours[:20])
    assert store.covered("src", 54, "all", hours) == store.read("src", 54, "all", hours)[1]
    assert store.covered("other", 54, "all", hours) == set()
