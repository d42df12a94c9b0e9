"""Who may see what: identities from sign-in, the access policy, roles, hosting settings.

A signed-in user (an OIDC identity: email, ``email_verified``, groups) is
matched against the policy file (TOML, ``FLUX_ACCESS_FILE``). Rules are read
top to bottom and the first rule that matches decides, as in a firewall, so
the file reads as it acts. A rule matches by exactly one of ``email`` or
``domain`` (both only when the provider says the email is verified: an
unverified address is anyone's to claim) or ``group`` (the claim named by
``groups_claim``, default ``groups``). A provider that never sends
``email_verified`` but vouches for every address itself (a single-tenant Entra
ID) can say so with ``trust_unverified_email = true``. A rule grants a role and a
list of sensor ids, or ``"*"`` for all:

- ``admin``: every listed sensor, full data, and the activity page;
- ``analyst``: full data for the listed sensors;
- ``viewer``: the listed sensors with masking forced on.

No rule matching means no access (deny by default). ``Grant.allows`` is the
one check the data layer runs before anything is served; ``guard_loader``
wraps a loader so that a sensor outside the grant raises ``AccessDeniedError``
before any request. Nothing here imports Streamlit.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flux_dashboard import errors as E
from flux_dashboard.config import DEMO_KEY, Settings

ROLES = ("admin", "analyst", "viewer")
ALL_SENSORS = None  # a grant's ``sensors`` when the rule says "*"


@dataclass(frozen=True)
class Identity:
    """The claims of a signed-in user that access decisions read."""

    email: str
    email_verified: bool
    groups: tuple[str, ...] = ()
    issued_at: datetime | None = None  # the ID token's ``iat``
    name: str = ""

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], groups_claim: str = "groups") -> Identity:
        email = str(claims.get("email") or "").strip()
        verified = claims.get("email_verified")
        groups = claims.get(groups_claim) or ()
        if isinstance(groups, str):
            groups = [groups]
        iat = claims.get("iat")
        issued = None
        if isinstance(iat, int | float) and not isinstance(iat, bool):
            issued = datetime.fromtimestamp(float(iat)).astimezone()
        return cls(email=email,
                   email_verified=verified is True or str(verified).lower() == "true",
                   groups=tuple(str(g) for g in groups if g is not None),
                   issued_at=issued, name=str(claims.get("name") or ""))


@dataclass(frozen=True)
class Grant:
    role: str
    sensors: frozenset[int] | None  # None: every sensor
    rule: str = ""  # which rule matched, for the audit trail

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def masked(self) -> bool:
        """Viewers never see original identifiers, whatever the link or switch says."""
        return self.role == "viewer"

    def allows(self, sensor_id: object) -> bool:
        try:
            sid = int(sensor_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return self.sensors is None or sid in self.sensors

    def visible(self, sensors: Iterable[Mapping]) -> list[dict]:
        return [dict(s) for s in sensors if self.allows(s.get("id"))]


ANONYMOUS = Grant(role="analyst", sensors=ALL_SENSORS, rule="anonymous")


@dataclass(frozen=True)
class Rule:
    kind: str  # email | domain | group
    value: str
    role: str
    sensors: frozenset[int] | None
    label: str

    def matches(self, who: Identity, trust_unverified: bool = False) -> bool:
        email = who.email.lower()
        verified = who.email_verified or trust_unverified
        if self.kind == "email":
            return verified and bool(email) and email == self.value
        if self.kind == "domain":
            return verified and email.rpartition("@")[2] == self.value and "@" in email
        return self.value in who.groups


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    groups_claim: str = "groups"
    source: str = ""
    trust_unverified_email: bool = False

    def grant_for(self, who: Identity) -> Grant | None:
        for rule in self.rules:
            if rule.matches(who, self.trust_unverified_email):
                return Grant(rule.role, rule.sensors, rule.label)
        return None

    @classmethod
    def from_toml(cls, text: str, source: str = "access policy") -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise E.ConfigError(f"{source} is not valid TOML: {exc}.") from None
        groups_claim = data.get("groups_claim", "groups")
        if not isinstance(groups_claim, str) or not groups_claim:
            raise E.ConfigError(f"{source}: groups_claim must be a claim name.")
        unknown = set(data) - {"groups_claim", "trust_unverified_email", "rule"}
        if unknown:
            raise E.ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; "
                                "expected groups_claim, trust_unverified_email and [[rule]] "
                                "tables.")
        trust = data.get("trust_unverified_email", False)
        if not isinstance(trust, bool):
            raise E.ConfigError(f"{source}: trust_unverified_email must be true or false.")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise E.ConfigError(f"{source}: rules are [[rule]] tables.")
        rules = tuple(_rule(r, i + 1, source) for i, r in enumerate(raw_rules))
        return cls(rules, groups_claim, source, trust)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise E.ConfigError(f"Cannot read the access policy {path}: "
                                f"{exc.strerror or exc.__class__.__name__}.") from None
        return cls.from_toml(text, source=f"Access policy {path.name}")


def _rule(raw: object, n: int, source: str) -> Rule:
    where = f"{source}, rule {n}"
    if not isinstance(raw, dict):
        raise E.ConfigError(f"{where}: a rule is a table.")
    unknown = set(raw) - {"email", "domain", "group", "role", "sensors"}
    if unknown:
        raise E.ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
    matchers = [k for k in ("email", "domain", "group") if k in raw]
    if len(matchers) != 1:
        raise E.ConfigError(f"{where}: give exactly one of email, domain or group.")
    kind = matchers[0]
    value = raw[kind]
    if not isinstance(value, str) or not value.strip():
        raise E.ConfigError(f"{where}: {kind} must be a non-empty string.")
    value = value.strip()
    if kind in ("email", "domain"):
        value = value.lower()
    if kind == "email" and value.count("@") != 1:
        raise E.ConfigError(f"{where}: email {value!r} is not an email address.")
    if kind == "domain" and ("@" in value or "." not in value):
        raise E.ConfigError(f"{where}: domain {value!r} must look like corp.example.")
    role = raw.get("role")
    if role not in ROLES:
        raise E.ConfigError(f"{where}: role must be one of {', '.join(ROLES)}.")
    sensors = raw.get("sensors")
    if not isinstance(sensors, list) or not sensors:
        raise E.ConfigError(f"{where}: sensors must be a list of sensor ids, or [\"*\"].")
    if "*" in sensors:
        if len(sensors) != 1:
            raise E.ConfigError(f"{where}: \"*\" stands alone in sensors.")
        allowed = ALL_SENSORS
    else:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                   for s in sensors):
            raise E.ConfigError(f"{where}: sensors are whole numbers (ids) or \"*\".")
        allowed = frozenset(sensors)
    return Rule(kind, value, role, allowed, f"rule {n} ({kind} {value})")


# ------------------------------------------------------------------ hosting settings
def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _whole(name: str, value: str | None, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        raise E.ConfigError(f"{name} must be a whole number, got {value!r}.") from None
    if n < 0:
        raise E.ConfigError(f"{name} must be 0 or more, got {n}.")
    return n


@dataclass(frozen=True)
class Hosting:
    """How the hosted link is protected and metered (environment variables)."""

    auth: bool = False  # an [auth] section is configured: sign-in is required
    access_file: Path | None = None
    audit_file: Path = field(default_factory=lambda: Path("audit.jsonl"))
    allow_anonymous: bool = False
    session_hours: int = 12
    confirm_requests: int = 300
    user_daily_budget: int | None = None  # requests; None: unlimited
    global_daily_budget: int | None = None
    monthly_quota: int | None = None
    force_mask: bool = False
    hosted: bool = False  # started by `make serve` (FLUX_HOSTED, set by serve.py)

    @classmethod
    def load(cls, settings: Settings, secrets: Mapping[str, Any] | None = None,
             env: Mapping[str, str] | None = None) -> Hosting:
        env = os.environ if env is None else env
        secrets = secrets or {}
        access = env.get("FLUX_ACCESS_FILE") or None
        audit = env.get("FLUX_AUDIT_FILE") or None
        return cls(
            auth=isinstance(secrets.get("auth"), Mapping),
            access_file=Path(access).expanduser() if access else None,
            audit_file=Path(audit).expanduser() if audit else settings.cache_dir / "audit.jsonl",
            allow_anonymous=_flag(env.get("FLUX_ALLOW_ANONYMOUS")),
            session_hours=_whole("FLUX_SESSION_HOURS", env.get("FLUX_SESSION_HOURS"), 12) or 12,
            confirm_requests=_whole("FLUX_CONFIRM_REQUESTS", env.get("FLUX_CONFIRM_REQUESTS"),
                                    300) or 0,
            user_daily_budget=_whole("FLUX_USER_DAILY_BUDGET",
                                     env.get("FLUX_USER_DAILY_BUDGET"), None),
            global_daily_budget=_whole("FLUX_GLOBAL_DAILY_BUDGET",
                                       env.get("FLUX_GLOBAL_DAILY_BUDGET"), None),
            monthly_quota=_whole("FLUX_MONTHLY_QUOTA", env.get("FLUX_MONTHLY_QUOTA"), None),
            force_mask=_flag(env.get("FLUX_FORCE_MASK")),
            hosted=_flag(env.get("FLUX_HOSTED")),
        )

    def policy(self) -> Policy:
        """The access policy; with sign-in on and no file, nobody is granted anything."""
        if self.access_file is None:
            return Policy(source="no access policy")
        return Policy.from_file(self.access_file)


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only.

    Streamlit's default (no address) listens on every interface.
    """
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def anonymous_refusal(settings: Settings, hosting: Hosting, address: str | None, *,
                      hosted: bool = False) -> str | None:
    """Why an anonymous server must not show data, or None when it may.

    A real API key, no sign-in, and a server reachable beyond this machine:
    anyone who can reach the port would see every sensor the key can read. A
    hosted server (``make serve``) counts as reachable whatever its address: a
    loopback address behind a reverse proxy serves the network all the same.
    """
    no_key = settings.api_key is None or settings.api_key.reveal() == DEMO_KEY
    hosted = hosted or hosting.hosted
    if settings.demo or no_key or hosting.auth or hosting.allow_anonymous \
            or (is_loopback(address) and not hosted):
        return None
    return ("This dashboard reads a real API key and is reachable from the network without "
            "sign-in: configure sign-in ([auth] in .streamlit/secrets.toml with "
            "FLUX_ACCESS_FILE), or set FLUX_ALLOW_ANONYMOUS=1 to allow anonymous access.")


