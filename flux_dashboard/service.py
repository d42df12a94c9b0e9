"""Wiring: settings -> client (real API or embedded simulator) -> store -> loader.

Shared by the CLI and the Streamlit glue so both exercise the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from flux_dashboard.client import Client
from flux_dashboard.config import Settings
from flux_dashboard.loader import Loader
from flux_dashboard.store import Store


@cache
def embedded_simulator(dense: bool = False):
    """The in-process demo API (deterministic, so one per process is enough)."""
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    # No rate limit or faults in demo mode: it is a showcase, not a hazard test.
    return Simulator(SimulatorConfig(dense=dense, rate_limit_per_min=None))


@dataclass
class Service:
    settings: Settings
    client: Client
    loader: Loader

    def close(self) -> None:
        self.client.close()


def build_service(settings: Settings, *, transport=None) -> Service:
    if transport is None and settings.demo:
        transport = embedded_simulator(settings.dense_demo).transport()
    client = Client(settings, transport=transport)
    store = Store(settings.cache_dir)
    loader = Loader(client, store, per_page=settings.per_page,
                    max_concurrency=settings.max_concurrency)
    return Service(settings, client, loader)
