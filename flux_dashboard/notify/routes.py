"""Notification routes: who receives what, read from a TOML file (``FLUX_NOTIFY_FILE``).

One table per route, named by its key::

    [routes.soc]
    sensors = [54]                 # sensor ids, or "*" for every sensor synced
    urls = ["SOC_CHAT_URL"]        # names of Apprise URLs, never the URLs themselves
    receives = ["daily", "alerts"] # optional (default both)
    daily_at = "08:00"             # optional: the digest's local time (sensor's zone)
    min_severity = "high"          # optional: alerts at or above (critical > high > …)
    masked = false                 # optional: a customer-facing route, all identifiers masked

    silent_after_hours = 3         # optional, top level: when a sensor counts as silent

An Apprise URL carries a token or a password, so the file only names it: each name
is looked up in the environment, then in the secrets file's ``[notify]`` table. A
literal URL in the file is refused (the file may be in a repository), and so is a
name that is not set. ``describe`` says what a URL is (service, and host where the
host is a host name, not a token) for logs, the audit and the page: the URL itself
is never shown.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from flux_dashboard.errors import ConfigError
from flux_dashboard.findings import SEVERITIES

RECEIVES = ("daily", "alerts")
DEFAULT_DAILY_AT = time(8, 0)
DEFAULT_MIN_SEVERITY = "high"
DEFAULT_SILENT_HOURS = 3
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_URL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_KEYS = {"sensors", "urls", "receives", "daily_at", "min_severity", "masked"}


@dataclass(frozen=True)
class Route:
    name: str
    sensors: tuple[int, ...] | None  # None: every sensor ("*")
    urls: tuple[str, ...] = field(repr=False)  # resolved Apprise URLs: secrets, never shown
    url_names: tuple[str, ...] = ()
    receives: frozenset[str] = frozenset(RECEIVES)
    daily_at: time = DEFAULT_DAILY_AT
    min_severity: str = DEFAULT_MIN_SEVERITY
    masked: bool = False

    def covers(self, sensor: int) -> bool:
        return self.sensors is None or sensor in self.sensors

    def alerts_on(self, severity: str) -> bool:
        """Whether a finding of ``severity`` is at or above this route's minimum."""
        return (severity in SEVERITIES
                and SEVERITIES.index(severity) <= SEVERITIES.index(self.min_severity))

    def targets(self) -> list[str]:
        """'E-Mail · 127.0.0.1', 'Slack', …: what each URL is, without its secrets."""
        return [describe(u) for u in self.urls]


@dataclass(frozen=True)
class Routes:
    routes: tuple[Route, ...] = ()
    silent_after_hours: int = DEFAULT_SILENT_HOURS
    path: Path | None = None

    def __iter__(self):
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)

    def get(self, name: str) -> Route:
        for r in self.routes:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.routes) or "none"
        raise ConfigError(f"There is no notification route named {name!r} (routes: {known}).")


def describe(url: str) -> str:
    """What an Apprise URL is, for people: its service and, when it is a host name or
    an address (never a token, as Slack's first path part is), its host."""
    import apprise

    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # noqa: BLE001 - a URL Apprise cannot read is described as such
        plugin = None
    if plugin is None:
        return "unreadable Apprise URL"
    service = str(getattr(plugin, "service_name", None) or type(plugin).__name__)
    host = str(getattr(plugin, "host", "") or "")
    return f"{service} · {host}" if host and _is_host(host) else service


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host == "localhost" or ("." in host and all(
            re.fullmatch(r"[A-Za-z0-9-]{1,63}", p) for p in host.split(".")))


def _urls(route: str, names: Any, env: Mapping[str, str], secrets: Mapping[str, Any]
          ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"Route {route!r}: 'urls' must list the names of Apprise URLs "
                          "(environment variables or keys of [notify] in the secrets file).")
    table = secrets.get("notify") if isinstance(secrets.get("notify"), Mapping) else {}
    out = []
    for name in names:
        if "://" in name or not _URL_NAME.fullmatch(name):
            raise ConfigError(
                f"Route {route!r}: 'urls' holds a URL or an unusable name. Name each Apprise "
                "URL instead (e.g. SOC_CHAT_URL) and set it in the environment or under "
                "[notify] in .streamlit/secrets.toml: URLs carry tokens and passwords.")
        value = env.get(name) or table.get(name)
        if not isinstance(value, str) or "://" not in value:
            raise ConfigError(f"Route {route!r}: the Apprise URL {name} is not set (set it in "
                              "the environment or under [notify] in the secrets file).")
        out.append(value.strip())
    return tuple(out), tuple(names)


