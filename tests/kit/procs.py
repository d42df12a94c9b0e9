"""Processes for the tests and the benchmarks: ports, environments, Streamlit servers.

``scrubbed_env`` is the one environment clean-up: it drops every setting of this
project (``SERENICITY_*``, ``FLUX_*``) and Streamlit's own (``STREAMLIT_*``), so
a developer's API key, Redis or budget never changes what a suite tests. A child
gets only what its caller adds back on purpose.

``StreamlitServer.start`` runs a command (``streamlit run app.py`` by default, or
``make serve``'s module) in a child process that logs to a file, and polls
``/_stcore/health`` until it answers ``ok``; ``stop`` sends SIGTERM and waits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SCRUB_PREFIXES = ("SERENICITY_", "FLUX_", "STREAMLIT_")
START_TIMEOUT_S = 90.0  # a cold start on a loaded 2-core machine


def free_port() -> int:
    """A TCP port free on loopback right now (a child may still lose a race for it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_ours(name: str) -> bool:
    """Whether an environment variable is a setting this project or Streamlit reads."""
    return name.startswith(SCRUB_PREFIXES)


def scrubbed_env(extra: Mapping[str, str] | None = None,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without any of our settings,
    plus ``extra``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not is_ours(k)}
    env.update(extra or {})
    return env


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1,
               what: str = "condition") -> None:
    """Poll ``condition`` until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout:.0f} s")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
            "--server.port", str(port), "--server.address", address,
            "--browser.gatherUsageStats", "false",
            # Others edit the app while tests run: no reload in the middle of a test.
            "--server.fileWatcherType", "none"]


@dataclass
class StreamlitServer:
    """A Streamlit server in a child process, logging to ``log_path``."""

    url: str
    proc: subprocess.Popen
    log_path: Path
    mode: str = "demo"  # what it serves, for messages: "demo", "api", "hosted"...
    checked: int = 0  # bytes of the log already checked for tracebacks

    @classmethod
    def start(cls, workdir: Path, env: Mapping[str, str], *, mode: str = "demo",
              command: Callable[[int], Sequence[str] | tuple[Sequence[str], dict]]
              | None = None,
              host: str = "127.0.0.1", timeout: float = START_TIMEOUT_S,
              log_path: Path | None = None) -> StreamlitServer:
        """Start a server logging to ``log_path`` (default ``workdir/server.log``) with
        exactly ``env`` (see ``scrubbed_env``); ``command(port)`` gives its command
        line (default: ``streamlit run app.py``), or (command line, settings that
        name the port). Returns once ``/_stcore/health`` answers ``ok``;
        RuntimeError with the log's tail otherwise."""
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = log_path or workdir / "server.log"
        tail = ""
        for _attempt in range(3):  # a port taken between bind() and the child's bind
            port = free_port()
            argv = (command or streamlit_command)(port)
            argv, extra = argv if isinstance(argv, tuple) else (argv, {})
            with log_path.open("wb") as log:
                proc = subprocess.Popen(list(argv), cwd=ROOT,
                                        env={**env, **extra, "PYTHONUNBUFFERED": "1"},
                                        stdout=log, stderr=subprocess.STDOUT)
            server = cls(f"http://{host}:{port}", proc, log_path, mode)
            health = f"http://127.0.0.1:{port}/_stcore/health"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = httpx.get(health, timeout=2)
                    if r.status_code == 200 and r.text.strip() == "ok":
                        return server
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            tail = server.log_text()[-3000:]
            server.stop()
            if "is not available" not in tail and "address already in use" not in tail:
                break
        raise RuntimeError(f"streamlit did not become healthy ({mode}); log tail:\n{tail}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

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

    def stop(self, timeout: float = 15.0) -> int | None:
        return stop_process(self.proc, timeout)
