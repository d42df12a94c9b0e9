"""The traffic model: which rows each sensor has for each hour, and when they become visible.

This module owns row generation. Rows are generated per (sensor, hour) from a
private ``random.Random`` seeded by (seed, sensor, hour), following each
site's rhythm (office hours, shoulders, nights and weekends that are never
empty, nightly backups) and injecting the site's toxic events (the main
site's from ``story``: ordinary days and the planted incident), so a closed
hour is identical on every call whatever the clock. What the API may show of
it depends on the clock: the open hour (the one containing ``now()``) shows
only the sessions started before the last whole minute (the sensor uploads
once a minute), so it grows with time; later hours and hours before
``installed`` are empty; and a pending ``LateUpload`` hides the sessions of
an outage until its upload time, so a closed hour can grow too. Rows are kept
compact (tuples) and only the rows a caller asks for are turned into API
dicts (``materialise``): their sessions (timestamps, duration) are derived
lazily from a seed. ``TrafficModel`` is not thread-safe: the ``Simulator``
serialises access.
"""

from __future__ import annotations

import calendar
import math
import random
import threading
from bisect import bisect_right
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from flux_dashboard import clock
from flux_dashboard.simulator.config import SimulatorConfig
from flux_dashboard.simulator.story import Event, StoryPlan, ordinary_events
from flux_dashboard.simulator.world import (
    ALWAYS_ON,
    PROTO_RANK,
    SERVICES,
    THREAT_FLAGS,
    TOX_INDEX,
    TOX_LIST,
    TOXIC_IPS,
    Device,
    Site,
    build_sites,
    ip_int,
)

HOUR_MS = 3_600_000
C2_PERIOD_MS = 900_000  # the story's beacon: every 15 minutes

# Compact row layout (one tuple per API row); only the rows of a page become dicts.
IP0, IP1, DIR, PROTO, PORT, OCC, OUT, INB, FIRST, DEV, TOX, FILT, PERIODIC, ORIG, SUM = range(15)


def hour_str(h: int) -> str:
    return datetime.fromtimestamp(h * 3600, UTC).strftime("%Y-%m-%dT%H:00:00.000Z")


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


def _shown(start: int, cut: int, hidden: tuple[tuple[int, int], ...]) -> bool:
    """Whether a session starting at ``start`` (ms in its hour) is uploaded."""
    return start < cut and not any(lo <= start < hi for lo, hi in hidden)


def hour_of(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp()) // 3600


def hour_range(start: datetime, end: datetime, inclusive: bool = False) -> range:
    """Hours (epoch hour numbers) whose start lies in [start, end), or [start, end]."""
    s = math.ceil(start.timestamp() / 3600)
    e_raw = end.timestamp() / 3600
    e = math.floor(e_raw) + 1 if inclusive else math.ceil(e_raw)
    return range(s, max(s, e))


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC (handy for tests and benchmarks)."""
    days = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, start + timedelta(days=days)


def _merge(merged: dict, key: tuple, occ: int, out: int, inb: int, first: int, tox: int,
           periodic: bool) -> None:
    """Add a toxic row to the hour's rows (merging with a row of the same natural key)."""
    m = merged.get(key)
    if m is None:
        merged[key] = [occ, out, inb, first, tox, periodic]
    else:
        m[0] += occ
        m[1] += out
        m[2] += inb
        m[3] = min(m[3], first)
        m[4] = tox
        m[5] = m[5] or periodic


# Generated closed hours, shared by every simulator of the process (see _full_hour);
# rows are tuples, never changed once made. Bounded by the inserting one's ``cache_hours``.
_HOURS: OrderedDict[tuple, list[tuple]] = OrderedDict()
_HOURS_LOCK = threading.Lock()


