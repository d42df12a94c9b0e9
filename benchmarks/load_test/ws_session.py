"""A Streamlit session driven over its websocket, as the browser drives it.

``load_test --driver ws`` (the default): each analyst is one websocket to
``/_stcore/stream`` speaking Streamlit's own protocol (``BackMsg`` /
``ForwardMsg`` protobufs from the installed streamlit): a rerun request carries
the URL's query string, the page and the changed widget's new value, exactly
the fields the browser sends (recorded from Chromium with Playwright, Streamlit
1.67); the run it starts is read to its end. The server does the same work as
for a browser: it runs the script, builds and serialises every element, sends
every delta. What is left out is the browser's own rendering of those deltas,
which happens on each analyst's computer, not on the server; with 10 headless
Chromium pages on the server's own 2 cores (``--driver browser``), that
rendering competes with the server and is most of what is measured.

Two differences from a browser: the driver does not list the messages it has
cached (``cached_message_hashes``), so every element is sent in full every run
(more work for the server, not less); and it sends only the changed widget's
value, not all of them (the server keeps the others from the previous run; a
few dozen values less to read per request).

Time to settled = from sending the rerun request to the ``script_finished``
(``FINISHED_SUCCESSFULLY``) of the run it caused, with the expected page's
title among the run's elements. An exception element in a run is an error.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlencode

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

from benchmarks.load_test.scenario import (
    ACTION_TIMEOUT_MS,
    PAGES,
    SENSORS,
    THREAT_LABELS,
    Analyst,
    session_query,
)

FINISHED = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
COMPILE_ERROR = ForwardMsg.ScriptFinishedStatus.FINISHED_WITH_COMPILE_ERROR


class RunFailed(RuntimeError):
    pass


class Run:
    """What one script run sent: its elements' text, widgets and exceptions."""

    def __init__(self) -> None:
        self.headings: list[str] = []
        self.exceptions: list[str] = []
        self.page_hash = ""