def _sensors(route: str, raw: Any) -> tuple[int, ...] | None:
    if raw == "*" or raw == ["*"]:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if (isinstance(raw, list) and raw
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)):
        return tuple(sorted(set(raw)))
    raise ConfigError(f"Route {route!r}: 'sensors' must be \"*\" or a list of sensor ids.")


def _daily_at(route: str, raw: Any) -> time:
    if raw is None:
        return DEFAULT_DAILY_AT
    if isinstance(raw, time):
        return raw.replace(tzinfo=None)
    if isinstance(raw, str) and re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", raw.strip()):
        h, m = raw.strip().split(":")
        return time(int(h), int(m))
    raise ConfigError(f"Route {route!r}: 'daily_at' must be a local time such as \"08:00\".")


def parse(data: Mapping[str, Any], env: Mapping[str, str] | None = None,
          secrets: Mapping[str, Any] | None = None, path: Path | None = None) -> Routes:
    env = os.environ if env is None else env
    secrets = secrets or {}
    silent = data.get("silent_after_hours", DEFAULT_SILENT_HOURS)
    if isinstance(silent, bool) or not isinstance(silent, int) or not 1 <= silent <= 168:
        raise ConfigError("'silent_after_hours' must be a whole number of hours from 1 to 168.")
    tables = data.get("routes", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("Routes are tables named [routes.NAME].")
    out = []
    for name, raw in tables.items():
        if not _NAME.fullmatch(name):
            raise ConfigError(f"Route name {name[:40]!r}: use letters, digits, '-', '_' or '.'.")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"Route {name!r} must be a table ([routes.{name}]).")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ConfigError(f"Route {name!r}: unknown setting {unknown[0]!r} (known: "
                              f"{', '.join(sorted(_KEYS))}).")
        receives = raw.get("receives", list(RECEIVES))
        if isinstance(receives, str):
            receives = [receives]
        if (not isinstance(receives, list) or not receives
                or not all(r in RECEIVES for r in receives)):
            raise ConfigError(f"Route {name!r}: 'receives' is \"daily\", \"alerts\" or both.")
        severity = raw.get("min_severity", DEFAULT_MIN_SEVERITY)
        if severity not in SEVERITIES:
            raise ConfigError(f"Route {name!r}: 'min_severity' is one of "
                              f"{', '.join(SEVERITIES)}.")
        masked = raw.get("masked", False)
        if not isinstance(masked, bool):
            raise ConfigError(f"Route {name!r}: 'masked' is true or false.")
        urls, names = _urls(name, raw.get("urls"), env, secrets)
        out.append(Route(name=name, sensors=_sensors(name, raw.get("sensors", "*")),
                         urls=urls, url_names=names, receives=frozenset(receives),
                         daily_at=_daily_at(name, raw.get("daily_at")),
                         min_severity=severity, masked=masked))
    return Routes(tuple(out), silent, path)


def load(path: Path | str | None = None, env: Mapping[str, str] | None = None,
         secrets: Mapping[str, Any] | None = None) -> Routes:
    """The routes of ``path`` (default ``FLUX_NOTIFY_FILE``; none configured: no route)."""
    env = os.environ if env is None else env
    raw_path = path if path is not None else env.get("FLUX_NOTIFY_FILE")
    if not raw_path:
        return Routes()
    p = Path(raw_path).expanduser()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"The notification routes file {p} does not exist "
                          "(FLUX_NOTIFY_FILE).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The notification routes file {p} cannot be read "
                          f"({type(exc).__name__}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The notification routes file {p} is not valid TOML ({exc}).") \
            from None
    return parse(data, env, secrets, p)
