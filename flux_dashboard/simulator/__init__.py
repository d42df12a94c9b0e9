"""A deterministic simulation of the Serenicity Control API.

The simulated world
-------------------
* Sensor **54** "Cabinet Martin – Paris": a busy law office (Europe/Paris), ~35
  devices (~120 in dense mode) on 192.168.1.x and a Wi-Fi VLAN on 10.0.x.x,
  CONNECTED, filtering on. Office rhythm in local time: busy 8–19 on weekdays,
  quiet nights and weekends that are never empty (servers, NAS backups at 1–4 h,
  the camera, the IPBX, PCs left on). Ordinary days are Clear to Moderate: a
  few inbound scans, an intern's PC talking to Tor now and then... every threat
  flag of the API shows up within a month. And one planted incident in the last
  two weeks (``story``): a PC's first contact with a C2, its beacon every 15
  minutes, an off-hours upload, brute-force waves, containment.
* Sensor **77** "Pharmacie du Port – Saint-Denis": a small site (Indian/Reunion),
  DISCONNECTED: its data stops about 2 h before ``now()``.
* Sensor **99** (and every id in ``forbidden_sensors``) exists but answers 403;
  it is not listed by ``GET /sensors``.

The package, along its seams
----------------------------
* ``config``: ``SimulatorConfig``, the seed, the clock and every hazard switch
  (``LateUpload``: an outage whose rows the API shows only later).
* ``world``: the sites, devices, services and toxic IPs (static, seed-derived).
* ``story``: the main site's toxic rows day by day, and ``StoryPlan``, the
  incident's facts (``Simulator.story``), relative to the simulator's start day.
* ``traffic``: ``TrafficModel``, rows per (sensor, hour) and when they are visible.
* ``query``: parameter parsing, 422 errors, sorted results, pages and meta shapes.
* ``api``: ``Simulator``, routing, auth, limits, faults and the endpoints.
* ``transports``: the httpx transport and ``SimulatorServer`` (real HTTP), for any
  ``Handler`` (they never import ``api``).
* ``cli``: ``main()``, which builds a ``Simulator`` and serves it until stopped.
"""

from flux_dashboard.simulator.api import Simulator
from flux_dashboard.simulator.cli import main
from flux_dashboard.simulator.config import LateUpload, SimulatorConfig
from flux_dashboard.simulator.query import API_PREFIX
from flux_dashboard.simulator.story import StoryPlan
from flux_dashboard.simulator.traffic import HOUR_MS, TrafficModel, month_bounds
from flux_dashboard.simulator.transports import SimulatorServer
from flux_dashboard.simulator.world import (
    HTML_NAME,
    MARKDOWN_NAME,
    SERVICES,
    THREAT_FLAGS,
    TOXIC_IPS,
)

__all__ = [
    "API_PREFIX", "HOUR_MS", "HTML_NAME", "LateUpload", "MARKDOWN_NAME", "SERVICES", "THREAT_FLAGS",
    "TOXIC_IPS", "Simulator", "SimulatorConfig", "SimulatorServer", "StoryPlan", "TrafficModel",
    "main", "month_bounds",
]
