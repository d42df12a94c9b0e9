"""Late data: re-count recent cached hours, refetch the ones that changed.

A sensor that loses its link uploads its buffered rows later, into hours
already cached as final. So cached hours younger than ``recheck_hours``
(default 48) are re-counted, at most every ``recheck_every`` (15 min; the
store records when each hour was last checked, so reruns and new processes do
not ask again): one request with ``per_page=1`` per run of contiguous due
hours, whose ``meta.total`` is compared with the cached rows. A run that
differs is halved, counting the left half and deducing the right one from the
run's total, down to single hours; only the hours that differ are refetched
whole and replace their cached rows. Cost: one request per 15 minutes per
sensor and filter set when nothing changed; about 1 + log2(run length) per
changed stretch otherwise, plus the refetch. Counting cannot see rows that
grew without a new row appearing (an outage cutting through an hour whose
flows already had a row): ``refresh="range"`` refetches the whole range.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard.hours import HOUR, floor_hour, hours_between
from flux_dashboard.loader.fetch import Accumulator, Fetcher
from flux_dashboard.loader.gate import Gate, Stop
from flux_dashboard.loader.segments import segments_of

if TYPE_CHECKING:
    from flux_dashboard.loader.core import Loader

log = logging.getLogger(__name__)

RECHECK_EVERY = timedelta(minutes=15)  # a recent cached hour is re-counted at most this often


def due_hours(loader: Loader, sensor_id: int, fkey: str, covered: set[datetime],
              now: datetime) -> list[datetime]:
    """The cached hours whose late-data recheck is due (metadata only)."""
    if loader.store is None or loader.recheck_hours <= 0:
        return []
    horizon = floor_hour(now) - loader.recheck_hours * HOUR
    failed = loader._recheck_failed.get((sensor_id, fkey))
    recent = [h for h in covered if h >= horizon]
    if not recent or (failed is not None and now - failed < loader.recheck_every):
        return []
    checked = loader.store.checked(loader.source_id, sensor_id, fkey, recent)
    return sorted(h for h in recent
                  if h not in checked or now - checked[h] >= loader.recheck_every)

def recheck(loader: Loader, sensor_id: int, params: dict, fkey: str, cached: pl.DataFrame,
            covered: set[datetime], now: datetime, report: Callable[[], None],
            gate: Gate | None = None
            ) -> tuple[pl.DataFrame, set[datetime], int, list[datetime]]:
    """Re-count the recent cached hours that are due (module docstring).

    Returns the cache without the hours whose count changed (so they are
    fetched again), how many hours were counted, and the changed hours.
    Best effort: if the API fails, the cache is served and rechecks pause;
    if the allowance runs out, the hours not counted yet are served as they
    are. A cancellation (``Stop``) propagates.
    """
    assert loader.store is not None
    due = due_hours(loader, sensor_id, fkey, covered, now)
    if not due:
        return cached, covered, 0, []
    have = dict(cached.group_by("start_of_hour").len().iter_rows())
    fetch = Fetcher(loader, sensor_id, params, Accumulator(), report, gate)
    same: list[datetime] = []
    changed: list[datetime] = []
    try:
        for a, b in segments_of(due):
            hours = hours_between(a, b)
            locate_changes(hours, fetch.count(a, b), have, fetch.count, same, changed)
    except E.LoadCancelledError:
        raise
    except Stop as stop:
        if stop.cancelled:
            raise
    except E.FluxError as exc:
        log.warning("late-data recheck of sensor %s failed (%s); serving the cache",
                    sensor_id, exc.__class__.__name__)
        loader._recheck_failed[(sensor_id, fkey)] = now
    if same:
        loader.store.mark_checked(loader.source_id, sensor_id, fkey, same, now)
    if changed:
        cached = cached.filter(~pl.col("start_of_hour").is_in(changed))
        covered = covered - set(changed)
    return cached, covered, len(same) + len(changed), sorted(changed)


def locate_changes(hours: list[datetime], total: int, have: Mapping[datetime, int],
                   count: Callable[[datetime, datetime], int], same: list[datetime],
                   changed: list[datetime]) -> None:
    """Sort ``hours`` (counted ``total`` by the API) into ``same`` and ``changed``.

    A part whose count matches the cache is unchanged; a part that differs is
    halved: the left half is counted, the right half is deduced from the total
    (so each step costs one request), down to single hours.
    """
    if total == sum(have.get(h, 0) for h in hours):
        same.extend(hours)
    elif len(hours) == 1:
        changed.extend(hours)
    else:
        mid = len(hours) // 2
        left = count(hours[0], hours[mid])
        locate_changes(hours[:mid], left, have, count, same, changed)
        locate_changes(hours[mid:], total - left, have, count, same, changed)
