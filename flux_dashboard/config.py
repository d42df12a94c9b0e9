"""Settings: where the data comes from and how hard we may pull on it.

Sources, highest priority first: explicit arguments (CLI flags), environment
variables, ``.streamlit/secrets.toml``, defaults. With no API key at all the
dashboard and the CLI run on the embedded simulator ("demo mode").

The key is held in a ``Secret`` whose repr and str never show it; everything
that needs to identify a data source (cache keys, rate-limiter registry) uses
``Settings.source_id``: the API URL plus a salted, non-reversible fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flux_dashboard import clock
from flux_dashboard.errors import ConfigError

DEFAULT_API_URL = "https://api.control.serenicity.fr/api/v1"
DEMO_API_URL = "http://demo.invalid/api/v1"
DEMO_KEY = "demo-key-not-secret"
DEFAULT_RATE_LIMIT = 100  # requests per minute per key (documented)
DEMO_RATE_LIMIT = 60_000  # the embedded simulator is in-process: no reason to wait
DEFAULT_PER_PAGE = 1000
DEFAULT_MAX_RANGE_DAYS = 92
DEFAULT_RECHECK_HOURS = 48  # cached hours this recent are re-counted for late uploads
DEMO_TZ = "Europe/Paris"  # the demo story's days are the main simulated sensor's local days


def demo_day(now: datetime) -> date:
    """Day 0 of the demo story at ``now``: the simulated main sensor's local date."""
    return now.astimezone(ZoneInfo(DEMO_TZ)).date()


DEFAULT_MEMORY_MB = 1024  # the in-memory caches of one process, together (FLUX_MEMORY_MB)
# How that budget is shared: derived results (prepared frames, aggregates), the
# loader's hot frames (whole windows, reused for five minutes), and the cached-only
# (partial) windows a rerun would otherwise read again.
MEMORY_SHARES = {"derived": 0.5, "hot": 0.4, "partial": 0.1}


def memory_budget(part: str, total_mb: int | None = None) -> int:
    """Bytes of the memory budget (``total_mb``, else ``FLUX_MEMORY_MB``, else 1024)
    given to one in-memory cache; an invalid setting counts as the default here
    (``load_settings`` reports it)."""
    if total_mb is None:
        try:
            total_mb = _int("FLUX_MEMORY_MB", os.environ.get("FLUX_MEMORY_MB", "").strip()
                            or None, DEFAULT_MEMORY_MB, minimum=64)
        except ConfigError:
            total_mb = DEFAULT_MEMORY_MB
    return int(total_mb * MEMORY_SHARES[part] * 2**20)


DEFAULT_CARBON_G_PER_GB = 18.0  # cybercarbon: gCO2e per GB on a fixed network (mobile: 50)


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a cache by accident
        raise TypeError("Secret values cannot be pickled")


def fingerprint(key: str) -> str:
    """A short, salted, non-reversible identifier of an API key."""
    return hashlib.blake2b(key.encode(), digest_size=8, person=b"flux-key-fp").hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flux-dashboard"


