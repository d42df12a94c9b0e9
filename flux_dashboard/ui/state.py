"""Shared resources and the per-run view: what every page reads, keyed by what made it.

Owns the process-wide objects (settings, the service with its loader, the
sensor list, the masker), the derived-results cache and its keys, and the
``View`` a page receives. Derived results are keyed by what produced them:
the data source, sensor, window, server filters and load token, the masking,
the filters, the function and its arguments. Frames passed to ``compute`` are
``Keyed`` frames that carry such a key; a bare frame is refused, because the
only other identity a frame has is ``id()``, which a later frame reuses once
this one is freed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st
from cachetools import TTLCache

from flux_dashboard.access import Grant, GuardedLoader
from flux_dashboard.config import Settings, load_settings, memory_budget
from flux_dashboard.errors import FluxError
from flux_dashboard.filters import Filters
from flux_dashboard.loader import LoadResult
from flux_dashboard.masking import Masker, settings_masker
from flux_dashboard.service import Service, build_service


# ------------------------------------------------------------------ resources
def _secrets() -> dict:
    try:
        return {k: v for k, v in st.secrets.to_dict().items()}
    except Exception:  # no secrets.toml at all is the normal demo case
        return {}


def settings() -> Settings:
    return load_settings(secrets=_secrets())


@st.cache_resource(show_spinner=False)
def _service(source_id: str, cache_dir: str, shared_id: str) -> Service:
    # Keyed by the source id (URL + key fingerprint), never by the key itself.
    return build_service(settings(), compact=True)  # categoricals: a third of the memory


def service() -> Service:
    cfg = settings()
    return _service(cfg.source_id, str(cfg.cache_dir), cfg.shared_id)


@st.cache_data(ttl=300, show_spinner=False)
def _sensors(source_id: str) -> list[dict]:
    """The key's sensors: one request per source every five minutes, whoever asks,
    counted in the deployment's meter (as "server": no user caused it alone)."""
    listed = service().client.sensors()
    cfg = settings()
    if not cfg.demo:
        from flux_dashboard.service import request_meter

        try:
            request_meter(cfg).add("server", 1)
        except (FluxError, OSError):  # a meter that is down never hides the sensors
            pass
    return listed


def sensors(cfg: Settings) -> list[dict]:
    return _sensors(cfg.source_id)


@st.cache_resource(show_spinner=False)
def _hourly(source_id: str, cache_dir: str, per_device: bool):
    from flux_dashboard.hourly import HourlyLoader

    cfg = settings()
    return HourlyLoader(service().client, cfg.cache_dir, per_device=per_device, clock=cfg.now)


def hourly_loader(cfg: Settings, per_device: bool = False):
    """The process's loader of hourly totals (``hourly.py``) on the shared client."""
    return _hourly(cfg.source_id, str(cfg.cache_dir), per_device)


def loader_for(grant: Grant) -> GuardedLoader:
    """The shared loader behind the session's grant: other sensors are refused first."""
    return GuardedLoader(service().loader, grant)


@st.cache_resource(show_spinner=False)
def _masker(source_id: str, cache_dir: str) -> Masker:
    return settings_masker(settings().cache_dir)


def masker(cfg: Settings) -> Masker:
    return _masker(cfg.source_id, str(cfg.cache_dir))


# ------------------------------------------------------------------ derived data cache
def _size(value: Any, depth: int = 0) -> int:
    """Approximate bytes held by a cached value (frames dominate; the rest is small)."""
    if isinstance(value, pl.DataFrame | pl.Series):
        return int(value.estimated_size()) + 256
    if depth < 3 and isinstance(value, dict):
        return 256 + sum(_size(k, depth + 1) + _size(v, depth + 1) for k, v in value.items())
    if depth < 3 and isinstance(value, list | tuple | set | frozenset):
        return 128 + sum(_size(v, depth + 1) for v in value)
    if depth < 3 and hasattr(value, "__dataclass_fields__"):
        return 256 + sum(_size(getattr(value, f), depth + 1) for f in value.__dataclass_fields__)
    return 64 if isinstance(value, int | float | bool | None) else 512


def _derived_budget() -> int:
    return memory_budget("derived")  # FLUX_MEMORY_MB: half of it


