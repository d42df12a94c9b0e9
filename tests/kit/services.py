"""Real services for the tests, started on free loopback ports by the tests themselves.

``RedisServer``: Debian's ``redis-server`` (``.ci/run`` and ``make test``
install the package when it is missing). Nothing is persisted:
``--save "" --appendonly no``.

``PostgresServer``: Debian's PostgreSQL (``postgresql`` package), a throwaway
cluster in a temporary directory, started as the ``postgres`` user when the
tests run as root (PostgreSQL refuses to run as root), trust authentication on
127.0.0.1 only, no fsync. ``database()`` creates a fresh database per test.

``SmtpServer`` (aiosmtpd) and ``WebhookReceiver`` (http.server): the receiving ends
of notifications, each on a free loopback port.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.kit.procs import free_port, stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_BIN = next((Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
              Path("/usr/lib/postgresql/15/bin"))


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError("redis-server is missing: sudo apt-get install redis-server "
                               "(make test and .ci/run install it when run as root)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self.workdir = workdir
        self._start()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop it and, ``down_s`` later, start it again on the same address, empty
        (no persistence)."""
        self.stop()
        time.sleep(down_s)
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()

    def stop(self) -> None:
        stop_process(self.proc, 10)


class PostgresServer:
    """A PostgreSQL cluster of its own on a free loopback port (stop() removes it)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL is missing: sudo apt-get install postgresql "
                               "(make test and .ci/run install it when run as root)")
        # Its own directory right under /tmp: the postgres user cannot enter pytest's.
        self.dir = Path(tempfile.mkdtemp(prefix="flux-pg-"))
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                   "-U", "flux", "--no-sync"])
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-t", "60",
                   "-l", str(self.dir / "log"), "-o",
                   f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                   "start"])
        self.url = f"postgresql+psycopg://flux@127.0.0.1:{self.port}/postgres"
        self._n = itertools.count(1)

    def _run(self, cmd: list[str]) -> None:
        done = subprocess.run(self._as + cmd, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {done.stderr[-800:]}")

    def database(self) -> str:
        """A new, empty database: its URL."""
        import sqlalchemy as sa

        name = f"t{os.getpid()}_{next(self._n)}"
        eng = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
        return f"postgresql+psycopg://flux@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stops the cluster and removes it (again: nothing)."""
        if not (self.dir / "data").exists():
            return
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-m",
                       "immediate", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free loopback port; ``messages`` are the
    parsed e-mails received (``email.message.EmailMessage``), in order."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        server = self

        class Handler:
            async def handle_DATA(self, srv, session, envelope):  # noqa: N802 - aiosmtpd's
                import email
                from email import policy

                server.messages.append(email.message_from_bytes(
                    envelope.original_content or envelope.content, policy=policy.default))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def url(self, to: str = "team@example.org") -> str:
        """An Apprise URL that delivers here."""
        return (f"mailto://127.0.0.1:{self.port}?from=flux@example.org&to={to}"
                f"&smtp=127.0.0.1&secure=no&user=&pass=")

    def stop(self) -> None:
        self._controller.stop()


class WebhookReceiver:
    """An HTTP server on a free loopback port that records each POST (path, JSON body)
    in ``received``; the first ``fail_first`` requests get HTTP 500 (a failing
    channel). ``failures`` counts those refused."""

    def __init__(self, fail_first: int = 0) -> None:
        import http.server
        import json
        import threading

        self.received: list[tuple[str, dict]] = []
        self.fail_first = fail_first
        self.failures = 0
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if recv.failures < recv.fail_first:
                    recv.failures += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    recv.received.append((self.path, json.loads(body)))
                except ValueError:
                    recv.received.append((self.path, {"raw": body.decode(errors="replace")}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
