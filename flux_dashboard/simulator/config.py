"""The simulator's switches: one value object for the world, the clock and the hazards.

This module owns ``SimulatorConfig``: the seed and density of the simulated
world, the clock (``now``, ``sleep``), and every hazard a real client must
survive: ``hostile_names`` (two devices whose user-given names carry HTML and
markdown: ``world.HTML_NAME``, ``world.MARKDOWN_NAME``), ``unstable_ties``
(ties on the sort key come back in a fresh random order on every request, so
offset paging duplicates and misses rows), ``inclusive_to``, ``volumes_as``
(strings, numbers or both), ``meta_urls`` (the two meta shapes),
``max_per_page`` (silent cap), a sliding-window rate limit, a monthly quota,
seeded random faults and scheduled faults on ``/flux`` (``fault_schedule``
numbers those requests from 1, counting every request received on that path),
latency, and ``late_uploads``: a sensor that lost its link and uploaded its
buffered rows later (see ``LateUpload``); the demo story (``story``,
``story_day``: see ``story.StoryPlan``); the demo's fleet of small sites (``fleet``);
and hourly statistics that disagree with the flows (``inconsistent_hours``).

The defaults are the API as documented (100 requests a minute, 1,000 rows a
page, volumes as strings, meta with URLs) with no hazard on: plain device
names, stable ties, an exclusive ``to``, no fault, latency or late upload.
The dashboard's demo (``service.embedded_simulator``) is that, without the
rate limit: what a customer sees. Whoever faces a hazard turns it on by name:
the escaping and masking suites turn on ``hostile_names``
(``FLUX_DEMO_HOSTILE_NAMES=1`` for an app's embedded simulator, ``simulate
--hostile-names`` for a served one); the loader, sync, CLI and API-error tests
turn on the paging, type and fault hazards they are about; the benchmarks
(``benchmarks/phases.py``, ``replicas.py``, the load test) keep
``hostile_names`` on, as their figures were measured, and their loader runs add
``unstable_ties`` and ``inclusive_to`` (the cold phase also
``volumes_as="mixed"`` and ``meta_urls=False``, the replicas scheduled 429s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime


@dataclass(frozen=True)
class LateUpload:
    """Sensor ``sensor_id`` was cut off from ``start`` to ``end`` and uploaded at ``uploaded``.

    Until the simulator's clock reaches ``uploaded``, every session that started
    in ``[start, end)`` is invisible to the API: hours inside the outage are
    empty, an hour it cuts shows only its sessions outside it (a row whose
    sessions all fall inside disappears), and ``GET /sensors`` reports the
    sensor DISCONNECTED from ``start`` + 1 h to ``end``. From ``uploaded`` on,
    the hours are exactly what they would have been without the outage: the
    rows are the same deterministic rows, only their visibility is delayed.
    """

    sensor_id: int
    start: datetime
    end: datetime
    uploaded: datetime

    def __post_init__(self) -> None:
        if any(t.tzinfo is None for t in (self.start, self.end, self.uploaded)):
            raise ValueError("LateUpload times must carry a time zone")
        if not self.start < self.end <= self.uploaded:
            raise ValueError("LateUpload needs start < end <= uploaded")


@dataclass
class SimulatorConfig:
    seed: int = 7
    api_key: str | None = None
    dense: bool = False
    max_per_page: int = 1000
    rate_limit_per_min: int | None = 100
    hostile_names: bool = False
    unstable_ties: bool = False
    inclusive_to: bool = False
    volumes_as: str = "string"
    meta_urls: bool = True
    latency_s: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("500", "503", "truncated")
    fault_schedule: dict[int, str] = field(default_factory=dict)
    monthly_quota: int | None = None
    forbidden_sensors: tuple[int, ...] = (99,)
    installed: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    now: Callable[[], datetime] | None = None
    # Seconds for the rate limit's sliding window: real time, whatever ``now`` says (a
    # pinned data clock would freeze the window: after the first minute's requests,
    # every request would be refused for good).
    limit_clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None
    # Generated hours kept in memory; a dense hour is ~1,500 compact rows (~0.3 MB).
    cache_hours: int = 24 * 40
    late_uploads: tuple[LateUpload, ...] = ()
    # The demo story (story.py): on by default, day 0 = the main sensor's local date at
    # construction (``now``), or ``story_day``. Fixed for the simulator's lifetime.
    story: bool = True
    story_day: date | None = None
    # The demo's fleet (world.FLEET): about ten small sites beside 54 and 77, for the
    # Sensors page; one silent since yesterday afternoon, one with a bad night.
    fleet: bool = False
    # Hours whose /flux-hour-* statistics disagree with the flows (one more flow
    # record): the agreement check's hazard.
    inconsistent_hours: tuple[datetime, ...] = ()
