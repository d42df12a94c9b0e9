"""The demo's story: ordinary days, and one planted incident the analyses must find.

This module owns the toxic rows of the main sensor (54), day by day:

* **Ordinary days** (``ordinary_events``): a few inbound scans, now and then one
  outbound contact (a Tor user, the camera's video cloud, a trojan...). Every
  third day has one such OUT contact and nothing inbound (cyT 10, Moderate);
  the other days have 0 (Clear, 30 %), 1-5 (Light, 50 %) or 6-10 (Moderate)
  inbound scans.
  So an ordinary day is never worse than Moderate, and over any 30 days every
  threat flag but the planted C2's shows up (the OUT kinds rotate over 10
  OUT days, i.e. 30 days).
* **The incident** (``StoryPlan``), dated relative to ``StoryPlan.today`` (day 0,
  the sensor's local date when the simulator starts, or ``story_day``):

  - day -12, 15:07 local: PC-Compta-02 contacts a C2 host in Moldova for the
    first time (no remote of the site is in Moldova otherwise) and downloads
    its implant (2.4 MB); the host is flagged ``command_center`` from the start;
  - days -12 to -3: it beacons every 15 minutes, day and night, at the same
    minute of each hour (regularity about 1), a few kB an hour: far below the
    volumes of the PC's own traffic, but 24 toxic OUT flows a day (Critical);
  - day -5, 02:00-04:00 local: an off-hours upload of 11.5 GB to the same host
    (port 8443), far above the PC's own baseline;
  - days -9 and -4, 01:00-07:00 local: brute-force waves on 22 and 3389 from
    five hosts against SRV-FICHIERS;
  - day -2: contained, the beacon has stopped (last contact day -3, 23:52);
  - day -1 is calm: its toxic remotes are a subset of day -8's, so yesterday's
    digest reads "No new toxic remotes" against a week before, which had one.

The plan is the single source of the story's facts: the traffic model draws
the rows from it, the presenter's guide (``flux_dashboard.ui.guide``) words it,
and the tests use it as their ground truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# One ordinary toxic event: (threat IPs, dir, protocol, ports, device tag, occurrences).
_In = tuple[tuple[str, ...], str, str, tuple[int, ...], str, tuple[int, int]]

# Inbound scans of ordinary days, with their weights.
IN_SCANS: list[tuple[float, _In]] = [
    (3, (("71.6.199.23", "185.242.226.14", "89.248.165.52"), "IN", "TCP",
         (23, 80, 445, 1433, 8080), "exposed", (1, 6))),
    (3, (("79.124.62.130", "176.111.174.85", "92.63.197.153"), "IN", "TCP",
         (21, 25, 110, 5900, 6379, 8081), "exposed", (1, 12))),
    (2, (("212.83.150.18", "37.49.230.12"), "IN", "UDP", (5060,), "ipbx", (1, 40))),
    (1, (("214.11.32.5", "55.12.9.140"), "IN", "TCP", (443, 8443), "exposed", (1, 4))),
    (2, (("61.177.172.140", "80.94.95.116", "45.148.10.242"), "IN", "TCP", (22, 3389),
         "exposed", (2, 30))),
]
_TOR = (("185.220.101.4", "185.220.100.252", "109.70.100.71"), "OUT", "TCP", (9001, 443),
        "tor", (1, 8))
# The OUT contact of every third ordinary day, in turn (10 OUT days = 30 days).
OUT_ROTATION: list[_In] = [
    _TOR,
    (("116.255.28.76", "36.110.45.92"), "OUT", "UDP", (8000, 554), "camera", (1, 5)),
    _TOR,
    (("194.26.29.113",), "OUT", "TCP", (8443, 443), "any", (1, 3)),
    _TOR,
    (("5.252.178.20",), "OUT", "TCP", (443,), "supply", (1, 2)),
    _TOR,
    (("147.45.47.90",), "OUT", "TCP", (443, 8443), "any", (1, 3)),
    _TOR,
    (("103.149.87.4",), "OUT", "TCP", (443, 80), "any", (1, 3)),
]


@dataclass(frozen=True)
class Event:
    """One toxic row of an ordinary day: ``hour`` is the epoch hour (UTC)."""

    hour: int
    ip1: str
    dir: str
    proto: str
    port: int
    tag: str
    occ: tuple[int, int]


def day_hours(day: date, tz: str) -> list[int]:
    """Epoch hours (UTC) whose start lies in the local calendar ``day`` (23-25 of them)."""
    zone = ZoneInfo(tz)
    nxt = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()
    return list(range(int(start) // 3600, int(end) // 3600))


def ordinary_events(seed: int, sensor_id: int, day: date, tz: str) -> list[Event]:
    """The toxic rows of an ordinary ``day`` (deterministic per seed, sensor and date)."""
    rng = random.Random(f"weather:{seed}:{sensor_id}:{day.isoformat()}")
    hours = day_hours(day, tz)
    ordinal = day.toordinal()
    if ordinal % 3 == 0:
        ips, d, proto, ports, tag, occ = OUT_ROTATION[(ordinal // 3) % len(OUT_ROTATION)]
        # Someone at work: an hour between 09:00 and 18:00 local.
        hour = rng.choice(hours[9:18] or hours)
        return [Event(hour, rng.choice(ips), d, proto, rng.choice(ports), tag, occ)]
    x = rng.random()
    n = 0 if x < 0.3 else rng.randint(1, 5) if x < 0.8 else rng.randint(6, 10)
    weights = [w for w, _ in IN_SCANS]
    out = []
    for hour in sorted(rng.sample(hours, n)):  # distinct hours: one row each
        ips, d, proto, ports, tag, occ = rng.choices([s for _, s in IN_SCANS], weights)[0]
        out.append(Event(hour, rng.choice(ips), d, proto, rng.choice(ports), tag, occ))
    return out


def ordinary_cyt(events: list[Event]) -> int:
    """cyT of an ordinary day's events (each event is one row): 1 per IN, 10 per OUT."""
    return sum(1 if e.dir == "IN" else 10 for e in events)


