"""The transports: where the simulated API plugs in instead of the network.

This module owns the two ways a client reaches a ``Handler`` (any object with
``config`` and ``handle()``, such as ``api.Simulator``; like an httpx transport,
this module never imports the API it carries): an ``httpx.MockTransport`` for
in-process clients (a "timeout" fault becomes ``httpx.ReadTimeout``), and
``SimulatorServer``, a real threaded HTTP server for end-to-end tests and the
CLI (a "timeout" fault drops the connection unanswered). Both apply the
configured latency.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from flux_dashboard.simulator.config import SimulatorConfig
from flux_dashboard.simulator.query import API_PREFIX, SimulatedTimeout


class Handler(Protocol):
    """What a transport carries: the API's ``handle()`` and the config's latency and sleep."""

    config: SimulatorConfig

    def handle(self, method: str, path: str, params: dict[str, str],
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]: ...


def mock_transport(sim: Handler) -> httpx.BaseTransport:
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
    simulator: Handler

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
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout, a stopped process): as a real API, carry on.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class SimulatorServer:
    """A running HTTP server for a ``Handler``; ``url`` is the base URL including /api/v1."""

    def __init__(self, simulator: Handler, host: str = "127.0.0.1", port: int = 0):
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