class TrafficModel:
    """Compact rows per (sensor, hour) as visible at ``now()``, and their API dicts."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.sites = build_sites(config)
        self._open: OrderedDict[tuple[int, int, int], list[tuple]] = OrderedDict()
        self.ip_ints: dict[str, int] = {d.ip: ip_int(d.ip) for site in self.sites.values()
                                        for d in site.devices}
        # The story's day 0 is fixed at construction, so a closed hour never changes.
        self.story: StoryPlan | None = None
        if config.story:
            main = self.sites[54]
            self.story = (StoryPlan(today=config.story_day, tz=main.tzname)
                          if config.story_day else StoryPlan.anchored(self.now(), main.tzname))
        self._days: OrderedDict[tuple[int, object], list[Event]] = OrderedDict()

    def now(self) -> datetime:
        now = self.config.now() if self.config.now else clock.real()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def site(self, sensor_id: int) -> Site:
        try:
            return self.sites[sensor_id]
        except KeyError:
            raise KeyError(f"unknown sensor {sensor_id}") from None

    def data_end_ms(self, site: Site) -> int:
        """Epoch ms up to which the sensor has uploaded (floored to the minute)."""
        end = self.now() - site.lag
        ms = int(end.timestamp() * 1000)
        return ms - ms % 60_000

    def _full_hour(self, sensor_id: int, h: int) -> list[tuple]:
        """The hour's compact rows. They depend on the world only (seed, density, the
        story's day 0), so every simulator of one world in the process shares them
        (the tests' ground truth and the API they check, a new instance per test)."""
        key = (self.config.seed, self.config.dense,
               self.story.today if self.story else None, sensor_id, h,
               self.sites[sensor_id].burst)
        with _HOURS_LOCK:
            rows = _HOURS.get(key)
            if rows is not None:
                _HOURS.move_to_end(key)
                return rows
        rows = self._generate(self.sites[sensor_id], h)  # outside the lock: minutes, dense
        with _HOURS_LOCK:
            _HOURS[key] = rows
            while len(_HOURS) > max(1, self.config.cache_hours):
                _HOURS.popitem(last=False)
        return rows

    def _generate(self, site: Site, h: int) -> list[tuple]:
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
            if kind in ALWAYS_ON:
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
        if site.planned:
            self._inject_planned(site, h, rng, merged)
        else:
            self._inject_toxic(site, rng, merged)
            if site.burst is not None and site.burst[0] <= h < site.burst[1]:
                self._inject_toxic(site, rng, merged, site.burst_events)
        ipk = self.ip_key
        devs = site.devices
        keyed = []
        for (di, ip1, d, proto, port), (occ, out, inb, first, tox, periodic) in merged.items():
            filt = tox >= 0 and site.filtering and rnd() < (0.75 if d == "IN" else 0.5)
            # Canonical order (ip0, ip1, dir, protocol, port) packed in one int; devices
            # are numbered in address order, ports None (ICMP) first.
            k = ((di << 56) | (ipk(ip1) << 24) | ((d == "OUT") << 20)
                 | (PROTO_RANK.get(proto, 3) << 17) | (0 if port is None else port + 1))
            keyed.append((k, (devs[di].ip, ip1, d, proto, port, occ, out, inb, first, di, tox,
                              filt, periodic, None, out + inb)))
        keyed.sort()
        return [r for _, r in keyed]

    def _inject_toxic(self, site: Site, rng: random.Random, merged: dict,
                      events: list[tuple] | None = None) -> None:
        by_tag: dict[str, list[Device]] = {}
        for dev in site.devices:
            for t in dev.tags:
                by_tag.setdefault(t, []).append(dev)
        for prob, ips, d, proto, ports, tag, (lo, hi), periodic in (
                site.toxic_events if events is None else events):
            if rng.random() >= prob:
                continue
            targets = by_tag.get(tag)
            if not targets:
                continue
            dev = rng.choice(targets)
            ip1 = rng.choice(ips)
            port = rng.choice(ports)
            occ = rng.randint(lo, hi)
            tox = TOX_INDEX[ip1]
            if periodic:
                # A beacon: sessions at a fixed phase, every C2_PERIOD_MS.
                first = rng.randrange(C2_PERIOD_MS)
                occ = min(occ, (HOUR_MS - 1 - first) // C2_PERIOD_MS + 1)
                out, inb = occ * rng.randint(300, 900), occ * rng.randint(200, 4_000)
            else:
                first = rng.randrange(HOUR_MS - 60_000)
                sent, answered = occ * rng.randint(60, 3_000), occ * rng.randint(0, 2_000)
                if rng.random() < 0.3:
                    answered = 0  # blocked or unanswered probes
                out, inb = (answered, sent) if d == "IN" else (sent, answered)
            _merge(merged, (dev.idx, ip1, d, proto, port), occ, out, inb, first, tox, periodic)

    def day_events(self, site: Site, day) -> list[Event]:
        """The ordinary toxic rows of a local ``day`` of a planned site (story.py).

        On the story's calm day, only remotes that were toxic a week before are
        kept, so that day's digest finds no new toxic remote.
        """
        key = (site.id, day)
        got = self._days.get(key)
        if got is not None:
            return got
        events = ordinary_events(self.config.seed, site.id, day, site.tzname)
        plan = self.story
        if plan is not None and site.id == plan.sensor_id and \
                plan.offset(day) == plan.calm_day:
            before = day - timedelta(days=7)
            known = {e.ip1 for e in ordinary_events(self.config.seed, site.id, before,
                                                    site.tzname)}
            off = plan.offset(before)
            if off in plan.beacon_days:
                known.add(plan.c2_ip)
            if off in plan.bruteforce_days:
                known.update(plan.bruteforce_ips)
            events = [e for e in events if e.ip1 in known]
        self._days[key] = events
        while len(self._days) > 400:
            self._days.popitem(last=False)
        return events

    def _inject_planned(self, site: Site, h: int, rng: random.Random, merged: dict) -> None:
        """The toxic rows of hour ``h`` of a planned site: its ordinary day, then the story."""
        local = datetime.fromtimestamp(h * 3600, site.tz)
        for ev in self.day_events(site, local.date()):
            if ev.hour != h:
                continue
            targets = [dev for dev in site.devices if ev.tag in dev.tags]
            if not targets:
                continue
            dev = rng.choice(targets)
            occ = rng.randint(*ev.occ)
            sent, answered = occ * rng.randint(60, 3_000), occ * rng.randint(0, 2_000)
            if ev.dir == "IN" and rng.random() < 0.3:
                answered = 0  # blocked or unanswered probes
            out, inb = (answered, sent) if ev.dir == "IN" else (sent, answered)
            _merge(merged, (dev.idx, ev.ip1, ev.dir, ev.proto, ev.port), occ, out, inb,
                   rng.randrange(HOUR_MS - 60_000), TOX_INDEX[ev.ip1], False)
        plan = self.story
        if plan is None or site.id != plan.sensor_id:
            return
        by_ip = {dev.ip: dev for dev in site.devices}
        ws, c2 = by_ip[plan.workstation_ip].idx, plan.c2_ip
        day, lh = plan.local_hour_of(h)
        if plan.beacon_hour(h):
            # Every 15 minutes at the same minute of each hour: clockwork contacts.
            first = plan.phase_min * 60_000
            if h != int(plan.first_contact.timestamp()) // 3600:
                first += rng.randrange(20_000)
            occ = (HOUR_MS - 1 - first) // C2_PERIOD_MS + 1
            out, inb = occ * rng.randint(300, 900), occ * rng.randint(200, 4_000)
            if h == int(plan.first_contact.timestamp()) // 3600:
                inb += plan.stage_bytes  # the implant's download
            _merge(merged, (ws, c2, "OUT", "TCP", plan.c2_port), occ, out, inb, first,
                   TOX_INDEX[c2], True)
        if day == plan.upload_day and lh in plan.upload_hours:
            out = plan.upload_bytes[plan.upload_hours.index(lh)]
            _merge(merged, (ws, c2, "OUT", "TCP", plan.upload_port), 3, out,
                   rng.randint(150_000, 400_000), plan.phase_min * 60_000 + 60_000,
                   TOX_INDEX[c2], False)
        if day in plan.bruteforce_days and lh in plan.bruteforce_hours:
            srv = by_ip[plan.server_ip].idx
            for ip1 in plan.bruteforce_ips:
                for port in plan.bruteforce_ports:
                    occ = rng.randint(40, 180)
                    sent, answered = occ * rng.randint(60, 3_000), occ * rng.randint(0, 2_000)
                    _merge(merged, (srv, ip1, "IN", "TCP", port), occ, answered, sent,
                           rng.randrange(HOUR_MS - 60_000), TOX_INDEX[ip1], False)

    def ip_key(self, ip: str) -> int:
        v = self.ip_ints.get(ip)
        if v is None:
            v = self.ip_ints[ip] = ip_int(ip)
        return v

    def hour_rows(self, sensor_id: int, h: int, end_ms: int | None = None) -> list[tuple]:
        """Compact rows of hour h as visible now (empty before install / after the data end).

        Visible means uploaded: sessions after the data end (the open hour) and
        sessions of an outage not yet uploaded (``late_uploads``) are left out.
        """
        site = self.sites[sensor_id]
        if h * 3600 < math.ceil(self.config.installed.timestamp() / 3600) * 3600:
            return []
        if end_ms is None:
            end_ms = self.data_end_ms(site)
        hour_ms = h * HOUR_MS
        if hour_ms >= end_ms:
            return []
        full = self._full_hour(sensor_id, h)
        hidden = self._hidden(sensor_id, h)
        if hour_ms + HOUR_MS <= end_ms and not hidden:
            return full
        return self._partial_hour(sensor_id, h, full, min(HOUR_MS, end_ms - hour_ms), hidden)

    def pending_uploads(self, sensor_id: int) -> tuple[int, ...]:
        """Indices of the sensor's ``late_uploads`` still invisible now (a cache-key part)."""
        now = self.now()
        return tuple(i for i, lu in enumerate(self.config.late_uploads)
                     if lu.sensor_id == sensor_id and now < lu.uploaded)

    def disconnected(self, sensor_id: int) -> bool:
        """In an outage for over an hour (the API's DISCONNECTED rule)."""
        now = self.now()
        return any(lu.sensor_id == sensor_id and lu.start + timedelta(hours=1) <= now < lu.end
                   for lu in self.config.late_uploads)

    def _hidden(self, sensor_id: int, h: int) -> tuple[tuple[int, int], ...]:
        """Offsets [lo, hi) in ms within hour h whose sessions are not uploaded yet."""
        hour_ms = h * HOUR_MS
        out = []
        for i in self.pending_uploads(sensor_id):
            lu = self.config.late_uploads[i]
            lo = max(0, int(lu.start.timestamp() * 1000) - hour_ms)
            hi = min(HOUR_MS, int(lu.end.timestamp() * 1000) - hour_ms)
            if lo < hi:
                out.append((lo, hi))
        return tuple(sorted(out))

    def _partial_hour(self, sensor_id: int, h: int, full: list[tuple], cut: int,
                      hidden: tuple[tuple[int, int], ...]) -> list[tuple]:
        """The rows of hour h made of the sessions started before ``cut`` and not hidden."""
        key = (sensor_id, h, cut, hidden)
        cached = self._open.get(key)
        if cached is not None:
            return cached
        rows = []
        for r in full:
            if r[FIRST] >= cut:
                continue
            ses = [s for s in self._sessions(h, r) if _shown(s[0], cut, hidden)]
            if not ses:  # every session of the row is in an outage
                continue
            out, inb = sum(s[2] for s in ses), sum(s[3] for s in ses)
            rows.append(r[:OCC] + (len(ses), out, inb) + r[FIRST:ORIG]
                        + ((r[OCC], r[OUT], r[INB], cut, hidden), out + inb))
        self._open[key] = rows
        while len(self._open) > 4:  # the partial hours of the current minute
            self._open.popitem(last=False)
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
        elif out + inb > 200_000_000:  # backups, and the story's upload
            durs = [rng.randint(15 * 60_000, HOUR_MS) for _ in starts]
        elif r[PERIODIC] or r[TOX] >= 0:
            durs = [rng.randint(80, 3_000) for _ in starts]
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

    def volume(self, v: int, r: tuple) -> str | int:
        mode = self.config.volumes_as
        if mode == "mixed":
            mode = "number" if (r[FIRST] + r[OUT]) % 2 else "string"
        return v if mode == "number" else str(v)

    def materialise(self, site: Site, h: int, r: tuple) -> dict:
        ses = self._sessions(h, r)
        if r[ORIG] is not None:
            cut, hidden = r[ORIG][3:5]
            ses = [(s, min(e, cut), o, i) for s, e, o, i in ses if _shown(s, cut, hidden)]
        hs = hour_str(h)
        prefix = hs[:14]

        def ts(off: int) -> str:
            return f"{prefix}{off // 60_000:02d}:{off // 1000 % 60:02d}.{off % 1000:03d}Z"

        dev = site.devices[r[DEV]]
        flags = TOXIC_IPS[TOX_LIST[r[TOX]]] if r[TOX] >= 0 else ()
        row = {
            "start_of_hour": hs, "ip0": r[IP0], "ip1": r[IP1], "dir": r[DIR],
            "protocol": r[PROTO], "port": r[PORT], "occurrences": r[OCC],
            "duration": _interval(sum(e - s for s, e, _, _ in ses)),
            "timestamps": [[ts(s), ts(e)] for s, e, _, _ in ses],
            "last_netbios": dev.netbios,
            "netbios_list": [dev.netbios] if dev.netbios else [],
            "last_mac_address": dev.mac, "mac_address_list": [dev.mac],
            "out_flux": self.volume(r[OUT], r), "in_flux": self.volume(r[INB], r),
            "filtered": r[FILT], "toxic": r[TOX] >= 0,
        }
        for f in THREAT_FLAGS:
            row[f] = f in flags
        row["custom_ip0"] = dict(dev.custom) if dev.custom else None
        if dev.vendor is not None:
            row["vendor"] = dev.vendor
        return row

    def rows_for_hour(self, sensor_id: int, hour: datetime) -> list[dict]:
        site = self.site(sensor_id)
        h = hour_of(hour)
        return [self.materialise(site, h, r) for r in self.hour_rows(sensor_id, h)]

    def rows(self, sensor_id: int, start: datetime, end: datetime) -> list[dict]:
        site = self.site(sensor_id)
        return [self.materialise(site, h, r) for h in hour_range(start, end)
                for r in self.hour_rows(sensor_id, h)]

    def count_rows(self, sensor_id: int, start: datetime, end: datetime) -> int:
        self.site(sensor_id)
        return sum(len(self.hour_rows(sensor_id, h)) for h in hour_range(start, end))
