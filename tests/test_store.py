"""Disk cache: per-day files with covered hours, atomic, damage detected and never served."""

from __future__ import annotations

import errno
import os
import resource
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
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


# -- damage is proven by decoding; anything else is a bad moment, not a bad file
def _one_file(tmp_path, hours):
    store = Store(tmp_path)
    store.write("src", 54, "all", hours, frame_for(hours))
    (path,) = list(tmp_path.rglob("*.parquet"))
    return store, path


def _rewrite(path, df, **meta):
    base = {"flux_format": "1", "flux_hours": "[0, 1, 2]", "flux_rows": str(df.height)}
    df.write_parquet(path, metadata={**base, **meta})


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "garbage": lambda p: p.write_bytes(b"not a parquet file at all" * 20),
    "empty": lambda p: p.write_bytes(b""),
    "footer-only-damage": lambda p: p.write_bytes(p.read_bytes()[:-12] + b"\0" * 12),
    "wrong-schema": lambda p: _rewrite(p, pl.read_parquet(p).drop("vendor")),
    "hours-not-json": lambda p: _rewrite(p, pl.read_parquet(p), flux_hours="0,1,2"),
    "rows-missing-from-metadata": lambda p: pl.read_parquet(p).write_parquet(
        p, metadata={"flux_format": "1", "flux_hours": "[0, 1, 2]"}),
    "other-format-version": lambda p: _rewrite(p, pl.read_parquet(p), flux_format="0"),
    "duplicate-rows": lambda p: _rewrite(p, pl.concat([pl.read_parquet(p)] * 2)),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_deleted_and_not_served(tmp_path, damage):
    hours = [T0 + i * H for i in range(3)]
    store, path = _one_file(tmp_path, hours)
    DAMAGE[damage](path)
    got, covered = store.read("src", 54, "all", hours)
    assert covered == set() and got.height == 0
    assert not path.exists()  # so it is refetched and rewritten, never read again


TRANSIENT = {
    "too-many-open-files": OSError(errno.EMFILE, "Too many open files"),
    "permission": PermissionError(errno.EACCES, "Permission denied"),
    "memory": MemoryError(),
}


@pytest.mark.parametrize("kind", TRANSIENT)
def test_transient_read_error_keeps_the_file(tmp_path, monkeypatch, kind):
    hours = [T0 + i * H for i in range(3)]
    store, path = _one_file(tmp_path, hours)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise TRANSIENT[kind]

    with monkeypatch.context() as m:
        m.setattr(pl, "read_parquet", fail)
        got, covered = store.read("src", 54, "all", hours)
        assert covered == set() and got.height == 0  # not served: the loader fetches them
        # Writing more hours meanwhile must not replace the file by one without them.
        more = [T0 + i * H for i in range(3, 5)]
        store.write("src", 54, "all", more, frame_for(more))
    assert path.read_bytes() == before  # kept, untouched
    got, covered = store.read("src", 54, "all", hours)
    assert covered == set(hours)
    assert_frame_equal(got.sort("start_of_hour", "ip1"), frame_for(hours).sort(
        "start_of_hour", "ip1"))


def test_real_too_many_open_files_keeps_the_file(tmp_path):
    hours = [T0 + i * H for i in range(3)]
    store, path = _one_file(tmp_path, hours)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)  # new files get the lowest free number
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no descriptor left
    try:
        with pytest.raises(OSError) as info:  # the limit really bites
            open(path, "rb")  # noqa: SIM115
        assert info.value.errno == errno.EMFILE
        got, covered = store.read("src", 54, "all", hours)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert covered == set() and got.height == 0
    assert path.exists()
    assert store.read("src", 54, "all", hours)[1] == set(hours)


def test_rows_with_a_natural_key_twice_never_reach_disk(tmp_path):
    store = Store(tmp_path)
    hours = [T0, T0 + H]
    df = frame_for(hours)
    with pytest.raises(ValueError, match="twice"):
        store.write("src", 54, "all", hours, pl.concat([df, df.head(1)]))
    assert not list(tmp_path.rglob("*.parquet"))
    assert store.read("src", 54, "all", hours)[1] == set()
