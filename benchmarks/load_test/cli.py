"""``python -m benchmarks.load_test``: the command line, the run and its files.

This module owns ``parse_args`` (its help is the package's overview), ``run``
(the two phases on the month ``scenario.closed_days`` gives, the report, and
``results.md`` / ``results.json`` in ``--out``; ``benchmarks.bench`` calls it
as its fifth part) and ``main`` (exit status 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import benchmarks.load_test
from benchmarks.load_test.report import report
from benchmarks.load_test.runner import run_phases
from benchmarks.load_test.scenario import closed_days
from tests.kit.procs import ROOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_test",
                                description=benchmarks.load_test.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--baseline-sessions", type=int, default=1)
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--think-min", type=float, default=1.0, help="pause between actions, s")
    p.add_argument("--think-max", type=float, default=3.0)
    p.add_argument("--days", type=int, default=30, help="length of the month opened")
    p.add_argument("--driver", choices=["ws", "browser"], default="ws",
                   help="ws: each session is a websocket speaking Streamlit's protocol "
                        "(benchmarks/load_test/ws_session.py); browser: a Chromium page "
                        "each, rendering on the server's own cores")
    p.add_argument("--out", default=str(ROOT / "bench-output" / "load"))
    p.add_argument("--cache-dir", default=str(ROOT / "bench-output" / "load-cache"),
                   help="the server's cache (kept: the dense month loads once)")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> tuple[list[str], list[str], dict]:
    """Run the load test; returns (report lines, failed targets, data)."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    days = closed_days(args.days)
    print(f"load test · {args.sessions} sessions vs {args.baseline_sessions} · "
          f"{args.minutes:g} min · {days[0]} → {days[1]} · {os.cpu_count()} CPUs", flush=True)
    base, load = asyncio.run(run_phases(args, days, out))
    lines, failed, data = report(base, load, args, days)
    stamp = (f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, "
             f"driver {args.driver} (sessions and server on the same machine)._")
    data["measured"] = stamp
    (out / "results.md").write_text("\n".join([*lines, stamp]) + "\n")
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
    return lines, failed, data


def main(argv: list[str] | None = None) -> int:
    lines, failed, data = run(argv)
    print("\n" + "\n".join([*lines, data["measured"]]))
    errors = data["errors"]["baseline"] + data["errors"]["load"]
    if errors:
        print("\nErrors:\n" + "\n".join(f"- {e}" for e in errors[:30]))
    return 1 if failed else 0
