"""The browser driver: each analyst is a Playwright page in one headless Chromium.

This module owns ``BrowserAnalyst``, the scenario's actions done as an analyst
does them (clicks in the sidebar, the direction radio, the toxic switch, the
threat and sensor pickers), and the time to settled: from the decisive input
event to the ``stApp`` script state going back to ``notRunning`` after the run
it caused, with the page's main heading visible, both read from the page's own
clock. The page-side probes that record and read those times are JavaScript,
in ``browser.js`` next to this file (``script(name)`` reads one section).
A click that started no run within ``NO_RUN_MS`` is a lost click, counted and
done once more; a run that started late is waited for and counted.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import date
from pathlib import Path

from benchmarks.load_test.metrics import Phase
from benchmarks.load_test.scenario import (
    ACTION_TIMEOUT_MS,
    NO_RUN_MS,
    OPEN_TIMEOUT_MS,
    PAGES,
    SENSORS,
    THREAT_LABELS,
    Analyst,
    session_url,
)

CHROMIUM = "/usr/bin/chromium"


@functools.cache
def _scripts() -> dict[str, str]:
    text = Path(__file__).with_name("browser.js").read_text()
    parts = re.split(r"^//# (\w+)\n", text, flags=re.M)[1:]
    # Each script without the comment lines that introduce it.
    return {name: re.sub(r"\A(?://[^\n]*\n)*", "", body)
            for name, body in zip(parts[::2], parts[1::2], strict=True)}


def script(name: str) -> str:
    """One section of ``browser.js``: "init", "settled", "started", "idle", "state", "opened"."""
    return _scripts()[name]


class LostClick(RuntimeError):
    """The click started no script run (the control kept its state)."""


class BrowserAnalyst(Analyst):
    """One browser context = one Streamlit session, clicking like an analyst."""

    def __init__(self, idx: int, browser, base: str, days: tuple[date, date], seed: int,
                 phase: Phase, think: tuple[float, float], sensor: int | None = None) -> None:
        super().__init__(idx, browser, base, days, seed, phase, think, sensor)
        self.ctx = self.page = None

    async def start(self) -> None:
        self.ctx = await self.browser.new_context(viewport={"width": 1400, "height": 900})
        await self.ctx.add_init_script(script("init"))
        self.page = await self.ctx.new_page()

    async def close(self) -> None:
        if self.ctx is not None:
            await self.ctx.close()

    async def _now(self) -> float:
        """The page clock, once the app is idle (never click into a run in progress)."""
        await self.page.wait_for_function(script("idle"), polling=100, timeout=ACTION_TIMEOUT_MS)
        return await self.page.evaluate("performance.now()")

    async def _settled(self, t0: float, timeout: int = ACTION_TIMEOUT_MS,
                       first: float | None = None, no_run_ms: int | None = NO_RUN_MS) -> float:
        """Seconds from the click (after t0; or from ``first``, an earlier attempt's
        t0) to the end of the run it caused."""
        if no_run_ms is not None:
            started = await self.page.wait_for_function(script("started"), arg=[t0, no_run_ms],
                                                        polling=100, timeout=timeout)
            if await started.json_value() == "none":
                raise LostClick(f"no script run started within {no_run_ms / 1000:.0f} s")
        handle = await self.page.wait_for_function(script("settled"), arg=[t0, self.heading()],
                                                   polling=50, timeout=timeout)
        r = await handle.json_value()
        return (r["end"] - (r["input"] if first is None else first)) / 1000

    async def open(self, timeout: int = OPEN_TIMEOUT_MS) -> float:
        """Open the session's link; time from navigation start to the first settled run."""
        t_wall = time.perf_counter()
        await self.page.goto(session_url(self.base, self.page_id, self.sensor, self.days),
                             timeout=timeout)
        await self.page.wait_for_function(script("opened"), arg=self.heading(), polling=100,
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

    async def diagnose(self) -> str:
        """The page's state and a screenshot (named in the message) of a failed action."""
        extra = ""
        try:
            extra += f" · page state {await self.page.evaluate(script('state'))}"
            if self.phase.diag_dir is not None:
                shot = self.phase.diag_dir / (f"fail-{self.phase.name}-s{self.idx}-"
                                              f"{len(self.phase.errors)}.png")
                await self.page.screenshot(path=shot, timeout=10_000)
                extra += f" · {shot.name}"
        except Exception:
            pass
        return extra
