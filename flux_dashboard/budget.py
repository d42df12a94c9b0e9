"""Request budgets and the quota meter: how many API requests this deployment has spent.

The key's 100 requests a minute and its paid monthly quota are shared by
every user of a deployment. ``Meter`` counts requests per user per day, for
the whole deployment per day, and per month, in a small JSON file beside the
cache (read-modify-write under an exclusive ``flock``, then an atomic
rename), so the app's sessions, a second process and the CLI add to the same
counts and a restart keeps them. Days are UTC days; months are UTC months.
``Budgets.check`` says, in one plain sentence, why a load of a given cost
must not start, or returns None.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flux_dashboard import clock as clock_mod

KEEP_DAYS = 40
ALL = "*"  # the deployment-wide counter of a day


@dataclass(frozen=True)
class Usage:
    user_today: int
    today: int
    month: int


class Meter:
    """Request counters in ``path`` (JSON), shared by processes through a file lock."""

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self.clock = clock or clock_mod.real
        self._lock = threading.Lock()

    def _keys(self) -> tuple[str, str]:
        now = self.clock().astimezone(UTC)
        return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"days": {}, "months": {}}
        if not isinstance(data, dict):
            return {"days": {}, "months": {}}
        days = data.get("days") if isinstance(data.get("days"), dict) else {}
        months = data.get("months") if isinstance(data.get("months"), dict) else {}
        return {"days": days, "months": months}

    def add(self, user: str, requests: int) -> Usage:
        """Count ``requests`` made for ``user`` now; returns the new usage."""
        if requests <= 0:
            return self.usage(user)
        day, month = self._keys()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                data = self._read()
                counts = data["days"].setdefault(day, {})
                counts[user] = int(counts.get(user, 0)) + requests
                counts[ALL] = int(counts.get(ALL, 0)) + requests
                data["months"][month] = int(data["months"].get(month, 0)) + requests
                oldest = (self.clock().astimezone(UTC) - timedelta(days=KEEP_DAYS)
                          ).strftime("%Y-%m-%d")
                data["days"] = {d: c for d, c in data["days"].items() if d >= oldest}
                tmp_fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".meter-")
                with os.fdopen(tmp_fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh)
                os.replace(tmp, self.path)
            finally:
                os.close(fd)
        return self._usage(data, user, day, month)

    def usage(self, user: str = ALL) -> Usage:
        day, month = self._keys()
        return self._usage(self._read(), user, day, month)

    @staticmethod
    def _usage(data: dict, user: str, day: str, month: str) -> Usage:
        counts = data["days"].get(day, {})
        return Usage(user_today=int(counts.get(user, 0)), today=int(counts.get(ALL, 0)),
                     month=int(data["months"].get(month, 0)))


@dataclass(frozen=True)
class Budgets:
    user_daily: int | None = None
    global_daily: int | None = None
    monthly_quota: int | None = None

    def check(self, usage: Usage, cost: int) -> str | None:
        """Why a load costing ``cost`` requests must not start, or None."""
        if cost <= 0:
            return None
        if self.user_daily is not None and usage.user_today + cost > self.user_daily:
            return (f"Your daily request budget is spent ({usage.user_today:,} of "
                    f"{self.user_daily:,} used; this load needs about {cost:,}). Cached data "
                    "stays available; the budget resets at midnight UTC.")
        if self.global_daily is not None and usage.today + cost > self.global_daily:
            return (f"The team's daily request budget is spent ({usage.today:,} of "
                    f"{self.global_daily:,} used; this load needs about {cost:,}). Cached data "
                    "stays available; the budget resets at midnight UTC.")
        if self.monthly_quota is not None and usage.month + cost > self.monthly_quota:
            return (f"The monthly API quota would be exceeded ({usage.month:,} of "
                    f"{self.monthly_quota:,} used; this load needs about {cost:,}). Cached data "
                    "stays available; ask an administrator to raise FLUX_MONTHLY_QUOTA.")
        return None

    def share_of_today(self, usage: Usage, cost: int) -> str:
        """'12% of your daily budget' style sentence for a confirmation."""
        parts = []
        if self.user_daily:
            parts.append(f"{100 * cost / self.user_daily:.0f}% of your daily budget "
                         f"({usage.user_today:,} of {self.user_daily:,} used so far)")
        if self.global_daily:
            parts.append(f"{100 * cost / self.global_daily:.0f}% of the team's daily budget")
        if self.monthly_quota:
            parts.append(f"{100 * cost / self.monthly_quota:.1f}% of the monthly quota")
        return "; ".join(parts) or f"{usage.today:,} requests spent today by this deployment"
