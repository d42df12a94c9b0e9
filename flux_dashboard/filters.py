"""Filters as data.

``Filters`` is a frozen value: it converts to a polars expression (applied
locally on the cached frame), to API query parameters (server-side filtering
when that saves requests), to and from URL query parameters, and to a one-line
human description for captions. ``Filters.parse`` validates raw user input
(IP, MAC, port syntax) and returns plain messages instead of raising.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import polars as pl

from flux_dashboard.schema import THREAT_FLAGS, THREATS

DIRECTIONS = ("all", "IN", "OUT")
MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.IGNORECASE)
PROTOCOL_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass(frozen=True)
class Filters:
    devices: tuple[str, ...] = ()  # local IPs (ip0)
    remote_ip: str | None = None  # ip1
    protocol: str | None = None
    port: int | None = None
    mac: str | None = None
    direction: str = "all"
    toxic_only: bool = False
    threats: tuple[str, ...] = ()  # any of these flags
    off_hours_only: bool = False  # outside the sensor's working hours (hno_hours)

    # -- construction and validation
    @classmethod
    def parse(cls, *, devices: Iterable[str] = (), remote_ip: str | None = None,
              protocol: str | None = None, port: str | int | None = None,
              mac: str | None = None, direction: str = "all", toxic_only: bool = False,
              threats: Iterable[str] = (), off_hours_only: bool = False
              ) -> tuple[Filters, list[str]]:
        """Validate raw input. Returns the filters (invalid parts dropped) and messages."""
        problems: list[str] = []
        devs = []
        for d in devices or ():
            d = str(d).strip()
            if _valid_ip(d):
                devs.append(d)
            elif d:
                problems.append(f"Device “{d}” is not an IP address.")
        rip = (remote_ip or "").strip() or None
        if rip and not _valid_ip(rip):
            problems.append(f"Remote IP “{rip}” is not a valid IPv4 or IPv6 address "
                            "(example: 1.1.1.1).")
            rip = None
        proto = (protocol or "").strip().upper() or None
        if proto and not PROTOCOL_RE.match(proto):
            problems.append(f"Protocol “{proto}” is not a protocol name (example: TCP).")
            proto = None
        port_v: int | None = None
        if port not in (None, ""):
            try:
                port_v = int(str(port).strip())
                if not 0 <= port_v <= 65535:
                    raise ValueError
            except ValueError:
                problems.append(f"Port “{port}” must be a whole number from 0 to 65535.")
                port_v = None
        mac_v = (mac or "").strip().lower().replace("-", ":") or None
        if mac_v and not MAC_RE.match(mac_v):
            problems.append(f"MAC address “{mac}” must look like 00:15:5d:86:eb:5f.")
            mac_v = None
        if direction not in DIRECTIONS:
            problems.append(f"Direction “{direction}” must be one of all, IN, OUT.")
            direction = "all"
        flags = []
        for t in threats or ():
            if t in THREAT_FLAGS:
                flags.append(t)
            else:
                problems.append(f"Threat category “{t}” is unknown.")
        return cls(tuple(sorted(set(devs))), rip, proto, port_v, mac_v, direction,
                   bool(toxic_only), tuple(f for f in THREAT_FLAGS if f in flags),
                   bool(off_hours_only)), problems

    @property
    def is_empty(self) -> bool:
        return self == Filters()

    # -- local filtering
    def to_expr(self, tz: str = "UTC", hno_hours: Iterable[int] = ()) -> pl.Expr:
        conds: list[pl.Expr] = []
        if self.devices:
            conds.append(pl.col("ip0").is_in(list(self.devices)))
        if self.remote_ip:
            conds.append(pl.col("ip1") == self.remote_ip)
        if self.protocol:
            conds.append(pl.col("protocol") == self.protocol)
        if self.port is not None:
            conds.append(pl.col("port") == self.port)
        if self.mac:
            conds.append(pl.col("mac_address") == self.mac)
        if self.direction != "all":
            conds.append(pl.col("dir") == self.direction)
        if self.toxic_only:
            conds.append(pl.col("toxic"))
        if self.threats:
            conds.append(pl.any_horizontal(*(pl.col(t) for t in self.threats)))
        if self.off_hours_only:
            from flux_dashboard.hunting import is_off_hours_expr

            # The sensor's own non-working hours, as its console filters them
            # (the hunting page also counts weekends as off).
            conds.append(is_off_hours_expr(tz, list(hno_hours), weekend_off=False))
        return pl.all_horizontal(conds) if conds else pl.lit(True)

    def apply(self, df: pl.DataFrame, tz: str = "UTC", hno_hours: Iterable[int] = ()
              ) -> pl.DataFrame:
        return df if self.is_empty else df.filter(self.to_expr(tz, hno_hours))

    # -- server-side filtering
    def server_params(self) -> dict[str, str | int | bool]:
        """The part of these filters the flux endpoint can apply itself."""
        params: dict[str, str | int | bool] = {}
        if len(self.devices) == 1:
            params["ip0"] = self.devices[0]
        if self.remote_ip:
            params["ip1"] = self.remote_ip
        if self.protocol:
            params["protocol"] = self.protocol
        if self.port is not None:
            params["port"] = self.port
        if self.mac:
            params["mac_address"] = self.mac
        if self.toxic_only:
            params["only_toxic"] = True
        if self.direction == "IN":
            params["only_in"] = True
        elif self.direction == "OUT":
            params["only_out"] = True
        return params

    # -- URL query parameters
    def to_query(self) -> dict[str, str | list[str]]:
        q: dict[str, str | list[str]] = {}
        if self.devices:
            q["device"] = list(self.devices)
        for name, key in (("remote_ip", "remote"), ("protocol", "protocol"), ("mac", "mac")):
            if getattr(self, name):
                q[key] = getattr(self, name)
        if self.port is not None:
            q["port"] = str(self.port)
        if self.direction != "all":
            q["dir"] = self.direction
        if self.toxic_only:
            q["toxic"] = "true"
        if self.threats:
            q["threat"] = list(self.threats)
        if self.off_hours_only:
            q["offhours"] = "true"
        return q

    @classmethod
    def from_query(cls, q: Mapping[str, str | list[str]]) -> tuple[Filters, list[str]]:
        def many(k: str) -> list[str]:
            v = q.get(k, [])
            return [v] if isinstance(v, str) else list(v)

        def one(k: str) -> str | None:
            v = many(k)
            return v[-1] if v else None

        return cls.parse(devices=many("device"), remote_ip=one("remote"),
                         protocol=one("protocol"), port=one("port"), mac=one("mac"),
                         direction=one("dir") or "all", toxic_only=_true(one("toxic")),
                         threats=many("threat"), off_hours_only=_true(one("offhours")))

    # -- captions
    def describe(self, device_names: Mapping[str, str] | None = None) -> str:
        parts = []
        if self.devices:
            names = [(device_names or {}).get(d, d) for d in self.devices]
            parts.append("devices " + ", ".join(names) if len(names) > 1 else f"device {names[0]}")
        if self.direction != "all":
            parts.append(self.direction)
        if self.toxic_only:
            parts.append("toxic only")
        if self.threats:
            parts.append(" or ".join(THREATS[t]["label"] for t in self.threats))
        if self.remote_ip:
            parts.append(f"remote {self.remote_ip}")
        if self.protocol or self.port is not None:
            parts.append("/".join(str(x) for x in (self.protocol, self.port) if x is not None))
        if self.mac:
            parts.append(f"MAC {self.mac}")
        if self.off_hours_only:
            parts.append("non-working hours")
        return " · ".join(parts) if parts else "all flows"

    def without_server_side(self, pushed: Mapping[str, object]) -> Filters:
        """What remains to apply locally once ``pushed`` was applied by the API."""
        kw: dict[str, object] = {}
        if "ip0" in pushed:
            kw["devices"] = ()
        for param, name in (("ip1", "remote_ip"), ("protocol", "protocol"),
                            ("port", "port"), ("mac_address", "mac")):
            if param in pushed:
                kw[name] = None
        if "only_toxic" in pushed:
            kw["toxic_only"] = False
        if "only_in" in pushed or "only_out" in pushed:
            kw["direction"] = "all"
        return replace(self, **kw)


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