@dataclass(frozen=True)
class Settings:
    api_url: str = DEFAULT_API_URL
    api_key: Secret | None = field(default=None, repr=False, compare=False)
    rate_limit_per_min: int = DEFAULT_RATE_LIMIT
    per_page: int = DEFAULT_PER_PAGE
    cache_dir: Path = field(default_factory=default_cache_dir)
    max_concurrency: int = 8
    max_range_days: int = DEFAULT_MAX_RANGE_DAYS
    timeout_s: float = 30.0
    demo: bool = False
    dense_demo: bool = False
    # FLUX_DEMO_HOSTILE_NAMES: the embedded demo's two devices named with HTML and markdown
    # (the escaping tests'); off, it shows what a customer would see.
    demo_hostile_names: bool = False
    recheck_hours: int = DEFAULT_RECHECK_HOURS
    # Shared state for several processes (rate limit, load locks, counters): see
    # shared.py. May hold a password: never shown (see shared.redis_host).
    redis_url: str | None = field(default=None, repr=False)
    # The embedded demo's story day (day 0): its data differs from one day to the next.
    demo_day: date | None = None
    # FLUX_NOW: the clock pinned to one instant (a simulator only; see clock.py).
    pinned_now: datetime | None = None
    carbon_g_per_gb: float = DEFAULT_CARBON_G_PER_GB
    # FLUX_DATABASE_URL: the findings database (triage/db.py); None: SQLite in cache_dir.
    # May hold a password: never shown (triage.db.where names host and port only).
    database_url: str | None = field(default=None, repr=False)
    memory_mb: int = DEFAULT_MEMORY_MB  # the in-memory caches together (MEMORY_SHARES)

    def now(self) -> datetime:
        """The process's "now" (UTC): the pinned instant, else the wall clock."""
        return self.pinned_now if self.pinned_now is not None else clock.real()

    @property
    def source_id(self) -> str:
        """Identifies the data source in cache keys: URL + key fingerprint, never the key.

        The embedded demo adds its story day, density and hostile names: a demo
        started on another day, the dense one or the hostile one is another data set
        (own disk cache).
        """
        fp = fingerprint(self.api_key.reveal()) if self.api_key else "nokey"
        # A pinned clock sees another open hour: never mixed with a moving one's cache.
        pin = f"|at {self.pinned_now.isoformat()}" if self.pinned_now else ""
        if self.demo:
            story = (f"|{self.demo_day or ''}{'|dense' if self.dense_demo else ''}"
                     f"{'|hostile' if self.demo_hostile_names else ''}")
            return f"demo|{self.api_url}|{fp}{story}{pin}"
        return f"api|{self.api_url}|{fp}{pin}"

    @property
    def shared_id(self) -> str:
        """Which shared state (Redis) this process uses, for resource keys: a hash of
        ``redis_url`` (which may hold a password), or "local"."""
        if not self.redis_url:
            return "local"
        return hashlib.blake2b(self.redis_url.encode(), digest_size=8).hexdigest()

    @property
    def host(self) -> str:
        """Host and port of the API, for display: never the URL's user or password."""
        parts = urlsplit(self.api_url)
        host = parts.hostname or "unknown host"
        if ":" in host:  # IPv6: brackets keep its colons apart from the port's
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:  # not a number: the connection fails anyway, show the host
            port = None
        return host if port is None else f"{host}:{port}"

    def describe(self) -> str:
        if self.demo:
            return "Demo sensor, simulated data"
        return f"Serenicity API · {self.host}"

    def with_overrides(self, **kw) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def read_secrets(path: Path) -> dict:
    """The secrets file as a dict ({} when absent); ConfigError when unreadable."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Could not read {path}: {exc.__class__.__name__}. "
                          "Fix the file or remove it.") from None


def _int(name: str, raw: str | int | None, default: int, minimum: int = 1) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _flag(raw: str | None) -> bool:
    return (raw or "").lower() in ("1", "true", "yes")


def _redis_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    from flux_dashboard.shared import validate_url

    return validate_url(raw)


def _database_url(raw: str | None) -> str | None:
    """FLUX_DATABASE_URL as given: checked when triage connects (``triage.db.connect``),
    so that a bad one turns triage off with a message and leaves the flows working."""
    return raw or None


def _pinned_now(raw: str | None, simulator: bool) -> datetime | None:
    """FLUX_NOW: the instant the clock is pinned to, on a simulator only (clock.py)."""
    if raw in (None, ""):
        return None
    if not simulator:
        raise ConfigError("FLUX_NOW pins the clock for tests, benchmarks and demo rehearsals, "
                          "and is accepted only on the simulator (no SERENICITY_API_KEY): on "
                          "real data it would hide every new hour. Remove FLUX_NOW.")
    try:
        return clock.parse_instant(raw)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _positive(name: str, raw: str | None, default: float) -> float:
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r}.")
    return value


def secrets_file(env: Mapping[str, str] | None = None) -> Path:
    """The secrets file: ``FLUX_SECRETS_FILE`` (a hosted deployment's, for the CLI and the
    sync worker too), else ``.streamlit/secrets.toml`` in the working directory."""
    env = os.environ if env is None else env
    return Path(env.get("FLUX_SECRETS_FILE") or Path.cwd() / ".streamlit" / "secrets.toml"
                ).expanduser()


def load_settings(
    env: dict[str, str] | None = None,
    secrets: dict | None = None,
    secrets_path: Path | None = None,
    **overrides,
) -> Settings:
    """Build settings from the environment, then secrets, then defaults.

    ``secrets`` may be passed directly (Streamlit's ``st.secrets``); otherwise
    ``secrets_path`` (default ``.streamlit/secrets.toml`` in the working
    directory) is read if present. ``overrides`` (CLI flags) win over both.
    """
    env = dict(os.environ if env is None else env)
    if secrets is None:
        secrets = read_secrets(secrets_path or secrets_file(env))
    sec = {k.upper(): v for k, v in secrets.items() if isinstance(v, str | int)}

    def get(name: str) -> str | None:
        value = env.get(name)
        if value in (None, ""):
            value = sec.get(name)
        return None if value in (None, "") else str(value).strip()

    key = overrides.pop("api_key", None) or get("SERENICITY_API_KEY")
    url = overrides.pop("api_url", None) or get("SERENICITY_API_URL") or DEFAULT_API_URL
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError("SERENICITY_API_URL must start with http:// or https://.")
    try:
        parts = urlsplit(url)
        credentials = parts.username is not None or parts.password is not None
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError("SERENICITY_API_URL is not a valid URL.") from None
    if credentials:
        # httpx would send them as Basic auth instead of the key, and they would sit in
        # every cache key and repr: refuse, without echoing them.
        raise ConfigError("SERENICITY_API_URL must not contain a user name or password: the "
                          "API is authenticated with SERENICITY_API_KEY alone.")
    # No key and no URL: the embedded simulator. A URL without a key is a local
    # simulator served over HTTP (it accepts any key), so it gets the demo key.
    embedded = key is None and url == DEFAULT_API_URL
    pinned = _pinned_now(get("FLUX_NOW"), simulator=key is None)
    now = pinned or clock.real()
    rate_default = DEMO_RATE_LIMIT if embedded else DEFAULT_RATE_LIMIT
    settings = Settings(
        api_url=DEMO_API_URL if embedded else url,
        api_key=Secret(key or DEMO_KEY),
        rate_limit_per_min=_int("FLUX_RATE_LIMIT", get("FLUX_RATE_LIMIT"), rate_default),
        per_page=_int("FLUX_PER_PAGE", get("FLUX_PER_PAGE"), DEFAULT_PER_PAGE),
        cache_dir=Path(get("FLUX_CACHE_DIR") or default_cache_dir()).expanduser(),
        max_concurrency=_int("FLUX_MAX_CONCURRENCY", get("FLUX_MAX_CONCURRENCY"), 8),
        max_range_days=_int("FLUX_MAX_RANGE_DAYS", get("FLUX_MAX_RANGE_DAYS"),
                            DEFAULT_MAX_RANGE_DAYS),
        demo=embedded,
        dense_demo=_flag(get("FLUX_DEMO_DENSE")),
        demo_hostile_names=_flag(get("FLUX_DEMO_HOSTILE_NAMES")),
        recheck_hours=_int("FLUX_RECHECK_HOURS", get("FLUX_RECHECK_HOURS"),
                           DEFAULT_RECHECK_HOURS, minimum=0),
        redis_url=_redis_url(get("FLUX_REDIS_URL")),
        memory_mb=_int("FLUX_MEMORY_MB", get("FLUX_MEMORY_MB"), DEFAULT_MEMORY_MB, minimum=64),
        demo_day=demo_day(now) if embedded else None,
        pinned_now=pinned,
        carbon_g_per_gb=_positive("FLUX_CARBON_G_PER_GB", get("FLUX_CARBON_G_PER_GB"),
                                  DEFAULT_CARBON_G_PER_GB),
        database_url=_database_url(get("FLUX_DATABASE_URL")),
    )
    return settings.with_overrides(**overrides)
