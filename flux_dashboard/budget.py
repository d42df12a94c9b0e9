"""Request budgets and the quota meter: how many API requests this deployment has spent.

The key's 100 requests a minute and its paid monthly quota are shared by
every user of a deployment. ``Meter`` counts requests per user per day, for
the whole deployment per day, and per month, in a small JSON file beside the
cache (read-modify-write under an exclusive ``flock``, then an atomic
rename), so the app's sessions, a second process and the CLI add to the same
counts and a restart keeps them. Days are UTC days; months are UTC months.
``Budgets.check`` says, in one plain sentence, why a load of a given cost
must not start, or returns None.

A load spends in two steps, so that two tabs cannot both pass a budget that
only one fits (each read the usage, then counted when its thread ended):
``reserve`` checks the budgets against what is spent *and* reserved by loads
still running, and books the load's estimate, in one atomic step (under the
file lock here, in one Lua script on Redis); ``settle`` then replaces the
booking by what the load really spent. A booking left by a process that died
lapses after ``Reservation.ttl_s``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flux_dashboard import clock as clock_mod
from flux_dashboard import errors as E

KEEP_DAYS = 40
ALL = "*"  # the deployment-wide counter of a day


@dataclass(frozen=True)
class Usage:
    user_today: int
    today: int
    month: int


@dataclass(frozen=True)
class Reservation:
    """Requests booked for one load until it settles (``Meter.reserve``)."""

    id: str
    user: str
    requests: int
    day: str
    month: str
    until: float  # wall-clock epoch seconds: a booking of a dead process lapses then

    @staticmethod
    def ttl_s(requests: int, rate_per_min: int) -> float:
        """How long a booking holds: twice the load's time at the rate limit, and at
        least ten minutes (a load that outlives it is settled all the same)."""
        return max(600.0, 2 * 60.0 * requests / max(1, rate_per_min))


def _booked(data: dict, now: float) -> dict[str, dict]:
    """Unexpired bookings of the file's data (expired ones are dropped)."""
    raw = data.get("reserved") if isinstance(data.get("reserved"), dict) else {}
    return {k: v for k, v in raw.items()
            if isinstance(v, dict) and float(v.get("until", 0)) > now}


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
            return {"days": {}, "months": {}, "reserved": {}}
        if not isinstance(data, dict):
            return {"days": {}, "months": {}, "reserved": {}}
        days = data.get("days") if isinstance(data.get("days"), dict) else {}
        months = data.get("months") if isinstance(data.get("months"), dict) else {}
        reserved = data.get("reserved") if isinstance(data.get("reserved"), dict) else {}
        return {"days": days, "months": months, "reserved": reserved}

    @contextmanager
    def _locked(self):
        """The file's data under the exclusive lock; written back on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                data = self._read()
                yield data
                oldest = (self.clock().astimezone(UTC) - timedelta(days=KEEP_DAYS)
                          ).strftime("%Y-%m-%d")
                data["days"] = {d: c for d, c in data["days"].items() if d >= oldest}
                tmp_fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".meter-")
                with os.fdopen(tmp_fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh)
                os.replace(tmp, self.path)
            finally:
                os.close(fd)

    @staticmethod
    def _count(data: dict, user: str, requests: int, day: str, month: str) -> None:
        counts = data["days"].setdefault(day, {})
        counts[user] = int(counts.get(user, 0)) + requests
        counts[ALL] = int(counts.get(ALL, 0)) + requests
        data["months"][month] = int(data["months"].get(month, 0)) + requests

    def add(self, user: str, requests: int) -> Usage:
        """Count ``requests`` made for ``user`` now; returns the new usage."""
        if requests <= 0:
            return self.usage(user)
        day, month = self._keys()
        with self._locked() as data:
            self._count(data, user, requests, day, month)
        return self._usage(data, user, day, month)

    def reserve(self, user: str, requests: int, budgets: Budgets,
                ttl_s: float = 600.0) -> Reservation:
        """Book ``requests`` for ``user`` if the budgets allow them on top of what is
        spent and booked; BudgetExceededError (its message says which budget) if not."""
        day, month = self._keys()
        now = clock_mod.wall().timestamp()
        with self._locked() as data:
            booked = _booked(data, now)
            mine = sum(int(b["n"]) for b in booked.values() if b.get("user") == user
                       and b.get("day") == day)
            today = sum(int(b["n"]) for b in booked.values() if b.get("day") == day)
            month_n = sum(int(b["n"]) for b in booked.values() if b.get("month") == month)
            used = self._usage(data, user, day, month)
            refusal = budgets.check(Usage(used.user_today + mine, used.today + today,
                                          used.month + month_n), requests)
            if refusal:
                data["reserved"] = booked
                raise E.BudgetExceededError(refusal, hours=[])
            r = Reservation(uuid.uuid4().hex, user, max(0, requests), day, month,
                            now + ttl_s)
            booked[r.id] = {"user": user, "n": r.requests, "day": day, "month": month,
                            "until": r.until}
            data["reserved"] = booked
        return r

    def settle(self, reservation: Reservation, spent: int) -> Usage:
        """Replace the booking by the requests the load really made."""
        with self._locked() as data:
            booked = _booked(data, clock_mod.wall().timestamp())
            booked.pop(reservation.id, None)
            data["reserved"] = booked
            if spent > 0:
                self._count(data, reservation.user, spent, reservation.day,
                            reservation.month)
        return self._usage(data, reservation.user, reservation.day, reservation.month)

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
