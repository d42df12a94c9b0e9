"""Concurrent-session load test: N analysts clicking at once on one app server.

``python -m benchmarks.load_test [--sessions 10] [--minutes 3] [--baseline-sessions 1]``

1. Starts ``streamlit run app.py`` once (demo mode, ``FLUX_DEMO_DENSE=1``: sensor 54
   is the dense simulator, sensor 77 the normal small one, both in one process) on a
   free loopback port, with its own cache directory (kept between runs, so the dense
   month is loaded from the embedded simulator only once).
2. Warm-up: one browser session opens a fixed month (custom dates, ending two days
   ago so that no hour is due for a late-data recheck) for each sensor and visits
   every page, so that the measured sessions render from the cache, not load.
3. Baseline: ``--baseline-sessions`` (1) session(s) for the same duration, same
   script, then the load run with ``--sessions`` (10) sessions, spread over the two
   sensors, all driven from one asyncio loop. ``--driver ws`` (default): each session
   is a websocket speaking Streamlit's own protocol (``ws_session.py``: the requests a
   browser sends, the server's whole run, without the browser's rendering, which
   happens on each analyst's own computer); ``--driver browser``: Playwright contexts
   in ONE Debian Chromium (/usr/bin/chromium) on the server's machine, whose
   rendering of every page competes with the server for the same 2 cores.
4. Each session loops over analyst actions chosen by a seeded RNG: switch page in
   the sidebar navigation, direction OUT/all, "Toxic flows only" on/off, add or
   remove a threat category, switch sensor (54 <-> 77); a pause of ``--think``
   seconds between actions.

Time to settled (browser) = from the decisive input event (pointerdown/keydown,
recorded in the page) to the ``stApp`` script state going back to ``notRunning``
after the run it caused (both taken from the page's own clock by a
MutationObserver), with the page's main heading visible; (ws) from the request
sent to the end of the run it caused, with the page's title in it. The server's
RSS (process + children, from /proc/<pid>/status VmRSS) is sampled every second.

Errors: an action that fails or times out, an exception box (``stException``) on
the page after an action, a lost connection; tracebacks: the count of "Traceback"
in the server log during each phase. Targets (issue 10): p95 <= 3 s per action,
peak RSS <= 2.5 GB, zero errors, zero tracebacks. Exit status 1 when one is missed.

With ``--driver browser`` the browser runs on the same machine as the server, so
its rendering competes for the same cores: the figures are what analysts on this
machine would see, pessimistic for analysts on their own computers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from flux_dashboard.clock import parse_instant
from tests.kit.procs import ROOT, StreamlitServer, scrubbed_env

CHROMIUM = "/usr/bin/chromium"
SENSORS = (54, 77)  # dense demo sensor, normal demo sensor
# (url path, main heading, sidebar nav label): flux_dashboard/ui/frame.py PAGES
PAGES = [
    ("overview", "Overview"),
    ("devices", "Devices"),
    ("protocols", "Protocols & ports"),
    ("toxic", "Toxic flows"),
    ("remotes", "Remote hosts"),
    ("hunting", "Threat hunting"),
]
THREAT_LABELS = ["Command center (C2)", "Trojan horse", "Known attacker", "Bruteforce",
                 "Tor node"]
ACTIONS = [("page", 0.40), ("direction", 0.15), ("toxic", 0.15), ("threat", 0.15),
           ("sensor", 0.15)]
TARGET_P95_S = 3.0
TARGET_RSS_MB = 2.5 * 1024
ACTION_TIMEOUT_MS = 120_000
NO_RUN_MS = 15_000  # a click that started no run in this time (the app idle) was lost
OPEN_TIMEOUT_MS = 900_000  # a cold dense month from the embedded simulator: minutes

# Records the script state's transitions and the input events with the page's clock.
INIT_JS = """
(() => {
  if (window.__flux) return;
  const f = window.__flux = {log: [], input: []};
  const mark = () => f.input.push(performance.now());
  document.addEventListener('pointerdown', mark, true);
  document.addEventListener('keydown', mark, true);
  // A fast run flips running -> notRunning within one batch of mutations: the value
  // each mutation set is the next one's old value (the attribute itself only shows
  // the last), so no run goes unseen on a busy page.
  new MutationObserver(ms => {
    const now = performance.now();
    const app = ms.filter(m => m.target.getAttribute('data-testid') === 'stApp');
    for (let k = 0; k < app.length; k++) {
      const s = k + 1 < app.length ? app[k + 1].oldValue
                                   : app[k].target.getAttribute('data-test-script-state');
      if (s === null) continue;
      const last = f.log[f.log.length - 1];
      if (!last || last[1] !== s) f.log.push([now, s]);
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""

# True once a run started after t0 and the app is idle again with its heading shown;
# returns the page-clock times of the input, the run's start and its end.
SETTLED_JS = """
([t0, heading]) => {
  const f = window.__flux;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!f || !app) return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const i = f.log.findIndex(e => e[0] >= t0 && e[1] === 'running');
  if (i < 0) return false;
  let end = null;
  for (let k = i + 1; k < f.log.length; k++) if (f.log[k][1] === 'notRunning') end = f.log[k][0];
  if (end === null) return false;
  const h = document.querySelector('[data-testid="stMain"] h1');
  if (!h || h.offsetParent === null || (heading && !h.textContent.includes(heading)))
    return false;
  const inputs = f.input.filter(t => t >= t0 && t <= f.log[i][0]);
  const input = inputs.length ? inputs[inputs.length - 1] : t0;
  return {input: input, ran: f.log[i][0], end: end, now: performance.now()};
}
"""

# 'ran' once a run started after t0; 'none' when none did within `wait` ms (app idle).
STARTED_JS = """
([t0, wait]) => {
  const f = window.__flux;
  if (f && f.log.some(e => e[0] >= t0 && e[1] === 'running')) return 'ran';
  const app = document.querySelector('[data-testid="stApp"]');
  if (performance.now() - t0 > wait && app
      && app.getAttribute('data-test-script-state') === 'notRunning') return 'none';
  return false;
}
"""

IDLE_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && app.getAttribute('data-test-connection-state') === 'CONNECTED';
}
"""

# What the page shows after a failed action (for the error message).
STATE_JS = """
() => {
  const f = window.__flux || {log: [], input: []};
  const app = document.querySelector('[data-testid="stApp"]');
  const h = document.querySelector('[data-testid="stMain"] h1');
  return {now: Math.round(performance.now()),
          script: app && app.getAttribute('data-test-script-state'),
          connection: app && app.getAttribute('data-test-connection-state'),
          heading: h && h.textContent, log: f.log.slice(-4).map(e => [Math.round(e[0]), e[1]]),
          input: f.input.slice(-3).map(Math.round)};
}
"""

# A freshly opened page: connected, idle, with its heading (no run before it to wait for).
OPENED_JS = """
(heading) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning'
      || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  const h = document.querySelector('[data-testid="stMain"] h1');
  return !!h && h.offsetParent !== null && h.textContent.includes(heading);
}
"""


# --------------------------------------------------------------------------- server
# The clock of the dense demo the sessions read: pinned, so a run on any day opens the
# same closed days (the month that ends two days before it) and the same story.
NOW = "2026-04-01T12:30:00Z"


def start_server(cache_dir: Path, log_path: Path, now: str = NOW) -> StreamlitServer:
    """The dense demo on a fresh server (a scrubbed environment, the clock at ``now``)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = scrubbed_env({"FLUX_CACHE_DIR": str(cache_dir), "FLUX_DEMO_DENSE": "1",
                        "FLUX_NOW": now})
    return StreamlitServer.start(log_path.parent, env, mode="dense demo", log_path=log_path)


# --------------------------------------------------------------------------- RSS
def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    out += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """RSS of the process and all its descendants, MB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kb(p)
        todo += _children(p)
    return total / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_s(pid: int) -> float:
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            total += _cpu_s(p)
            todo += _children(p)
    return total


def chromium_cpu_s() -> float:
    """CPU seconds of every Chromium process on the machine (the browser driver's)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if not fh.read().startswith(("chromium", "chrome")):
                        continue
            except OSError:
                continue
            total += _cpu_s(int(entry))
    return total


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"server": tree_cpu_s(server_pid), "browser": chromium_cpu_s(),
            "driver": me.ru_utime + me.ru_stime, "wall": time.monotonic()}


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, str, float]] = []  # (t, phase, MB)
        self.phase = "start"
        self.t0 = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - self.t0, self.phase, tree_rss_mb(self.pid)))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)