class WsClient:
    """One websocket session; ``rerun`` sends a request and waits for its run's end."""

    def __init__(self, base: str, query: dict[str, str], timeout_s: float) -> None:
        self.base = base
        self.query = dict(query)
        self.timeout_s = timeout_s
        self.ws = None
        self.widgets: dict[str, tuple[str, object]] = {}  # user key -> (id, element)
        self.pages: dict[str, str] = {}  # page name -> script hash
        self.page_hash = ""
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    async def connect(self) -> None:
        url = self.base.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = await websockets.connect(url, subprotocols=["streamlit"], max_size=None,
                                           origin=self.base, open_timeout=30,
                                           ping_interval=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                if isinstance(data, bytes):
                    msg = ForwardMsg()
                    msg.ParseFromString(data)
                    await self._inbox.put(msg)
        except websockets.ConnectionClosed as exc:
            await self._inbox.put(exc)

    def _note(self, msg: ForwardMsg, run: Run) -> None:
        kind = msg.WhichOneof("type")
        if kind in ("new_session", "navigation"):  # st.navigation: pages come in the latter
            s = getattr(msg, kind)
            if s.app_pages:
                self.pages = {p.page_name: p.page_script_hash for p in s.app_pages}
            run.page_hash = s.page_script_hash or run.page_hash
        elif kind == "page_info_changed":
            self.query = dict(parse_qsl(msg.page_info_changed.query_string,
                                        keep_blank_values=True))
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            etype = el.WhichOneof("type")
            if etype == "exception":
                run.exceptions.append(f"{el.exception.type}: {el.exception.message[:300]}")
            elif etype == "heading":
                run.headings.append(el.heading.body)
            elif etype is not None:
                wid = getattr(getattr(el, etype), "id", "")
                if isinstance(wid, str) and wid.startswith("$$ID-"):
                    self.widgets[wid.split("-", 2)[2]] = (wid, getattr(el, etype))

    async def rerun(self, heading: str, *, page: str | None = None,
                    widget: WidgetState | None = None) -> float:
        """Send a rerun (to ``page`` and/or with ``widget``'s new value); seconds until
        the run it caused finished with ``heading`` shown."""
        while not self._inbox.empty():  # anything left from before belongs to no action
            self._inbox.get_nowait()
        if page is not None:
            self.page_hash = self.pages[page]
        state = ClientState(query_string=urlencode(self.query),
                            widget_states=WidgetStates(widgets=[widget] if widget else []),
                            page_script_hash=self.page_hash)
        t0 = time.perf_counter()
        await self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        run: Run | None = None
        deadline = t0 + self.timeout_s
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no finished run within {self.timeout_s:.0f} s")
            msg = await asyncio.wait_for(self._inbox.get(), left)
            if isinstance(msg, Exception):
                raise RunFailed(f"connection closed: {msg}")
            if msg.WhichOneof("type") == "new_session":
                run = Run()  # each run (also one the app asks for itself) starts here
            if run is None:
                continue
            self._note(msg, run)
            if msg.WhichOneof("type") == "script_finished":
                status = msg.script_finished
                if status == COMPILE_ERROR:
                    raise RunFailed("the script did not compile")
                if status != FINISHED:
                    continue  # a rerun follows (FINISHED_EARLY_FOR_RERUN) or a fragment
                if run.exceptions:
                    raise RunFailed("exception element: " + run.exceptions[0])
                if not any(heading in h for h in run.headings):
                    # e.g. a run that showed a confirmation instead of the page
                    raise RunFailed(f"the run ended without the heading {heading!r}: "
                                    f"{run.headings[:3]}")
                self.page_hash = run.page_hash or self.page_hash
                return time.perf_counter() - t0

    def widget(self, key: str) -> tuple[str, object]:
        if key not in self.widgets:
            raise RunFailed(f"no widget with key {key!r} on the page")
        return self.widgets[key]


def _strings(values: list[str]) -> WidgetState:
    w = WidgetState()
    w.string_array_value.data.extend(values)
    return w


class WsAnalyst(Analyst):
    """An ``Analyst`` whose actions are the requests a browser would send, over one websocket."""

    async def start(self) -> None:
        self.client = None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def open(self, timeout: int | None = None) -> float:
        await self.close()
        limit = (timeout or ACTION_TIMEOUT_MS) / 1000
        t0 = time.perf_counter()
        self.client = WsClient(self.base, session_query(self.sensor, self.days), limit)
        await self.client.connect()
        await self.client.rerun("Overview")
        if self.page_id != "overview":
            await self.client.rerun(self.heading(), page=self.heading())
        self.toxic, self.direction, self.threats = False, "all", 0
        return time.perf_counter() - t0

    async def go_to(self, page_id: str, timeout: int | None = None) -> float:
        self.page_id = page_id
        if timeout is not None:
            self.client.timeout_s = timeout / 1000
        return await self.client.rerun(dict(PAGES)[page_id], page=dict(PAGES)[page_id])

    async def _set(self, key: str, state: WidgetState, url: str | None = "") -> float:
        """The widget's new value; ``url``: the value the browser writes into the
        URL before the request for a widget bound to it (``bind="query-params"``),
        None when it drops the parameter (the default value)."""
        wid, _ = self.client.widget(key)
        state.id = wid
        if url is None:
            self.client.query.pop(key, None)
        elif url:
            self.client.query[key] = url
        return await self.client.rerun(self.heading(), widget=state)

    def _check(self, key: str, want: str | None) -> None:
        got = self.client.query.get(key)
        if got != want:
            raise RunFailed(f"the URL says {key}={got!r} after the run, not {want!r}")

    async def act_direction(self) -> float:
        want = "OUT" if self.direction == "all" else "all"
        s = await self._set("dir", _strings([want]), url=None if want == "all" else want)
        self._check("dir", "OUT" if want == "OUT" else None)
        self.direction = want
        return s

    async def act_toxic(self) -> float:
        want = not self.toxic
        s = await self._set("toxic", WidgetState(bool_value=want),
                            url="true" if want else None)
        self._check("toxic", "true" if want else None)
        self.toxic = want
        return s

    async def act_threat(self) -> float:
        _, element = self.client.widget("threat")
        options = list(element.options)
        chosen = [] if self.threats else [self.rng.choice(
            [o for o in options if o in THREAT_LABELS] or options)]
        s = await self._set("threat", _strings(chosen))
        if bool(self.client.query.get("threat")) != bool(chosen):
            raise RunFailed(f"the URL says threat={self.client.query.get('threat')!r} "
                            f"after choosing {chosen}")
        self.threats = len(chosen)
        return s

    async def act_sensor(self) -> float:
        other = SENSORS[1] if self.sensor == SENSORS[0] else SENSORS[0]
        key = "sensor_id" if "sensor_id" in self.client.widgets else "sensor_id_masked"
        _, element = self.client.widget(key)
        label = next((o for o in element.options if f"#{other}" in o.split(" · ")), None)
        if label is None:
            raise RunFailed(f"sensor #{other} is not among {list(element.options)}")
        s = await self._set(key, WidgetState(string_value=label))
        self._check("sensor", str(other))
        self.sensor = other
        return s

    async def check_page(self) -> str:
        return ""  # exception elements already fail the action (WsClient.rerun)
