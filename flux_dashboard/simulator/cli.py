"""``python -m flux_dashboard.simulator`` / ``flux_dashboard simulate``: serve the API.

This module owns ``main()``: it reads the command line into a
``SimulatorConfig``, builds the ``Simulator`` and serves it over HTTP (the
transports' ``SimulatorServer``) until Ctrl-C or SIGTERM, printing the base
URL on its first line of output.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from flux_dashboard import clock
from flux_dashboard.simulator.api import Simulator
from flux_dashboard.simulator.config import SimulatorConfig


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
    p.add_argument("--hostile-names", action="store_true",
                   help="two devices named with HTML and markdown (escaping tests)")
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
                          hostile_names=args.hostile_names, unstable_ties=args.unstable_ties,
                          inclusive_to=args.inclusive_to,
                          latency_s=args.latency_ms / 1000, fault_rate=args.fault_rate,
                          now=clock.pinned(pinned) if pinned else None)
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