# --------------------------------------------------------------------------- sessions
class LostClick(RuntimeError):
    """The click started no script run (the control kept its state)."""


@dataclass
class Sample:
    session: int
    action: str
    seconds: float | None  # None: failed
    error: str = ""


@dataclass
class Phase:
    name: str
    sessions: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exception_boxes: int = 0
    lost_clicks: int = 0  # clicks that started no run and left the control unchanged
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the sessions
    late_starts: int = 0  # runs that started more than NO_RUN_MS after the click
    tracebacks: int = 0
    wall_s: float = 0.0
    diag_dir: Path | None = None  # screenshots of failed actions
    warm: list[str] = field(default_factory=list)  # warm-up notes
    rss_warm_mb: float = math.nan  # after the warm-up
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB)

    def peak_rss_mb(self) -> float:
        return max((mb for _, mb in self.rss), default=math.nan)


def session_query(sensor: int, days: tuple[date, date]) -> dict[str, str]:
    return {"sensor": str(sensor), "range": "Custom", "from_day": days[0].isoformat(),
            "from_hour": "00:00", "to_day": days[1].isoformat(), "to_hour": "00:00"}


def session_url(base: str, page: str, sensor: int, days: tuple[date, date]) -> str:
    q = session_query(sensor, days)
    return f"{base}/{'' if page == 'overview' else page}?{urlencode(q)}"


