"""A deterministic simulation of the Serenicity Control API.

The simulated world
-------------------
* Sensor **54** "Cabinet Martin – Paris": a busy law office (Europe/Paris), ~35
  devices (~120 in dense mode) on 192.168.1.x and a Wi-Fi VLAN on 10.0.x.x,
  CONNECTED, filtering on. Office rhythm in local time: busy 8–19 on weekdays,
  quiet nights and weekends that are never empty (servers, NAS backups at 1–4 h,
  the camera, the IPBX, PCs left on). One PC beacons to a C2 every 10 minutes,
  an intern's PC talks to Tor, the exposed server is brute-forced on 22/3389...
  every threat flag of the API shows up within a month.
* Sensor **77** "Pharmacie du Port – Saint-Denis": a small site (Indian/Reunion),
  DISCONNECTED: its data stops about 2 h before ``now()``.
* Sensor **99** (and every id in ``forbidden_sensors``) exists but answers 403;
  it is not listed by ``GET /sensors``.

Rows are generated per (sensor, hour) from a private ``random.Random`` seeded
by (seed, sensor, hour), so a closed hour is identical on every call whatever
the clock. The open hour (the one containing ``now()``) shows only the sessions
started before the last whole minute (the sensor uploads once a minute), so it
grows with time; later hours and hours before ``installed`` are empty. Rows are
kept compact (tuples) and only the rows of a requested page are turned into
API dicts: their sessions (timestamps, duration) are derived lazily from a seed.

Switches (``SimulatorConfig``) add the hazards a real client must survive:
``unstable_ties`` (ties on the sort key come back in a fresh random order on
every request, so offset paging duplicates and misses rows), ``inclusive_to``,
``volumes_as`` (strings, numbers or both), ``meta_urls`` (the two meta shapes),
``max_per_page`` (silent cap), a sliding-window rate limit, a monthly quota,
seeded random faults and scheduled faults on ``/flux``, latency.

Faults (``fault_rate``, ``fault_schedule``) apply to ``GET /sensors/:id/flux``
only; ``fault_schedule`` numbers those requests from 1 (see
``flux_request_count``), counting every request received on that path.
"""

from __future__ import annotations

import argparse
import calendar
import ipaddress
import json
import math
import random
import re
import signal
import sys
import threading
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx

__all__ = ["Simulator", "SimulatorConfig", "SimulatorServer", "main"]

THREAT_FLAGS = ("bruteforce", "command_center", "hcard", "military", "tor_node", "trojan",
                "sip", "supply_chain_compromise", "video")
HOUR_MS = 3_600_000
API_PREFIX = "/api/v1"
C2_PERIOD_MS = 600_000


@dataclass
class SimulatorConfig:
    seed: int = 7
    api_key: str | None = None
    dense: bool = False
    max_per_page: int = 1000
    rate_limit_per_min: int | None = 100
    unstable_ties: bool = False
    inclusive_to: bool = False
    volumes_as: str = "string"
    meta_urls: bool = True
    latency_s: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("500", "503", "truncated")
    fault_schedule: dict[int, str] = field(default_factory=dict)
    monthly_quota: int | None = None
    forbidden_sensors: tuple[int, ...] = (99,)
    installed: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    now: Callable[[], datetime] | None = None
    sleep: Callable[[float], None] | None = None
    # Generated hours kept in memory; a dense hour is ~1,500 compact rows (~0.3 MB).
    cache_hours: int = 24 * 40


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class _Service:
    ips: tuple[str, ...]
    proto: str
    port: int | None
    dir: str = "OUT"
    out: tuple[int, int] = (500, 40_000)
    inb: tuple[int, int] = (2_000, 1_500_000)


@dataclass
class _Device:
    idx: int
    ip: str
    mac: str
    vendor: str | None
    netbios: str | None
    custom: dict | None
    kind: str
    rate: float
    services: list[_Service]
    weights: list[float]
    tags: frozenset[str] = frozenset()
    cum: list[float] = field(default_factory=list)


@dataclass
class _Site:
    id: int
    name: str
    full_name: str
    tz: ZoneInfo
    tzname: str
    filtering: bool
    status: str
    lag: timedelta  # how far behind now() the data stops (a disconnected sensor)
    devices: list[_Device]
    meta: dict
    toxic_events: list[tuple]


