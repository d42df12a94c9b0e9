"""The soak's analysts: websocket sessions that also cancel, download and triage.

``SoakAnalyst`` is the load test's ``WsAnalyst`` (Streamlit's own protocol, the
requests a browser sends) with what the soak adds to its mix:

* ``range``: open another range, often a cold one (days the worker does not sync),
  confirming the load when the app asks (``confirm_load``);
* ``cancel``: open a cold range and click "Cancel the load" while it runs;
* ``download``: the Toxic flows table's CSV, fetched as the browser does (a
  deferred file: a backend operation on the websocket, then an HTTP GET), opened
  and checked;
* ``triage``: a finding opened by its link on the Findings page, "Assign to me"
  clicked; the soak later requires exactly one event for each one that completed.

Each action ends as one ``Outcome``: completed, a plain message (an error or
warning box, e.g. the API unreachable), cancelled, interrupted (the replica was
restarted under it; the session opens its link again, as a browser reconnects),
or failed (an exception element, a timeout or a wrong page: the soak fails).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
from streamlit.proto.BackMsg_pb2 import BackendOperationRequest, BackMsg, DeferredFileRequestPayload
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

from benchmarks.load_test.metrics import Phase
from benchmarks.load_test.ws_session import Run, RunFailed, WsAnalyst, WsClient

ALERT_KINDS = {1: "error", 2: "warning"}  # Alert.Format: ERROR, WARNING (INFO, SUCCESS: not)
# What a page says when it could not do all it was asked: the API, the shared state, a
# load cancelled or refused, a change not saved. Other boxes are the data's own findings
# ("2 devices reached out to toxic hosts") or the anonymous-access banner.
PLAIN_FAILURE = re.compile(r"could not|not cached|unreachable|did not answer|not saved|"
                           r"cancelled|stopped|try again|refused|incomplete|failed|"
                           r"unavailable|no answer", re.IGNORECASE)
ACTIONS = [("page", 0.22), ("direction", 0.08), ("toxic", 0.08), ("threat", 0.07),
           ("sensor", 0.10), ("range", 0.15), ("cancel", 0.10), ("download", 0.10),
           ("triage", 0.10)]


@dataclass
class Outcome:
    session: int
    action: str
    kind: str  # completed | message | cancelled | interrupted | failed
    started: float  # monotonic
    seconds: float | None
    detail: str = ""


@dataclass
class Shared:
    """What the sessions of one soak share: the findings to triage, what was done."""

    findings: list[tuple[str, int]] = field(default_factory=list)  # (key, sensor) untouched
    assigned: list[str] = field(default_factory=list)  # keys whose "Assign to me" completed
    outcomes: list[Outcome] = field(default_factory=list)
    restarting: dict[str, float] = field(default_factory=dict)  # replica URL -> until
    pruned_downloads: int = 0  # a built file gone before it was fetched (then clicked again)


class SoakClient(WsClient):
    """``WsClient`` that also keeps each run's error and warning boxes, the session id
    and the download buttons' deferred files."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.session_id = ""
        self.last: Run | None = None
        self.responses: dict[str, object] = {}

    def _note(self, msg, run: Run) -> None:
        super()._note(msg, run)
        kind = msg.WhichOneof("type")
        if not hasattr(run, "alerts"):
            run.alerts = []
        self.last = run
        if kind == "new_session":  # a new run: only its own widgets are on the page
            self.widgets = {}
            if msg.new_session.initialize.session_id:
                self.session_id = msg.new_session.initialize.session_id
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            if el.WhichOneof("type") == "alert" and el.alert.format in ALERT_KINDS \
                    and PLAIN_FAILURE.search(el.alert.body):
                run.alerts.append(f"{ALERT_KINDS[el.alert.format]}: {el.alert.body[:200]}")

    async def send_rerun(self, widget: WidgetState | None = None) -> None:
        while not self._inbox.empty():
            self._inbox.get_nowait()
        state = ClientState(query_string=_qs(self.query),
                            widget_states=WidgetStates(widgets=[widget] if widget else []),
                            page_script_hash=self.page_hash)
        await self.ws.send(BackMsg(rerun_script=state).SerializeToString())

    async def until_widget(self, key: str, timeout_s: float) -> bool:
        """Read the running script's messages until widget ``key`` appears (True) or the
        run finishes (False)."""
        run = Run()
        run.alerts = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                msg = await asyncio.wait_for(self._inbox.get(), 0.5)
            except TimeoutError:
                continue
            if isinstance(msg, Exception):
                raise RunFailed(f"connection closed: {msg}")
            self._note(msg, run)
            if key in self.widgets:
                return True
            if msg.WhichOneof("type") == "script_finished":
                return False
        raise TimeoutError(f"neither {key!r} nor the run's end within {timeout_s:.0f} s")

    async def deferred_file(self, file_id: str, timeout_s: float) -> str:
        """The URL of a download button's file, asked as the browser asks it."""
        rid = str(uuid.uuid4())
        req = BackendOperationRequest(request_id=rid, session_id=self.session_id,
                                      deferred_file=DeferredFileRequestPayload(file_id=file_id))
        await self.ws.send(BackMsg(backend_operation_request=req).SerializeToString())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(self._inbox.get(), max(0.1, deadline - time.monotonic()))
            if isinstance(msg, Exception):
                raise RunFailed(f"connection closed: {msg}")
            if msg.WhichOneof("type") == "backend_operation_response" \
                    and msg.backend_operation_response.request_id == rid:
                resp = msg.backend_operation_response
                if resp.error_msg:
                    raise RunFailed(f"the download was refused: {resp.error_msg[:200]}")
                return resp.deferred_file.url
        raise TimeoutError("no answer to the download request")