class Analyst:
    """One browser context = one Streamlit session, clicking like an analyst."""

    def __init__(self, idx: int, browser, base: str, days: tuple[date, date], seed: int,
                 phase: Phase, think: tuple[float, float], sensor: int | None = None) -> None:
        self.idx, self.browser, self.base, self.days = idx, browser, base, days
        self.rng = random.Random(f"{seed}:{phase.name}:{idx}")
        self.phase, self.think = phase, think
        self.sensor = SENSORS[idx % 2] if sensor is None else sensor
        self.page_id = self.rng.choice(PAGES)[0]
        self.toxic = False
        self.direction = "all"
        self.threats = 0
        self.ctx = self.page = None

    def heading(self) -> str:
        return dict(PAGES)[self.page_id]

    async def start(self) -> None:
        self.ctx = await self.browser.new_context(viewport={"width": 1400, "height": 900})
        await self.ctx.add_init_script(INIT_JS)
        self.page = await self.ctx.new_page()

    async def close(self) -> None:
        if self.ctx is not None:
            await self.ctx.close()

    async def _now(self) -> float:
        """The page clock, once the app is idle (never click into a run in progress)."""
        await self.page.wait_for_function(IDLE_JS, polling=100, timeout=ACTION_TIMEOUT_MS)
        return await self.page.evaluate("performance.now()")

    async def _settled(self, t0: float, timeout: int = ACTION_TIMEOUT_MS,
                       first: float | None = None, no_run_ms: int | None = NO_RUN_MS) -> float:
        """Seconds from the click (after t0; or from ``first``, an earlier attempt's
        t0) to the end of the run it caused."""
        if no_run_ms is not None:
            started = await self.page.wait_for_function(STARTED_JS, arg=[t0, no_run_ms],
                                                        polling=100, timeout=timeout)
            if await started.json_value() == "none":
                raise LostClick(f"no script run started within {no_run_ms / 1000:.0f} s")
        handle = await self.page.wait_for_function(SETTLED_JS, arg=[t0, self.heading()],
                                                   polling=50, timeout=timeout)
        r = await handle.json_value()
        return (r["end"] - (r["input"] if first is None else first)) / 1000

    async def open(self, timeout: int = OPEN_TIMEOUT_MS) -> float:
        """Open the session's link; time from navigation start to the first settled run."""
        t_wall = time.perf_counter()
        await self.page.goto(session_url(self.base, self.page_id, self.sensor, self.days),
                             timeout=timeout)
        await self.page.wait_for_function(OPENED_JS, arg=self.heading(), polling=100,
                                          timeout=timeout)
        self.toxic, self.direction, self.threats = False, "all", 0
        return time.perf_counter() - t_wall

    # ---- actions: each returns the settle time of the run it caused
    async def _attempt(self, perform, is_done) -> float:
        """``perform()`` does the interaction and returns the page clock just before its
        decisive click. No run after NO_RUN_MS: when the control shows the new state the
        click was taken and the run is late (a busy server): keep waiting; otherwise the
        click was lost, counted, and the interaction done once more. The time is always
        from the first click."""
        first = None
        for attempt in range(2):
            t0 = await perform()
            first = t0 if first is None else first
            try:
                return await self._settled(t0, first=first if attempt else None)
            except LostClick:
                if await is_done():
                    self.phase.late_starts += 1
                    return await self._settled(t0, first=first, no_run_ms=None)
                if attempt:
                    raise
                self.phase.lost_clicks += 1
                await self.page.keyboard.press("Escape")
        raise AssertionError("unreachable")

    async def go_to(self, page_id: str, timeout: int = ACTION_TIMEOUT_MS) -> float:
        heading = dict(PAGES)[page_id]
        link = self.page.get_by_test_id("stSidebarNavLink").filter(has_text=heading)
        h1 = self.page.get_by_test_id("stMain").locator("h1")

        async def perform() -> float:
            t0 = await self._now()
            await link.click()
            return t0

        async def done() -> bool:  # the page shows it, or the browser already went there
            path = self.page.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            return (path == page_id or (page_id == "overview" and path.count(":") == 1)
                    or heading in (await h1.first.text_content() or ""))

        self.page_id = page_id
        started = time.monotonic()
        while True:  # a long first computation (warm-up): _settled's own timeout
            try:
                return await self._attempt(perform, done)
            except LostClick:
                if time.monotonic() - started > timeout / 1000:
                    raise

    async def act_page(self) -> float:
        return await self.go_to(self.rng.choice([p for p in PAGES if p[0] != self.page_id])[0])

    async def _click(self, target) -> float:
        t0 = await self._now()
        await target.click()
        return t0

    async def _set_control(self, target, done, what: str) -> float:
        """Click ``target``; the run must leave the control as ``done()`` says."""
        s = await self._attempt(lambda: self._click(target), done)
        if not await done():
            raise RuntimeError(f"{what} after the run")
        return s

    async def act_direction(self) -> float:
        want = "OUT" if self.direction == "all" else "all"
        button = self.page.locator(".st-key-dir").get_by_role("radio", name=want, exact=True)

        async def selected() -> bool:
            return await button.get_attribute("aria-checked") == "true"

        s = await self._set_control(button, selected, f"direction {want} not selected")
        self.direction = want
        return s

    async def act_toxic(self) -> float:
        box = self.page.locator(".st-key-toxic")
        switch = box.get_by_role("switch")
        want = not self.toxic

        async def done() -> bool:
            return await switch.is_checked() == want

        s = await self._set_control(box.get_by_text("Toxic flows only"), done,
                                    f"toxic toggle not {want}")
        self.toxic = want
        return s

    async def act_threat(self) -> float:
        box = self.page.locator(".st-key-threat .react-aria-ComboBox")
        tags = box.locator("[data-tag]")
        want = self.threats - 1 if self.threats else self.threats + 1
        label = self.rng.choice(THREAT_LABELS)

        async def perform() -> float:
            if self.threats:  # remove the chosen category with its tag's x
                remove = box.get_by_role("button", name=re.compile(r"^Remove ")).first
                return await self._click(remove)
            combo = box.get_by_role("combobox")
            await self._now()
            await combo.click()
            await combo.fill(label)  # type to filter, as an analyst would
            option = self.page.get_by_role("option").filter(has_text=label).first
            await option.wait_for(state="visible", timeout=30_000)
            return await self._click(option)

        async def done() -> bool:
            return await tags.count() == want

        s = await self._attempt(perform, done)
        if self.threats == 0:
            await self.page.keyboard.press("Escape")
        self.threats = want
        shown = await tags.count()
        if shown != self.threats:
            raise RuntimeError(f"{shown} threat tag(s) shown, {self.threats} expected")
        return s

    async def act_sensor(self) -> float:
        other = SENSORS[1] if self.sensor == SENSORS[0] else SENSORS[0]
        combo = self.page.locator(".st-key-sensor_id").get_by_role("combobox")

        async def perform() -> float:
            await self._now()
            await combo.click()
            await combo.fill(f"#{other}")
            option = self.page.get_by_role("option").filter(has_text=f"#{other}").first
            await option.wait_for(state="visible", timeout=30_000)
            return await self._click(option)

        async def done() -> bool:
            return f"#{other}" in await combo.input_value()

        s = await self._attempt(perform, done)
        if not await done():
            raise RuntimeError(f"sensor #{other} not shown in the picker after the run")
        self.sensor = other
        return s

    async def check_page(self) -> str:
        n = await self.page.get_by_test_id("stException").count()
        if n:
            self.phase.exception_boxes += n
            text = await self.page.get_by_test_id("stException").first.inner_text()
            return f"{n} exception box(es): {text[:300]!r}"
        return ""

    async def run(self, deadline: float) -> None:
        try:
            await self.start()
            await self._record("open", self.open(timeout=ACTION_TIMEOUT_MS))
            names, weights = zip(*ACTIONS, strict=True)
            while time.monotonic() < deadline:
                await asyncio.sleep(self.rng.uniform(*self.think))
                if time.monotonic() >= deadline:
                    break
                action = self.rng.choices(names, weights)[0]
                ok = await self._record(action, getattr(self, f"act_{action}")())
                if not ok:  # start again from the link (the session state is unknown)
                    await self._record("open", self.open(timeout=ACTION_TIMEOUT_MS))
        finally:
            await self.close()

    async def _record(self, action: str, coro) -> bool:
        try:
            seconds = await coro
        except Exception as exc:  # a failed action is a result
            msg = f"session {self.idx} {action} on {self.page_id}/#{self.sensor}: " \
                  f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"
            try:
                msg += f" · page state {await self.page.evaluate(STATE_JS)}"
                if self.phase.diag_dir is not None:
                    shot = self.phase.diag_dir / (f"fail-{self.phase.name}-s{self.idx}-"
                                                  f"{len(self.phase.errors)}.png")
                    await self.page.screenshot(path=shot, timeout=10_000)
                    msg += f" · {shot.name}"
            except Exception:
                pass
            self.phase.samples.append(Sample(self.idx, action, None, msg))
            self.phase.errors.append(msg)
            return False
        problem = await self.check_page()
        if problem:
            msg = f"session {self.idx} {action} on {self.page_id}/#{self.sensor}: {problem}"
            self.phase.errors.append(msg)
            self.phase.samples.append(Sample(self.idx, action, seconds, msg))
            return True
        self.phase.samples.append(Sample(self.idx, action, seconds))
        return True


