"""What an analyst does in the load test, whichever driver plays it.

This module owns the scenario both drivers share: the sensors, pages and
threat categories an analyst picks from, the action mix and its weights, the
time limits, the pinned clock and the month the sessions open
(``closed_days``), the session's link (``session_query``/``session_url``), and
``Analyst``: one session's seeded loop of actions with think time between
them, each action's time or failure recorded in its ``Phase``. The drivers
(``browser.BrowserAnalyst``, ``ws_session.WsAnalyst``) implement the actions.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from datetime import date, timedelta
from urllib.parse import urlencode

from benchmarks.load_test.metrics import Phase, Sample
from flux_dashboard.clock import parse_instant

SENSORS = (54, 77)  # dense demo sensor, normal demo sensor
# (url path, main heading, sidebar nav label): flux_dashboard/ui/frame.py PAGES
PAGES = [
    ("overview", "Overview"),
    ("devices", "Devices"),
    ("protocols", "Protocols & ports"),
    ("toxic", "Toxic flows"),
    ("remotes", "Remote hosts"),
    ("hunting", "Threat hunting"),
]
THREAT_LABELS = ["Command center (C2)", "Trojan horse", "Known attacker", "Bruteforce",
                 "Tor node"]
ACTIONS = [("page", 0.40), ("direction", 0.15), ("toxic", 0.15), ("threat", 0.15),
           ("sensor", 0.15)]
TARGET_P95_S = 3.0
TARGET_RSS_MB = 2.5 * 1024
ACTION_TIMEOUT_MS = 120_000
NO_RUN_MS = 15_000  # a click that started no run in this time (the app idle) was lost
OPEN_TIMEOUT_MS = 900_000  # a cold dense month from the embedded simulator: minutes

# The clock of the dense demo the sessions read: pinned, so a run on any day opens the
# same closed days (the month that ends two days before it) and the same story.
NOW = "2026-04-01T12:30:00Z"


def closed_days(days: int) -> tuple[date, date]:
    """``days`` days ending two days before ``NOW``: every hour closed and past the 48 h
    recheck."""
    end = parse_instant(NOW).date() - timedelta(days=2)
    return end - timedelta(days=days), end


def session_query(sensor: int, days: tuple[date, date]) -> dict[str, str]:
    return {"sensor": str(sensor), "range": "Custom", "from_day": days[0].isoformat(),
            "from_hour": "00:00", "to_day": days[1].isoformat(), "to_hour": "00:00"}


def session_url(base: str, page: str, sensor: int, days: tuple[date, date]) -> str:
    q = session_query(sensor, days)
    return f"{base}/{'' if page == 'overview' else page}?{urlencode(q)}"


class Analyst(abc.ABC):
    """One Streamlit session clicking like an analyst; a driver implements the actions.

    ``browser`` is the Playwright browser of the browser driver (None for the
    websocket driver); each ``act_*`` and ``open``/``go_to`` returns the
    seconds until the run it caused settled.
    """

    actions = ACTIONS  # (name, weight): ``act_<name>`` chosen at random

    def __init__(self, idx: int, browser, base: str, days: tuple[date, date], seed: int,
                 phase: Phase, think: tuple[float, float], sensor: int | None = None) -> None:
        self.idx, self.browser, self.base, self.days = idx, browser, base, days
        self.rng = random.Random(f"{seed}:{phase.name}:{idx}")
        self.phase, self.think = phase, think
        self.sensor = SENSORS[idx % 2] if sensor is None else sensor
        self.page_id = self.rng.choice(PAGES)[0]
        self.toxic = False
        self.direction = "all"
        self.threats = 0

    def heading(self) -> str:
        return dict(PAGES)[self.page_id]

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def open(self, timeout: int) -> float:
        """Open the session's link (its sensor, days and page)."""

    @abc.abstractmethod
    async def go_to(self, page_id: str, timeout: int) -> float: ...

    @abc.abstractmethod
    async def act_direction(self) -> float: ...

    @abc.abstractmethod
    async def act_toxic(self) -> float: ...

    @abc.abstractmethod
    async def act_threat(self) -> float: ...

    @abc.abstractmethod
    async def act_sensor(self) -> float: ...

    @abc.abstractmethod
    async def check_page(self) -> str:
        """What is wrong with the page after a settled action ("" when nothing)."""

    async def diagnose(self) -> str:
        """What to add to a failed action's message (the browser's page state)."""
        return ""

    async def act_page(self) -> float:
        return await self.go_to(self.rng.choice([p for p in PAGES if p[0] != self.page_id])[0])

    async def run(self, deadline: float) -> None:
        try:
            await self.start()
            await self._record("open", self.open(timeout=ACTION_TIMEOUT_MS))
            names, weights = zip(*self.actions, strict=True)
            while time.monotonic() < deadline:
                await asyncio.sleep(self.rng.uniform(*self.think))
                if time.monotonic() >= deadline:
                    break
                action = self.rng.choices(names, weights)[0]
                ok = await self._record(action, getattr(self, f"act_{action}")())
                while not ok and time.monotonic() < deadline:
                    # start again from the link (the session state is unknown)
                    ok = await self._record("open", self.open(timeout=ACTION_TIMEOUT_MS))
                    if not ok:
                        await asyncio.sleep(2)
        finally:
            await self.close()

    async def _record(self, action: str, coro) -> bool:
        try:
            seconds = await coro
        except Exception as exc:  # a failed action is a result
            msg = f"session {self.idx} {action} on {self.page_id}/#{self.sensor}: " \
                  f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
            msg += await self.diagnose()
            self.phase.samples.append(Sample(self.idx, action, None, msg))
            self.phase.errors.append(msg)
            return False
        problem = await self.check_page()
        if problem:
            msg = f"session {self.idx} {action} on {self.page_id}/#{self.sensor}: {problem}"
            self.phase.errors.append(msg)
            self.phase.samples.append(Sample(self.idx, action, seconds, msg))
            return True
        self.phase.samples.append(Sample(self.idx, action, seconds))
        return True
