"""Streamlit servers for the browser tests, and the registry their logs are checked from.

``start_server`` runs ``streamlit run app.py`` in a child process with its own
cache directory and no API key in its environment, waits until
``/_stcore/health`` answers, and registers it in ``STARTED``;
``server_log_tracebacks`` reads each registered log from where the previous
call stopped and returns the parts that hold a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from flux_dashboard.config import demo_day

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: Path
    mode: str  # "demo" | "api"
    checked: int = 0  # bytes of the log already checked for tracebacks

    def _log_bytes(self, since: int = 0) -> bytes:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(since)
                return fh.read()
        except OSError:
            return b""

    def log_text(self) -> str:
        return self._log_bytes().decode(errors="replace")

    def new_log(self) -> str:
        """The log written since the last call (for the traceback check)."""
        data = self._log_bytes(self.checked)
        self.checked += len(data)
        return data.decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


SESSION_DEMO_DAY = demo_day()

# Every server started in this session, shared or fresh (for the log check).
STARTED: list[Server] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, mode: str, extra_env: dict[str, str] | None = None) -> Server:
    """Start ``streamlit run app.py`` and wait until ``/_stcore/health`` answers ``ok``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cache = workdir / "cache"
    cache.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SERENICITY_API_KEY", "SERENICITY_API_URL", "FLUX_RATE_LIMIT")}
    # One demo story for the whole session, even when it crosses the sensor's midnight.
    env.update({"FLUX_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1",
                "FLUX_DEMO_DAY": SESSION_DEMO_DAY.isoformat()})
    env.update(extra_env or {})
    log_path = workdir / "server.log"
    last_error = ""
    for _attempt in range(3):  # a port taken between bind() and the child's bind: retry
        port = _free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py",
                 "--server.headless", "true", "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                 # Others edit the app while tests run: no reload in the middle of a test.
                 "--server.fileWatcherType", "none"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", proc, log_path, mode)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"{server.url}/_stcore/health", timeout=2)
                if r.status_code == 200 and r.text.strip() == "ok":
                    STARTED.append(server)
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        last_error = server.log_text()[-3000:]
        server.stop()
        if "is not available" not in last_error:
            break
    raise RuntimeError(f"streamlit did not become healthy ({mode}); log tail:\n{last_error}")


def server_log_tracebacks(only: list[Server] | None = None) -> list[str]:
    """Tracebacks logged since the last check, per server (each log line is read once)."""
    found = []
    for s in STARTED if only is None else only:
        text = s.new_log()
        if "Traceback" in text:
            found.append(f"--- {s.mode} server {s.url} ({s.log_path}):\n{text[-4000:]}")
    return found
