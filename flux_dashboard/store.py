"""On-disk cache of complete past hours, one Parquet file per sensor and UTC day.

Layout: ``<root>/<source>/<sensor>/<filters>/<YYYY-MM-DD>.parquet`` where
``<source>`` is a hash of the data source id (API URL + key fingerprint, so
demo, simulator and real data, or two accounts, never mix) and ``<filters>``
is ``all`` or a hash of the server-side filters the rows were fetched with.

Each file records in its Parquet key-value metadata which hours of the day it
covers (an hour with no flows is covered too) and how many rows it holds.
A damaged file (one that does not decode, whose schema or metadata differs,
whose row count disagrees, that holds rows outside its hours or a natural key
twice) is treated as absent, deleted and refetched, never served. A file that
cannot be read *right now* (too many open files, permission, memory) is not
served either, but kept: its hours are fetched this time and the file is
neither deleted nor overwritten. Writes go to a temporary file in the same
folder and are renamed into place, so a crash never leaves half a file behind
and a reader never sees one; rows with a natural key twice are refused before
anything is written. Every read-merge-write of a day file holds an exclusive
``flock`` on ``<day>.parquet.lock``, so several processes or hosts sharing the
directory (a shared volume) never drop each other's hours.

Each file also records when each of its hours was last checked against the
API (``flux_checked``: hour -> epoch seconds; fetching counts as checking), so
the loader can re-count recent hours for late uploads without asking again on
every rerun, across processes. Files without it simply have never been checked.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from flux_dashboard.schema import FLOW_SCHEMA, NATURAL_KEY, empty_frame

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
HOUR = timedelta(hours=1)
# What decoding bytes already in memory raises when they are bad: proof of damage.
# Anything else (OSError, MemoryError, ...) says nothing about the file.
_DAMAGE = (pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError, KeyError,
           TypeError)


def _duplicates(df: pl.DataFrame, key: tuple[str, ...] = NATURAL_KEY) -> int:
    """Rows beyond the first of each natural key."""
    return df.height - df.select(pl.struct(key).n_unique()).item() if df.height else 0


def _decode_day(data: bytes, day: date, schema: pl.Schema = FLOW_SCHEMA,
                key: tuple[str, ...] = NATURAL_KEY) -> tuple[pl.DataFrame, set[int]]:
    meta = pl.read_parquet_metadata(io.BytesIO(data))
    if meta.get("flux_format") != FORMAT_VERSION:
        raise ValueError("format version")
    hours = {int(h) for h in json.loads(meta["flux_hours"])}
    rows = int(meta["flux_rows"])
    df = pl.read_parquet(io.BytesIO(data))
    if df.schema != schema:
        raise ValueError("schema")
    if df.height != rows:
        raise ValueError(f"{df.height} rows, metadata says {rows}")
    if df.height:
        sh = df.get_column("start_of_hour")
        if (sh.dt.date() != day).any() or not set(sh.dt.hour().unique()) <= hours:
            raise ValueError("rows outside the covered hours")
        if _duplicates(df, key):
            raise ValueError("rows with the same natural key")
    return df, hours


def filters_key(server_params: Mapping[str, object] | None) -> str:
    if not server_params:
        return "all"
    canon = json.dumps({k: str(v) for k, v in sorted(server_params.items())})
    return "f-" + hashlib.blake2b(canon.encode(), digest_size=8).hexdigest()


# One lock per day file for the whole process, not per Store: two loaders (or two
# Store objects) on one cache directory must not interleave a read-merge-write of the
# same file, or one would drop the hours the other just added.
_FILE_LOCKS: dict[str, threading.Lock] = defaultdict(threading.Lock)
_FILE_LOCKS_GUARD = threading.Lock()


class Store:
    """The day files of one kind of rows: the flows by default; ``schema`` and ``key``
    (the columns that identify a row) for other hourly data (``hourly.py``)."""

    def __init__(self, root: Path | str, schema: pl.Schema = FLOW_SCHEMA,
                 key: tuple[str, ...] = NATURAL_KEY) -> None:
        self.root = Path(root)
        self.schema = schema
        self.key = tuple(key)

    # -- paths
    def _dir(self, source_id: str, sensor_id: int, fkey: str) -> Path:
        src = hashlib.blake2b(source_id.encode(), digest_size=8).hexdigest()
        return self.root / src / f"sensor-{int(sensor_id)}" / fkey

    def _path(self, base: Path, day: date) -> Path:
        return base / f"{day.isoformat()}.parquet"

    @contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        """Exclusive right to read-merge-write ``path``: within the process (a thread
        lock, as flock is per open file description, not per thread) and across
        processes and hosts sharing the cache directory (``flock`` on a lock file
        beside it, which NFSv4 and local file systems honour)."""
        with _FILE_LOCKS_GUARD:
            thread_lock = _FILE_LOCKS[os.path.abspath(path)]
        with thread_lock:
            fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    # -- reading
    def _read_day(self, path: Path, day: date) -> tuple[pl.DataFrame, set[int]] | None:
        """The rows and covered hours of one day, or None: absent, damaged or unreadable.

        A damaged file is deleted. An unreadable one is kept (see the module
        docstring); it still exists after None, which ``write`` relies on.
        """
        # Read the bytes first, decode them in memory second: an I/O failure then
        # never passes for damage, and a decoding failure always is damage.
        try:
            data = path.read_bytes()
            got = _decode_day(data, day, self.schema, self.key)
        except FileNotFoundError:
            return None
        except _DAMAGE as exc:
            log.warning("cache file %s is damaged (%s); it will be refetched", path.name,
                        exc.__class__.__name__)
            try:
                path.unlink()
            except OSError:
                pass
            return None
        except Exception as exc:  # too many open files, permission, memory...: not the file
            log.warning("cache file %s cannot be read now (%s); its hours are fetched, the "
                        "file is kept", path.name, exc.__class__.__name__)
            return None
        return got

    def read(self, source_id: str, sensor_id: int, fkey: str, hours: Iterable[datetime],
             transform: Callable[[pl.DataFrame], pl.DataFrame] | None = None
             ) -> tuple[pl.DataFrame, set[datetime]]:
        """Cached rows of the requested hours and the set of hours that were cached.

        ``transform`` is applied to each day as it is read (e.g. ``schema.compact``,
        so that a month never exists as Strings in memory at once).
        """
        base = self._dir(source_id, sensor_id, fkey)
        by_day = _hours_by_day(hours)
        frames, covered = [], set()
        for day, wanted in sorted(by_day.items()):
            got = self._read_day(self._path(base, day), day)
            if got is None:
                continue
            df, have = got
            use = wanted & have
            if not use:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            covered |= {start + timedelta(hours=h) for h in use}
            if use != have:
                df = df.filter(pl.col("start_of_hour").dt.hour().is_in(sorted(use)))
            frames.append(transform(df) if transform is not None else df)
        frame = pl.concat(frames, rechunk=False) if frames else (
            empty_frame() if self.schema == FLOW_SCHEMA else pl.DataFrame(schema=self.schema))
        return frame, covered

    def covered(self, source_id: str, sensor_id: int, fkey: str, hours: Iterable[datetime]
                ) -> set[datetime]:
        """Which of ``hours`` the files claim to cover (reads metadata only, no rows).

        For cheap decisions; ``read`` still validates every file before serving it.
        """
        base = self._dir(source_id, sensor_id, fkey)
        out: set[datetime] = set()
        by_day: dict[date, list[datetime]] = defaultdict(list)
        for h in hours:
            by_day[h.date()].append(h)
        for day, wanted in by_day.items():
            try:
                meta = pl.read_parquet_metadata(self._path(base, day))
                have = {int(h) for h in json.loads(meta["flux_hours"])}
            except Exception:  # absent or damaged: not covered
                continue
            out |= {h for h in wanted if h.hour in have}
        return out

    def rows_in(self, source_id: str, sensor_id: int, fkey: str, hours: Iterable[datetime]
                ) -> tuple[float, int]:
        """(rows, hours): the rows the cached ``hours`` hold, as far as the files'
        metadata says (each day's rows spread evenly over its covered hours), and
        how many of ``hours`` are cached. Metadata only, for estimates."""
        base = self._dir(source_id, sensor_id, fkey)
        by_day: dict[date, list[datetime]] = defaultdict(list)
        for h in hours:
            by_day[h.date()].append(h)
        rows, covered = 0.0, 0
        for day, wanted in by_day.items():
            try:
                meta = pl.read_parquet_metadata(self._path(base, day))
                have = {int(h) for h in json.loads(meta["flux_hours"])}
                day_rows = int(meta["flux_rows"])
            except Exception:  # absent or damaged: not cached
                continue
            hit = sum(1 for h in wanted if h.hour in have)
            covered += hit
            rows += day_rows * hit / max(1, len(have))
        return rows, covered

    def checked(self, source_id: str, sensor_id: int, fkey: str, hours: Iterable[datetime]
                ) -> dict[datetime, datetime]:
        """When each of the covered ``hours`` was last checked (metadata only)."""
        base = self._dir(source_id, sensor_id, fkey)
        out: dict[datetime, datetime] = {}
        by_day: dict[date, list[datetime]] = defaultdict(list)
        for h in hours:
            by_day[h.date()].append(h)
        for day, wanted in by_day.items():
            stamps = self._read_checked(self._path(base, day))
            for h in wanted:
                if h.hour in stamps:
                    out[h] = datetime.fromtimestamp(stamps[h.hour], UTC)
        return out

    def hourly_rows(self, source_id: str, sensor_id: int, fkey: str,
                    days: Iterable[date] | None = None, *, newest: int = 14
                    ) -> dict[datetime, int]:
        """Rows per covered hour of these days' files (a covered empty hour is 0).

        Without ``days``, of the newest ``newest`` files. For estimates only:
        reads one column and the metadata, validates nothing, and skips any file
        it cannot read.
        """
        base = self._dir(source_id, sensor_id, fkey)
        if days is None:
            try:
                names = sorted((f.stem for f in base.glob("*.parquet")
                                if not f.name.startswith(".")), reverse=True)[:newest]
                days = [date.fromisoformat(n) for n in names]
            except (OSError, ValueError):
                return {}
        out: dict[datetime, int] = {}
        for day in days:
            path = self._path(base, day)
            try:
                covered = json.loads(pl.read_parquet_metadata(path)["flux_hours"])
                counts = dict(pl.read_parquet(path, columns=["start_of_hour"])
                              .group_by(pl.col("start_of_hour").dt.hour()).len().iter_rows())
            except Exception:  # absent, damaged or unreadable: estimates do without it
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            for h in covered:
                out[start + timedelta(hours=int(h))] = int(counts.get(int(h), 0))
        return out

    def columns_by_day(self, source_id: str, sensor_id: int, fkey: str,
                       columns: Iterable[str]) -> Iterator[pl.DataFrame]:
        """These columns of every cached day file, oldest day first.

        For look-ups across the whole cache (a remote's first contact): reads
        no more than the columns asked, validates nothing, and skips any file it
        cannot read.
        """
        base = self._dir(source_id, sensor_id, fkey)
        try:
            paths = sorted(f for f in base.glob("*.parquet") if not f.name.startswith("."))
        except OSError:
            return
        for path in paths:
            try:
                yield pl.read_parquet(path, columns=list(columns))
            except Exception:  # absent, damaged or unreadable: the look-up does without it
                continue

    def _read_checked(self, path: Path) -> dict[int, float]:
        try:
            meta = pl.read_parquet_metadata(path)
            return {int(h): float(t) for h, t in json.loads(meta.get("flux_checked", "{}"))
                    .items()}
        except Exception:  # absent, damaged or older than this field: never checked
            return {}

    # -- writing
    def write(self, source_id: str, sensor_id: int, fkey: str, hours: Iterable[datetime],
              frame: pl.DataFrame, checked_at: datetime | None = None) -> None:
        """Record ``hours`` as complete with their rows from ``frame`` (merged per day).

        ``checked_at``: when these rows were read from the API (see ``checked``).
        """
        dup = _duplicates(frame, self.key)
        if dup:  # a bug upstream; a cache file must never serve a row twice
            raise ValueError(f"{dup} rows hold a natural key twice: nothing was written")
        base = self._dir(source_id, sensor_id, fkey)
        by_day = _hours_by_day(hours)
        if not by_day:
            return
        base.mkdir(parents=True, exist_ok=True)
        day_col = frame.get_column("start_of_hour").dt.date()
        for day, new_hours in by_day.items():
            path = self._path(base, day)
            new_rows = frame.filter(
                (day_col == day) & pl.col("start_of_hour").dt.hour().is_in(sorted(new_hours)))
            with self._lock(path):
                old = self._read_day(path, day)
                if old is None and path.exists():
                    continue  # unreadable now: replacing it would drop its hours
                stamps = self._read_checked(path) if old is not None else {}
                for h in new_hours:
                    stamps.pop(h, None)
                    if checked_at is not None:
                        stamps[h] = checked_at.timestamp()
                if old is not None:
                    old_df, old_hours = old
                    keep = old_df.filter(~pl.col("start_of_hour").dt.hour().is_in(
                        sorted(new_hours)))
                    new_rows = pl.concat([keep, new_rows])
                    new_hours = new_hours | old_hours
                new_rows = new_rows.sort("start_of_hour")
                self._atomic_write(path, new_rows, new_hours, stamps)

    def mark_checked(self, source_id: str, sensor_id: int, fkey: str,
                     hours: Iterable[datetime], at: datetime) -> None:
        """Record that the cached ``hours`` were found unchanged at ``at`` (rows untouched)."""
        base = self._dir(source_id, sensor_id, fkey)
        by_day = _hours_by_day(hours)
        for day, marked in by_day.items():
            path = self._path(base, day)
            with self._lock(path):
                old = self._read_day(path, day)
                if old is None:
                    continue
                df, have = old
                stamps = self._read_checked(path)
                stamps.update({h: at.timestamp() for h in marked & have})
                # Parquet keeps metadata in the footer: the day is rewritten as it was.
                self._atomic_write(path, df, have, stamps)

    def forget(self, source_id: str, sensor_id: int, fkey: str,
               hours: Iterable[datetime]) -> None:
        """Drop ``hours`` (rows and coverage) from the cache: they are fetched again."""
        base = self._dir(source_id, sensor_id, fkey)
        by_day = _hours_by_day(hours)
        for day, dropped in by_day.items():
            path = self._path(base, day)
            with self._lock(path):
                old = self._read_day(path, day)
                if old is None:
                    continue  # absent, damaged (now deleted) or unreadable: nothing served
                df, have = old
                if not dropped & have:
                    continue
                keep = have - dropped
                if not keep:
                    path.unlink(missing_ok=True)
                    continue
                stamps = self._read_checked(path)
                df = df.filter(~pl.col("start_of_hour").dt.hour().is_in(sorted(dropped)))
                self._atomic_write(path, df, keep, stamps)

    def _atomic_write(self, path: Path, df: pl.DataFrame, hours: set[int],
                      checked: Mapping[int, float] | None = None) -> None:
        meta = {"flux_format": FORMAT_VERSION, "flux_hours": json.dumps(sorted(hours)),
                "flux_rows": str(df.height)}
        if checked:
            meta["flux_checked"] = json.dumps({str(h): t for h, t in sorted(checked.items())
                                               if h in hours})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            df.write_parquet(tmp, metadata=meta, statistics=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


def _hours_by_day(hours: Iterable[datetime]) -> dict[date, set[int]]:
    """UTC hours grouped by day file: {day: {hour of day, …}}."""
    by_day: dict[date, set[int]] = defaultdict(set)
    for h in hours:
        by_day[h.date()].add(h.hour)
    return by_day