def _pool(rng: random.Random, prefixes: list[str], n: int) -> tuple[str, ...]:
    """n distinct addresses under the given 1-, 2- or 3-octet prefixes."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        parts = rng.choice(prefixes).split(".")
        while len(parts) < 4:
            parts.append(str(rng.randint(1, 254)))
        ip = ".".join(parts)
        if ip not in seen:
            seen.add(ip)
            out.append(ip)
    return tuple(out)


def _services() -> dict[str, _Service]:
    # A fixed RNG: the Internet does not change with the seed.
    r = random.Random(20260101)
    google = _pool(r, ["142.250", "142.251", "172.217", "216.58"], 80)
    cloudflare = _pool(r, ["104.16", "104.17", "104.18", "172.67"], 50)
    microsoft = _pool(r, ["20.42", "20.54", "20.190", "13.107.42", "13.107.6", "40.126"], 60)
    outlook = _pool(r, ["52.97", "40.101", "52.98"], 12)
    aws = _pool(r, ["52.16", "52.47", "52.85", "3.5", "3.120", "18.184", "35.180"], 70)
    apple = _pool(r, ["17.248", "17.253", "17.57", "17.188"], 40)
    akamai = _pool(r, ["23.32", "23.45", "2.16", "2.18", "184.24", "95.100"], 40)
    ovh = _pool(r, ["51.38", "51.75", "51.91", "51.210", "54.36", "54.38", "137.74",
                    "149.202", "188.165"], 50)
    meta = _pool(r, ["157.240", "31.13"], 15)
    netflix = _pool(r, ["45.57", "198.38", "108.175"], 15)
    samsung = _pool(r, ["52.58", "34.240"], 10)
    hikvision = _pool(r, ["47.88", "8.209", "47.91"], 6)
    hp = _pool(r, ["15.72", "3.64"], 6)
    teams = _pool(r, ["52.112", "52.113"], 10)
    sip_trunk = ("91.121.128.21", "91.121.128.23", "87.98.230.12")
    backup = ("51.91.102.44", "51.91.102.45", "54.38.187.9")
    synology = ("52.28.217.64", "3.122.48.85", "18.192.13.90")
    dns = ("1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9")
    ntp = ("162.159.200.1", "162.159.200.123", "17.253.34.123", "51.15.175.180")
    home = ("90.56.12.201", "82.65.143.17", "86.247.31.98", "78.198.44.210", "92.184.105.3")
    small = (60, 200)
    return {
        "web_google": _Service(google, "TCP", 443),
        "quic_google": _Service(google, "UDP", 443, out=(1_000, 90_000), inb=(5_000, 6_000_000)),
        "web_cf": _Service(cloudflare, "TCP", 443),
        "web_ms": _Service(microsoft, "TCP", 443),
        "update_ms": _Service(microsoft[:10], "TCP", 80, out=(2_000, 30_000),
                              inb=(1_000_000, 600_000_000)),
        "web_aws": _Service(aws, "TCP", 443),
        "web_akamai": _Service(akamai, "TCP", 443),
        "http_akamai": _Service(akamai[:12], "TCP", 80, inb=(5_000, 4_000_000)),
        "web_ovh": _Service(ovh, "TCP", 443),
        "web_meta": _Service(meta, "TCP", 443),
        "web_apple": _Service(apple, "TCP", 443),
        "push_apple": _Service(apple[:8], "TCP", 5223, out=(200, 3_000), inb=(200, 8_000)),
        "imap": _Service(outlook, "TCP", 993, out=(1_000, 60_000), inb=(5_000, 3_000_000)),
        "smtp": _Service(outlook[:4] + ("193.70.18.144",), "TCP", 587,
                         out=(5_000, 8_000_000), inb=(1_000, 5_000)),
        "teams": _Service(teams, "UDP", 3478, out=(50_000, 30_000_000),
                          inb=(50_000, 30_000_000)),
        "dns": _Service(dns, "UDP", 53, out=small, inb=(80, 600)),
        "dot": _Service(dns[:2], "TCP", 853, out=(500, 3_000), inb=(800, 6_000)),
        "ntp": _Service(ntp, "UDP", 123, out=(76, 77), inb=(76, 77)),
        "ping": _Service(dns[:3], "ICMP", None, out=(64, 640), inb=(64, 640)),
        "ssh_ovh": _Service(ovh[:3], "TCP", 22, out=(3_000, 400_000), inb=(3_000, 2_000_000)),
        "rdp_out": _Service(ovh[3:5], "TCP", 3389, out=(50_000, 5_000_000),
                            inb=(200_000, 60_000_000)),
        "netflix": _Service(netflix, "TCP", 443, out=(20_000, 300_000),
                            inb=(50_000_000, 900_000_000)),
        "youtube": _Service(google[:20], "UDP", 443, out=(20_000, 300_000),
                            inb=(20_000_000, 500_000_000)),
        "samsung": _Service(samsung, "TCP", 443),
        "cam_cloud": _Service(hikvision, "TCP", 443, out=(30_000_000, 400_000_000),
                              inb=(20_000, 400_000)),
        "hp_cloud": _Service(hp, "TCP", 443, out=(500, 20_000), inb=(500, 20_000)),
        "sip_out": _Service(sip_trunk, "UDP", 5060, out=(500, 8_000), inb=(500, 8_000)),
        "sip_in": _Service(sip_trunk, "UDP", 5060, "IN", out=(500, 8_000), inb=(500, 8_000)),
        "synology": _Service(synology, "TCP", 443, out=(1_000, 40_000), inb=(1_000, 60_000)),
        "ubiquiti": _Service(aws[:4], "TCP", 443, out=(1_000, 20_000), inb=(1_000, 20_000)),
        "nas_in": _Service(home, "TCP", 5001, "IN", out=(1_000_000, 300_000_000),
                           inb=(20_000, 2_000_000)),
        "rdp_in": _Service(home, "TCP", 3389, "IN", out=(1_000_000, 200_000_000),
                           inb=(200_000, 20_000_000)),
        "backup": _Service(backup, "TCP", 443, out=(900_000_000, 2_600_000_000),
                           inb=(1_000_000, 20_000_000)),
    }


SERVICES = _services()

# Each toxic IP always carries the same flags (the empty tuple = toxic, not qualified).
TOXIC_IPS: dict[str, tuple[str, ...]] = {
    "91.92.248.153": ("command_center",),
    "218.92.0.107": ("bruteforce", "hcard"),
    "61.177.172.140": ("bruteforce",),
    "45.148.10.242": ("bruteforce",),
    "141.98.11.23": ("bruteforce",),
    "80.94.95.116": ("bruteforce",),
    "71.6.199.23": ("hcard",),
    "185.242.226.14": ("hcard",),
    "89.248.165.52": ("hcard",),
    "212.83.150.18": ("sip",),
    "37.49.230.12": ("sip",),
    "185.220.101.4": ("tor_node",),
    "185.220.100.252": ("tor_node",),
    "109.70.100.71": ("tor_node",),
    "194.26.29.113": ("trojan",),
    "147.45.47.90": ("trojan", "command_center"),
    "214.11.32.5": ("military",),
    "55.12.9.140": ("military",),
    "116.255.28.76": ("video",),
    "36.110.45.92": ("video",),
    "5.252.178.20": ("supply_chain_compromise",),
    "79.124.62.130": (),
    "176.111.174.85": (),
    "92.63.197.153": (),
    "103.149.87.4": (),
}
_TOX_LIST = list(TOXIC_IPS)
_TOX_INDEX = {ip: i for i, ip in enumerate(_TOX_LIST)}

# (probability per hour, toxic IPs, dir, proto, ports, device tag, occurrences, periodic)
_EVENTS_MAIN: list[tuple] = [
    (1.0, ["91.92.248.153"], "OUT", "TCP", [443], "c2", (6, 6), True),
    (0.7, ["218.92.0.107", "61.177.172.140", "45.148.10.242", "141.98.11.23", "80.94.95.116"],
     "IN", "TCP", [22, 3389], "exposed", (3, 180), False),
    (0.7, ["218.92.0.107", "61.177.172.140", "45.148.10.242", "141.98.11.23", "80.94.95.116"],
     "IN", "TCP", [22, 3389], "exposed", (3, 180), False),
    (0.35, ["71.6.199.23", "185.242.226.14", "89.248.165.52", "218.92.0.107"],
     "IN", "TCP", [23, 80, 445, 1433, 8080], "exposed", (1, 6), False),
    (0.3, ["212.83.150.18", "37.49.230.12"], "IN", "UDP", [5060], "ipbx", (1, 40), False),
    (0.2, ["185.220.101.4", "185.220.100.252", "109.70.100.71"], "OUT", "TCP", [9001, 443],
     "tor", (1, 8), False),
    (0.08, ["194.26.29.113", "147.45.47.90"], "OUT", "TCP", [8443, 443], "any", (1, 3), False),
    (0.08, ["214.11.32.5", "55.12.9.140"], "IN", "TCP", [443, 8443], "exposed", (1, 4), False),
    (0.15, ["116.255.28.76", "36.110.45.92"], "OUT", "UDP", [8000, 554], "camera", (1, 5), False),
    (0.02, ["5.252.178.20"], "OUT", "TCP", [443], "supply", (1, 2), False),
    (0.5, ["79.124.62.130", "176.111.174.85", "92.63.197.153"], "IN", "TCP",
     [21, 25, 110, 5900, 6379, 8081], "exposed", (1, 12), False),
    (0.06, ["103.149.87.4"], "OUT", "TCP", [443, 80], "any", (1, 3), False),
]
_EVENTS_SMALL: list[tuple] = [
    (0.4, ["61.177.172.140", "80.94.95.116"], "IN", "TCP", [22, 3389], "exposed", (2, 60), False),
    (0.15, ["71.6.199.23", "89.248.165.52"], "IN", "TCP", [23, 445], "exposed", (1, 4), False),
    (0.2, ["92.63.197.153"], "IN", "TCP", [5900, 8081], "exposed", (1, 5), False),
    (0.03, ["194.26.29.113"], "OUT", "TCP", [8443], "any", (1, 2), False),
]

# Sessions per busy hour, and the services each kind of device uses (weights).
_KINDS: dict[str, tuple[float, dict[str, float]]] = {
    "pc": (26, {"web_google": 30, "quic_google": 14, "web_cf": 10, "web_ms": 20, "update_ms": 2,
                "web_aws": 10, "web_akamai": 6, "http_akamai": 2, "web_ovh": 5, "web_meta": 3,
                "imap": 3, "smtp": 1, "teams": 2, "dns": 4, "dot": 1, "ntp": 0.5, "ping": 0.3}),
    "laptop": (22, {"web_google": 30, "quic_google": 16, "web_cf": 10, "web_ms": 20,
                    "web_aws": 10, "web_apple": 5, "web_akamai": 6, "imap": 3, "teams": 4,
                    "dns": 3, "ntp": 0.5}),
    "admin": (26, {"web_google": 25, "web_ms": 20, "web_aws": 10, "web_ovh": 10, "ssh_ovh": 4,
                   "rdp_out": 2, "dns": 5, "ping": 1, "imap": 3, "quic_google": 10}),
    "phone": (14, {"web_apple": 25, "push_apple": 5, "quic_google": 15, "web_meta": 10,
                   "web_cf": 5, "web_google": 10, "samsung": 4, "dns": 2, "ntp": 0.5}),
    "server": (18, {"web_ms": 20, "update_ms": 8, "dns": 20, "ntp": 5, "ping": 5, "web_aws": 5,
                    "smtp": 3, "web_ovh": 3}),
    "nas": (6, {"synology": 10, "ntp": 3, "dns": 5, "web_aws": 2}),
    "printer": (3, {"hp_cloud": 10, "ntp": 2, "dns": 2}),
    "tv": (8, {"netflix": 6, "youtube": 8, "samsung": 5, "dns": 2, "ntp": 1}),
    "camera": (5, {"cam_cloud": 10, "ntp": 2, "dns": 2}),
    "ipbx": (8, {"sip_out": 10, "sip_in": 6, "ntp": 1, "dns": 1}),
    "ap": (4, {"ubiquiti": 5, "ntp": 2, "ping": 3, "dns": 1}),
}
_ALWAYS_ON = {"server", "nas", "camera", "ipbx", "ap"}
_PROTO_RANK = {"ICMP": 0, "TCP": 1, "UDP": 2}

_OUI = {
    "Dell Inc.": "18:db:f2", "Hewlett Packard": "3c:d9:2b", "Intel Corporate": "3c:58:c2",
    "Apple, Inc.": "f0:18:98", "Samsung Electronics Co.,Ltd": "d8:e0:e1",
    "Synology Incorporated": "00:11:32", "Ubiquiti Inc": "24:5a:4c",
    "Hangzhou Hikvision Digital Technology Co.,Ltd.": "44:19:b6",
    "Xiamen Yealink Network Technology Co.,Ltd.": "80:5e:c0",
    "Brother industries, LTD.": "30:05:5c", "Microsoft Corporation": "00:15:5d",
    "LCFC(HeFei) Electronics Technology co., ltd": "54:05:db",
}
HTML_NAME = "<b>Caméra</b> <img src=x onerror=alert(1)>"
MARKDOWN_NAME = "[NAS](javascript:alert(1))"

# (ip, custom name or None, netbios or None, vendor or None (= key absent), kind, critical,
#  icon, category, tags)
_MAIN_DEVICES: list[tuple] = [
    ("192.168.1.3", "Borne Wi-Fi", None, "Ubiquiti Inc", "ap", False, "i-lucide-wifi",
     "Réseau", ""),
    ("192.168.1.5", "IPBX 3CX", "IPBX", "Xiamen Yealink Network Technology Co.,Ltd.", "ipbx",
     True, "i-lucide-phone", "Téléphonie", "ipbx"),
    ("192.168.1.10", "SRV-AD01", "SRV-AD01", "Dell Inc.", "server", True, "i-lucide-server",
     "Serveurs", "exposed supply"),
    ("192.168.1.11", "SRV-FICHIERS", "SRV-FICHIERS", "Hewlett Packard", "server", True,
     "i-lucide-server", "Serveurs", "exposed"),
    ("192.168.1.12", None, "SRV-VEEAM", "Microsoft Corporation", "server", False, None, None,
     ""),
    ("192.168.1.20", "NAS-Synology", "NAS-MARTIN", "Synology Incorporated", "nas", True,
     "i-lucide-hard-drive", "Serveurs", "backup exposed"),
    ("192.168.1.21", MARKDOWN_NAME, "NAS-REPLICA", "Synology Incorporated", "nas", False,
     "i-lucide-hard-drive", None, ""),
    ("192.168.1.30", HTML_NAME, None, "Hangzhou Hikvision Digital Technology Co.,Ltd.",
     "camera", False, "i-lucide-cctv", "Sécurité", "camera"),
    ("192.168.1.40", "Imprimante RDC", "HPLJ-RDC", "Hewlett Packard", "printer", False,
     "i-lucide-printer", "Bureautique", ""),
    ("192.168.1.41", None, "BRN30055C6A1B2", "Brother industries, LTD.", "printer", False,
     None, None, ""),
    ("192.168.1.50", "Télé salon", "TV", "Samsung Electronics Co.,Ltd", "tv", False,
     "i-lucide-monitor-smartphone", None, ""),
    ("192.168.1.101", "PC-Compta-01", "PC-COMPTA-01", "Dell Inc.", "pc", False,
     "i-lucide-monitor", "Bureautique", "any"),
    ("192.168.1.102", "PC-Compta-02", "PC-COMPTA-02", "Dell Inc.", "pc", False,
     "i-lucide-monitor", "Bureautique", "c2"),
    ("192.168.1.103", "PC-Direction", "PC-DIRECTION", "Dell Inc.", "pc", True,
     "i-lucide-monitor", "Direction", ""),
    ("192.168.1.104", "PC-Accueil", "PC-ACCUEIL", "Hewlett Packard", "pc", False,
     "i-lucide-monitor", "Bureautique", "any"),
    ("192.168.1.105", "PC-Juridique-01", "PC-JURI-01", "Dell Inc.", "pc", False,
     "i-lucide-monitor", None, ""),
    ("192.168.1.106", "PC-Juridique-02", "PC-JURI-02", "Dell Inc.", "pc", False,
     "i-lucide-monitor", None, ""),
    ("192.168.1.107", None, "PC-JURI-03", "Intel Corporate", "pc", False, None, None, ""),
    ("192.168.1.108", None, "DESKTOP-7KQ2M1B", "Intel Corporate", "pc", False, None, None, ""),
    ("192.168.1.109", "PC-Stagiaire", "PC-STAGIAIRE", "LCFC(HeFei) Electronics Technology co., ltd",
     "pc", False, "i-lucide-monitor", None, "tor"),
    ("192.168.1.110", "PC-Admin", "PC-ADMIN", "Dell Inc.", "admin", True, "i-lucide-terminal",
     "IT", ""),
    ("192.168.1.111", "PC-Secrétariat", "PC-SECRETARIAT", "Hewlett Packard", "pc", False,
     "i-lucide-monitor", "Bureautique", ""),
    ("192.168.1.112", None, "DESKTOP-Q4H8T2L", None, "pc", False, None, None, ""),
    ("10.0.0.21", "LT-Martin", "LT-MARTIN", "Intel Corporate", "laptop", True,
     "i-lucide-laptop", "Direction", ""),
    ("10.0.0.22", "LT-Dupont", "LT-DUPONT", "Intel Corporate", "laptop", False,
     "i-lucide-laptop", None, ""),
    ("10.0.0.23", None, "LT-BERNARD", "LCFC(HeFei) Electronics Technology co., ltd", "laptop",
     False, None, None, ""),
    ("10.0.0.24", "MacBook de Claire", "MacBook-Claire", "Apple, Inc.", "laptop", False,
     "i-lucide-laptop", None, ""),
    ("10.0.1.31", "iPhone de Julie", None, "Apple, Inc.", "phone", False, "i-lucide-smartphone",
     None, ""),
    ("10.0.1.32", "iPhone de Marc", None, "Apple, Inc.", "phone", False, "i-lucide-smartphone",
     None, ""),
    ("10.0.1.33", "Galaxy S23 de Sophie", None, "Samsung Electronics Co.,Ltd", "phone", False,
     "i-lucide-smartphone", None, ""),
    ("10.0.1.34", None, "Galaxy-A54", "Samsung Electronics Co.,Ltd", "phone", False, None, None,
     ""),
    ("10.0.1.35", None, None, None, "phone", False, None, None, ""),
    ("10.0.1.36", None, None, None, "phone", False, None, None, ""),
    ("10.0.1.37", None, "iPad-Accueil", "Apple, Inc.", "phone", False, None, None, ""),
    ("10.0.1.38", None, None, "Apple, Inc.", "phone", False, None, None, ""),
]
_SMALL_DEVICES: list[tuple] = [
    ("192.168.1.10", "Comptoir 1", "COMPTOIR-1", "Dell Inc.", "pc", False, "i-lucide-monitor",
     None, "any"),
    ("192.168.1.11", "Comptoir 2", "COMPTOIR-2", "Dell Inc.", "pc", False, "i-lucide-monitor",
     None, ""),
    ("192.168.1.12", None, "PREPARATOIRE", "Hewlett Packard", "pc", False, None, None, ""),
    ("192.168.1.15", "Serveur LGO", "SRV-LGO", "Dell Inc.", "server", True, "i-lucide-server",
     "Serveurs", "exposed"),
    ("192.168.1.20", "Imprimante", "BRN30055C7F01", "Brother industries, LTD.", "printer",
     False, "i-lucide-printer", None, ""),
    ("192.168.1.30", "Caméra officine", None, "Hangzhou Hikvision Digital Technology Co.,Ltd.",
     "camera", False, "i-lucide-cctv", None, "camera"),
    ("192.168.1.40", "Téléphone de Léa", None, "Samsung Electronics Co.,Ltd", "phone", False,
     "i-lucide-smartphone", None, ""),
    ("192.168.1.41", None, None, None, "phone", False, None, None, ""),
    ("192.168.1.3", None, None, "Ubiquiti Inc", "ap", False, None, None, ""),
]


def _ip_int(ip: str) -> int:
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _build_devices(seed: int, sensor_id: int, specs: list[tuple], dense_extra: int,
                   rate_factor: float = 1.0) -> list[_Device]:
    rng = random.Random(f"devices:{seed}:{sensor_id}")
    specs = list(specs)
    for i in range(dense_extra):
        # Dense mode: a larger firm, more workstations and phones on the Wi-Fi VLANs.
        kind = "pc" if i % 3 else "phone"
        ip = f"10.0.{2 + i // 200}.{10 + i % 200}"
        if kind == "pc":
            specs.append((ip, f"PC-Open-{i:03d}", f"PC-OPEN-{i:03d}", "Dell Inc.", "pc", False,
                          "i-lucide-monitor", "Open space", ""))
        else:
            specs.append((ip, None, None, None if i % 2 else "Apple, Inc.", "phone", False, None,
                          None, ""))
    devices = []
    specs.sort(key=lambda spec: _ip_int(spec[0]))
    for idx, (ip, name, netbios, vendor, kind, critical, icon, category, tags) in enumerate(specs):
        if vendor is None:
            # Randomised (locally administered) MAC: no vendor can be looked up.
            mac = "5a:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))
        else:
            mac = _OUI[vendor] + ":" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        custom = None
        if name is not None:
            created = datetime(2026, 1, 2, 9, 0, tzinfo=UTC) + timedelta(
                minutes=rng.randrange(60 * 24 * 20), microseconds=rng.randrange(10**6))
            updated = created + timedelta(days=rng.randrange(1, 60), seconds=rng.randrange(86400))
            custom = {
                "id": 1300 + sensor_id * 100 + idx, "sensor_id": sensor_id, "ip0": ip,
                "name": name, "icon": icon, "is_critical": critical, "category": category,
                "created_at": created.astimezone(ZoneInfo("Europe/Paris")).isoformat(),
                "updated_at": updated.astimezone(ZoneInfo("Europe/Paris"))
                .isoformat(timespec="milliseconds"),
            }
        rate, mix = _KINDS[kind]
        rate *= rate_factor
        names = list(mix)
        dev = _Device(idx, ip, mac, vendor, netbios, custom, kind,
                      rate * (0.6 + 0.8 * rng.random()), [SERVICES[n] for n in names],
                      [mix[n] for n in names], frozenset(tags.split()))
        dev.cum = list(accumulate(dev.weights))
        devices.append(dev)
    return devices


def _build_sites(cfg: SimulatorConfig) -> dict[int, _Site]:
    inst = _iso(cfg.installed)
    main_devices = _build_devices(cfg.seed, 54, _MAIN_DEVICES, 85 if cfg.dense else 0,
                                  1.8 if cfg.dense else 1.0)
    main = _Site(
        54, "Cabinet Martin – Paris", "Cabinet Martin Avocats – 12 rue de Rivoli, Paris",
        ZoneInfo("Europe/Paris"), "Europe/Paris", True, "CONNECTED", timedelta(0),
        main_devices,
        {"mac_address": "dc:a6:32:4e:17:a0", "public_ip": "82.64.183.51",
         "local_ip": "192.168.1.2", "installation_date": inst, "supervision": True,
         "version": "2.4.1", "end_trial": None, "hno_hours": [*range(0, 8), *range(19, 24)],
         "latitude": 48.8598, "longitude": 2.3411},
        _EVENTS_MAIN,
    )
    small = _Site(
        77, "Pharmacie du Port – Saint-Denis", "Pharmacie du Port – Saint-Denis (La Réunion)",
        ZoneInfo("Indian/Reunion"), "Indian/Reunion", False, "DISCONNECTED",
        timedelta(hours=2, minutes=10),
        _build_devices(cfg.seed, 77, _SMALL_DEVICES, 0, 0.5),
        {"mac_address": "dc:a6:32:81:0c:3e", "public_ip": "102.35.64.17",
         "local_ip": "192.168.1.2", "installation_date": inst, "supervision": False,
         "version": "2.3.7", "end_trial": None, "hno_hours": [*range(0, 8), 12, 13,
                                                              *range(19, 24)],
         "latitude": -20.8789, "longitude": 55.4481},
        _EVENTS_SMALL,
    )
    return {54: main, 77: small}


# --------------------------------------------------------------------------- helpers

# Compact row layout (one tuple per API row); only the rows of a page become dicts.
IP0, IP1, DIR, PROTO, PORT, OCC, OUT, INB, FIRST, DEV, TOX, FILT, PERIODIC, ORIG, SUM = range(15)


def _hour_str(h: int) -> str:
    return datetime.fromtimestamp(h * 3600, UTC).strftime("%Y-%m-%dT%H:00:00.000Z")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _interval(ms: int) -> dict[str, int]:
    h, rem = divmod(ms, HOUR_MS)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    out = {}
    for k, v in (("hours", h), ("minutes", m), ("seconds", s), ("milliseconds", milli)):
        if v:
            out[k] = v
    return out


def _poisson(rng: random.Random, mu: float) -> int:
    if mu <= 0:
        return 0
    if mu > 12:
        return max(0, int(rng.gauss(mu, math.sqrt(mu)) + 0.5))
    limit, k, p = math.exp(-mu), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _parse_dt(value: str) -> datetime:
    v = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        v += "T00:00:00"
    dt = datetime.fromisoformat(v.replace("z", "Z"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class _Timeout(Exception):
    """Raised by handle() for a "timeout" fault: the transport/server drops the request."""


class _HttpError(Exception):
    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _invalid(errors: list[dict]) -> _HttpError:
    return _HttpError(422, {"errors": errors})


def _err(field_: str, rule: str, message: str) -> dict:
    return {"field": field_, "rule": rule, "message": message}


@dataclass
class _Query:
    """A sorted query result: ``order`` maps sort positions to ``items`` indices.

    On the packed path ``order`` holds ``(key << shift) | index`` and ``mask``
    extracts the index; unpacking only the requested page saves a pass over the
    whole month. ``starts`` are the tie-group boundaries (unstable-ties mode).
    """

    items: list
    order: Sequence[int]
    hours: list[int] | None = None  # flux queries: the hour of each item
    mask: int | None = None
    shift: int = 0
    starts: list[int] | None = None

    def index(self, pos: int) -> int:
        return self.order[pos] if self.mask is None else self.order[pos] & self.mask

    def tie_starts(self) -> list[int]:
        if self.starts is None:
            order, shift = self.order, self.shift
            self.starts = [0] + [i for i in range(1, len(order))
                                 if order[i] >> shift != order[i - 1] >> shift]
            self.starts.append(len(order))
        return self.starts


# --------------------------------------------------------------------------- simulator


class Simulator:
    """The simulated API: ``handle()`` is the whole API; ``transport()``/``serve()`` wrap it."""

    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        if self.config.volumes_as not in ("string", "number", "mixed"):
            raise ValueError("volumes_as must be 'string', 'number' or 'mixed'")
        bad = set(self.config.fault_kinds) | set(self.config.fault_schedule.values())
        bad -= {"500", "502", "503", "truncated", "timeout"}
        if bad:
            raise ValueError(f"unknown fault kinds: {sorted(bad)}")
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._sites = _build_sites(self.config)
        self._lock = threading.RLock()
        self._hours: OrderedDict[tuple[int, int], list[tuple]] = OrderedDict()
        self._queries: OrderedDict[tuple, _Query] = OrderedDict()
        self._ipint: dict[str, int] = {d.ip: _ip_int(d.ip) for site in self._sites.values()
                                       for d in site.devices}
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._tie_rng = random.Random(f"ties:{self.config.seed}")
        self.reset_counters()

    # ----------------------------------------------------------------- counters / clock
    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self._flux_count = 0
            self._windows: dict[str, deque[float]] = {}
            self._quota_used = 0
            self._quota_month: tuple[int, int] | None = None

    def flux_request_count(self) -> int:
        return self._flux_count

    def _now(self) -> datetime:
        now = self.config.now() if self.config.now else datetime.now(UTC)
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def _site(self, sensor_id: int) -> _Site:
        try:
            return self._sites[sensor_id]
        except KeyError:
            raise KeyError(f"unknown sensor {sensor_id}") from None

    def _data_end_ms(self, site: _Site) -> int:
        """Epoch ms up to which the sensor has uploaded (floored to the minute)."""
        end = self._now() - site.lag
        ms = int(end.timestamp() * 1000)
        return ms - ms % 60_000

    # ----------------------------------------------------------------- sensors
    def sensors(self) -> list[dict]:
        with self._lock:
            return [self._sensor_obj(s) for sid, s in self._sites.items()
                    if sid not in self.config.forbidden_sensors]

    def _sensor_obj(self, site: _Site) -> dict:
        end_ms = self._data_end_ms(site)
        last = end_ms // HOUR_MS
        cyt = 0
        for h in range(last - 23, last + 1):  # the open hour and the 23 before it
            for r in self._hour_rows(site.id, h, end_ms):
                if r[TOX] >= 0:
                    cyt += 1 if r[DIR] == "IN" else 10
        m = site.meta
        return {
            "id": site.id, "type_fk": "DETOXIO", "name": site.name, "full_name": site.full_name,
            "mac_address": m["mac_address"], "public_ip": m["public_ip"],
            "local_ip": m["local_ip"], "installation_date": m["installation_date"],
            "supervision": m["supervision"], "filtering": site.filtering,
            "version": m["version"], "end_trial": m["end_trial"], "status": site.status,
            "hno_hours": list(m["hno_hours"]), "timezone": site.tzname,
            "latitude": m["latitude"], "longitude": m["longitude"], "current_cyt": cyt,
        }

    # ----------------------------------------------------------------- data
    def _full_hour(self, sensor_id: int, h: int) -> list[tuple]:
        key = (sensor_id, h)
        rows = self._hours.get(key)
        if rows is not None:
            self._hours.move_to_end(key)
            return rows
        rows = self._generate(self._sites[sensor_id], h)
        self._hours[key] = rows
        while len(self._hours) > max(1, self.config.cache_hours):
            self._hours.popitem(last=False)
        return rows

    def _generate(self, site: _Site, h: int) -> list[tuple]:
        rng = random.Random(f"{self.config.seed}:{site.id}:{h}")
        local = datetime.fromtimestamp(h * 3600, site.tz)
        wd, lh = local.weekday(), local.hour
        workday = wd < 5
        busy = workday and 8 <= lh < 19
        shoulder = workday and lh in (7, 19)
        # One entry per natural key: sessions of the same flow merge into one row.
        merged: dict[tuple, list] = {}
        rnd = rng.random
        for dev in site.devices:
            kind = dev.kind
            if kind in _ALWAYS_ON:
                f = 1.0 if busy else 0.55
            elif kind == "printer":
                f = 1.0 if busy else 0.1
            elif kind == "tv":
                f = 1.0 if busy else 0.05
            elif busy:
                f = 1.0
            elif shoulder:
                f = 0.3
            else:
                # Phones leave with their owners; a few PCs stay on overnight.
                f = 0.0 if kind == "phone" else 0.04
            n = _poisson(rng, dev.rate * f)
            if not n:
                continue
            services, cum, total, di = dev.services, dev.cum, dev.cum[-1], dev.idx
            for _ in range(n):
                svc = services[bisect_right(cum, rnd() * total)]
                ip1 = svc.ips[int(rnd() * len(svc.ips))]
                key = (di, ip1, svc.dir, svc.proto, svc.port)
                start = int(rnd() * HOUR_MS)
                lo, hi = svc.out
                x = rnd()
                out = lo + int((hi - lo) * x * x * x)
                lo, hi = svc.inb
                x = rnd()
                inb = lo + int((hi - lo) * x * x * x)
                m = merged.get(key)
                if m is None:
                    merged[key] = [1, out, inb, start, -1, False]
                else:
                    m[0] += 1
                    m[1] += out
                    m[2] += inb
                    if start < m[3]:
                        m[3] = start
            if "backup" in dev.tags and 1 <= lh <= 3:
                # Nightly backup to an OVH object store: rows over 2**31 bytes.
                svc = SERVICES["backup"]
                ip1 = svc.ips[lh - 1]
                lo, hi = svc.out
                merged[(di, ip1, "OUT", "TCP", 443)] = [
                    1 + int(rnd() * 2), lo + int((hi - lo) * rnd()) * 2,
                    svc.inb[0] + int(rnd() * svc.inb[1]), int(rnd() * 300_000), -1, False]
        self._inject_toxic(site, rng, merged)
        ipk = self._ip_key
        devs = site.devices
        keyed = []
        for (di, ip1, d, proto, port), (occ, out, inb, first, tox, periodic) in merged.items():
            filt = tox >= 0 and site.filtering and rnd() < (0.75 if d == "IN" else 0.5)
            # Canonical order (ip0, ip1, dir, protocol, port) packed in one int; devices
            # are numbered in address order, ports None (ICMP) first.
            k = ((di << 56) | (ipk(ip1) << 24) | ((d == "OUT") << 20)
                 | (_PROTO_RANK.get(proto, 3) << 17) | (0 if port is None else port + 1))
            keyed.append((k, (devs[di].ip, ip1, d, proto, port, occ, out, inb, first, di, tox,
                              filt, periodic, None, out + inb)))
        keyed.sort()
        return [r for _, r in keyed]

    def _inject_toxic(self, site: _Site, rng: random.Random, merged: dict) -> None:
        by_tag: dict[str, list[_Device]] = {}
        for dev in site.devices:
            for t in dev.tags:
                by_tag.setdefault(t, []).append(dev)
        for prob, ips, d, proto, ports, tag, (lo, hi), periodic in site.toxic_events:
            if rng.random() >= prob:
                continue
            targets = by_tag.get(tag)
            if not targets:
                continue
            dev = rng.choice(targets)
            ip1 = rng.choice(ips)
            port = rng.choice(ports)
            occ = rng.randint(lo, hi)
            tox = _TOX_INDEX[ip1]
            if periodic:
                # A beacon: 6 sessions at a fixed phase, every 10 minutes.
                first = rng.randrange(C2_PERIOD_MS)
                occ = min(occ, (HOUR_MS - 1 - first) // C2_PERIOD_MS + 1)
                out, inb = occ * rng.randint(300, 900), occ * rng.randint(200, 4_000)
            else:
                first = rng.randrange(HOUR_MS - 60_000)
                sent, answered = occ * rng.randint(60, 3_000), occ * rng.randint(0, 2_000)
                if rng.random() < 0.3:
                    answered = 0  # blocked or unanswered probes
                out, inb = (answered, sent) if d == "IN" else (sent, answered)
            key = (dev.idx, ip1, d, proto, port)
            m = merged.get(key)
            if m is None:
                merged[key] = [occ, out, inb, first, tox, periodic]
            else:
                m[0] += occ
                m[1] += out
                m[2] += inb
                m[3] = min(m[3], first)

    def _ip_key(self, ip: str) -> int:
        v = self._ipint.get(ip)
        if v is None:
            v = self._ipint[ip] = _ip_int(ip)
        return v

    def _hour_rows(self, sensor_id: int, h: int, end_ms: int | None = None) -> list[tuple]:
        """Compact rows of hour h as visible now (empty before install / after the data end)."""
        site = self._sites[sensor_id]
        if h * 3600 < math.ceil(self.config.installed.timestamp() / 3600) * 3600:
            return []
        if end_ms is None:
            end_ms = self._data_end_ms(site)
        hour_ms = h * HOUR_MS
        if hour_ms >= end_ms:
            return []
        full = self._full_hour(sensor_id, h)
        if hour_ms + HOUR_MS <= end_ms:
            return full
        return self._open_hour(sensor_id, h, full, end_ms - hour_ms)

    def _open_hour(self, sensor_id: int, h: int, full: list[tuple], cut: int) -> list[tuple]:
        key = ("open", sensor_id, h, cut)
        cached = self._queries.get(key)
        if cached is not None:
            return cached.items
        rows = []
        for r in full:
            if r[FIRST] >= cut:
                continue
            ses = [s for s in self._sessions(h, r) if s[0] < cut]
            out, inb = sum(s[2] for s in ses), sum(s[3] for s in ses)
            rows.append(r[:OCC] + (len(ses), out, inb) + r[FIRST:ORIG]
                        + ((r[OCC], r[OUT], r[INB], cut), out + inb))
        self._remember(key, _Query(rows, []))
        return rows

    def _sessions(self, h: int, r: tuple) -> list[tuple[int, int, int, int]]:
        """(start, end, out, in) offsets in ms within the hour, for the full (closed) row."""
        occ, out, inb = (r[OCC], r[OUT], r[INB]) if r[ORIG] is None else r[ORIG][:3]
        first = r[FIRST]
        rng = random.Random((h * 1_000_003 + first) * 7_919 + out * 31 + inb
                            + self.config.seed * 977)
        if r[PERIODIC]:
            starts = [first] + [first + k * C2_PERIOD_MS + rng.randrange(400)
                                for k in range(1, occ)]
        else:
            starts = [first] + sorted(first + int(rng.random() * (HOUR_MS - first))
                                      for _ in range(occ - 1))
        proto, port = r[PROTO], r[PORT]
        if proto == "ICMP" or port in (53, 123):
            durs = [rng.choice((0, 0, 1, 12, 37, 140)) for _ in starts]
        elif r[PERIODIC] or r[TOX] >= 0:
            durs = [rng.randint(80, 3_000) for _ in starts]
        elif out + inb > 200_000_000:
            durs = [rng.randint(15 * 60_000, HOUR_MS) for _ in starts]
        else:
            durs = [int(rng.expovariate(1 / 90_000)) for _ in starts]
        weights = [rng.random() + 0.05 for _ in starts]
        wsum = sum(weights)
        outs = [int(out * w / wsum) for w in weights]
        ins = [int(inb * w / wsum) for w in weights]
        outs[-1] += out - sum(outs)
        ins[-1] += inb - sum(ins)
        return [(s, min(s + d, HOUR_MS - 1), o, i)
                for s, d, o, i in zip(starts, durs, outs, ins, strict=True)]

    def _volume(self, v: int, r: tuple) -> str | int:
        mode = self.config.volumes_as
        if mode == "mixed":
            mode = "number" if (r[FIRST] + r[OUT]) % 2 else "string"
        return v if mode == "number" else str(v)

    def _materialise(self, site: _Site, h: int, r: tuple) -> dict:
        ses = self._sessions(h, r)
        if r[ORIG] is not None:
            cut = r[ORIG][3]
            ses = [(s, min(e, cut), o, i) for s, e, o, i in ses if s < cut]
        hs = _hour_str(h)
        prefix = hs[:14]

        def ts(off: int) -> str:
            return f"{prefix}{off // 60_000:02d}:{off // 1000 % 60:02d}.{off % 1000:03d}Z"

        dev = site.devices[r[DEV]]
        flags = TOXIC_IPS[_TOX_LIST[r[TOX]]] if r[TOX] >= 0 else ()
        row = {
            "start_of_hour": hs, "ip0": r[IP0], "ip1": r[IP1], "dir": r[DIR],
            "protocol": r[PROTO], "port": r[PORT], "occurrences": r[OCC],
            "duration": _interval(sum(e - s for s, e, _, _ in ses)),
            "timestamps": [[ts(s), ts(e)] for s, e, _, _ in ses],
            "last_netbios": dev.netbios,
            "netbios_list": [dev.netbios] if dev.netbios else [],
            "last_mac_address": dev.mac, "mac_address_list": [dev.mac],
            "out_flux": self._volume(r[OUT], r), "in_flux": self._volume(r[INB], r),
            "filtered": r[FILT], "toxic": r[TOX] >= 0,
        }
        for f in THREAT_FLAGS:
            row[f] = f in flags
        row["custom_ip0"] = dict(dev.custom) if dev.custom else None
        if dev.vendor is not None:
            row["vendor"] = dev.vendor
        return row

    @staticmethod
    def _hour_of(dt: datetime) -> int:
        return int(dt.astimezone(UTC).timestamp()) // 3600

    def rows_for_hour(self, sensor_id: int, hour: datetime) -> list[dict]:
        """The API rows of one hour, in the canonical (stable tie-break) order."""
        with self._lock:
            site = self._site(sensor_id)
            h = self._hour_of(hour)
            return [self._materialise(site, h, r) for r in self._hour_rows(sensor_id, h)]

    def _hour_range(self, start: datetime, end: datetime, inclusive: bool = False) -> range:
        s = math.ceil(start.timestamp() / 3600)
        e_raw = end.timestamp() / 3600
        e = math.floor(e_raw) + 1 if inclusive else math.ceil(e_raw)
        return range(s, max(s, e))

    def rows(self, sensor_id: int, start: datetime, end: datetime) -> list[dict]:
        """Ground truth: every row with start_of_hour in [start, end)."""
        with self._lock:
            site = self._site(sensor_id)
            return [self._materialise(site, h, r) for h in self._hour_range(start, end)
                    for r in self._hour_rows(sensor_id, h)]

    def count_rows(self, sensor_id: int, start: datetime, end: datetime) -> int:
        """Cheap count of the rows with start_of_hour in [start, end) (no dicts built)."""
        with self._lock:
            self._site(sensor_id)
            return sum(len(self._hour_rows(sensor_id, h)) for h in self._hour_range(start, end))

    # ----------------------------------------------------------------- HTTP-level API
    def handle(self, method: str, path: str, params: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body). Raises ``_Timeout`` for that fault."""
        path = urlsplit(path).path
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX):]
        path = "/" + path.strip("/")
        params = dict(params)
        headers = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append((path, params))
            is_flux = re.fullmatch(r"/sensors/[^/]+/flux", path) is not None
            if is_flux:
                self._flux_count += 1
            try:
                status, extra, payload = self._dispatch(method, path, params, headers, is_flux)
            except _HttpError as exc:
                status, extra, payload = exc.status, exc.headers, exc.body
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            if extra.pop("x-sim-truncate", None):
                body = body[: len(body) // 2]
            return status, {"content-type": "application/json; charset=utf-8", **extra}, body

    def _dispatch(self, method: str, path: str, params: dict[str, str],
                  headers: dict[str, str], is_flux: bool) -> tuple[int, dict, object]:
        key = self._authenticate(headers)
        self._check_limits(key)
        parts = path.strip("/").split("/")
        if parts[0] != "sensors" or len(parts) > 3:
            raise _HttpError(404, {"message": f"Cannot {method} {API_PREFIX}{path}"})
        if method.upper() != "GET":
            raise _HttpError(405, {"message": f"Method {method} not allowed"})
        if len(parts) == 1:
            return 200, {}, self.sensors()
        try:
            sid = int(parts[1])
        except ValueError:
            raise _HttpError(404, {"message": f"Sensor {parts[1]!r} not found"}) from None
        if sid in self.config.forbidden_sensors:
            raise _HttpError(403, {"message": "You are not allowed to access this sensor"})
        if sid not in self._sites:
            raise _HttpError(404, {"message": f"Sensor {sid} not found"})
        site = self._sites[sid]
        if len(parts) == 2:
            return 200, {}, self._sensor_obj(site)
        sub = parts[2]
        if sub not in ("flux", "flux-hour-ip0", "flux-hour-sensor"):
            raise _HttpError(404, {"message": f"Cannot {method} {API_PREFIX}{path}"})
        extra: dict[str, str] = {}
        if is_flux:
            kind = self._draw_fault()
            if kind == "timeout":
                raise _Timeout()
            if kind in ("500", "502", "503"):
                messages = {"500": "Internal server error", "502": "Bad gateway",
                            "503": "Service unavailable"}
                raise _HttpError(int(kind), {"message": messages[kind]})
            if kind == "truncated":
                extra["x-sim-truncate"] = "1"
        if sub == "flux":
            return 200, extra, self._flux(site, params)
        return 200, extra, self._stats(site, params, per_ip0=sub == "flux-hour-ip0")

    def _authenticate(self, headers: dict[str, str]) -> str:
        value = headers.get("authorization", "")
        scheme, _, key = value.partition(" ")
        key = key.strip()
        if scheme != "Api-Key" or not key:
            raise _HttpError(401, {"message": "Missing or invalid API key: send the header "
                                              "'Authorization: Api-Key <key>'"})
        if self.config.api_key is not None and key != self.config.api_key:
            raise _HttpError(401, {"message": "Invalid API key"})
        return key

    def _check_limits(self, key: str) -> None:
        now = self._now()
        ts = now.timestamp()
        cfg = self.config
        if cfg.monthly_quota is not None:
            month = (now.year, now.month)
            if month != self._quota_month:
                self._quota_month, self._quota_used = month, 0
            if self._quota_used >= cfg.monthly_quota:
                y, m = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
                nxt = datetime(y, m, 1, tzinfo=UTC)
                wait = max(1, math.ceil((nxt - now).total_seconds()))
                raise _HttpError(429, {"message": f"Monthly request quota exhausted "
                                                  f"({cfg.monthly_quota} requests); it renews on "
                                                  f"{nxt:%Y-%m-%dT%H:%M:%SZ}"},
                                 {"retry-after": str(wait)})
        if cfg.rate_limit_per_min is not None:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= ts - 60:
                window.popleft()
            if len(window) >= cfg.rate_limit_per_min:
                wait = max(1, math.ceil(window[0] + 60 - ts))
                raise _HttpError(429, {"message": f"Too many requests: at most "
                                                  f"{cfg.rate_limit_per_min} requests per minute"},
                                 {"retry-after": str(wait),
                                  "x-ratelimit-limit": str(cfg.rate_limit_per_min),
                                  "x-ratelimit-remaining": "0"})
            window.append(ts)
        if cfg.monthly_quota is not None:
            self._quota_used += 1

    def _draw_fault(self) -> str | None:
        cfg = self.config
        kind = cfg.fault_schedule.get(self._flux_count)
        if kind is None and cfg.fault_rate > 0 and cfg.fault_kinds:
            if self._fault_rng.random() < cfg.fault_rate:
                kind = self._fault_rng.choice(cfg.fault_kinds)
        return kind

    # ----------------------------------------------------------------- params
    @staticmethod
    def _bool(params: dict, name: str, errors: list) -> bool:
        v = params.get(name)
        if v is None or v == "":
            return False
        low = v.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        errors.append(_err(name, "boolean", f"The {name} field must be a boolean"))
        return False

    @staticmethod
    def _int(params: dict, name: str, default: int, errors: list, lo: int = 1,
             hi: int | None = None) -> int:
        v = params.get(name)
        if v is None or v == "":
            return default
        try:
            n = int(v.strip())
        except ValueError:
            errors.append(_err(name, "number", f"The {name} field must be an integer"))
            return default
        if n < lo or (hi is not None and n > hi):
            errors.append(_err(name, "range", f"The {name} field must be between {lo} and "
                                              f"{hi if hi is not None else 'infinity'}"))
            return default
        return n

    def _window(self, params: dict, errors: list) -> tuple[datetime, datetime] | None:
        out = []
        for name in ("from", "to"):
            v = params.get(name)
            if not v:
                errors.append(_err(name, "required", f"The {name} field is required"))
                continue
            try:
                out.append(_parse_dt(v))
            except ValueError:
                errors.append(_err(name, "date", f"The {name} field must be an ISO 8601 date"))
        if len(out) == 2 and out[0] > out[1]:
            errors.append(_err("to", "afterOrEqual", "The to field must be after the from field"))
        return (out[0], out[1]) if len(out) == 2 else None

    def _sort(self, params: dict, allowed: tuple[str, ...], default: str, errors: list
              ) -> tuple[str, bool]:
        sort_by = params.get("sort_by") or default
        if sort_by not in allowed:
            errors.append(_err("sort_by", "enum", "The sort_by field must be one of: "
                                                  + ", ".join(allowed)))
        return sort_by, self._bool(params, "sort_desc", errors)

    # ----------------------------------------------------------------- flux
    _FLUX_SORTS = ("ip0", "ip1", "startOfHour", "sumFlux", "dir", "protocol", "port")

    @staticmethod
    def _ip(params: dict, name: str, errors: list) -> str | None:
        try:
            return str(ipaddress.ip_address(params[name].strip()))
        except ValueError:
            errors.append(_err(name, "ip", f"The {name} field must be an IP address"))
            return None

    def _paging(self, site: _Site, params: dict, window, errors: list
                ) -> tuple[int, int, range, int]:
        """per_page, page, the hours asked for and the data end; raises 422 on any error."""
        per_page = self._int(params, "per_page", 100, errors)
        page = self._int(params, "page", 1, errors)
        if errors:
            raise _invalid(errors)
        assert window is not None
        hours = self._hour_range(*window, inclusive=self.config.inclusive_to)
        return per_page, page, hours, self._data_end_ms(site)

    def _flux(self, site: _Site, params: dict[str, str]) -> dict:
        errors: list[dict] = []
        window = self._window(params, errors)
        filters: dict[str, object] = {}
        for name in ("ip0", "ip1"):
            if params.get(name):
                filters[name] = self._ip(params, name, errors)
        if params.get("protocol"):
            filters["protocol"] = params["protocol"].strip().upper()
        if params.get("port"):
            filters["port"] = self._int(params, "port", 0, errors, 0, 65535)
        if params.get("mac_address"):
            filters["mac"] = params["mac_address"].strip().lower()
        for name in ("only_toxic", "only_in", "only_out"):
            if self._bool(params, name, errors):
                filters[name] = True
        sort_by, desc = self._sort(params, self._FLUX_SORTS, "startOfHour", errors)
        per_page, page, hours, end_ms = self._paging(site, params, window, errors)
        open_h = end_ms // HOUR_MS
        qkey = ("flux", site.id, hours.start, hours.stop, tuple(sorted(filters.items())),
                sort_by, desc, end_ms if open_h in hours else min(hours.stop, open_h))
        q = self._queries.get(qkey)
        if q is None:
            q = self._flux_query(site, hours, end_ms, filters, sort_by, desc)
            self._remember(qkey, q)
        else:
            self._queries.move_to_end(qkey)
        meta, idx = self._page(q, page, per_page)
        assert q.hours is not None
        return {"meta": meta, "data": [self._materialise(site, q.hours[i], q.items[i])
                                       for i in idx]}

    def _flux_query(self, site: _Site, hours: range, end_ms: int, f: dict, sort_by: str,
                    desc: bool) -> _Query:
        mac_devs = None
        if "mac" in f:
            mac_devs = {d.idx for d in site.devices if d.mac == f["mac"]}
        items: list[tuple] = []
        item_hours: list[int] = []
        for h in hours:
            rows = self._hour_rows(site.id, h, end_ms)
            if f:
                rows = [r for r in rows if (
                    ("ip0" not in f or r[IP0] == f["ip0"])
                    and ("ip1" not in f or r[IP1] == f["ip1"])
                    and ("protocol" not in f or r[PROTO] == f["protocol"])
                    and ("port" not in f or r[PORT] == f["port"])
                    and (mac_devs is None or r[DEV] in mac_devs)
                    and ("only_toxic" not in f or r[TOX] >= 0)
                    and ("only_in" not in f or r[DIR] == "IN")
                    and ("only_out" not in f or r[DIR] == "OUT"))]
            items.extend(rows)
            item_hours.extend([h] * len(rows))
        ipd = self._ipint  # generation already mapped every address of every row
        if sort_by == "startOfHour":
            keys = item_hours
        elif sort_by == "ip0":
            keys = [ipd[r[IP0]] for r in items]
        elif sort_by == "ip1":
            keys = [ipd[r[IP1]] for r in items]
        elif sort_by == "sumFlux":
            keys = [r[SUM] for r in items]
        elif sort_by == "port":
            # Postgres puts NULL last ascending and first descending.
            keys = [65_536 if r[PORT] is None else r[PORT] for r in items]
        else:
            col = DIR if sort_by == "dir" else PROTO
            keys = [r[col] for r in items]
        # sumFlux is nearly unique per row: skip the distinct-key census.
        return self._sorted(items, keys, desc, item_hours, few_keys=sort_by != "sumFlux")

    @staticmethod
    def _sorted(items: list, keys: list, desc: bool, hours: list[int] | None = None,
                few_keys: bool = True) -> _Query:
        """Order items by keys (stable: ties keep the canonical order, in both directions)."""
        n = len(items)
        distinct = set(keys) if few_keys else ()
        if few_keys and len(distinct) <= 4096:
            # Few distinct keys (hour, address, dir, port...): a bucket sort is linear.
            buckets: dict = {}
            for i, k in enumerate(keys):
                b = buckets.get(k)
                if b is None:
                    buckets[k] = [i]
                else:
                    b.append(i)
            order: list[int] = []
            starts = []
            for k in sorted(distinct, reverse=desc):
                starts.append(len(order))
                order.extend(buckets[k])
            starts.append(n)
            return _Query(items, array("q", order), hours, starts=starts)
        # Packing (key, index) into one int lets list.sort compare ints with no key
        # function, markedly faster than sorted(range(n), key=...) on a dense month.
        shift = max(1, n.bit_length())
        if desc:
            packed = [(-k << shift) | i for i, k in enumerate(keys)]
        else:
            packed = [(k << shift) | i for i, k in enumerate(keys)]
        packed.sort()
        # An int64 array holds a dense month's order in 9 MB instead of ~40 MB of ints.
        return _Query(items, array("q", packed), hours, mask=(1 << shift) - 1, shift=shift)

    def _remember(self, key: tuple, q: _Query) -> None:
        self._queries[key] = q
        while len(self._queries) > 6:  # a dense-month query holds ~30 MB of references
            self._queries.popitem(last=False)

    def _page(self, q: _Query, page: int, per_page: int) -> tuple[dict, list[int]]:
        per_page = min(per_page, max(1, self.config.max_per_page))
        total = len(q.order)
        last = max(1, math.ceil(total / per_page))
        if page > last:
            raise _invalid([_err("page", "range", f"The page must be between 1 and {last}")])
        lo, hi = (page - 1) * per_page, min(total, page * per_page)
        if not self.config.unstable_ties:
            idx = list(q.order[lo:hi]) if q.mask is None else [v & q.mask
                                                                for v in q.order[lo:hi]]
        else:
            idx = self._unstable_slice(q, lo, hi)
        meta = {"total": total, "per_page": per_page, "current_page": page, "last_page": last,
                "first_page": 1}
        if self.config.meta_urls:
            # Lucid's paginator without a base URL: relative and carrying only the page.
            meta.update({
                "first_page_url": "/?page=1", "last_page_url": f"/?page={last}",
                "next_page_url": f"/?page={page + 1}" if page < last else None,
                "previous_page_url": f"/?page={page - 1}" if page > 1 else None,
            })
        return meta, idx

    def _unstable_slice(self, q: _Query, lo: int, hi: int) -> list[int]:
        """Positions [lo, hi) of an order where every tie group gets a fresh permutation.

        Only the tie groups that overlap the page are drawn: a k-sample of a group
        is exactly the k positions of a uniform permutation, so huge groups (sort
        by dir: half the month) cost O(page), not O(group).
        """
        starts, rng = q.tie_starts(), self._tie_rng
        out: list[int] = []
        pos = lo
        while pos < hi:
            g = bisect_right(starts, pos) - 1
            g0, g1 = starts[g], starts[g + 1]
            end = min(hi, g1)
            if g1 - g0 == 1:
                out.append(q.index(pos))
            else:
                out.extend(q.index(i) for i in rng.sample(range(g0, g1), end - pos))
            pos = end
        return out

    # ----------------------------------------------------------------- hourly statistics
    def _stats(self, site: _Site, params: dict[str, str], per_ip0: bool) -> dict:
        errors: list[dict] = []
        window = self._window(params, errors)
        ip0 = self._ip(params, "ip0", errors) if per_ip0 and params.get("ip0") else None
        allowed = ("ip0", "utc_hour") if per_ip0 else ("utc_hour",)
        sort_by, desc = self._sort(params, allowed, "utc_hour", errors)
        per_page, page, hours, end_ms = self._paging(site, params, window, errors)
        qkey = ("stats", site.id, per_ip0, hours.start, hours.stop, ip0, sort_by, desc, end_ms)
        q = self._queries.get(qkey)
        if q is None:
            groups: dict[tuple, list[int]] = {}
            for h in hours:
                for r in self._hour_rows(site.id, h, end_ms):
                    if ip0 is not None and r[IP0] != ip0:
                        continue
                    g = groups.get((h, r[IP0] if per_ip0 else ""))
                    if g is None:
                        g = groups[(h, r[IP0] if per_ip0 else "")] = [0, 0, 0, 0, 0]
                    g[0] += r[INB]
                    g[1] += r[OUT]
                    if r[TOX] >= 0:
                        g[2 if r[DIR] == "IN" else 3] += 1
                    g[4] += 1
            items = sorted(groups.items(), key=lambda kv: (kv[0][0], self._ip_key(kv[0][1])
                                                             if kv[0][1] else 0))
            if sort_by == "ip0":
                keys = [self._ip_key(k[1]) for k, _ in items]
            else:
                keys = [k[0] for k, _ in items]
            q = self._sorted(items, keys, desc)
            self._remember(qkey, q)
        meta, idx = self._page(q, page, per_page)
        data = []
        for i in idx:
            (h, ip), (inb, out, tin, tout, count) = q.items[i]
            item: dict[str, object] = {"utc_hour": _hour_str(h)}
            if per_ip0:
                item["ip0"] = ip
            fake = (0, 0, 0, 0, 0, 0, out, inb, h)
            item.update({"in_flux": self._volume(inb, fake), "out_flux": self._volume(out, fake),
                         "in_toxic_flux": tin, "out_toxic_flux": tout,
                         "toxic_count": tin + tout, "count": count, "cyt": tin + 10 * tout})
            data.append(item)
        return {"meta": meta, "data": data}

    # ----------------------------------------------------------------- transports
    def transport(self) -> httpx.BaseTransport:
        """An ``httpx.MockTransport`` answering through ``handle()`` (sync clients)."""

        def handler(request: httpx.Request) -> httpx.Response:
            params: dict[str, str] = {}
            for k, v in request.url.params.multi_items():
                params.setdefault(k, v)
            if self.config.latency_s > 0 and self.config.sleep is not None:
                self.config.sleep(self.config.latency_s)
            try:
                status, headers, body = self.handle(request.method, request.url.path, params,
                                                    dict(request.headers))
            except _Timeout:
                raise httpx.ReadTimeout("simulated timeout", request=request) from None
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handler)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve the API over real HTTP in a daemon thread (port 0 = a free port)."""
        return SimulatorServer(self, host, port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    simulator: Simulator

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        params: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            params.setdefault(k, v)
        sim = self.simulator
        if sim.config.latency_s > 0:
            time.sleep(sim.config.latency_s)
        try:
            status, headers, body = sim.handle(self.command, parts.path, params,
                                               dict(self.headers.items()))
        except _Timeout:
            # Drop the connection without an answer; the client sees a protocol error.
            self.close_connection = True
            return
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class SimulatorServer:
    """A running HTTP server for a Simulator; ``url`` is the base URL including /api/v1."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        handler = type("SimHandler", (_Handler,), {"simulator": simulator})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}{API_PREFIX}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``simulate``: serve the simulated API until Ctrl-C or SIGTERM."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["simulate"]:
        args_in = args_in[1:]
    p = argparse.ArgumentParser(prog="flux_dashboard simulate",
                                description="Serve a simulated Serenicity Control API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--api-key", default=None)
    p.add_argument("--max-per-page", type=int, default=1000)
    p.add_argument("--rate-limit", type=int, default=100, help="requests/min; 0 = unlimited")
    p.add_argument("--unstable-ties", action="store_true")
    p.add_argument("--inclusive-to", action="store_true")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    args = p.parse_args(args_in)
    cfg = SimulatorConfig(seed=args.seed, dense=args.dense, api_key=args.api_key,
                          max_per_page=args.max_per_page,
                          rate_limit_per_min=args.rate_limit or None,
                          unstable_ties=args.unstable_ties, inclusive_to=args.inclusive_to,
                          latency_s=args.latency_ms / 1000, fault_rate=args.fault_rate)
    server = Simulator(cfg).serve(args.host, args.port)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(server.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC (handy for tests and benchmarks)."""
    days = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, start + timedelta(days=days)


if __name__ == "__main__":
    raise SystemExit(main())
