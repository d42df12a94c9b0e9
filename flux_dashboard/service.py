"""Wiring: settings -> client (real API or embedded simulator) -> store -> loader.

Shared by the CLI and the Streamlit glue so both exercise the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

from flux_dashboard.client import Client
from flux_dashboard.config import Settings, demo_day
from flux_dashboard.loader import Loader
from flux_dashboard.store import Store


def embedded_simulator(dense: bool = False, day: date | None = None):
    """The in-process demo API whose story's day 0 is ``day`` (default: today).

    Deterministic, so one per (density, day) and process is enough; a new day
    gets a new one, so the story stays within the last days of the demo.
    """
    return _embedded(dense, day or demo_day())


@cache
def _embedded(dense: bool, day: date):
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    # No rate limit or faults in demo mode: it is a showcase, not a hazard test.
    return Simulator(SimulatorConfig(dense=dense, rate_limit_per_min=None, story_day=day))


@dataclass
class Service:
    settings: Settings
    client: Client
    loader: Loader

    def close(self) -> None:
        self.client.close()


def build_service(settings: Settings, *, transport=None) -> Service:
    if transport is None and settings.demo:
        transport = embedded_simulator(settings.dense_demo, settings.demo_day).transport()
    client = Client(settings, transport=transport)
    store = Store(settings.cache_dir)
    loader = Loader(client, store, per_page=settings.per_page,
                    max_concurrency=settings.max_concurrency)
    return Service(settings, client, loader)
