"""The AppTest kit: the environment, running a page, reading it, its downloads, its cost.

Every AppTest suite runs the app through here:

- ``hermetic(cache_dir, **settings)``: the environment of one suite: none of a
  developer's settings (``procs.scrubbed_env``'s rule), a private cache, a fixed
  masking secret, the clock pinned to ``clock.PINNED`` (``FLUX_NOW``) and the
  demo's hostile device names on (``FLUX_DEMO_HOSTILE_NAMES``: the escaping and
  masking suites read them in the page runs every suite shares), plus the
  suite's own ``settings``;
- ``new_app`` / ``run_page``: an ``AppTest`` of ``app.py`` with a link's query
  parameters, run to a page;
- readers: metrics, Plotly specs by key, tables by their columns, every text an
  element shows, the markdown bodies sent;
- ``Downloads``: Streamlit's media manager remembered per file, so a test
  "clicks" a download button and opens what the server would send;
- ``truth()``: the demo's world (hostile names on, as ``hermetic``'s app has
  them) in a separate simulator at the pinned clock,
  the ground truth the pages are checked against; ``flux_requests`` lists the
  flux requests a simulator received.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.clock import PINNED_ISO, pinned_clock
from tests.kit.procs import ROOT, is_ours

APP = str(ROOT / "app.py")
TIMEOUT = 120

OVERVIEW = "pages/1_overview.py"
DEVICES = "pages/2_devices.py"
PROTOCOLS = "pages/3_protocols.py"
TOXIC = "pages/4_toxic.py"
REMOTES = "pages/5_remotes.py"
HUNTING = "pages/6_hunting.py"
ACTIVITY = "pages/7_activity.py"
PAGES = [OVERVIEW, DEVICES, PROTOCOLS, TOXIC, REMOTES, HUNTING]
MAIN, SMALL = 54, 77  # the demo's two sensors


# ------------------------------------------------------------------ environment
@contextmanager
def hermetic(cache_dir: Path, **settings: str) -> Iterator[pytest.MonkeyPatch]:
    """The environment of an AppTest suite, undone on exit (see the module's doc)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if is_ours(n)]:
            mp.delenv(name)
        mp.setenv("FLUX_CACHE_DIR", str(cache_dir))
        mp.setenv("FLUX_NOW", PINNED_ISO)
        mp.setenv("FLUX_MASK_SECRET", "apptest-fixed-mask-secret")
        mp.setenv("FLUX_DEMO_HOSTILE_NAMES", "1")
        for name, value in settings.items():
            mp.setenv(name, value)
        yield mp


def use_real_key(mp: pytest.MonkeyPatch, key: str) -> None:
    """A real API key for the app: the source is no longer a simulator to it, so its
    clock is not pinned (FLUX_NOW is refused with a key)."""
    mp.setenv("SERENICITY_API_KEY", key)
    mp.delenv("FLUX_NOW", raising=False)


def truth(**config) -> Simulator:
    """The demo's world at the pinned clock (or ``now=``), with ``hermetic``'s hostile
    names, in a simulator of its own: the expected rows."""
    return Simulator(SimulatorConfig(**{"rate_limit_per_min": None, "now": pinned_clock,
                                        "hostile_names": True, **config}))


def flux_requests(sim: Simulator, since: int = 0) -> list[dict[str, str]]:
    """Parameters of the ``GET /sensors/:id/flux`` requests the simulator received."""
    return [params for path, params in sim.requests[since:] if path.endswith("/flux")]


# ------------------------------------------------------------------ running the app
def new_app(query: dict[str, str | list[str]] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    # Non-empty at.secrets replaces any secrets.toml (CWD or ~/.streamlit): no real key.
    at.secrets["FLUX_APPTEST"] = "1"
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at


def run_page(page: str | None = None, query: dict[str, str | list[str]] | None = None,
             at: AppTest | None = None) -> AppTest:
    """Open a link (``query``) and go to ``page``; no exception on the way."""
    at = at or new_app(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if page not in (None, OVERVIEW):
        at.switch_page(page).run()
        assert not at.exception, [e.message for e in at.exception]
    return at


# ------------------------------------------------------------------ reading a run
def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def as_int(value: str) -> int:
    return int(value.replace(",", "").replace("\u202f", ""))


def chart_specs(at: AppTest) -> dict[str, dict]:
    """Plotly specs by widget key (the element id ends with ``-<key>``)."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec)
            for el in at.get("plotly_chart") if getattr(el.proto, "spec", "")}


def chart_title(spec: dict) -> str:
    title = spec.get("layout", {}).get("title")
    if isinstance(title, dict):
        return title.get("text") or ""
    return title or ""


def numbers(array: object) -> list[float]:
    """A plotly data array: a plain list, or the ``{"dtype", "bdata"}`` typed-array form."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array or [])


def plain(text: str) -> str:
    """Markdown/HTML-escaped text as a reader sees it (without the invisible word
    joiners that keep bare URLs and e-mail addresses from becoming links)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", text)).replace("\u2060", "")


def said(elements) -> list[str]:
    """Alert/caption texts as a reader sees them (the app escapes markdown in them)."""
    return [plain(e.value) for e in elements]


def markdown_bodies(at: AppTest) -> list[str]:
    """Bodies sent to st.markdown (captions, titles and alerts are markdown too)."""
    kinds = ("Markdown", "Caption", "Title", "Header", "Subheader", "Error", "Warning",
             "Info", "Success", "Toast")
    return [node.value for node in at._tree if type(node).__name__ in kinds]


def texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """(element type, text) for everything the page shows, sidebar included.

    Markdown-like bodies, alerts, metrics, dataframe values, plotly specs,
    widget labels/options/values, tab and expander labels. Placeholders of
    text inputs are not data and are skipped. Every element with a text is
    read; an element whose value cannot be read fails the test.
    """
    for node in at._tree:
        kind = type(node).__name__
        if kind == "Dataframe":
            yield kind, node.value.to_csv(index=False)
        elif kind == "UnknownElement" and getattr(node.proto, "spec", ""):
            yield kind, node.proto.spec
        elif kind == "Metric":
            yield kind, f"{node.label}\n{node.value}\n{node.delta}"
        elif kind in ("Selectbox", "Multiselect", "Radio", "ButtonGroup"):
            yield kind, "\n".join([node.label, *map(str, node.options), str(node.value)])
        elif kind in ("TextInput", "TextArea", "DateInput", "Slider", "Toggle", "Checkbox"):
            yield kind, f"{node.label}\n{node.value}"
        elif kind in ("Button", "DownloadButton", "Tab", "Expander"):
            yield kind, node.label
        elif hasattr(node, "proto") and hasattr(type(node), "value"):
            value = node.value
            if isinstance(value, str):
                yield kind, value
            label = getattr(node, "label", None)
            if isinstance(label, str):
                yield kind, label


def table_with(at: AppTest, columns: set[str]):
    """The (pandas) value of the one table holding these columns."""
    found = [d.value for d in at.dataframe if columns <= set(d.value.columns)]
    assert len(found) == 1, (columns, [list(d.value.columns) for d in at.dataframe])
    return found[0]


def param(at: AppTest, key: str) -> list[str]:
    """A query parameter of the app's URL after the run, as a list of values."""
    value = at.query_params.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def readable(name: str, content: bytes) -> Iterator[tuple[str, str]]:
    """(file name, text) of a download: CSV/HTML/text as is, Parquet as CSV, zips opened."""
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            for member in zf.namelist():
                yield from readable(f"{name}/{member}", zf.read(member))
    elif name.endswith(".parquet"):
        yield name, pl.read_parquet(io.BytesIO(content)).write_csv()
    else:
        yield name, content.decode("utf-8")


# ------------------------------------------------------------------ downloads
class Downloads:
    """Remembers which media manager holds each file, so a test can "click" a download.

    AppTest gives each run a fresh media manager and then drops it; a download
    button built from a callable only registers the callable. ``download(button)``
    runs it exactly as the server does on a click and returns (file name, bytes);
    ``built`` maps each deferred file's name to its callable.
    """

    def __init__(self) -> None:
        self.managers: dict[str, MediaFileManager] = {}
        self.built: dict[str, object] = {}

    @contextmanager
    def recording(self) -> Iterator[Downloads]:
        add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred
        managers, built = self.managers, self.built

        def add_recorded(manager, *args, **kwargs):
            url = add(manager, *args, **kwargs)
            managers[url.rsplit("/", 1)[-1].split(".", 1)[0]] = manager
            return url

        def add_deferred_recorded(manager, data, mimetype, coordinates, file_name=None,
                                  *args, **kwargs):
            file_id = add_deferred(manager, data, mimetype, coordinates, file_name,
                                   *args, **kwargs)
            managers[file_id] = manager
            built[file_name] = data
            return file_id

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(MediaFileManager, "add", add_recorded)
            mp.setattr(MediaFileManager, "add_deferred", add_deferred_recorded)
            yield self

    def download(self, button) -> tuple[str, bytes]:
        """(file name, bytes) a click on this download button would save."""
        proto = button.proto
        if proto.deferred_file_id:
            manager = self.managers[proto.deferred_file_id]
            url = manager.execute_deferred(proto.deferred_file_id)
        else:
            url = proto.url
        file_id = url.rsplit("/", 1)[-1].split(".", 1)[0]
        if not proto.deferred_file_id:
            manager = self.managers[file_id]
        stored = manager.read_file(file_id)
        assert stored is not None, f"download {button.key}: nothing stored at {url}"
        return stored.filename or "", stored.content


# The session's recorder (tests/conftest.py keeps it recording for the whole session).
RECORDER = Downloads()
download = RECORDER.download


def demo_api() -> Simulator:
    """The embedded demo API the app reads in this process (under ``hermetic``)."""
    from flux_dashboard.config import load_settings
    from flux_dashboard.service import embedded_simulator

    return embedded_simulator(load_settings(secrets={}))