def session_expired(who: Identity, now: datetime, hours: int) -> bool:
    """Sessions end ``hours`` after the token's ``iat``; no ``iat`` counts as expired."""
    if who.issued_at is None:
        return True
    return (now - who.issued_at).total_seconds() > hours * 3600


class GuardedLoader:
    """A loader that refuses sensors outside a grant before any request is made."""

    def __init__(self, loader: Any, grant: Grant) -> None:
        self._loader = loader
        self.grant = grant

    def _check(self, sensor_id: object) -> None:
        if not self.grant.allows(sensor_id):
            raise E.AccessDeniedError("You are not allowed to see this sensor.")

    def load(self, sensor_id: int, *args: Any, **kw: Any) -> Any:
        self._check(sensor_id)
        return self._loader.load(sensor_id, *args, **kw)

    def cached_coverage(self, sensor_id: int, *args: Any, **kw: Any) -> float:
        self._check(sensor_id)
        return self._loader.cached_coverage(sensor_id, *args, **kw)

    def estimate(self, sensor_id: int, *args: Any, **kw: Any) -> Any:
        self._check(sensor_id)
        return self._loader.estimate(sensor_id, *args, **kw)

    def refetch_estimate(self, sensor_id: int, *args: Any, **kw: Any) -> Any:
        self._check(sensor_id)
        return self._loader.refetch_estimate(sensor_id, *args, **kw)

    def holds(self, sensor_id: int, *args: Any, **kw: Any) -> bool:
        self._check(sensor_id)
        return self._loader.holds(sensor_id, *args, **kw)

    def expected_rows(self, sensor_id: int, *args: Any, **kw: Any) -> int | None:
        self._check(sensor_id)
        return self._loader.expected_rows(sensor_id, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        # Only what takes no sensor passes through; anything else must be listed above
        # with its check, so a new loader method is refused until it is guarded.
        if name in ("source_id", "max_concurrency", "per_page"):
            return getattr(self._loader, name)
        raise AttributeError(f"{name} is not reachable through an access guard")