def _qs(query: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(query)


def trigger(wid: str) -> WidgetState:
    w = WidgetState(id=wid)
    w.trigger_value = True
    return w


class SoakAnalyst(WsAnalyst):
    """One analyst of the soak on one replica (``base``), its link's range in ``days``."""

    actions = ACTIONS

    def __init__(self, idx: int, base: str, warm: list[tuple[date, date]],
                 cold: list[tuple[date, date]], seed: int, phase: Phase, shared: Shared,
                 think: tuple[float, float]) -> None:
        super().__init__(idx, None, base, warm[0], seed, phase, think)
        self.warm, self.cold, self.shared = warm, cold, shared
        self.rng = random.Random(f"soak:{seed}:{idx}")
        self.page_id = "overview"

    # -- plumbing
    async def open(self, timeout: int | None = None) -> float:
        await self.close()
        limit = (timeout or 180_000) / 1000
        t0 = time.perf_counter()
        from benchmarks.load_test.scenario import session_query

        self.client = SoakClient(self.base, session_query(self.sensor, self.days), limit)
        await self.client.connect()
        await self._run_confirming("Overview")
        if self.page_id != "overview":
            await self.client.rerun(self.heading(), page=self.heading())
        self.toxic, self.direction, self.threats = False, "all", 0
        return time.perf_counter() - t0

    async def _run_confirming(self, heading: str, **kw) -> None:
        """A rerun; when the app asks to confirm a costly load, confirm it (once)."""
        try:
            await self.client.rerun(heading, **kw)
        except RunFailed:
            if "confirm_load" not in self.client.widgets:
                raise
        if "confirm_load" in self.client.widgets:
            wid, _ = self.client.widgets.pop("confirm_load")
            await self.client.rerun(heading, widget=trigger(wid))

    # -- the soak's own actions
    async def act_range(self) -> float:
        self.days = self.rng.choice(self.cold if self.rng.random() < 0.5 else self.warm)
        return await self.open()

    async def act_cancel(self) -> float:
        """A cold range opened, its load cancelled from the page while it runs."""
        self.days = self.rng.choice(self.cold)
        self.page_id = "overview"
        await self.close()
        from benchmarks.load_test.scenario import session_query

        t0 = time.perf_counter()
        self.client = SoakClient(self.base, session_query(self.sensor, self.days), 180)
        await self.client.connect()
        await self.client.send_rerun()
        if not await self.client.until_widget("cancel_load", 120) \
                and "confirm_load" in self.client.widgets:
            wid, _ = self.client.widgets.pop("confirm_load")
            await self.client.send_rerun(trigger(wid))
            seen = await self.client.until_widget("cancel_load", 120)
        else:
            seen = "cancel_load" in self.client.widgets
        if not seen:
            self.note = "finished before it could be cancelled"
            return time.perf_counter() - t0
        wid, _ = self.client.widgets.pop("cancel_load")
        await self.client.rerun("Overview", widget=trigger(wid))
        self.note = "cancelled"
        return time.perf_counter() - t0

    async def act_download(self) -> float:
        if self.page_id != "toxic":
            await self.go_to("toxic")
        key = next((k for k in self.client.widgets if k.endswith("_csv")), None)
        if key is None:
            self.note = "no table to download (no toxic flow in this range)"
            return 0.0
        _, element = self.client.widgets[key]
        t0 = time.perf_counter()
        async with httpx.AsyncClient(base_url=self.base, timeout=120) as http:
            url = await self.client.deferred_file(element.deferred_file_id, 120)
            resp = await http.get(url)
            if resp.status_code == 404:
                # Streamlit 1.67 keeps a built file in no session's references, so any
                # session's run that ends prunes it (two ends: gone) before the browser
                # fetched it. Counted, then clicked again, as a user would.
                self.shared.pruned_downloads += 1
                url = await self.client.deferred_file(element.deferred_file_id, 120)
                resp = await http.get(url)
        if resp.status_code != 200:
            raise RunFailed(f"the download answered HTTP {resp.status_code}")
        lines = resp.text.splitlines()
        if not lines or "," not in lines[0]:
            raise RunFailed(f"the CSV has no header: {resp.text[:120]!r}")
        self.note = f"{len(lines) - 1} rows"
        return time.perf_counter() - t0

    async def act_triage(self) -> float:
        if not self.shared.findings:
            self.note = "no finding left to triage"
            return 0.0
        key, sensor = self.shared.findings.pop(self.rng.randrange(len(self.shared.findings)))
        self.sensor = sensor
        t0 = time.perf_counter()
        self.client.query = {"sensor": str(sensor), "finding": key}
        await self.client.rerun("Findings", page="Findings")
        if f"assign_me_{key}" not in self.client.widgets:
            raise RunFailed(f"finding {key} opened without its Assign button")
        wid, _ = self.client.widgets[f"assign_me_{key}"]
        await self.client.rerun("Findings", widget=trigger(wid))
        self.shared.assigned.append(key)
        self.page_id = "overview"  # the next page action starts from a known page
        await self.client.rerun("Overview", page="Overview")
        self.note = key
        return time.perf_counter() - t0

    async def check_page(self) -> str:
        return ""

    async def _record(self, action: str, coro) -> bool:
        """Each action ends as one ``Outcome`` (``Analyst.run`` is the loop)."""
        started = time.monotonic()
        self.note = ""
        try:
            seconds = await coro
        except Exception as exc:  # every action ends as an outcome
            text = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            last = self.client.last if self.client else None
            if last is not None:
                text += f" [page: {getattr(last, 'alerts', [])[:2]} {last.exceptions[:1]}; " \
                        f"widgets {sorted(self.client.widgets)[:12]}]"
            restarting = self.shared.restarting.get(self.base, 0) >= started - 5
            alerts = getattr(last, "alerts", []) if last is not None else []
            if restarting and _lost(exc):
                kind = "interrupted"
            elif isinstance(exc, RunFailed) and "without the heading" in str(exc) and alerts:
                kind = "message"  # the page said plainly why it could not be shown
            else:
                kind = "failed"
            self.shared.outcomes.append(Outcome(self.idx, action, kind, started, None, text))
            self.page_id = "overview"  # the link is opened again on its first page
            if kind == "interrupted":  # the browser reconnects once the replica is back
                await self._wait_for_replica()
            return False
        run = self.client.last if self.client else None
        alerts = getattr(run, "alerts", []) if run else []
        if self.note == "cancelled":
            kind = "cancelled"
        elif alerts:
            kind = "message"
        else:
            kind = "completed"
        self.shared.outcomes.append(Outcome(self.idx, action, kind, started, seconds,
                                            "; ".join(alerts)[:300] or self.note))
        return True

    async def _wait_for_replica(self) -> None:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                try:
                    if (await http.get(self.base + "/_stcore/health")).status_code == 200 \
                            and self.shared.restarting.get(self.base, 0) < time.monotonic():
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)


def _lost(exc: BaseException) -> bool:
    """A failure a replica's restart explains: the connection went away or was refused."""
    text = f"{exc.__class__.__name__} {exc}"
    return isinstance(exc, OSError | TimeoutError) or "connection closed" in text \
        or "ConnectionClosed" in text or "InvalidStatus" in text


def cold_ranges(first: date, last: date, days: int, n: int, seed: int) -> list[tuple[date, date]]:
    """``n`` ranges of ``days`` days starting between ``first`` and ``last``."""
    rng = random.Random(seed)
    span = (last - first).days
    starts = sorted({first + timedelta(days=rng.randrange(span + 1)) for _ in range(n * 3)})
    rng.shuffle(starts)
    return [(s, s + timedelta(days=days)) for s in starts[:n]]
