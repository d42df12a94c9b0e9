"""The one clock: what "now" is for the data, in every process of the project.

"Now" decides which hours are closed and which one is still being written, what
"Last 24 hours" and "today" mean, the demo story's day 0, the budgets' day and
month, the audit trail's times and what the sync worker keeps warm. The app, the
sync worker, the CLI and the simulator all take it from ``Settings.now`` (or,
for the simulator, ``SimulatorConfig.now``), never from ``datetime.now``.

``FLUX_NOW`` pins it to one instant for a whole process (tests, benchmarks,
demo rehearsals): a pinned clock stands still, so every expected value can be
computed from the same instant the server uses, whatever the wall clock says.
It is honoured only when the data source is a simulator (no API key): on real
data a frozen "now" would hide every new hour and date the audit trail wrongly,
so ``config.load_settings`` refuses it with a plain message.

Two things never follow this clock, because they measure real elapsed time:
the rate limiter, retries, timeouts and lock lifetimes (``time.monotonic``), and
the age of a sign-in token (``wall()``): the identity provider signs it on real
time, and a pinned clock must not make a session last for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]

# Flow data starts in the Unix era and the hour arithmetic must not overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def real() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def wall() -> datetime:
    """Real time for what must age in real time (a sign-in token). Never pinned."""
    return datetime.now(UTC)


def pinned(instant: datetime) -> Clock:
    """A clock that always answers ``instant`` (aware; returned in UTC)."""
    at = instant.astimezone(UTC)
    return lambda: at


def parse_instant(raw: str, name: str = "FLUX_NOW") -> datetime:
    """An ISO 8601 instant with its offset (``2026-12-06T22:59:50Z``), in UTC.

    ValueError with a plain message otherwise: a time without an offset would be
    read differently on machines in other zones, so it is refused, not guessed.
    """
    text = str(raw).strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO date-time with its offset, like "
                         f"2026-12-06T22:59:50Z; got {text[:40]!r}.") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} needs an offset (Z or +01:00), or the same setting "
                         f"would mean another instant on another machine; got {text[:40]!r}.")
    value = value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{name} must lie between {EARLIEST:%Y-%m-%d} and "
                         f"{LATEST:%Y-%m-%d}; got {text[:40]!r}.")
    return value
