"""The instant every suite pins the app to, and what follows from it.

Each AppTest suite sets ``FLUX_NOW`` to ``PINNED`` for the app it runs, each
browser server is started with it, and the simulators served over HTTP by the
tests use ``pinned_clock``: every "now" of the system under test is this one
instant, and every expectation is computed from it, never from the wall clock.

``FLUX_TEST_NOW`` chooses another instant for a whole run, e.g. to prove the
suite passes just before a local midnight or on a DST day::

    FLUX_TEST_NOW=2026-10-25T22:59:50Z make test
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flux_dashboard import clock
from flux_dashboard.simulator.story import StoryPlan

DEFAULT = "2026-11-18T10:30:00Z"  # a Wednesday, mid-morning in Paris: nothing special
PINNED: datetime = clock.parse_instant(os.environ.get("FLUX_TEST_NOW") or DEFAULT,
                                       "FLUX_TEST_NOW")
PINNED_ISO = PINNED.isoformat()
pinned_clock = clock.pinned(PINNED)

PARIS = ZoneInfo("Europe/Paris")  # the demo's main sensor (54)
REUNION = ZoneInfo("Indian/Reunion")  # the demo's small sensor (77)
# The demo story as the app tells it at PINNED (day 0 = PINNED's date in Paris).
PLAN = StoryPlan.anchored(PINNED, "Europe/Paris")


def today(zone: ZoneInfo = PARIS) -> date:
    """PINNED's local date in ``zone``."""
    return PINNED.astimezone(zone).date()


def local_days(first: date, days: int = 1, zone: ZoneInfo = PARIS) -> tuple[datetime, datetime]:
    """[start, end) of ``days`` whole local days from ``first`` (23 or 25 h on DST days)."""
    end = first + timedelta(days=days)
    return (datetime(first.year, first.month, first.day, tzinfo=zone),
            datetime(end.year, end.month, end.day, tzinfo=zone))


def days_link(first: date, days: int = 1) -> dict[str, str]:
    """The query parameters of a custom range of whole local days from ``first``."""
    last = first + timedelta(days=days)
    return {"range": "Custom", "from_day": first.isoformat(), "from_hour": "00:00",
            "to_day": last.isoformat(), "to_hour": "00:00"}


def days_query(first: date, days: int = 1) -> str:
    """``days_link`` as a URL query string."""
    return "&".join(f"{k}={v}" for k, v in days_link(first, days).items())


def dst_days(zone: ZoneInfo = PARIS, before: date | None = None) -> tuple[date, date]:
    """The last local day before ``before`` (default: PINNED's) with 23 hours (spring
    forward) and the last with 25 (fall back), in ``zone``."""
    day = (before or today(zone)) - timedelta(days=1)
    spring = autumn = None
    while spring is None or autumn is None:
        start, end = local_days(day, 1, zone)
        hours = (end.timestamp() - start.timestamp()) / 3600
        if hours == 23 and spring is None:
            spring = day
        elif hours == 25 and autumn is None:
            autumn = day
        day -= timedelta(days=1)
    return spring, autumn


def days_before(days: int, ago: int = 0, zone: ZoneInfo = PARIS) -> str:
    """Query string of the ``days`` whole local days that end ``ago`` days before
    PINNED's local midnight (``days_before(1)``: yesterday)."""
    end = today(zone) - timedelta(days=ago)
    return days_query(end - timedelta(days=days), days)


def working_day(ago: int = 2, zone: ZoneInfo = PARIS) -> date:
    """The latest working day (Monday to Friday) at least ``ago`` days before PINNED's
    local date: a busy day whatever the pinned weekday."""
    day = today(zone) - timedelta(days=ago)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day