@dataclass(frozen=True)
class StoryPlan:
    """The planted incident, in days relative to ``today`` (day 0) in the sensor's zone."""

    today: date
    tz: str = "Europe/Paris"
    sensor_id: int = 54
    workstation_ip: str = "192.168.1.102"
    workstation_name: str = "PC-Compta-02"
    c2_ip: str = "176.123.8.71"
    c2_country: str = "Moldova"
    c2_port: int = 443
    first_day: int = -12
    first_hour: int = 15  # local hour of the first contact on first_day
    phase_min: int = 7  # the beacon's minute in each hour
    period_min: int = 15
    last_day: int = -3  # the last day with contacts; contained on last_day + 1
    stage_bytes: int = 2_400_000  # the implant, downloaded at first contact
    upload_day: int = -5
    upload_hours: tuple[int, ...] = (2, 3)  # local hours: 02:00-04:00
    upload_port: int = 8443
    upload_bytes: tuple[int, ...] = (6_100_000_000, 5_400_000_000)
    server_ip: str = "192.168.1.11"
    server_name: str = "SRV-FICHIERS"
    bruteforce_days: tuple[int, ...] = (-9, -4)
    bruteforce_hours: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # local hours
    bruteforce_ports: tuple[int, ...] = (22, 3389)
    bruteforce_ips: tuple[str, ...] = ("218.92.0.107", "61.177.172.140", "45.148.10.242",
                                       "141.98.11.23", "80.94.95.116")
    calm_day: int = -1  # its toxic remotes all appeared on calm_day - 7

    @classmethod
    def anchored(cls, now: datetime, tz: str = "Europe/Paris") -> StoryPlan:
        """The plan whose day 0 is the local date of ``now`` in ``tz``."""
        return cls(today=now.astimezone(ZoneInfo(tz)).date(), tz=tz)

    # ------------------------------------------------------------------ dates
    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def offset(self, day: date) -> int:
        return (day - self.today).days

    def at(self, offset: int, hour: int, minute: int = 0) -> datetime:
        """Local wall-clock time on day ``offset``, as an aware UTC datetime."""
        d = self.day(offset)
        return datetime(d.year, d.month, d.day, hour, minute,
                        tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    def window(self, first: int, last: int | None = None) -> tuple[datetime, datetime]:
        """[start, end) in UTC of local days ``first`` to ``last`` (default: first) inclusive."""
        last = first if last is None else last
        return self.at(first, 0), self.at(last + 1, 0)

    @property
    def first_contact(self) -> datetime:
        return self.at(self.first_day, self.first_hour, self.phase_min)

    @property
    def last_contact(self) -> datetime:
        """The start of the last beacon session (day ``last_day``, 23:52 local)."""
        return self.at(self.last_day, 23, self.phase_min + 45)

    @property
    def beacon_days(self) -> range:
        return range(self.first_day, self.last_day + 1)

    @property
    def incident_days(self) -> set[int]:
        """Days with the incident's toxic flows: the beacon and the brute-force waves."""
        return set(self.beacon_days) | set(self.bruteforce_days)

    def upload_times(self) -> list[datetime]:
        return [self.at(self.upload_day, h) for h in self.upload_hours]

    # ------------------------------------------------------------------ per hour
    def beacon_hour(self, h: int) -> bool:
        """Whether the beacon runs in epoch hour ``h``."""
        lo = int(self.at(self.first_day, self.first_hour).timestamp()) // 3600
        hi = int(self.at(self.last_day + 1, 0).timestamp()) // 3600
        return lo <= h < hi

    def local_hour_of(self, h: int) -> tuple[int, int]:
        """(day offset, local hour) of epoch hour ``h``."""
        local = datetime.fromtimestamp(h * 3600, ZoneInfo(self.tz))
        return self.offset(local.date()), local.hour
