"""The transports: where the simulated API plugs in instead of the network.

This module owns the two ways a client reaches ``Simulator.handle()``: an
``httpx.MockTransport`` for in-process clients (a "timeout" fault becomes
``httpx.ReadTimeout``), and ``SimulatorServer``, a real threaded HTTP server
for end-to-end tests and the CLI (a "timeout" fault drops the connection
unanswered). Both apply the configured latency. It also owns ``main()``,
``python -m flux_dashboard.simulator`` / ``flux_dashboard simulate``, which
serves the API until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import httpx

from flux_dashboard import clock
from flux_dashboard.simulator.config import SimulatorConfig
from flux_dashboard.simulator.query import API_PREFIX, SimulatedTimeout

if TYPE_CHECKING:
    from flux_dashboard.simulator.api import Simulator


def mock_transport(sim: Simulator) -> httpx.BaseTransport:
    """An ``httpx.MockTransport`` answering through ``sim.handle()`` (sync clients)."""

    def handler(request: httpx.Request) -> httpx.Response:
        params: dict[str, str] = {}
        for k, v in request.url.params.multi_items():
            params.setdefault(k, v)
        if sim.config.latency_s > 0 and sim.config.sleep is not None:
            sim.config.sleep(sim.config.latency_s)
        try:
            status, headers, body = sim.handle(request.method, request.url.path, params,
                                               dict(request.headers))
        except SimulatedTimeout:
            raise httpx.ReadTimeout("simulated timeout", request=request) from None
        return httpx.Response(status, headers=headers, content=body)

    return httpx.MockTransport(handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    simulator: Simulator

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        params: dict[str, str] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            params.setdefault(k, v)
        sim = self.simulator
        if sim.config.latency_s > 0:
            time.sleep(sim.config.latency_s)
        try:
            status, headers, body = sim.handle(self.command, parts.path, params,
                                               dict(self.headers.items()))
        except SimulatedTimeout:
            # Drop the connection without an answer; the client sees a protocol error.
            self.close_connection = True
            return
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class SimulatorServer:
    """A running HTTP server for a Simulator; ``url`` is the base URL including /api/v1."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        handler = type("SimHandler", (_Handler,), {"simulator": simulator})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}{API_PREFIX}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``simulate``: serve the simulated API until Ctrl-C or SIGTERM."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["simulate"]:
        args_in = args_in[1:]
    p = argparse.ArgumentParser(prog="flux_dashboard simulate",
                                description="Serve a simulated Serenicity Control API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--api-key", default=None)
    p.add_argument("--max-per-page", type=int, default=1000)
    p.add_argument("--rate-limit", type=int, default=100, help="requests/min; 0 = unlimited")
    p.add_argument("--unstable-ties", action="store_true")
    p.add_argument("--inclusive-to", action="store_true")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--now", default=os.environ.get("FLUX_NOW") or None,
                   help="pin the clock to this instant, e.g. 2026-12-06T22:59:50Z "
                        "(default: FLUX_NOW, else the wall clock)")
    args = p.parse_args(args_in)
    try:
        pinned = clock.parse_instant(args.now, "--now") if args.now else None
    except ValueError as exc:
        p.error(str(exc))
    cfg = SimulatorConfig(seed=args.seed, dense=args.dense, api_key=args.api_key,
                          max_per_page=args.max_per_page,
                          rate_limit_per_min=args.rate_limit or None,
                          unstable_ties=args.unstable_ties, inclusive_to=args.inclusive_to,
                          latency_s=args.latency_ms / 1000, fault_rate=args.fault_rate,
                          now=clock.pinned(pinned) if pinned else None)
    # Imported here: the API module imports this one for transport() and serve().
    from flux_dashboard.simulator.api import Simulator

    server = Simulator(cfg).serve(args.host, args.port)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(server.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
