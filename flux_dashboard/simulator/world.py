"""Who is on the simulated network: sites, devices, the services they use, the threats.

This module owns the static world the traffic is drawn from: the two sites
(a busy Paris law office and a small, disconnected pharmacy in La Réunion),
their devices (addresses, MACs, vendors, user-given names; with
``hostile_names``, two of them are named ``HTML_NAME`` and ``MARKDOWN_NAME``
instead, and nothing else changes), the Internet services each
kind of device talks to with their volume ranges, the busy-hour session rates,
and the toxic IPs with their fixed threat flags (the small site's per-hour
probabilities; the main site's toxic rows are planned day by day in ``story``).
Everything is built from fixed or seed-derived ``random.Random`` instances, so
the world is identical for a given seed; nothing here depends on the clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from flux_dashboard.simulator.config import SimulatorConfig

THREAT_FLAGS = ("bruteforce", "command_center", "hcard", "military", "tor_node", "trojan",
                "sip", "supply_chain_compromise", "video")


@dataclass(frozen=True)
class Service:
    ips: tuple[str, ...]
    proto: str
    port: int | None
    dir: str = "OUT"
    out: tuple[int, int] = (500, 40_000)
    inb: tuple[int, int] = (2_000, 1_500_000)


@dataclass
class Device:
    idx: int
    ip: str
    mac: str
    vendor: str | None
    netbios: str | None
    custom: dict | None
    kind: str
    rate: float
    services: list[Service]
    weights: list[float]
    tags: frozenset[str] = frozenset()
    cum: list[float] = field(default_factory=list)


@dataclass
class Site:
    id: int
    name: str
    full_name: str
    tz: ZoneInfo
    tzname: str
    filtering: bool
    status: str
    lag: timedelta  # how far behind now() the data stops (a disconnected sensor)
    devices: list[Device]
    meta: dict
    toxic_events: list[tuple]
    planned: bool = False  # toxic rows from story.py (ordinary days and the incident)
    # A bad night: epoch hours [start, end) with ``burst_events`` on top of the usual.
    burst: tuple[int, int] | None = None
    burst_events: list[tuple] = field(default_factory=list)


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


def _services() -> dict[str, Service]:
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
        "web_google": Service(google, "TCP", 443),
        "quic_google": Service(google, "UDP", 443, out=(1_000, 90_000), inb=(5_000, 6_000_000)),
        "web_cf": Service(cloudflare, "TCP", 443),
        "web_ms": Service(microsoft, "TCP", 443),
        "update_ms": Service(microsoft[:10], "TCP", 80, out=(2_000, 30_000),
                              inb=(1_000_000, 600_000_000)),
        "web_aws": Service(aws, "TCP", 443),
        "web_akamai": Service(akamai, "TCP", 443),
        "http_akamai": Service(akamai[:12], "TCP", 80, inb=(5_000, 4_000_000)),
        "web_ovh": Service(ovh, "TCP", 443),
        "web_meta": Service(meta, "TCP", 443),
        "web_apple": Service(apple, "TCP", 443),
        "push_apple": Service(apple[:8], "TCP", 5223, out=(200, 3_000), inb=(200, 8_000)),
        "imap": Service(outlook, "TCP", 993, out=(1_000, 60_000), inb=(5_000, 3_000_000)),
        "smtp": Service(outlook[:4] + ("193.70.18.144",), "TCP", 587,
                         out=(5_000, 8_000_000), inb=(1_000, 5_000)),
        "teams": Service(teams, "UDP", 3478, out=(50_000, 30_000_000),
                          inb=(50_000, 30_000_000)),
        "dns": Service(dns, "UDP", 53, out=small, inb=(80, 600)),
        "dot": Service(dns[:2], "TCP", 853, out=(500, 3_000), inb=(800, 6_000)),
        "ntp": Service(ntp, "UDP", 123, out=(76, 77), inb=(76, 77)),
        "ping": Service(dns[:3], "ICMP", None, out=(64, 640), inb=(64, 640)),
        "ssh_ovh": Service(ovh[:3], "TCP", 22, out=(3_000, 400_000), inb=(3_000, 2_000_000)),
        "rdp_out": Service(ovh[3:5], "TCP", 3389, out=(50_000, 5_000_000),
                            inb=(200_000, 60_000_000)),
        "netflix": Service(netflix, "TCP", 443, out=(20_000, 300_000),
                            inb=(50_000_000, 900_000_000)),
        "youtube": Service(google[:20], "UDP", 443, out=(20_000, 300_000),
                            inb=(20_000_000, 500_000_000)),
        "samsung": Service(samsung, "TCP", 443),
        "cam_cloud": Service(hikvision, "TCP", 443, out=(30_000_000, 400_000_000),
                              inb=(20_000, 400_000)),
        "hp_cloud": Service(hp, "TCP", 443, out=(500, 20_000), inb=(500, 20_000)),
        "sip_out": Service(sip_trunk, "UDP", 5060, out=(500, 8_000), inb=(500, 8_000)),
        "sip_in": Service(sip_trunk, "UDP", 5060, "IN", out=(500, 8_000), inb=(500, 8_000)),
        "synology": Service(synology, "TCP", 443, out=(1_000, 40_000), inb=(1_000, 60_000)),
        "ubiquiti": Service(aws[:4], "TCP", 443, out=(1_000, 20_000), inb=(1_000, 20_000)),
        "nas_in": Service(home, "TCP", 5001, "IN", out=(1_000_000, 300_000_000),
                           inb=(20_000, 2_000_000)),
        "rdp_in": Service(home, "TCP", 3389, "IN", out=(1_000_000, 200_000_000),
                           inb=(200_000, 20_000_000)),
        "backup": Service(backup, "TCP", 443, out=(900_000_000, 2_600_000_000),
                           inb=(1_000_000, 20_000_000)),
    }


SERVICES = _services()

# Each toxic IP always carries the same flags (the empty tuple = toxic, not qualified).
TOXIC_IPS: dict[str, tuple[str, ...]] = {
    "176.123.8.71": ("command_center",),  # the demo story's C2 (see story.py)
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
TOX_LIST = list(TOXIC_IPS)
TOX_INDEX = {ip: i for i, ip in enumerate(TOX_LIST)}

# Hourly toxic events of the small site: (probability per hour, toxic IPs, dir, proto,
# ports, device tag, occurrences, periodic). The main site's come from story.py.
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
ALWAYS_ON = {"server", "nas", "camera", "ipbx", "ap"}
PROTO_RANK = {"ICMP": 0, "TCP": 1, "UDP": 2}

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
# The devices of the main site named with markup when ``hostile_names`` is on (the
# escaping tests); a customer's demo shows the names an office would give them.
HOSTILE_NAMES = {"192.168.1.30": HTML_NAME, "192.168.1.21": MARKDOWN_NAME}

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
    ("192.168.1.21", "NAS-Réplique", "NAS-REPLICA", "Synology Incorporated", "nas", False,
     "i-lucide-hard-drive", None, ""),
    ("192.168.1.30", "Caméra entrée", None, "Hangzhou Hikvision Digital Technology Co.,Ltd.",
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


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def ip_int(ip: str) -> int:
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _build_devices(seed: int, sensor_id: int, specs: list[tuple], dense_extra: int,
                   rate_factor: float = 1.0) -> list[Device]:
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
    specs.sort(key=lambda spec: ip_int(spec[0]))
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
        dev = Device(idx, ip, mac, vendor, netbios, custom, kind,
                      rate * (0.6 + 0.8 * rng.random()), [SERVICES[n] for n in names],
                      [mix[n] for n in names], frozenset(tags.split()))
        dev.cum = list(accumulate(dev.weights))
        devices.append(dev)
    return devices


def build_sites(cfg: SimulatorConfig) -> dict[int, Site]:
    inst = _iso(cfg.installed)
    specs = _MAIN_DEVICES
    if cfg.hostile_names:
        specs = [(ip, HOSTILE_NAMES.get(ip, name), *rest) for ip, name, *rest in specs]
    main_devices = _build_devices(cfg.seed, 54, specs, 85 if cfg.dense else 0,
                                  1.8 if cfg.dense else 1.0)
    main = Site(
        54, "Cabinet Martin – Paris", "Cabinet Martin Avocats – 12 rue de Rivoli, Paris",
        ZoneInfo("Europe/Paris"), "Europe/Paris", True, "CONNECTED", timedelta(0),
        main_devices,
        {"mac_address": "dc:a6:32:4e:17:a0", "public_ip": "82.64.183.51",
         "local_ip": "192.168.1.2", "installation_date": inst, "supervision": True,
         "version": "2.4.1", "end_trial": None, "hno_hours": [*range(0, 8), *range(19, 24)],
         "latitude": 48.8598, "longitude": 2.3411},
        [], planned=True,
    )
    small = Site(
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
    sites = {54: main, 77: small}
    if cfg.fleet:
        sites.update(build_fleet(cfg, inst))
    return sites


# The demo's fleet: (id, short name, full name, zone, size factor, weather factor, role).
# Weather scales the small site's toxic events (0: a clear month). Role "silent": no
# data since yesterday 15:00 (local); "bad night": command-and-control traffic from
# 01:00 to 05:00 last night.
FLEET: list[tuple] = [
    (101, "Boulangerie Dupuis – Lyon", "Boulangerie Dupuis – 3 place Bellecour, Lyon",
     "Europe/Paris", 0.3, 0.05, ""),
    (102, "Cabinet dentaire Morel – Nantes", "Cabinet dentaire Morel – Nantes",
     "Europe/Paris", 0.4, 0.15, ""),
    (103, "Garage Leroy – Lille", "Garage Leroy & Fils – Lille", "Europe/Paris", 0.5, 0.6,
     ""),
    (104, "Agence Blanc Immobilier – Bordeaux", "Agence Blanc Immobilier – Bordeaux",
     "Europe/Paris", 0.4, 0.02, ""),
    (105, "Étude Roux – Bruxelles", "Étude notariale Roux – Bruxelles", "Europe/Brussels",
     0.5, 0.1, "bad night"),
    (106, "Pharmacie Centrale – Fort-de-France", "Pharmacie Centrale – Fort-de-France",
     "America/Martinique", 0.4, 0.2, ""),
    (107, "Faure Architectes – Nice", "Cabinet Faure Architectes – Nice", "Europe/Paris",
     0.5, 1.0, ""),
    (108, "Clinique vétérinaire Girard – Rennes", "Clinique vétérinaire Girard – Rennes",
     "Europe/Paris", 0.3, 0.15, "silent"),
    (109, "Librairie Bonnet – Genève", "Librairie Bonnet – Genève", "Europe/Zurich", 0.3,
     0.0, ""),
    (110, "Fiduciaire Mercier – Luxembourg", "Fiduciaire Mercier – Luxembourg",
     "Europe/Luxembourg", 0.5, 0.3, ""),
]
_BAD_NIGHT: list[tuple] = [
    (0.95, ["91.92.248.153"], "OUT", "TCP", [443], "any", (2, 6), False),
    (0.95, ["147.45.47.90"], "OUT", "TCP", [8443], "any", (1, 4), False),
    (0.9, ["194.26.29.113"], "OUT", "TCP", [8443], "any", (1, 3), False),
    (0.9, ["185.220.101.4"], "OUT", "TCP", [9001], "any", (1, 3), False),
]


def build_fleet(cfg: SimulatorConfig, installed: str) -> dict[int, Site]:
    """The fleet's sites, their silence and bad night placed against the simulator's
    clock at construction (so they stay "yesterday" and "last night" for its life)."""
    from flux_dashboard import clock

    now = cfg.now() if cfg.now else clock.real()
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    out = {}
    for sid, short, full, tzname, size, weather, role in FLEET:
        zone = ZoneInfo(tzname)
        rng = random.Random(f"fleet:{cfg.seed}:{sid}")
        local = now.astimezone(zone)
        lag, status, burst = timedelta(0), "CONNECTED", None
        if role == "silent":
            since = datetime.combine(local.date() - timedelta(days=1), time(15, 0),
                                     tzinfo=zone)
            lag, status = now - since, "DISCONNECTED"
        if role == "bad night":
            night = local.date() if local.hour >= 5 else local.date() - timedelta(days=1)
            a = datetime.combine(night, time(1, 0), tzinfo=zone)
            b = datetime.combine(night, time(5, 0), tzinfo=zone)
            burst = (int(a.timestamp()) // 3600, int(b.timestamp()) // 3600)
        events = [(min(1.0, p * weather), ips, d, proto, ports, tag, occ, periodic)
                  for p, ips, d, proto, ports, tag, occ, periodic in _EVENTS_SMALL]
        out[sid] = Site(
            sid, short, full, zone, tzname, rng.random() < 0.5, status, lag,
            _build_devices(cfg.seed, sid, _SMALL_DEVICES, 0, size),
            {"mac_address": "dc:a6:32:" + ":".join(f"{rng.randrange(256):02x}"
                                                   for _ in range(3)),
             "public_ip": f"{rng.randrange(80, 90)}.{rng.randrange(1, 250)}."
                          f"{rng.randrange(1, 250)}.{rng.randrange(2, 250)}",
             "local_ip": "192.168.1.2", "installation_date": installed,
             "supervision": rng.random() < 0.5, "version": "2.4.1", "end_trial": None,
             "hno_hours": [*range(0, 8), *range(19, 24)],
             "latitude": None, "longitude": None},
            events, burst=burst, burst_events=_BAD_NIGHT if burst else [])
    return out
