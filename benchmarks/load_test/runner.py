"""The phases of the load test: a fresh server, its warm-up, then N sessions at once.

This module owns ``start_server`` (the dense demo, ``FLUX_DEMO_DENSE=1``, with
the hostile device names the figures were measured with, on a fresh
``streamlit run`` with its own cache directory and the clock at
``scenario.NOW``), ``DRIVERS`` (which ``Analyst`` plays a session), ``warm_up``
(one session opens each sensor's month and visits every page, so the measured
sessions render from the cache), ``run_phase`` (the server's RSS sampled,
the sessions driven from one asyncio loop until the deadline, CPU and
tracebacks counted) and ``run_phases`` (the baseline, then the load).
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path

from benchmarks.load_test.browser import CHROMIUM, BrowserAnalyst
from benchmarks.load_test.metrics import Phase, RssSampler, cpu_snapshot, tree_rss_mb
from benchmarks.load_test.scenario import NOW, OPEN_TIMEOUT_MS, PAGES, SENSORS, Analyst
from benchmarks.load_test.ws_session import WsAnalyst
from tests.kit.procs import StreamlitServer, scrubbed_env

DRIVERS: dict[str, type[Analyst]] = {"browser": BrowserAnalyst, "ws": WsAnalyst}


def start_server(cache_dir: Path, log_path: Path, now: str = NOW) -> StreamlitServer:
    """The dense demo on a fresh server (a scrubbed environment, the clock at ``now``)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = scrubbed_env({"FLUX_CACHE_DIR": str(cache_dir), "FLUX_DEMO_DENSE": "1",
                        "FLUX_DEMO_HOSTILE_NAMES": "1", "FLUX_NOW": now})
    return StreamlitServer.start(log_path.parent, env, mode="dense demo", log_path=log_path)


async def warm_up(browser, base: str, days: tuple[date, date], driver: str) -> list[str]:
    """Open each sensor's month and visit every page once, so the cache is filled."""
    lines = []
    dummy = Phase("warmup", 1)
    for sensor in SENSORS:
        a = DRIVERS[driver](0, browser, base, days, 0, dummy, (0, 0), sensor=sensor)
        a.page_id = "overview"
        await a.start()
        try:
            t = await a.open()
            lines.append(f"sensor {sensor}: first open {t:.1f} s")
            print(f"  warm-up sensor {sensor}: opened in {t:.1f} s", flush=True)
            for page_id, _ in PAGES[1:]:
                s = await a.go_to(page_id, timeout=OPEN_TIMEOUT_MS)
                print(f"    {page_id}: {s:.1f} s", flush=True)
        finally:
            await a.close()
    if dummy.errors:
        raise RuntimeError("warm-up failed: " + "; ".join(dummy.errors))
    return lines


async def run_phase(browser, args, days, phase: Phase, out: Path) -> None:
    """A fresh server on the shared disk cache, the warm-up, then the sessions."""
    phase.diag_dir = out
    for old in out.glob(f"fail-{phase.name}-*.png"):
        old.unlink()
    server = start_server(Path(args.cache_dir), out / f"server-{phase.name}.log")
    rss = RssSampler(server.proc.pid)
    rss.start()
    try:
        print(f"[{phase.name}] warm-up on a fresh server (a cold dense month takes "
              "minutes)…", flush=True)
        rss.phase = "warmup"
        phase.warm = await warm_up(browser, server.url, days, args.driver)
        phase.rss_warm_mb = tree_rss_mb(server.proc.pid)
        print(f"[{phase.name}] {phase.sessions} session(s) for {args.minutes:g} min…",
              flush=True)
        rss.phase = phase.name
        cpu0 = cpu_snapshot(server.proc.pid)
        t0 = time.perf_counter()
        deadline = time.monotonic() + args.minutes * 60
        analysts = [DRIVERS[args.driver](i, browser, server.url, days, args.seed, phase,
                                         (args.think_min, args.think_max))
                    for i in range(phase.sessions)]
        results = await asyncio.gather(*(a.run(deadline) for a in analysts),
                                       return_exceptions=True)
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                phase.errors.append(f"session {i} crashed: {r.__class__.__name__}: {r}")
        phase.wall_s = time.perf_counter() - t0
        cpu1 = cpu_snapshot(server.proc.pid)
        phase.cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
        rss.phase = "after"
    finally:
        rss.stop()
        server.stop()
    t_start = next((t for t, p, _ in rss.samples if p == phase.name), 0.0)
    phase.rss = [(t - t_start, mb) for t, p, mb in rss.samples if p == phase.name]
    phase.tracebacks = server.log_text().count("Traceback")


async def run_phases(args, days: tuple[date, date], out: Path) -> tuple[Phase, Phase]:
    """The baseline phase, then the load phase (``--driver browser``: one Chromium for both)."""
    from playwright.async_api import async_playwright

    base = Phase("baseline", args.baseline_sessions)
    load = Phase("load", args.sessions)
    if args.driver == "ws":
        for phase in (base, load):
            await run_phase(None, args, days, phase, out)
        return base, load
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for phase in (base, load):
                await run_phase(browser, args, days, phase, out)
        finally:
            await browser.close()
    return base, load
