"""``in_one_hour``: for tests whose subject is a relative range (the open hour, "Last 24
hours", "Last 7 days"). Such a range moves on the UTC hour, so counts read on either
side of it differ. Shared by the AppTest and browser suites."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def _utc_hour() -> float:
    return time.time() // 3600


def in_one_hour(runs: Callable[[], Any]) -> Any:
    """``runs()``, once more if the UTC hour turned while it ran: whether a check inside
    it failed (a failure within one hour is raised) or it returned values the caller
    compares."""
    hour = _utc_hour()
    try:
        out = runs()
    except AssertionError:
        if _utc_hour() == hour:
            raise
        return runs()
    return out if _utc_hour() == hour else runs()