def analyst_class(driver: str) -> type[Analyst]:
    if driver == "browser":
        return Analyst
    from benchmarks.ws_session import ws_analyst_class

    return ws_analyst_class(Analyst)


async def warm_up(browser, base: str, days: tuple[date, date], driver: str) -> list[str]:
    """Open each sensor's month and visit every page once, so the cache is filled."""
    lines = []
    dummy = Phase("warmup", 1)
    for sensor in SENSORS:
        a = analyst_class(driver)(0, browser, base, days, 0, dummy, (0, 0), sensor=sensor)
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
        analysts = [analyst_class(args.driver)(i, browser, server.url, days, args.seed, phase,
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


# --------------------------------------------------------------------------- report
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return math.nan
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def stats(phase: Phase, action: str | None) -> dict:
    xs = [s.seconds for s in phase.samples
          if s.seconds is not None and (action is None or s.action == action)
          and (action is not None or s.action != "open")]
    failed = sum(1 for s in phase.samples if s.seconds is None
                 and (action is None or s.action == action))
    return {"n": len(xs), "failed": failed, "p50": percentile(xs, 0.5),
            "p95": percentile(xs, 0.95), "max": max(xs) if xs else math.nan}


def _f(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2f}"


def _ratio(a: float, b: float) -> str:
    return "–" if math.isnan(a) or math.isnan(b) or b <= 0 else f"{a / b:.1f}×"


def report(base: Phase, load: Phase, args,
           days: tuple[date, date]) -> tuple[list[str], list[str], dict]:
    actions = ["open", *(a for a, _ in ACTIONS)]
    rows = [
        f"| action | n ({base.sessions} / {load.sessions}) | p50 {base.sessions} s | "
        f"p95 {base.sessions} s | p50 {load.sessions} s | p95 {load.sessions} s | "
        f"max {load.sessions} s | p50 ratio | p95 ratio |",
        "|---|---|---|---|---|---|---|---|---|"]
    table = {}
    for action in [*actions, None]:
        b, ld = stats(base, action), stats(load, action)
        table[action or "all actions"] = {"baseline": b, "load": ld}
        name = action or "**all but open**"
        fails = f" (+{ld['failed']} failed)" if ld["failed"] else ""
        rows.append(f"| {name} | {b['n']} / {ld['n']}{fails} | {_f(b['p50'])} | {_f(b['p95'])} "
                    f"| {_f(ld['p50'])} | {_f(ld['p95'])} | {_f(ld['max'])} | "
                    f"{_ratio(ld['p50'], b['p50'])} | {_ratio(ld['p95'], b['p95'])} |")
    peak_base, peak_load = base.peak_rss_mb(), load.peak_rss_mb()
    peak = max(peak_base, peak_load)
    over_time = _rss_over_time(load.rss, args.minutes * 60)

    verdicts = []
    # The target is on what analysts do in a session: page switches and filter
    # changes; opening the link (full page load) is reported, not checked.
    checked = [(k, table[k]["load"]["p95"]) for k, _ in ACTIONS
               if not math.isnan(table[k]["load"]["p95"])]
    worst_name, worst = max(checked, key=lambda kv: kv[1], default=("–", math.nan))
    errors = len(load.errors) + len(base.errors)
    tracebacks = load.tracebacks + base.tracebacks
    checks = [
        (f"p95 ≤ {TARGET_P95_S:.0f} s for every action type, {load.sessions} sessions",
         not math.isnan(worst) and worst <= TARGET_P95_S,
         f"worst p95 {_f(worst)} s ({worst_name})"),
        (f"peak RSS ≤ {TARGET_RSS_MB / 1024:.1f} GB", not math.isnan(peak)
         and peak <= TARGET_RSS_MB, f"peak {peak:,.0f} MB"),
        ("zero errors", errors == 0, f"{errors} (baseline {len(base.errors)}, load "
         f"{len(load.errors)}; exception boxes {base.exception_boxes + load.exception_boxes})"),
        ("zero tracebacks in the server log", tracebacks == 0,
         f"{tracebacks} (baseline {base.tracebacks}, load {load.tracebacks})"),
    ]
    for name, ok, got in checks:
        verdicts.append(f"- {'PASS' if ok else 'FAIL'} {name}: {got}")
    lines = [
        f"### Concurrent sessions: {load.sessions} vs {base.sessions} "
        f"(sensors 54 dense + 77, {days[0]} → {days[1]}, {args.minutes:g} min each)", "",
        *rows, "",
        ("- Driver: one websocket per session speaking Streamlit's protocol "
         "(`benchmarks/ws_session.py`): time to settled = the rerun request sent → the "
         "`script_finished` of the run it caused, with the page's title among its "
         "elements; the server runs the script and sends every element as for a "
         "browser, the browser's own rendering (on the analyst's computer) is not on "
         "the server's cores. " if args.driver == "ws" else
         "- Driver: Playwright pages in one Debian Chromium on the server's machine: "
         "time to settled = input event → script state back to `notRunning` with the "
         "heading shown, page clock; the browsers' rendering shares the server's "
         "cores. ") +
        f"Think time {args.think_min:g}–{args.think_max:g} s "
        f"between actions; seed {args.seed}; sessions alternate between sensors 54 and 77. "
        "`open` = opening the session's link (the first run, then the session's start "
        "page), reported but not checked against the p95 target.",
        f"- Server RSS (process and children, every second): after the warm-up "
        f"{base.rss_warm_mb:,.0f} / {load.rss_warm_mb:,.0f} MB; peak {peak_base:,.0f} MB "
        f"with {base.sessions}, {peak_load:,.0f} MB with {load.sessions} sessions. Over "
        f"the {load.sessions}-session run (max per {over_time[0]} s): {over_time[1]}.",
        *(f"- CPU during the {ph.sessions}-session run ({ph.cpu['wall']:.0f} s, "
          f"{os.cpu_count()} cores = {os.cpu_count() * ph.cpu['wall']:.0f} CPU-s): server "
          f"{ph.cpu['server']:.0f} s "
          f"({ph.cpu['server'] / ph.cpu['wall']:.2f} cores), browser "
          f"{ph.cpu['browser']:.0f} s, load driver {ph.cpu['driver']:.0f} s."
          for ph in (base, load) if ph.cpu.get("wall")),
        f"- Errors: baseline {len(base.errors)}, load {len(load.errors)}; tracebacks in the "
        f"server log: baseline {base.tracebacks}, load {load.tracebacks}. Lost clicks (a click "
        f"that started no run in {NO_RUN_MS / 1000:.0f} s, "
        f"clicked again): baseline {base.lost_clicks}, load {load.lost_clicks}; runs that "
        f"started more than {NO_RUN_MS / 1000:.0f} s after their click (waited for, counted "
        f"in the times): baseline {base.late_starts}, load {load.late_starts}.",
        f"- Each phase: a fresh server on the same disk cache, a warm-up session opening "
        f"each sensor's month and every page (not measured: {'; '.join(load.warm)}), then "
        f"the sessions. A failed action is followed by reopening the link.",
        *verdicts]
    data = {"days": [d.isoformat() for d in days], "sessions": load.sessions,
            "driver": args.driver,
            "baseline_sessions": base.sessions, "minutes": args.minutes,
            "think_s": [args.think_min, args.think_max], "seed": args.seed,
            "table": table, "rss_warm_mb": {"baseline": base.rss_warm_mb,
                                            "load": load.rss_warm_mb},
            "peak_rss_baseline_mb": peak_base, "peak_rss_load_mb": peak_load,
            "rss_series": {ph.name: [(round(t, 1), round(mb)) for t, mb in ph.rss]
                           for ph in (base, load)},
            "errors": {"baseline": base.errors, "load": load.errors},
            "tracebacks": {"baseline": base.tracebacks, "load": load.tracebacks},
            "lost_clicks": {"baseline": base.lost_clicks, "load": load.lost_clicks},
            "late_starts": {"baseline": base.late_starts, "load": load.late_starts},
            "cpu_s": {"baseline": base.cpu, "load": load.cpu},
            "samples": {ph.name: [s.__dict__ for s in ph.samples] for ph in (base, load)},
            "verdicts": [{"target": n, "pass": ok, "got": g} for n, ok, g in checks]}
    failed = [n for n, ok, _ in checks if not ok]
    return lines, failed, data


def _rss_over_time(samples: list[tuple[float, float]], seconds: float) -> tuple[int, str]:
    if not samples:
        return 0, "no samples"
    step = max(10, int(seconds / 12) // 10 * 10)
    buckets: dict[int, float] = {}
    for t, mb in samples:
        k = int(t // step)
        buckets[k] = max(buckets.get(k, 0.0), mb)
    return step, ", ".join(f"{mb:,.0f}" for _, mb in sorted(buckets.items())) + " MB"


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=__doc__,
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
                        "(benchmarks/ws_session.py); browser: a Chromium page each, "
                        "rendering on the server's own cores")
    p.add_argument("--out", default=str(ROOT / "bench-output" / "load"))
    p.add_argument("--cache-dir", default=str(ROOT / "bench-output" / "load-cache"),
                   help="the server's cache (kept: the dense month loads once)")
    return p.parse_args(argv)


async def _main(args, days, out: Path) -> tuple[Phase, Phase]:
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


def run(argv: list[str] | None = None) -> tuple[list[str], list[str], dict]:
    """Run the load test; returns (report lines, failed targets, data)."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A month that ends two days before the pinned clock: every hour closed and past the
    # 48 h recheck.
    end = parse_instant(NOW).date() - timedelta(days=2)
    days = (end - timedelta(days=args.days), end)
    print(f"load test · {args.sessions} sessions vs {args.baseline_sessions} · "
          f"{args.minutes:g} min · {days[0]} → {days[1]} · {os.cpu_count()} CPUs", flush=True)
    base, load = asyncio.run(_main(args, days, out))
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


if __name__ == "__main__":
    raise SystemExit(main())
