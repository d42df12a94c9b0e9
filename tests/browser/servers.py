"""Streamlit servers for the browser tests, and the registry their logs are checked from.

``start_server`` runs ``streamlit run app.py`` through the kit
(``tests.kit.procs.StreamlitServer``): a scrubbed environment (no API key, no
developer setting), its own cache directory, the clock pinned to the suite's
instant (``FLUX_NOW``), the demo's hostile device names on
(``FLUX_DEMO_HOSTILE_NAMES``: the escaping and masking checks look for them),
and a health poll. Every server is registered in
``STARTED``; ``server_log_tracebacks`` reads each registered log from where the
previous call stopped and returns the parts that hold a traceback.
"""

from __future__ import annotations

from pathlib import Path

from tests.kit.clock import PINNED_ISO
from tests.kit.procs import ROOT, StreamlitServer, scrubbed_env

__all__ = ["ROOT", "STARTED", "Server", "register", "server_log_tracebacks", "start_server"]

Server = StreamlitServer

# Every server started in this session, shared or fresh (for the log check).
STARTED: list[StreamlitServer] = []


def register(server: StreamlitServer) -> StreamlitServer:
    """Add a server started elsewhere (``make serve``'s module) to the log check."""
    STARTED.append(server)
    return server


def start_server(workdir: Path, mode: str, extra_env: dict[str, str] | None = None
                 ) -> StreamlitServer:
    """``streamlit run app.py`` at the pinned clock, healthy and registered."""
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = scrubbed_env({"FLUX_CACHE_DIR": str(cache), "FLUX_NOW": PINNED_ISO,
                        "FLUX_DEMO_HOSTILE_NAMES": "1", **(extra_env or {})})
    return register(StreamlitServer.start(workdir, env, mode=mode))


def server_log_tracebacks(only: list[StreamlitServer] | None = None) -> list[str]:
    """Tracebacks logged since the last check, per server (each log line is read once)."""
    found = []
    for s in STARTED if only is None else only:
        text = s.new_log()
        if "Traceback" in text:
            found.append(f"--- {s.mode} server {s.url} ({s.log_path}):\n{text[-4000:]}")
    return found
