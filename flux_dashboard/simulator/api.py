"""The API contract: one ``handle()`` that answers any request the real API would.

This module owns ``Simulator``, the API as seen over HTTP: path routing,
authentication (``Api-Key``), the sliding-window rate limit and the monthly
quota (429 with ``Retry-After``), 403/404 answers, the faults drawn for
``GET /sensors/:id/flux`` (random at ``fault_rate`` or at fixed request
numbers in ``fault_schedule``: 429, 5xx, truncated body, timeout), and the
endpoints: ``/sensors``, ``/sensors/:id``, ``/flux`` (filters, sorts, pages)
and the hourly statistics ``/flux-hour-ip0`` and ``/flux-hour-sensor``. The
rows come from a ``TrafficModel``; parameter parsing and paging from
``query``; ``transport()`` and ``serve()`` hand the same ``handle()`` to the
transports. One lock serialises every request, so the model needs none.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections import OrderedDict, deque
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from flux_dashboard.simulator.config import SimulatorConfig
from flux_dashboard.simulator.query import (
    API_PREFIX,
    HttpError,
    Query,
    SimulatedTimeout,
    invalid,
    page_of,
    parse_bool,
    parse_int,
    parse_ip,
    parse_sort,
    parse_window,
    sorted_query,
)
from flux_dashboard.simulator.traffic import (
    DEV,
    DIR,
    HOUR_MS,
    INB,
    IP0,
    IP1,
    OUT,
    PORT,
    PROTO,
    SUM,
    TOX,
    TrafficModel,
    hour_range,
    hour_str,
)
from flux_dashboard.simulator.transports import SimulatorServer, mock_transport
from flux_dashboard.simulator.world import Site


class Simulator:
    """The simulated API: ``handle()`` is the whole API; ``transport()``/``serve()`` wrap it."""

    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        if self.config.volumes_as not in ("string", "number", "mixed"):
            raise ValueError("volumes_as must be 'string', 'number' or 'mixed'")
        bad = set(self.config.fault_kinds) | set(self.config.fault_schedule.values())
        bad -= {"429", "500", "502", "503", "truncated", "timeout"}
        if bad:
            raise ValueError(f"unknown fault kinds: {sorted(bad)}")
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.traffic = TrafficModel(self.config)
        self._lock = threading.RLock()
        self._queries: OrderedDict[tuple, Query] = OrderedDict()
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._tie_rng = random.Random(f"ties:{self.config.seed}")
        self.reset_counters()

    @property
    def story(self):
        """The demo story's ``StoryPlan`` (None with ``story=False``): the ground truth."""
        return self.traffic.story

    # ----------------------------------------------------------------- counters / clock
    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self._flux_count = 0  # /flux only: what fault_schedule numbers
            self._stats_count = 0  # the hourly statistics endpoints
            self._windows: dict[str, deque[float]] = {}
            self._quota_used = 0
            self._quota_month: tuple[int, int] | None = None

    def flux_request_count(self) -> int:
        """Requests of the flux family: ``/flux`` and the hourly statistics (the quota's)."""
        return self._flux_count + self._stats_count

    def stats_request_count(self) -> int:
        """Requests to ``/flux-hour-ip0`` and ``/flux-hour-sensor`` alone."""
        return self._stats_count

    # ----------------------------------------------------------------- sensors
    def sensors(self) -> list[dict]:
        with self._lock:
            return [self._sensor_obj(s) for sid, s in self.traffic.sites.items()
                    if sid not in self.config.forbidden_sensors]

    def _sensor_obj(self, site: Site) -> dict:
        end_ms = self.traffic.data_end_ms(site)
        last = end_ms // HOUR_MS
        cyt = 0
        for h in range(last - 23, last + 1):  # the open hour and the 23 before it
            for r in self.traffic.hour_rows(site.id, h, end_ms):
                if r[TOX] >= 0:
                    cyt += 1 if r[DIR] == "IN" else 10
        m = site.meta
        return {
            "id": site.id, "type_fk": "DETOXIO", "name": site.name, "full_name": site.full_name,
            "mac_address": m["mac_address"], "public_ip": m["public_ip"],
            "local_ip": m["local_ip"], "installation_date": m["installation_date"],
            "supervision": m["supervision"], "filtering": site.filtering,
            "version": m["version"], "end_trial": m["end_trial"],
            "status": "DISCONNECTED" if self.traffic.disconnected(site.id) else site.status,
            "hno_hours": list(m["hno_hours"]), "timezone": site.tzname,
            "latitude": m["latitude"], "longitude": m["longitude"], "current_cyt": cyt,
        }

    # ----------------------------------------------------------------- ground truth
    def rows_for_hour(self, sensor_id: int, hour: datetime) -> list[dict]:
        """The API rows of one hour, in the canonical (stable tie-break) order."""
        with self._lock:
            return self.traffic.rows_for_hour(sensor_id, hour)

    def rows(self, sensor_id: int, start: datetime, end: datetime) -> list[dict]:
        """Ground truth: every row with start_of_hour in [start, end)."""
        with self._lock:
            return self.traffic.rows(sensor_id, start, end)

    def count_rows(self, sensor_id: int, start: datetime, end: datetime) -> int:
        """Cheap count of the rows with start_of_hour in [start, end) (no dicts built)."""
        with self._lock:
            return self.traffic.count_rows(sensor_id, start, end)

    # ----------------------------------------------------------------- HTTP-level API
    def handle(self, method: str, path: str, params: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body). Raises ``SimulatedTimeout``."""
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
            elif re.fullmatch(r"/sensors/[^/]+/flux-hour-(ip0|sensor)", path):
                self._stats_count += 1
            try:
                status, extra, payload = self._dispatch(method, path, params, headers, is_flux)
            except HttpError as exc:
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
            raise HttpError(404, {"message": f"Cannot {method} {API_PREFIX}{path}"})
        if method.upper() != "GET":
            raise HttpError(405, {"message": f"Method {method} not allowed"})
        if len(parts) == 1:
            return 200, {}, self.sensors()
        try:
            sid = int(parts[1])
        except ValueError:
            raise HttpError(404, {"message": f"Sensor {parts[1]!r} not found"}) from None
        if sid in self.config.forbidden_sensors:
            raise HttpError(403, {"message": "You are not allowed to access this sensor"})
        if sid not in self.traffic.sites:
            raise HttpError(404, {"message": f"Sensor {sid} not found"})
        site = self.traffic.sites[sid]
        if len(parts) == 2:
            return 200, {}, self._sensor_obj(site)
        sub = parts[2]
        if sub not in ("flux", "flux-hour-ip0", "flux-hour-sensor"):
            raise HttpError(404, {"message": f"Cannot {method} {API_PREFIX}{path}"})
        extra: dict[str, str] = {}
        if is_flux:
            kind = self._draw_fault()
            if kind == "timeout":
                raise SimulatedTimeout()
            if kind in ("500", "502", "503"):
                messages = {"500": "Internal server error", "502": "Bad gateway",
                            "503": "Service unavailable"}
                raise HttpError(int(kind), {"message": messages[kind]})
            if kind == "429":  # a burst of "too many requests" from the API's side
                raise HttpError(429, {"message": "Too many requests"}, {"retry-after": "1"})
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
            raise HttpError(401, {"message": "Missing or invalid API key: send the header "
                                              "'Authorization: Api-Key <key>'"})
        if self.config.api_key is not None and key != self.config.api_key:
            raise HttpError(401, {"message": "Invalid API key"})
        return key

    def _check_limits(self, key: str) -> None:
        now = self.traffic.now()
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
                raise HttpError(429, {"message": f"Monthly request quota exhausted "
                                                  f"({cfg.monthly_quota} requests); it renews on "
                                                  f"{nxt:%Y-%m-%dT%H:%M:%SZ}"},
                                 {"retry-after": str(wait)})
        if cfg.rate_limit_per_min is not None:
            ts = cfg.limit_clock()
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= ts - 60:
                window.popleft()
            if len(window) >= cfg.rate_limit_per_min:
                wait = max(1, math.ceil(window[0] + 60 - ts))
                raise HttpError(429, {"message": f"Too many requests: at most "
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

    # ----------------------------------------------------------------- flux
    _FLUX_SORTS = ("ip0", "ip1", "startOfHour", "sumFlux", "dir", "protocol", "port")

    def _paging(self, site: Site, params: dict, window, errors: list
                ) -> tuple[int, int, range, int]:
        """per_page, page, the hours asked for and the data end; raises 422 on any error."""
        per_page = parse_int(params, "per_page", 100, errors)
        page = parse_int(params, "page", 1, errors)
        if errors:
            raise invalid(errors)
        assert window is not None
        hours = hour_range(*window, inclusive=self.config.inclusive_to)
        return per_page, page, hours, self.traffic.data_end_ms(site)

    def _flux(self, site: Site, params: dict[str, str]) -> dict:
        errors: list[dict] = []
        window = parse_window(params, errors)
        filters: dict[str, object] = {}
        for name in ("ip0", "ip1"):
            if params.get(name):
                filters[name] = parse_ip(params, name, errors)
        if params.get("protocol"):
            filters["protocol"] = params["protocol"].strip().upper()
        if params.get("port"):
            filters["port"] = parse_int(params, "port", 0, errors, 0, 65535)
        if params.get("mac_address"):
            filters["mac"] = params["mac_address"].strip().lower()
        for name in ("only_toxic", "only_in", "only_out"):
            if parse_bool(params, name, errors):
                filters[name] = True
        sort_by, desc = parse_sort(params, self._FLUX_SORTS, "startOfHour", errors)
        per_page, page, hours, end_ms = self._paging(site, params, window, errors)
        open_h = end_ms // HOUR_MS
        # The key changes whenever the visible rows may: the open hour's minute, a late upload.
        qkey = ("flux", site.id, hours.start, hours.stop, tuple(sorted(filters.items())),
                sort_by, desc, end_ms if open_h in hours else min(hours.stop, open_h),
                self.traffic.pending_uploads(site.id))
        q = self._queries.get(qkey)
        if q is None:
            q = self._flux_query(site, hours, end_ms, filters, sort_by, desc)
            self._remember(qkey, q)
        else:
            self._queries.move_to_end(qkey)
        meta, idx = self._page(q, page, per_page)
        assert q.hours is not None
        return {"meta": meta, "data": [self.traffic.materialise(site, q.hours[i], q.items[i])
                                       for i in idx]}

    def _flux_query(self, site: Site, hours: range, end_ms: int, f: dict, sort_by: str,
                    desc: bool) -> Query:
        mac_devs = None
        if "mac" in f:
            mac_devs = {d.idx for d in site.devices if d.mac == f["mac"]}
        items: list[tuple] = []
        item_hours: list[int] = []
        for h in hours:
            rows = self.traffic.hour_rows(site.id, h, end_ms)
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
        ipk = self.traffic.ip_key  # an address as its integer (hours are shared: lazily)
        if sort_by == "startOfHour":
            keys = item_hours
        elif sort_by == "ip0":
            keys = [ipk(r[IP0]) for r in items]
        elif sort_by == "ip1":
            keys = [ipk(r[IP1]) for r in items]
        elif sort_by == "sumFlux":
            keys = [r[SUM] for r in items]
        elif sort_by == "port":
            # Postgres puts NULL last ascending and first descending.
            keys = [65_536 if r[PORT] is None else r[PORT] for r in items]
        else:
            col = DIR if sort_by == "dir" else PROTO
            keys = [r[col] for r in items]
        # sumFlux is nearly unique per row: skip the distinct-key census.
        return sorted_query(items, keys, desc, item_hours, few_keys=sort_by != "sumFlux")

    def _remember(self, key: tuple, q: Query) -> None:
        self._queries[key] = q
        while len(self._queries) > 6:  # a dense-month query holds ~30 MB of references
            self._queries.popitem(last=False)

    # ----------------------------------------------------------------- hourly statistics
    def _stats(self, site: Site, params: dict[str, str], per_ip0: bool) -> dict:
        errors: list[dict] = []
        window = parse_window(params, errors)
        ip0 = parse_ip(params, "ip0", errors) if per_ip0 and params.get("ip0") else None
        allowed = ("ip0", "utc_hour") if per_ip0 else ("utc_hour",)
        sort_by, desc = parse_sort(params, allowed, "utc_hour", errors)
        per_page, page, hours, end_ms = self._paging(site, params, window, errors)
        qkey = ("stats", site.id, per_ip0, hours.start, hours.stop, ip0, sort_by, desc, end_ms,
                self.traffic.pending_uploads(site.id))
        q = self._queries.get(qkey)
        if q is None:
            groups: dict[tuple, list[int]] = {}
            for h in hours:
                for r in self.traffic.hour_rows(site.id, h, end_ms):
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
            skewed = {int(t.timestamp()) // 3600 for t in self.config.inconsistent_hours}
            for (h, _), g in sorted(groups.items(), key=lambda kv: kv[0]):
                if h in skewed:  # the hazard: one flow record more than the flows show
                    g[4] += 1
                    skewed.discard(h)
            items = sorted(groups.items(), key=lambda kv: (kv[0][0], self.traffic.ip_key(kv[0][1])
                                                             if kv[0][1] else 0))
            if sort_by == "ip0":
                keys = [self.traffic.ip_key(k[1]) for k, _ in items]
            else:
                keys = [k[0] for k, _ in items]
            q = sorted_query(items, keys, desc)
            self._remember(qkey, q)
        meta, idx = self._page(q, page, per_page)
        data = []
        for i in idx:
            (h, ip), (inb, out, tin, tout, count) = q.items[i]
            item: dict[str, object] = {"utc_hour": hour_str(h)}
            if per_ip0:
                item["ip0"] = ip
            fake = (0, 0, 0, 0, 0, 0, out, inb, h)
            vol = self.traffic.volume
            item.update({"in_flux": vol(inb, fake), "out_flux": vol(out, fake),
                         "in_toxic_flux": tin, "out_toxic_flux": tout,
                         "toxic_count": tin + tout, "count": count, "cyt": tin + 10 * tout})
            data.append(item)
        return {"meta": meta, "data": data}

    def _page(self, q: Query, page: int, per_page: int) -> tuple[dict, list[int]]:
        return page_of(q, page, per_page, self.config, self._tie_rng)

    # ----------------------------------------------------------------- transports
    def transport(self) -> httpx.BaseTransport:
        """An ``httpx.MockTransport`` answering through ``handle()`` (sync clients)."""
        return mock_transport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Serve the API over real HTTP in a daemon thread (port 0 = a free port)."""
        return SimulatorServer(self, host, port)
