"""Notifiers for the tests: a service on a simulator served over HTTP, a database, a
cache and routes, built the same way in the test process and in the child processes
that the exactly-once tests start and kill (``python -m tests.kit.notifying``)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from flux_dashboard.audit import AuditLog
from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.loader import Loader
from flux_dashboard.notify import routes as R
from flux_dashboard.notify.notifier import Notifier
from flux_dashboard.service import Service
from flux_dashboard.store import Store

PUBLIC_URL = "https://flux.example.test/base"


def service(url: str, cache: Path, database: str, now: datetime, clock=None) -> Service:
    clock = clock or (lambda: now)
    settings = Settings(api_url=url, api_key=Secret("notify-key"), rate_limit_per_min=60_000,
                        cache_dir=cache, database_url=database, pinned_now=now)
    client = Client(settings, limiter=RateLimiter(60_000), sleep=lambda s: None)
    return Service(settings, client, Loader(client, Store(cache), clock=clock,
                                            max_concurrency=4))


def notifier(svc: Service, toml: str, env: dict[str, str], clock, audit: Path,
             **kw) -> Notifier:
    import tomllib

    routes = R.parse(tomllib.loads(toml), env=env)
    return Notifier(svc, routes, clock=clock, public_url=PUBLIC_URL,
                    audit=AuditLog(audit, clock=clock), backoff_s=0.01, **kw)


def main(argv: list[str]) -> int:
    """Child process: ``plan-then-die SPEC`` records what is due, then kills itself
    with SIGKILL (a worker killed between recording and sending); ``cycle SPEC``
    waits for the go file, then runs ``repeat`` cycles."""
    action, spec = argv[0], json.loads(argv[1])
    now = datetime.fromisoformat(spec["now"])
    svc = service(spec["api"], Path(spec["cache"]), spec["database"], now)
    n = notifier(svc, spec["toml"], spec["env"], lambda: now, Path(spec["audit"]),
                 worker_id=f"child-{os.getpid()}")
    if action == "plan-then-die":
        n.sensors()
        n.plan(spec.get("synced"))
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "cycle":
        go = Path(spec["go"])
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(int(spec.get("repeat", 1))):
            n.cycle(spec.get("synced"))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
