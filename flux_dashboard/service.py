"""Wiring: settings -> client (real API or embedded simulator) -> store -> loader.

Shared by the CLI and the Streamlit glue so both exercise the same code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from flux_dashboard import clock
from flux_dashboard.client import Client
from flux_dashboard.config import Settings, memory_budget
from flux_dashboard.loader import Loader
from flux_dashboard.store import Store


def embedded_simulator(settings: Settings):
    """The in-process demo API of these settings: its story's day 0 is
    ``settings.demo_day`` and its clock the settings' (pinned or real).

    Deterministic, so one per (density, day, pin, names) and process is enough; a new
    day gets a new one, so the story stays within the last days of the demo.
    """
    return _embedded(settings.dense_demo, settings.demo_day, settings.pinned_now,
                     settings.demo_hostile_names)


@cache
def _embedded(dense: bool, day: date, pinned: datetime | None, hostile_names: bool):
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    # No rate limit, faults or other hazards in demo mode: it is a showcase, not a hazard
    # test; the escaping tests ask for the hostile names (FLUX_DEMO_HOSTILE_NAMES). The
    # fleet of small sites fills the Sensors page.
    return Simulator(SimulatorConfig(dense=dense, rate_limit_per_min=None, story_day=day,
                                     fleet=True, hostile_names=hostile_names,
                                     now=clock.pinned(pinned) if pinned else None))


@dataclass
class Service:
    settings: Settings
    client: Client
    loader: Loader

    def close(self) -> None:
        self.client.close()


def build_service(settings: Settings, *, transport=None, background: bool = False,
                  share: float = 1.0, compact: bool = False,
                  stop: threading.Event | None = None) -> Service:
    """``background``: the sync worker's service, which books at most ``share`` of
    the key's request slots and lets interactive requests go first (shared.py).
    ``compact``: the loader returns compact frames (the dashboard's, for memory).
    ``stop``: once set, every wait for a request slot or a retry ends at once (the
    worker's SIGTERM: it must exit in seconds, whatever the API does)."""
    if transport is None and settings.demo:
        transport = embedded_simulator(settings).transport()
    limiter, locks = None, None
    if settings.redis_url:
        from flux_dashboard.shared import RedisLocks, RedisRateLimiter

        limiter = RedisRateLimiter(settings.redis_url, settings.source_id,
                                   settings.rate_limit_per_min, background=background,
                                   share=share, stop=stop)
        locks = RedisLocks(settings.redis_url)
    elif background and share < 1:
        from flux_dashboard.client import RateLimiter

        # One process: the worker's own limiter runs at its share of the rate.
        limiter = RateLimiter(max(1, int(settings.rate_limit_per_min * share)), stop=stop)
    elif stop is not None:
        from flux_dashboard.client import RateLimiter

        limiter = RateLimiter(settings.rate_limit_per_min, stop=stop)
    client = Client(settings, transport=transport, limiter=limiter, stop=stop)
    store = Store(settings.cache_dir)
    loader = Loader(client, store, per_page=settings.per_page, clock=settings.now,
                    max_concurrency=settings.max_concurrency, locks=locks, compact=compact,
                    # The worker never reuses a window: it keeps none in memory.
                    memory_max_bytes=1 if background else
                    memory_budget("hot", settings.memory_mb))
    return Service(settings, client, loader)


def request_meter(settings: Settings):
    """The request counters of the deployment: Redis when configured, else a file."""
    if settings.redis_url:
        from flux_dashboard.shared import RedisMeter

        return RedisMeter(settings.redis_url, clock=settings.now)
    from flux_dashboard.budget import Meter

    return Meter(settings.cache_dir / "request-meter.json", clock=settings.now)
