"""The findings database: where it is, an engine for it, and its migrations.

``database_url(settings)``: ``FLUX_DATABASE_URL`` (``postgresql+psycopg://…`` for
replicas and the worker; ``sqlite:///path``), else an SQLite file in the cache
directory (one per data source: the demo's findings never mix with a real
key's). ``connect(url)`` builds the engine and applies the migrations
(``upgrade``), so the app, the worker and ``python -m flux_dashboard db upgrade``
all start on the latest schema. Whatever goes wrong comes out as one
``DatabaseUnavailableError`` that names the host and port (``where``), never
the password.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from flux_dashboard import errors as E

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0002"


def default_url(cache_dir: Path, source_id: str = "") -> str:
    """The embedded default: an SQLite file in the cache directory, per data source."""
    tag = hashlib.blake2b(source_id.encode(), digest_size=5).hexdigest() if source_id else ""
    name = f"findings-{tag}.sqlite3" if source_id.startswith("demo|") else "findings.sqlite3"
    return f"sqlite:///{Path(cache_dir).expanduser() / name}"


def database_url(settings) -> str:
    return settings.database_url or default_url(settings.cache_dir, settings.source_id)


def where(url: str) -> str:
    """Host and port (or the SQLite file) of ``url``, for messages: never the password."""
    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001 - any malformed URL: say so, show nothing of it
        return "an unreadable FLUX_DATABASE_URL"
    if u.get_backend_name() == "sqlite":
        return f"SQLite file {u.database or '(in memory)'}"
    host = u.host or "localhost"
    return f"{u.get_backend_name()} at {host}:{u.port or 5432}"


def validate_url(raw: str) -> str:
    """``FLUX_DATABASE_URL`` as given, or a ConfigError naming what is wrong (never it)."""
    try:
        u = make_url(raw)
    except Exception:  # noqa: BLE001
        raise E.ConfigError("FLUX_DATABASE_URL is not a database URL: expected "
                            "postgresql+psycopg://user@host:port/db or sqlite:///path.") from None
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise E.ConfigError("FLUX_DATABASE_URL must be a PostgreSQL "
                            "(postgresql+psycopg://…) or SQLite (sqlite:///…) URL.")
    if u.get_backend_name() == "postgresql" and u.get_driver_name() not in ("psycopg", ""):
        raise E.ConfigError("FLUX_DATABASE_URL: use the psycopg driver "
                            "(postgresql+psycopg://…).")
    return raw


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # one writer, many readers (app + worker)
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def engine(url: str) -> sa.Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        eng = sa.create_engine(u, connect_args={"timeout": 10})
        sa.event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    if u.get_driver_name() in ("", "psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return sa.create_engine(u, pool_pre_ping=True, pool_size=5, max_overflow=5,
                            connect_args={"connect_timeout": 5})


def _alembic_config(connection: sa.Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current(eng: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(eng: sa.Engine, attempts: int = 5) -> str:
    """Apply the migrations up to ``HEAD``; returns the revision. Several processes may
    start at once: PostgreSQL serialises them with an advisory lock; SQLite's writer
    lock makes the losers retry (and find the schema already there)."""
    from alembic import command

    for attempt in range(attempts):
        try:
            with eng.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(20261207)"))
                command.upgrade(_alembic_config(conn), "head")
            return current(eng) or HEAD
        except sa.exc.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
        except sa.exc.IntegrityError:  # a concurrent first upgrade wrote alembic_version
            if attempt == attempts - 1:
                raise
    return current(eng) or HEAD


def connect(url: str) -> sa.Engine:
    """An engine on ``url`` with the latest schema, or ``DatabaseUnavailableError``."""
    try:
        validate_url(url)
    except E.ConfigError as exc:
        raise E.DatabaseUnavailableError(f"{exc} Flows still work; triage is unavailable "
                                         "until it is fixed.") from None
    try:
        eng = engine(url)
        upgrade(eng)
        return eng
    except Exception as exc:  # noqa: BLE001 - driver errors quote the URL: say where only
        log.warning("findings database %s unavailable: %s", where(url), type(exc).__name__)
        raise E.DatabaseUnavailableError(
            f"The findings database ({where(url)}) cannot be reached or prepared "
            f"({type(exc).__name__}). Flows still work; triage is unavailable until it is "
            "back. Check FLUX_DATABASE_URL and that the server accepts connections.") from None