# Bounded by bytes, not entries: one entry can be a whole prepared month.
_derived: TTLCache = TTLCache(maxsize=_derived_budget(), ttl=900, getsizeof=_size)
_derived_lock = threading.Condition()
_computing: set[tuple] = set()


def memo(key: tuple, fn: Callable[[], Any]) -> Any:
    """``fn()`` cached under ``key``; concurrent callers of one key wait for one result."""
    with _derived_lock:
        while True:
            if key in _derived:
                return _derived[key]
            if key not in _computing:
                _computing.add(key)
                break
            _derived_lock.wait()
    try:
        value = fn()
        with _derived_lock:
            try:
                _derived[key] = value
            except ValueError:  # larger than the whole budget: serve it, don't keep it
                pass
        return value
    finally:
        with _derived_lock:
            _computing.discard(key)
            _derived_lock.notify_all()


def data_key(cfg: Settings, sensor_id: int, result: LoadResult, masked: bool) -> tuple:
    """Identifies one loaded frame (and its masking) in the derived-data caches."""
    return (cfg.source_id, int(sensor_id), result.start, result.end,
            tuple(sorted(result.server_filters.items())), result.token, masked)


@dataclass(frozen=True)
class Keyed:
    """A frame with the key of what produced it (for ``View.compute``)."""

    key: tuple
    frame: pl.DataFrame

    @property
    def height(self) -> int:
        return self.frame.height


def _key_part(a: Any) -> Any:
    if isinstance(a, Keyed):
        return ("keyed", a.key)
    if isinstance(a, pl.DataFrame | pl.LazyFrame | pl.Series):
        raise TypeError("compute() takes frames as Keyed (sub)frames, never bare frames: "
                        "a bare frame has no key but its id(), which is reused")
    if isinstance(a, list | tuple):
        return tuple(_key_part(x) for x in a)
    return a


def _unwrap(a: Any) -> Any:
    return a.frame if isinstance(a, Keyed) else a


@dataclass
class View:
    """Everything a page needs: the sensor, the window, the filters and the frame."""

    settings: Settings
    sensor: dict
    tz: str
    hno_hours: tuple[int, ...]
    start: datetime
    end: datetime
    filters: Filters
    masked: bool
    result: LoadResult
    base: pl.DataFrame  # prepared (countries, masking), before local filters
    frame: pl.DataFrame  # what the pages show
    range_label: str
    data_key: tuple
    device_names: dict[str, str] = field(default_factory=dict)
    partial_note: str = ""  # set when some hours could not be loaded
    session: Any = None  # ui.auth.Session: who is looking, with which grant
    offline: bool = False  # the load was stopped (cancel, budget): no other load fetches

    @property
    def key(self) -> tuple:
        return (self.data_key, self.filters)

    def compute(self, fn: Callable, *args, frame: Keyed | None = None, **kw) -> Any:
        """``fn(frame, *args, **kw)`` memoised by (data, filters, function, arguments).

        ``fn`` must be a named module-level function: its qualified name is the
        key. Frame arguments (and ``frame=``) must be ``Keyed``.
        """
        if fn.__name__ == "<lambda>":
            raise TypeError("compute() needs a named function, not a lambda")
        key = (self.key, fn.__module__, fn.__qualname__, _key_part(args),
               tuple(sorted((k, _key_part(v)) for k, v in kw.items())),
               None if frame is None else _key_part(frame))
        target = self.frame if frame is None else _unwrap(frame)
        return memo(key, lambda: fn(target, *(_unwrap(a) for a in args),
                                    **{k: _unwrap(v) for k, v in kw.items()}))

    def subset(self, fn: Callable, *args) -> Keyed:
        """``fn(frame, *args)`` as a Keyed frame, e.g. one device's flows."""
        df = self.compute(fn, *args)
        return Keyed((self.key, "subset", fn.__module__, fn.__qualname__, _key_part(args)), df)

    def local(self, t: datetime) -> datetime:
        return t.astimezone(ZoneInfo(self.tz))

    def sensor_label(self) -> str:
        s = self.sensor
        return f"{s.get('full_name') or s.get('name') or 'Sensor'} (#{s['id']})"
