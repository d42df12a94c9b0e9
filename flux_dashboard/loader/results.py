"""What a load returns (``LoadResult``), reports as it goes (``Progress``),
predicts (``Estimate``), and the plain messages it stops with."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from flux_dashboard.hours import iso


@dataclass
class Progress:
    requests_done: int
    requests_planned: int
    rows: int
    hours_done: int
    hours_total: int
    rate_limit_per_min: int

    @property
    def fraction(self) -> float:
        if self.requests_planned <= 0:
            return 1.0
        return min(1.0, self.requests_done / self.requests_planned)

    @property
    def seconds_left(self) -> float:
        """Time left at the rate limit (the bottleneck on a real key)."""
        left = max(0, self.requests_planned - self.requests_done)
        return left * 60.0 / self.rate_limit_per_min


ProgressFn = Callable[[Progress], None]


_TOKENS = itertools.count(1)


@dataclass
class LoadResult:
    frame: pl.DataFrame
    start: datetime
    end: datetime
    server_filters: dict = field(default_factory=dict)
    flux_requests: int = 0
    cached_hours: int = 0
    fetched_hours: int = 0
    open_hours: list[datetime] = field(default_factory=list)  # still being written
    loaded_at: datetime | None = None
    from_memory: bool = False
    rechecked_hours: int = 0  # cached hours re-counted for late uploads
    late_hours: list[datetime] = field(default_factory=list)  # found changed and refetched
    # Process-unique serial of the load that produced ``frame``: derived caches key
    # on it (never on ``id(frame)``, which a later frame can reuse once this one is
    # freed). ``replace()`` keeps it, so a memory hit keeps its derived results.
    token: int = field(default_factory=lambda: next(_TOKENS))


@dataclass(frozen=True)
class Estimate:
    """What loading a window would cost (``loader.estimate``)."""

    requests: int  # flux requests the load would make, recheck counts included
    missing_hours: int  # hours not in the disk cache, open hours included
    rows: int | None  # rows to fetch; None when not counted
    spent: int = 0  # requests this estimate itself made (0 when reused or not needed)
    exact: bool = True  # False: the API could not count; ``requests`` is a cautious default


def span_text(hours: list[datetime]) -> str:
    first, last = hours[0], hours[-1]
    return (f"{iso(first)[:16]}Z" if len(hours) == 1
            else f"{len(hours)} hours between {iso(first)[:16]}Z and {iso(last)[:16]}Z")


def incomplete_message(hours: list[datetime], cause: BaseException | None) -> str:
    why = f" ({cause})" if cause else ""
    return (f"Could not load {span_text(hours)} completely{why}. The other hours are loaded and "
            "cached; load again to fetch only what is missing.")


def stop_message(hours: list[datetime], cancelled: bool, limit: int | None) -> str:
    if cancelled:
        return (f"Loading was cancelled: {span_text(hours)} not loaded. The hours completed "
                "before are cached; load again to fetch only what is missing.")
    if not limit:
        return (f"Only cached data was asked for, and {span_text(hours)} are not in the cache. "
                "Load the range to fetch them.")
    return (f"The load stopped at its allowance of {limit} API request(s): {span_text(hours)} "
            "not loaded. The hours completed are cached; load again to fetch only what is "
            "missing.")
