"""Streamlit AppTest suite: every page, filters, URL state, masking, safety, errors.

Hermetic: no API key or URL (the embedded deterministic simulator serves the
data), a temporary ``FLUX_CACHE_DIR`` and a fixed ``FLUX_MASK_SECRET``. API
error paths run the app against the simulator served over real HTTP by this
process (``SERENICITY_API_URL``), with its faults switched on.

The simulator follows the real clock (the last 24 h move every hour), so tests
on the default range assert structure and relations. Tests that need exact
numbers open a link to fixed past dates ("Custom" range, a few days ago, whose
hours never change) and compare with an independent expectation: a count made
by hand on the simulator's own rows for that window (a second ``Simulator``
instance, ground truth), or an analysis function called on those rows directly.

Runs are shared where possible: one module-scoped AppTest per page (plain,
masked and on the fixed dates); tests that change widgets build their own
AppTest (warm caches make those runs take a second or two).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import socket
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from app_env import SCRUBBED
from clock import in_one_hour
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from flux_dashboard import hunting as Hn
from flux_dashboard.client import MAX_RETRIES
from flux_dashboard.geo import with_country
from flux_dashboard.schema import to_frame
from flux_dashboard.service import embedded_simulator
from flux_dashboard.simulator import HTML_NAME, MARKDOWN_NAME, Simulator, SimulatorConfig
from flux_dashboard.simulator.story import StoryPlan

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120

OVERVIEW = "pages/1_overview.py"
DEVICES = "pages/2_devices.py"
PROTOCOLS = "pages/3_protocols.py"
TOXIC = "pages/4_toxic.py"
REMOTES = "pages/5_remotes.py"
HUNTING = "pages/6_hunting.py"
PAGES = [OVERVIEW, DEVICES, PROTOCOLS, TOXIC, REMOTES, HUNTING]

TITLES = {
    OVERVIEW: "Overview",
    DEVICES: "Devices",
    PROTOCOLS: "Protocols & ports",
    TOXIC: "Toxic flows",
    REMOTES: "Remote hosts",
    HUNTING: "Threat hunting",
}
OVERVIEW_METRICS = ["Flows", "Bytes in", "Bytes out", "Devices", "Remote hosts", "Toxic IN",
                    "Toxic OUT", "Cyberweather, worst day", "Cyberweather today",
                    "Cybercarbon (CO2e)"]
DEVICE_METRICS = ["Flows", "Bytes in", "Bytes out", "Remote hosts", "Toxic IN", "Toxic OUT"]
HUNTING_METRICS = ["New device → remote pairs", "Of which toxic", "Devices concerned"]
METRICS = {OVERVIEW: OVERVIEW_METRICS, DEVICES: DEVICE_METRICS, HUNTING: HUNTING_METRICS}
# The plotly charts of each page, by widget key. The hunting page draws tables only.
# (The toxic page is opened on INCIDENT_DAY, whose beacon makes toxic OUT flows:
# "toxic_devices" is there. Ordinary days are quiet and may have none.)
CHART_KEYS = {
    OVERVIEW: {"traffic", "cw_cal", "cw_hours", "cw_days", "top_dev", "top_proto", "top_port"},
    DEVICES: {"dev_bytes", "dev_toxic", "dev_carbon", "drill_time", "drill_remotes", "drill_heat",
              "drill_ports", "drill_protocols"},
    PROTOCOLS: {"treemap", "ports_bytes", "ports_flows", "port_device"},
    TOXIC: {"toxic_devices", "threats", "toxic_remotes"},
    REMOTES: {"map", "remote_bar"},
    HUNTING: set(),
}
# Tables (st.dataframe) each page must show, by a column set that identifies each.
TABLES = {
    OVERVIEW: [],
    DEVICES: [{"device_name", "ip0", "mac_address", "vendor"}],
    PROTOCOLS: [{"port_label", "protocols", "service"}],
    TOXIC: [{"ip0", "remotes", "hours_active"}, {"time", "ip1", "dir", "threats"}],
    REMOTES: [{"ip1", "flows", "bytes", "toxic_flows"}],
    HUNTING: [{"ip0", "ip1", "first_contact", "last_contact", "regularity"},
              {"ip0", "ip1", "first_contact", "toxic"}, {"ip0", "off_share", "mostly_off"}],
}
# st.error is also used for findings in the data (not failures): allowed, by pattern.
FINDING_ERRORS = {
    TOXIC: re.compile(r"^\d+ device\(s\) on the LAN reached out to toxic hosts"),
    HUNTING: re.compile(r"^\d+ device/remote pair\(s\) show very regular OUT contacts"),
}
# The four threat flags the vendor's glossary calls critical (written out here, not
# imported: the expectation must not come from the code under test).
CRITICAL_FLAGS = ("command_center", "trojan", "supply_chain_compromise", "hcard")

KNOWN_NAMES = ("PC-Compta", "NAS-Synology", "SRV-AD01")
ORIGINAL_IP = re.compile(r"(?<![\d.])(?:192\.168\.1|10\.0\.0|10\.0\.1)\.\d{1,3}(?![\d])")
SENSOR_NAMES = ("Cabinet Martin", "Pharmacie du Port")
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)")
MAC = re.compile(r"(?<![0-9a-f:-])[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}(?![0-9a-f:-])", re.I)

# The demo's two sensors and their time zones (the simulator's documented world).
MAIN, SMALL = 54, 77
PARIS, REUNION = ZoneInfo("Europe/Paris"), ZoneInfo("Indian/Reunion")
# A past day whose hours are closed, so the data of a link to it never changes.
FIXED_DAY = datetime.now(PARIS).date() - timedelta(days=3)
# The demo's planted incident (simulator/story.py), day 0 = today as in the app's demo.
# Ordinary days are quiet (the last 24 h may hold no toxic OUT flow, or no toxic flow at
# all): tests that need toxic flows of both directions open the last brute-force day,
# a beacon day too (toxic OUT from the PC, critical; toxic IN brute force, mostly not).
PLAN = StoryPlan.anchored(datetime.now(UTC), "Europe/Paris")
INCIDENT_DAY = PLAN.day(PLAN.bruteforce_days[-1])
assert PLAN.bruteforce_days[-1] in PLAN.beacon_days


# ------------------------------------------------------------------ environment
@pytest.fixture(scope="module", autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Demo mode, a private cache, a fixed masking secret (module-wide).

    Module scope because the app keeps process-wide caches (``st.cache_resource``
    service keyed by source id): one cache dir for the whole module.
    """
    cache_dir = tmp_path_factory.mktemp("flux-cache")
    with pytest.MonkeyPatch.context() as mp:
        for name in SCRUBBED:
            mp.delenv(name, raising=False)
        mp.setenv("FLUX_CACHE_DIR", str(cache_dir))
        # The app's story is PLAN's, even when the suite crosses the sensor's midnight.
        mp.setenv("FLUX_DEMO_DAY", PLAN.today.isoformat())
        mp.setenv("FLUX_MASK_SECRET", "apptest-fixed-mask-secret")
        yield cache_dir


# Download buttons built from a callable only register it with the run's media file
# manager (AppTest gives each run a fresh one, then drops it). Remember which manager
# holds each file id, so a test can "click" the download and read the bytes.
_MEDIA: dict[str, MediaFileManager] = {}


@pytest.fixture(scope="module", autouse=True)
def downloadable() -> Iterator[None]:
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def add_recorded(self, *args, **kwargs):
        url = add(self, *args, **kwargs)
        _MEDIA[url.rsplit("/", 1)[-1].split(".", 1)[0]] = self
        return url

    def add_deferred_recorded(self, *args, **kwargs):
        file_id = add_deferred(self, *args, **kwargs)
        _MEDIA[file_id] = self
        return file_id

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MediaFileManager, "add", add_recorded)
        mp.setattr(MediaFileManager, "add_deferred", add_deferred_recorded)
        yield
    _MEDIA.clear()


def download(button) -> tuple[str, bytes]:
    """(file name, bytes) a click on this download button would save, through Streamlit's
    own media file manager (it runs the deferred callable exactly as the server does)."""
    proto = button.proto
    if proto.deferred_file_id:
        manager = _MEDIA[proto.deferred_file_id]
        url = manager.execute_deferred(proto.deferred_file_id)
    else:
        url = proto.url
    file_id = url.rsplit("/", 1)[-1].split(".", 1)[0]
    if not proto.deferred_file_id:
        manager = _MEDIA[file_id]
    stored = manager.read_file(file_id)
    assert stored is not None, f"download {button.key}: nothing stored at {url}"
    return stored.filename or "", stored.content


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


# ------------------------------------------------------------------ app helpers
def new_app(query: dict[str, str | list[str]] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    # Non-empty at.secrets replaces any secrets.toml (CWD or ~/.streamlit): no real key.
    at.secrets["FLUX_APPTEST"] = "1"
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at


def run_page(page: str, query: dict[str, str | list[str]] | None = None) -> AppTest:
    at = new_app(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if page != OVERVIEW:
        at.switch_page(page).run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def as_int(value: str) -> int:
    return int(value.replace(",", "").replace("\u202f", ""))


def chart_specs(at: AppTest) -> dict[str, dict]:
    """Plotly specs by widget key (the element id ends with ``-<key>``)."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec)
            for el in at.get("plotly_chart") if getattr(el.proto, "spec", "")}


def plotly_specs(at: AppTest) -> list[dict]:
    return list(chart_specs(at).values())


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


def unexpected_errors(at: AppTest, page: str) -> list[str]:
    allowed = FINDING_ERRORS.get(page)
    return [e for e in said(at.error) if not (allowed and allowed.search(e))]


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
        elif kind in ("Button", "DownloadButton"):
            yield kind, node.label
        elif kind in ("Tab", "Expander"):
            yield kind, node.label
        elif hasattr(node, "proto") and hasattr(type(node), "value"):
            value = node.value
            if isinstance(value, str):
                yield kind, value
            label = getattr(node, "label", None)
            if isinstance(label, str):
                yield kind, label


def said(elements) -> list[str]:
    """Alert/caption texts as a reader sees them (the app escapes markdown in them)."""
    return [_plain(e.value) for e in elements]


def markdown_bodies(at: AppTest) -> list[str]:
    """Bodies sent to st.markdown (captions, titles and alerts are markdown too)."""
    kinds = ("Markdown", "Caption", "Title", "Header", "Subheader", "Error", "Warning",
             "Info", "Success", "Toast")
    return [node.value for node in at._tree if type(node).__name__ in kinds]


def device_options(at: AppTest) -> list[str]:
    return list(at.sidebar.multiselect(key="device").options)


def original_devices(at: AppTest) -> tuple[set[str], set[str]]:
    """IPs and names of the devices in the (unmasked) data, from the sidebar options."""
    ips, names = set(), set()
    for opt in device_options(at):
        name, _, ip = opt.rpartition(" · ")
        ips.add(ip)
        if name:
            names.add(name)
    return ips, names


def table_with(at, columns: set[str]):
    """The (pandas) value of the one table holding these columns."""
    found = [d.value for d in at.dataframe if columns <= set(d.value.columns)]
    assert len(found) == 1, (columns, [list(d.value.columns) for d in at.dataframe])
    return found[0]


def toxic_flow_table(at: AppTest):
    return table_with(at, {"time", "ip1", "dir", "threats"})


def param(at: AppTest, key: str) -> list[str]:
    """A query parameter of the app's URL after the run, as a list of values."""
    value = at.query_params.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def flux_requests(sim: Simulator, since: int = 0) -> list[dict[str, str]]:
    """Parameters of the ``GET /sensors/:id/flux`` requests the simulator received."""
    return [params for path, params in sim.requests[since:] if path.endswith("/flux")]


# ------------------------------------------------------------------ ground truth
def fixed_link(first: date = FIXED_DAY, days: int = 1) -> dict[str, str]:
    """A link to whole past local days: first 00:00 → first + days 00:00."""
    return {"range": "Custom", "from_day": first.isoformat(), "from_hour": "00:00",
            "to_day": (first + timedelta(days=days)).isoformat(), "to_hour": "00:00"}


def local_days(first: date, days: int = 1, zone: ZoneInfo = PARIS) -> tuple[datetime, datetime]:
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end_day = first + timedelta(days=days)
    return start, datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)


# Pages of the shared runs opened on a link rather than the default range.
PAGE_LINKS = {TOXIC: fixed_link(INCIDENT_DAY)}


@pytest.fixture(scope="module")
def truth() -> Simulator:
    """The demo's world in a separate simulator instance: the expected rows."""
    return Simulator(SimulatorConfig(rate_limit_per_min=None))


@pytest.fixture(scope="module")
def rows_of(truth: Simulator) -> Callable[..., list[dict]]:
    """API rows of [start, end) for a sensor, straight from the ground truth."""

    @cache
    def rows(start: datetime, end: datetime, sensor: int = MAIN) -> list[dict]:
        return truth.rows(sensor, start, end)

    return rows


def frame_of(rows: list[dict]) -> pl.DataFrame:
    """The rows as the app prepares them (schema, then countries), for analysis functions."""
    return with_country(to_frame(rows), "ip1")


def count(rows: list[dict], pred: Callable[[dict], bool]) -> int:
    return sum(1 for r in rows if pred(r))


# ------------------------------------------------------------------ shared runs
@pytest.fixture(scope="module")
def page_runs(hermetic_env: Path) -> dict[str, AppTest]:
    """One demo-mode AppTest per page (the first run generates and caches the data).

    Default range, but the toxic page opens a link to INCIDENT_DAY (see PAGE_LINKS)."""
    return {page: run_page(page, PAGE_LINKS.get(page)) for page in PAGES}


@pytest.fixture(scope="module")
def masked_runs(hermetic_env: Path, page_runs: dict[str, AppTest]) -> dict[str, AppTest]:
    """Every page opened from a ?mask=true link (first run: nothing may leak even then)."""
    runs = {}
    for page in PAGES:
        at = new_app({"mask": "true", **PAGE_LINKS.get(page, {})})
        at.run()
        if page != OVERVIEW:
            at.switch_page(page).run()
        runs[page] = at
    return runs


@pytest.fixture(scope="module")
def fixed_runs(hermetic_env: Path) -> dict[str, AppTest]:
    """Overview, toxic and hunting pages opened from a link to FIXED_DAY."""
    return {page: run_page(page, fixed_link()) for page in (OVERVIEW, TOXIC, HUNTING)}


@pytest.fixture(scope="module")
def day_rows(rows_of) -> list[dict]:
    return rows_of(*local_days(FIXED_DAY))


@pytest.fixture(scope="module")
def week_before_rows(rows_of) -> list[dict]:
    start, _ = local_days(FIXED_DAY)
    return rows_of(start - timedelta(days=7), start)


# ------------------------------------------------------------------ every page renders
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_demo_mode(page_runs: dict[str, AppTest], page: str) -> None:
    at = page_runs[page]
    assert not at.exception, [e.message for e in at.exception]
    assert unexpected_errors(at, page) == []
    assert [t.value for t in at.title] == [TITLES[page]]
    # demo mode says so in the sidebar
    assert any("simulated" in c for c in said(at.sidebar.caption))
    got = [m.label for m in at.metric]
    for label in METRICS.get(page, []):
        assert label in got, (label, got)
    if page not in METRICS:
        assert got == []
    for m in at.metric:
        assert isinstance(m.value, str) and m.value != ""
    for columns in TABLES[page]:
        assert len(table_with(at, columns)) > 0, columns
    if not TABLES[page]:
        assert not at.dataframe, [list(d.value.columns) for d in at.dataframe]


@pytest.mark.parametrize("page", PAGES)
def test_page_charts_have_titles(page_runs: dict[str, AppTest], page: str) -> None:
    at = page_runs[page]
    charts = at.get("plotly_chart")
    assert all(type(c).__name__ == "UnknownElement" for c in charts)
    specs = chart_specs(at)
    assert len(specs) == len(charts)  # every chart has a spec and its own key
    assert set(specs) == CHART_KEYS[page]
    for key, spec in specs.items():
        assert spec.get("data"), (key, chart_title(spec))
        assert chart_title(spec).strip(), f"chart {key} without a title"


def test_overview_chart_titles_and_metric_relations(page_runs: dict[str, AppTest]) -> None:
    at = page_runs[OVERVIEW]
    titles = [chart_title(s) for s in plotly_specs(at)]
    for expected in ("Traffic over time", "Cyberweather per day", "cyT per day",
                     "Top devices by bytes", "Protocols by bytes", "Top ports by bytes"):
        assert any(t.startswith(expected) for t in titles), (expected, titles)
    m = metrics(at)
    assert list(m) == OVERVIEW_METRICS
    flows = as_int(m["Flows"])
    assert flows > 0
    assert as_int(m["Toxic IN"]) + as_int(m["Toxic OUT"]) <= flows
    assert as_int(m["Devices"]) > 0 and as_int(m["Remote hosts"]) > 0
    assert re.fullmatch(r"[\d.,]+ ?[KMGT]?B", m["Bytes in"]), m["Bytes in"]
    # The last 24 hours hold today: its level so far is shown, beside the worst day's.
    worst = next(x for x in at.metric if x.label == "Cyberweather, worst day")
    today = next(x for x in at.metric if x.label == "Cyberweather today")
    assert worst.value in LEVELS and today.value in LEVELS
    worst_cyt = as_int(worst.delta.rsplit("cyT ", 1)[1])
    today_cyt = as_int(today.delta.removeprefix("so far · cyT "))
    assert today_cyt <= worst_cyt <= as_int(m["Toxic IN"]) + 10 * as_int(m["Toxic OUT"])
    assert LEVELS.index(worst.value) == hand_level(worst_cyt)
    assert LEVELS.index(today.value) == hand_level(today_cyt)
    assert [c for c in at.subheader if c.value.startswith("What changed on")]


def test_devices_page_table_and_drilldown(page_runs: dict[str, AppTest]) -> None:
    at = page_runs[DEVICES]
    table = at.dataframe[0].value
    assert {"device_name", "ip0"} <= set(table.columns)
    ips, _ = original_devices(page_runs[OVERVIEW])
    assert set(table["ip0"]) <= ips
    drill = at.selectbox(key="drill")
    assert drill.value == table["ip0"].iloc[0]
    assert any(btn.key == "pack_device" for btn in at.get("download_button"))


def test_toxic_page_table_and_downloads(page_runs: dict[str, AppTest], rows_of) -> None:
    at = page_runs[TOXIC]
    flow_table = toxic_flow_table(at)
    toxic_total = count(rows_of(*local_days(INCIDENT_DAY)), lambda r: r["toxic"])
    assert len(flow_table) == toxic_total > 0
    buttons = {b.key: b for b in at.get("download_button")}
    assert {"toxic_dl_csv", "toxic_dl_pq"} <= set(buttons)
    labels = " ".join(b.label for b in buttons.values())
    assert "CSV" in labels and "Parquet" in labels
    assert at.text_input(key="toxic_search").value == ""
    # the downloads hold exactly the rows of the table
    name, content = download(buttons["toxic_dl_csv"])
    assert name.endswith(".csv")
    csv = pl.read_csv(io.BytesIO(content))
    assert csv.height == len(flow_table)
    assert sorted(csv["ip1"].to_list()) == sorted(flow_table["ip1"])
    name, content = download(buttons["toxic_dl_pq"])
    assert name.endswith(".parquet")
    parquet = pl.read_parquet(io.BytesIO(content))
    assert parquet.height == len(flow_table)
    # Text columns are text in the file, not the page's in-memory categoricals.
    assert parquet.schema["ip1"] == pl.String and pl.Categorical not in parquet.dtypes


def test_hunting_page_tabs_and_baseline(page_runs: dict[str, AppTest]) -> None:
    at = page_runs[HUNTING]
    labels = [t.label for t in at.tabs]
    assert len(labels) == 4
    for word in ("Threat storylines", "First-seen remotes", "Upload anomalies",
                 "Non-working hours"):
        assert any(word in label for label in labels), (word, labels)
    # it says which baseline it loaded, and from where
    captions = said(at.caption)
    assert any(c.startswith(":material/history: Baseline (7 days before the range): flows of")
               and ("from the cache" in c or "fetching" in c) for c in captions), captions
    assert at.button_group(key="baseline_days").value == 7
    tabs = list(at.tabs)
    stories = [d.value for d in tabs[0].dataframe]
    assert stories and {"ip0", "ip1", "first_contact", "last_contact"} <= set(stories[0].columns)
    assert any(b.key == "stories_dl_csv" for b in tabs[0].get("download_button"))
    assert [m.label for m in tabs[1].metric] == HUNTING_METRICS
    assert tabs[1].dataframe
    assert tabs[2].slider(key="anomaly_k").value == 3.0
    # off-hours (the demo sensor has non-working hours)
    assert any(c.startswith("Non-working hours:") for c in said(tabs[3].caption))
    assert tabs[3].dataframe
    assert any("Toxic flows, off-hours first" in md.value for md in tabs[3].markdown)


# ------------------------------------------------------------------ numbers vs ground truth
def test_fixed_day_link_shows_the_simulator_numbers(fixed_runs: dict[str, AppTest],
                                                    day_rows: list[dict]) -> None:
    at = fixed_runs[OVERVIEW]
    assert not at.exception and not at.error and not at.warning
    start, end = local_days(FIXED_DAY)
    assert f"{start:%a %d %b %Y %H:%M} → {end:%a %d %b %Y %H:%M} (Europe/Paris)" in _plain(
        at.caption[0].value)
    m = metrics(at)
    toxic_in = count(day_rows, lambda r: r["toxic"] and r["dir"] == "IN")
    toxic_out = count(day_rows, lambda r: r["toxic"] and r["dir"] == "OUT")
    assert (as_int(m["Flows"]), as_int(m["Toxic IN"]), as_int(m["Toxic OUT"])) == (
        len(day_rows), toxic_in, toxic_out)
    assert as_int(m["Devices"]) == len({r["ip0"] for r in day_rows})
    assert as_int(m["Remote hosts"]) == len({r["ip1"] for r in day_rows})


def test_toxic_page_counts_match_the_simulator(fixed_runs: dict[str, AppTest],
                                               day_rows: list[dict]) -> None:
    at = fixed_runs[TOXIC]
    toxic = [r for r in day_rows if r["toxic"]]
    assert toxic
    table = toxic_flow_table(at)
    assert len(table) == len(toxic)
    assert Counter(table["ip1"]) == Counter(r["ip1"] for r in toxic)
    assert any(c.startswith(f"{len(toxic):,} of {len(toxic):,} toxic flows")
               for c in said(at.caption)), said(at.caption)
    # who initiated toxic OUT flows, counted by hand
    out = Counter(r["ip0"] for r in toxic if r["dir"] == "OUT")
    devices = table_with(at, {"ip0", "remotes", "hours_active"})
    assert dict(zip(devices["ip0"], devices["flows"], strict=True)) == dict(out)
    assert any(e.startswith(f"{len(out)} device(s) on the LAN reached out")
               for e in said(at.error))


def test_hunting_first_seen_matches_a_hand_count(fixed_runs: dict[str, AppTest],
                                                 day_rows: list[dict],
                                                 week_before_rows: list[dict]) -> None:
    tab = list(fixed_runs[HUNTING].tabs)[1]
    pairs = {(r["ip0"], r["ip1"]) for r in day_rows}
    new = pairs - {(r["ip0"], r["ip1"]) for r in week_before_rows}
    toxic_new = new & {(r["ip0"], r["ip1"]) for r in day_rows if r["toxic"]}
    assert new
    assert [as_int(m.value) for m in tab.metric] == [
        len(new), len(toxic_new), len({ip0 for ip0, _ in new})]
    table = tab.dataframe[0].value
    assert set(zip(table["ip0"], table["ip1"], strict=True)) == new
    assert len(table) == len(new)


def _anomaly_rows(table) -> Counter:
    return Counter(zip(table["ip0"], table["bytes_out"], strict=True))


def test_hunting_upload_anomalies_match_the_function_on_the_rows(
        fixed_runs: dict[str, AppTest], day_rows: list[dict],
        week_before_rows: list[dict]) -> None:
    expected = Hn.upload_anomalies(frame_of(day_rows), frame_of(week_before_rows), k=3.0)
    tab = list(fixed_runs[HUNTING].tabs)[2]
    assert tab.slider(key="anomaly_k").value == 3.0
    if expected.height:
        assert not tab.success, said(tab.success)
        assert _anomaly_rows(tab.dataframe[0].value) == _anomaly_rows(expected.to_pandas())
    else:
        assert not tab.dataframe
        assert any("No device uploaded more" in s for s in said(tab.success))


def test_hunting_sensitivity_k_changes_the_anomalies(day_rows: list[dict],
                                                     week_before_rows: list[dict]) -> None:
    day, before = frame_of(day_rows), frame_of(week_before_rows)
    at = run_page(HUNTING, fixed_link())
    seen = set()
    for k in (1.0, 10.0):
        at.slider(key="anomaly_k").set_value(k).run()
        assert not at.exception
        expected = Hn.upload_anomalies(day, before, k=k)
        tab = list(at.tabs)[2]
        got = _anomaly_rows(tab.dataframe[0].value) if tab.dataframe else Counter()
        assert got == _anomaly_rows(expected.to_pandas()), k
        seen.add(sum(got.values()))
    assert len(seen) == 2, "k=1 and k=10 flag the same hours: the slider shows no effect"


def test_hunting_baseline_days_switch_loads_a_longer_baseline(rows_of) -> None:
    start, end = local_days(FIXED_DAY)
    at = run_page(HUNTING, fixed_link())
    at.button_group(key="baseline_days").set_value(14).run()
    assert not at.exception and unexpected_errors(at, HUNTING) == []
    since = start - timedelta(days=14)
    assert any(c.startswith(":material/history: Baseline (14 days before the range): "
                                  f"flows of {since:%a %d %b %H:%M} → {start:%a %d %b %H:%M}")
               for c in said(at.caption)), said(at.caption)
    pairs = {(r["ip0"], r["ip1"]) for r in rows_of(start, end)}
    new14 = pairs - {(r["ip0"], r["ip1"]) for r in rows_of(since, start)}
    new7 = pairs - {(r["ip0"], r["ip1"]) for r in rows_of(start - timedelta(days=7), start)}
    assert len(new14) != len(new7)  # the data tells the two baselines apart
    assert as_int(list(at.tabs)[1].metric[0].value) == len(new14)


# ------------------------------------------------------------------ filters change the numbers
def test_toxic_toggle_then_direction_out_change_the_numbers(rows_of) -> None:
    # INCIDENT_DAY has toxic flows both ways (an ordinary day may have no toxic OUT).
    rows = rows_of(*local_days(INCIDENT_DAY))
    at = new_app(fixed_link(INCIDENT_DAY))
    at.run()
    before = metrics(at)
    assert (as_int(before["Flows"]), as_int(before["Toxic IN"]), as_int(before["Toxic OUT"])) == (
        len(rows), count(rows, lambda r: r["toxic"] and r["dir"] == "IN"),
        count(rows, lambda r: r["toxic"] and r["dir"] == "OUT"))
    assert as_int(before["Toxic IN"]) > 0 and as_int(before["Toxic OUT"]) > 0

    at.sidebar.toggle(key="toxic").set_value(True).run()
    assert not at.exception and not at.error
    toxic = metrics(at)
    assert as_int(toxic["Flows"]) < as_int(before["Flows"])
    assert as_int(toxic["Flows"]) == as_int(toxic["Toxic IN"]) + as_int(toxic["Toxic OUT"])
    assert toxic["Toxic IN"] == before["Toxic IN"] and toxic["Toxic OUT"] == before["Toxic OUT"]
    assert "toxic only" in at.caption[0].value

    at.sidebar.button_group(key="dir").set_value("OUT").run()
    assert not at.exception and not at.error
    out = metrics(at)
    assert out["Toxic IN"] == "0"
    assert out["Toxic OUT"] == before["Toxic OUT"]
    assert as_int(out["Flows"]) == as_int(out["Toxic OUT"])


def test_device_filter_narrows_to_one_device(page_runs: dict[str, AppTest]) -> None:
    ip = page_runs[DEVICES].dataframe[0].value["ip0"].iloc[0]
    at = new_app()
    at.run()
    at.sidebar.multiselect(key="device").set_value([ip]).run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert m["Devices"] == "1"
    assert as_int(m["Flows"]) < as_int(metrics(page_runs[OVERVIEW])["Flows"])


def test_threat_filter_keeps_the_flows_of_that_threat(day_rows: list[dict]) -> None:
    at = run_page(OVERVIEW, fixed_link())
    at.sidebar.multiselect(key="threat").set_value(["command_center"]).run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert as_int(m["Flows"]) == count(day_rows, lambda r: r["command_center"]) > 0
    assert param(at, "threat") == ["command_center"]
    assert "Command center" in _plain(at.caption[0].value)


def test_off_hours_filter_keeps_the_sensor_non_working_hours(truth: Simulator,
                                                             day_rows: list[dict]) -> None:
    hno = set(next(s for s in truth.sensors() if s["id"] == MAIN)["hno_hours"])
    assert hno and len(hno) < 24

    def off(r: dict) -> bool:
        hour = datetime.fromisoformat(r["start_of_hour"].replace("Z", "+00:00"))
        return hour.astimezone(PARIS).hour in hno

    at = run_page(OVERVIEW, fixed_link())
    at.sidebar.toggle(key="offhours").set_value(True).run()
    assert not at.exception and not at.error
    expected = count(day_rows, off)
    assert 0 < expected < len(day_rows)
    assert as_int(metrics(at)["Flows"]) == expected
    assert "non-working hours" in _plain(at.caption[0].value)


def test_choosing_the_other_sensor_shows_its_data(rows_of) -> None:
    at = run_page(OVERVIEW, fixed_link())
    options = at.sidebar.selectbox(key="sensor_id").options
    assert len(options) == 2 and "#77" in options[1], options
    at.sidebar.selectbox(key="sensor_id").set_value(SMALL).run()
    assert not at.exception and not at.error
    assert at.session_state["sensor_id"] == SMALL
    assert param(at, "sensor") == [str(SMALL)]
    assert any(c == "Times in the sensor's time zone: Indian/Reunion"
               for c in said(at.sidebar.caption))
    # the same dates, in the small site's own time zone
    rows = rows_of(*local_days(FIXED_DAY, zone=REUNION), sensor=SMALL)
    m = metrics(at)
    assert as_int(m["Flows"]) == len(rows) > 0
    assert as_int(m["Devices"]) == len({r["ip0"] for r in rows})
    assert "#77" in _plain(at.caption[0].value)


def test_toxic_critical_and_not_blocked_toggles(rows_of) -> None:
    # INCIDENT_DAY: the C2 beacon (critical) and a brute-force wave (mostly not critical);
    # on FIXED_DAY every toxic flow is the beacon.
    toxic = [r for r in rows_of(*local_days(INCIDENT_DAY)) if r["toxic"]]
    critical = [r for r in toxic if any(r[f] for f in CRITICAL_FLAGS)]
    both = [r for r in critical if not r["filtered"]]
    unblocked = [r for r in toxic if not r["filtered"]]
    assert 0 < len(both) < len(critical) < len(toxic)

    at = run_page(TOXIC, fixed_link(INCIDENT_DAY))
    at.toggle(key="toxic_critical").set_value(True).run()
    assert not at.exception
    assert len(toxic_flow_table(at)) == len(critical)
    assert any(c.startswith(f"{len(critical):,} of {len(toxic):,} toxic flows")
               for c in said(at.caption))
    assert Counter(toxic_flow_table(at)["ip1"]) == Counter(r["ip1"] for r in critical)

    at.toggle(key="toxic_unblocked").set_value(True).run()
    assert not at.exception
    assert len(toxic_flow_table(at)) == len(both)

    at.toggle(key="toxic_critical").set_value(False).run()
    assert not at.exception
    assert len(toxic_flow_table(at)) == len(unblocked)
    # the download holds the rows shown
    csv = next(b for b in at.get("download_button") if b.key == "toxic_dl_csv")
    assert pl.read_csv(io.BytesIO(download(csv)[1])).height == len(unblocked)


def test_toxic_search_finds_a_device_by_name_case_insensitively(day_rows: list[dict]) -> None:
    # 192.168.1.102 is "PC-Compta-02" (NetBIOS PC-COMPTA-02), the PC that beacons to a C2.
    expected = count(day_rows, lambda r: r["toxic"] and r["ip0"] == "192.168.1.102")
    assert expected > 0
    at = run_page(TOXIC, fixed_link())
    # Mixed case, matching neither the name nor its NetBIOS form as typed: both the
    # input and the table's text must be compared in one case.
    at.text_input(key="toxic_search").input("Pc-COMPTA-02").run()
    assert not at.exception
    table = toxic_flow_table(at)
    assert len(table) == expected
    assert set(table["ip0"]) == {"192.168.1.102"}
    at.text_input(key="toxic_search").input("no such thing").run()
    assert len(toxic_flow_table(at)) == 0


def test_heatmap_value_switch_shows_flow_counts() -> None:
    at = run_page(PROTOCOLS, fixed_link())
    heat = chart_specs(at)["port_device"]
    assert "(bytes," in chart_title(heat)
    bytes_z = heat["data"][0]["z"]
    at.button_group(key="heat_value").set_value("flows").run()
    assert not at.exception
    heat = chart_specs(at)["port_device"]
    assert chart_title(heat).startswith("Port × device (flows,")
    assert "count" in heat["data"][0]["colorbar"]["title"]["text"].lower()
    cells = [v for row in heat["data"][0]["z"] for v in row if v is not None]
    assert cells and all(isinstance(v, int) and v >= 0 for v in cells) and max(cells) > 0
    assert sum(cells) <= as_int(metrics(run_page(OVERVIEW, fixed_link()))["Flows"])
    assert heat["data"][0]["z"] != bytes_z


def test_remote_hosts_direction_and_sort(day_rows: list[dict]) -> None:
    at = run_page(REMOTES, fixed_link())
    columns = {"ip1", "flows", "bytes", "toxic_flows"}
    everything = table_with(at, columns)
    assert dict(zip(everything["ip1"], everything["flows"], strict=True)) == dict(
        Counter(r["ip1"] for r in day_rows))
    # default: by threat, so the toxic remotes come first
    toxic = list(everything["toxic_flows"] > 0)
    assert toxic[0] and toxic == sorted(toxic, reverse=True)

    at.button_group(key="rh_dir").set_value("OUT").run()
    assert not at.exception
    out = table_with(at, columns)
    assert dict(zip(out["ip1"], out["flows"], strict=True)) == dict(
        Counter(r["ip1"] for r in day_rows if r["dir"] == "OUT"))
    assert any(c.startswith(f"{len(out):,} public IPs") for c in said(at.caption))

    for sort_by, column in (("flows", "flows"), ("bytes", "bytes")):
        at.selectbox(key="rh_sort").set_value(sort_by).run()
        assert not at.exception
        values = list(table_with(at, columns)[column])
        assert values == sorted(values, reverse=True), sort_by
        title = chart_title(chart_specs(at)["remote_bar"])
        assert title == f"Top remote hosts by {sort_by}", title



def test_remote_hosts_filter_box_and_its_downloads(captured_downloads) -> None:
    """The filter box keeps the hosts whose IP, owner or country holds the text (chosen
    here from the unfiltered table), and the downloads hold exactly them. Owner and
    country are categoricals in the page's frame: the filter once raised on them."""
    at = run_page(REMOTES, fixed_link())
    columns = {"ip1", "owner", "country", "flows"}
    every = table_with(at, columns)[["ip1", "owner", "country"]].fillna("")
    texts = {r.ip1: f"{r.ip1}\n{r.owner}\n{r.country}".lower() for r in every.itertuples()}
    needle, want = next(
        (c.lower(), hits) for c in sorted(set(every["country"]) - {""})
        if 0 < len(hits := {ip for ip, t in texts.items() if c.lower() in t}) < len(texts))
    at.text_input(key="rh_filter").input(needle).run()
    assert not at.exception, [e.message for e in at.exception]
    assert set(table_with(at, columns)["ip1"]) == want
    assert any(c.startswith(f"{len(want):,} of {len(texts):,} public IPs")
               for c in said(at.caption)), said(at.caption)
    csv = next(f for n, f in captured_downloads.items()
               if n.startswith("remote-hosts-") and n.endswith(".csv"))
    assert set(pl.read_csv(io.StringIO(csv()), infer_schema=False)["ip1"]) == want


def test_drilldown_into_another_device(day_rows: list[dict]) -> None:
    at = run_page(DEVICES, fixed_link())
    ips = list(table_with(at, {"device_name", "ip0", "mac_address", "vendor"})["ip0"])
    assert len(ips) > 3 and at.selectbox(key="drill").value == ips[0]
    ip = ips[3]
    at.selectbox(key="drill").set_value(ip).run()
    assert not at.exception
    heading = [_plain(b) for b in markdown_bodies(at) if b.startswith("#### ")]
    assert len(heading) == 1 and re.search(rf" · `?{re.escape(ip)}`?$", heading[0]), heading
    mine = [r for r in day_rows if r["ip0"] == ip]
    m = metrics(at)
    assert as_int(m["Flows"]) == len(mine) > 0
    assert as_int(m["Remote hosts"]) == len({r["ip1"] for r in mine})
    assert as_int(m["Toxic OUT"]) == count(mine, lambda r: r["toxic"] and r["dir"] == "OUT")


# ------------------------------------------------------------------ overview: digest, cyberweather
def _digest_bullets(at: AppTest) -> list[str]:
    return [md.value for md in at.markdown if md.value.startswith("- ")]


def _expected_digest(rows_of, day: date) -> list[str]:
    prev = day - timedelta(days=7)
    dg = Hn.digest(frame_of(rows_of(*local_days(day))), frame_of(rows_of(*local_days(prev))),
                   "Europe/Paris", day, prev)
    return ["- " + Hn.escape_markdown(s) for s in dg.sentences]


def test_digest_sentences_and_day_select(rows_of) -> None:
    first = FIXED_DAY - timedelta(days=2)
    at = run_page(OVERVIEW, fixed_link(first, days=3))
    assert not at.exception and not at.warning
    select = at.selectbox(key="digest_day")
    assert list(select.options) == [f"{d:%a %d %b %Y}" for d in
                                    (FIXED_DAY, FIXED_DAY - timedelta(days=1), first)]
    assert select.value == FIXED_DAY
    prev = FIXED_DAY - timedelta(days=7)
    assert any(s == f"What changed on {FIXED_DAY:%a %d %b} vs {prev:%a %d %b}"
               for s in said(at.subheader))
    expected = _expected_digest(rows_of, FIXED_DAY)
    assert expected and _digest_bullets(at) == expected

    other = FIXED_DAY - timedelta(days=1)
    at.selectbox(key="digest_day").set_value(other).run()
    assert not at.exception and not at.warning
    prev = other - timedelta(days=7)
    assert any(s == f"What changed on {other:%a %d %b} vs {prev:%a %d %b}"
               for s in said(at.subheader))
    assert _digest_bullets(at) == _expected_digest(rows_of, other)
    assert any(c.startswith(f":material/history: Selected day: flows of {other:%a %d %b}")
               for c in said(at.caption))



def test_evidence_pack_digest_compares_the_last_day_with_a_week_before(
        rows_of, captured_downloads) -> None:
    """The pack's digest.txt is the digest of the range's last local day against the
    same day a week before, both from the API's rows (not just a title with two dates)."""
    first = FIXED_DAY - timedelta(days=2)
    run_page(OVERVIEW, fixed_link(first, days=3))
    packs = [n for n in captured_downloads if n.endswith(".zip")]
    assert len(packs) == 1, list(captured_downloads)
    with zipfile.ZipFile(io.BytesIO(captured_downloads[packs[0]]())) as z:
        got = z.read("digest.txt").decode()
    prev = FIXED_DAY - timedelta(days=7)
    want = Hn.digest(frame_of(rows_of(*local_days(FIXED_DAY))),
                     frame_of(rows_of(*local_days(prev))), "Europe/Paris", FIXED_DAY, prev)
    assert want.sentences and not want.previous_empty
    assert got == want.as_text()


LEVELS = ["Clear", "Light", "Moderate", "Severe", "Critical"]


def hand_level(cyt: int) -> int:
    """The vendor's scale for one day: 0, 1-5, 6-10, 11-99, 100 and more."""
    return 0 if cyt == 0 else 1 if cyt <= 5 else 2 if cyt <= 10 else 3 if cyt <= 99 else 4


def cyt_per_local_day(rows: list[dict], zone: ZoneInfo = PARIS) -> dict[date, int]:
    """cyT of each local day of API rows, counted row by row."""
    days: Counter = Counter()
    for r in rows:
        t = datetime.fromisoformat(r["start_of_hour"].replace("Z", "+00:00")).astimezone(zone)
        days[t.date()] += (1 if r["dir"] == "IN" else 10) if r["toxic"] else 0
    return dict(days)


def test_week_cyberweather_worst_day_days_per_level_and_cybercarbon(rows_of, monkeypatch):
    first = FIXED_DAY - timedelta(days=6)
    at = run_page(OVERVIEW, fixed_link(first, days=7))
    assert not at.exception and not at.warning
    rows = rows_of(*local_days(first, 7))
    per_day = cyt_per_local_day(rows)
    assert len(per_day) == 7
    # The worst day: highest cyT, the latest of equals.
    day, cyt = max(per_day.items(), key=lambda kv: (kv[1], kv[0]))
    m = {x.label: x for x in at.metric}
    assert "Cyberweather today" not in m  # today is outside these past days
    worst = m["Cyberweather, worst day"]
    assert worst.value == LEVELS[hand_level(cyt)]
    assert worst.delta == f"{day:%a %d %b} · cyT {cyt:,}"
    levels = Counter(hand_level(v) for v in per_day.values())
    line = next(md.value for md in at.markdown if "Days per cyberweather level" in md.value)
    assert "(7 days)" in line
    for lvl, name in enumerate(LEVELS):
        assert f"</span>{name} {levels[lvl]}" in line, (name, line)
    # Cybercarbon: every byte in and out, at 18 gCO2e per (decimal) GB.
    total = sum(int(r["in_flux"]) + int(r["out_flux"]) for r in rows)
    grams = total / 1e9 * 18
    carbon = m["Cybercarbon (CO2e)"]
    assert carbon.value.startswith("≈ ")
    shown, unit = carbon.value.removeprefix("≈ ").split(" ")
    scale = {"g": 1, "kg": 1e3, "t": 1e6}[unit]
    assert float(shown.replace(",", "")) * scale == pytest.approx(grams, rel=0.01)
    km = float(carbon.delta.removeprefix("≈ ").removesuffix(" km by car").replace(",", ""))
    assert km == pytest.approx(grams / 198, rel=0.01)
    assert "18 gCO2e per GB" in carbon.help and "estimate" in carbon.help

    # The factor is a setting: the vendor's mobile figure, 50 g/GB.
    monkeypatch.setenv("FLUX_CARBON_G_PER_GB", "50")
    at = run_page(OVERVIEW, fixed_link(first, days=7))
    carbon = next(x for x in at.metric if x.label == "Cybercarbon (CO2e)")
    km = float(carbon.delta.removeprefix("≈ ").removesuffix(" km by car").replace(",", ""))
    assert km == pytest.approx(total / 1e9 * 50 / 198, rel=0.01)
    assert "50 gCO2e per GB" in carbon.help


def test_drill_down_cybercarbon_line(rows_of) -> None:
    at = run_page(DEVICES, fixed_link())
    ip = at.selectbox(key="drill").value
    rows = [r for r in rows_of(*local_days(FIXED_DAY)) if r["ip0"] == ip]
    total = sum(int(r["in_flux"]) + int(r["out_flux"]) for r in rows)
    line = next(md.value for md in at.markdown if md.value.startswith("**Cybercarbon**"))
    plain = _plain(line)
    shown, unit = re.search(r"≈ ([\d.,]+) (g|kg|t) CO2e", plain).groups()
    scale = {"g": 1, "kg": 1e3, "t": 1e6}[unit]
    grams = float(shown.replace(",", "")) * scale
    # as exact as the shown digits: "14 g" is 13.5 to 14.5 g, "1.84 kg" 1,835 to 1,845 g
    decimals = len(shown.partition(".")[2])
    assert abs(grams - total / 1e9 * 18) <= 0.5 * 10 ** -decimals * scale, (shown, total)
    assert "at 18 gCO2e/GB" in plain and "(198 gCO2e/km)" in plain
    assert chart_title(chart_specs(at)["dev_carbon"]).startswith("Cybercarbon per device")


def test_cyberweather_day_select(rows_of) -> None:
    first = FIXED_DAY - timedelta(days=2)
    at = run_page(OVERVIEW, fixed_link(first, days=3))
    assert at.selectbox(key="cw_day").value == FIXED_DAY
    at.selectbox(key="cw_day").set_value(first).run()
    assert not at.exception
    spec = chart_specs(at)["cw_hours"]
    assert chart_title(spec) == f"Cyberweather by hour, {first.isoformat()}"
    rows = rows_of(*local_days(first))
    cyt = sum(1 if r["dir"] == "IN" else 10 for r in rows if r["toxic"])
    assert cyt > 0
    # (a level absent that day keeps its legend entry with one empty point)
    assert sum(v for trace in spec["data"] for v in numbers(trace.get("y"))
               if v is not None) == cyt


# ------------------------------------------------------------------ URL state
URL_FILTERS = {"dir": "OUT", "toxic": "true"}


def test_url_parameters_restore_the_filters() -> None:
    # On INCIDENT_DAY, which has toxic OUT flows (an ordinary day may have none).
    linked = new_app({**fixed_link(INCIDENT_DAY), **URL_FILTERS})
    linked.run()
    assert not linked.exception and not linked.error
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    assert linked.sidebar.toggle(key="toxic").value is True
    assert not linked.warning, said(linked.warning)

    clicked = new_app(fixed_link(INCIDENT_DAY))
    clicked.run()
    assert as_int(metrics(clicked)["Toxic IN"]) > 0  # the filters have something to remove
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.run()
    assert metrics(linked) == metrics(clicked)
    assert metrics(linked)["Toxic IN"] == "0"
    assert as_int(metrics(linked)["Flows"]) == as_int(metrics(linked)["Toxic OUT"]) > 0
    # the filters also hold on another page
    linked.switch_page(TOXIC).run()
    assert not linked.exception
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    flows = toxic_flow_table(linked)
    assert set(flows["dir"]) == {"OUT"}


def range_option(at: AppTest, word: str) -> tuple[int, str]:
    """(index, URL value) of a time-range option: Streamlit writes a bound selectbox's
    displayed option (its formatted label) into the URL."""
    options = at.sidebar.selectbox(key="range").options
    return next((i, o) for i, o in enumerate(options) if word in o)


def test_url_parameters_restore_range_and_filters() -> None:
    """A link as the app writes it (range label, dir, toxic) restores widgets and numbers."""
    def runs() -> tuple[AppTest, AppTest, int]:
        clicked = new_app()
        clicked.run()
        index, url_range = range_option(clicked, "7 days")
        clicked.sidebar.selectbox(key="range").select_index(index)
        clicked.sidebar.button_group(key="dir").set_value("OUT")
        clicked.sidebar.toggle(key="toxic").set_value(True)
        clicked.run()
        linked = new_app({**URL_FILTERS, "range": url_range})
        linked.run()
        return clicked, linked, index

    clicked, linked, index = in_one_hour(runs)
    assert not clicked.exception and not clicked.error
    assert not linked.exception and not linked.error
    assert linked.sidebar.selectbox(key="range").index == index
    assert linked.session_state["range"] == clicked.session_state["range"]
    assert not linked.warning, said(linked.warning)
    assert metrics(linked) == metrics(clicked)
    assert linked.caption[0].value == clicked.caption[0].value  # same range and filters


def test_url_device_by_ip(page_runs: dict[str, AppTest]) -> None:
    ip = page_runs[DEVICES].dataframe[0].value["ip0"].iloc[0]

    def runs() -> tuple[AppTest, AppTest]:
        linked = new_app({**URL_FILTERS, "device": ip})
        linked.run()
        clicked = new_app()
        clicked.run()
        clicked.sidebar.button_group(key="dir").set_value("OUT")
        clicked.sidebar.toggle(key="toxic").set_value(True)
        clicked.sidebar.multiselect(key="device").set_value([ip])
        clicked.run()
        return linked, clicked

    linked, clicked = in_one_hour(runs)
    assert not linked.exception
    assert linked.sidebar.multiselect(key="device").value == [ip]
    assert not linked.warning, said(linked.warning)
    assert metrics(linked) == metrics(clicked)


@pytest.mark.parametrize(("query", "message"), [
    ({"port": "99999"}, "Port “99999” must be a whole number from 0 to 65535."),
    ({"remote": "not-an-ip"}, "Remote IP “not-an-ip” is not a valid"),
    ({"mac": "zz:zz"}, "MAC address “zz:zz” must look like"),
])
def test_invalid_parameter_gives_inline_error_and_no_fetch(query: dict, message: str) -> None:
    at = new_app(query)
    at.run()
    assert not at.exception
    assert any(message in e for e in said(at.error)), said(at.error)
    assert any("nothing was fetched" in i for i in said(at.info))
    assert not at.metric
    assert not at.get("plotly_chart")
    assert not at.title  # the page itself does not render
    # the widget shows the bad value so it can be fixed
    key, value = next(iter(query.items()))
    assert at.sidebar.text_input(key=key).value == value


def test_unknown_parameter_gives_a_warning() -> None:
    at = new_app({"foo": "bar"})
    at.run()
    assert not at.exception and not at.error
    assert any("does not know" in w and "foo" in w for w in said(at.warning))
    assert metrics(at)  # the data is still shown


def test_invalid_range_falls_back_to_default_with_warning() -> None:
    def runs() -> tuple[AppTest, dict[str, str]]:
        at = new_app({"range": "mars"})
        at.run()
        return at, default_metrics()

    at, expected = in_one_hour(runs)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="range").index == 0
    assert any("fell back to defaults" in w and "range" in w for w in said(at.warning))
    assert metrics(at) == expected


def test_custom_range_with_start_after_end_is_an_error() -> None:
    at = new_app()
    at.run()
    index, _ = range_option(at, "Custom")
    before = datetime.now(PARIS).date()
    at.sidebar.selectbox(key="range").select_index(index).run()
    after = datetime.now(PARIS).date()
    assert not at.exception and not at.error
    # Custom starts as "yesterday 00:00 → today 00:00" in the sensor's time zone
    today = at.sidebar.date_input(key="to_day").value
    assert today in (before, after)
    assert at.sidebar.date_input(key="from_day").value == today - timedelta(days=1)
    assert at.sidebar.selectbox(key="from_hour").value == "00:00"
    assert at.sidebar.selectbox(key="to_hour").value == "00:00"
    assert metrics(at)
    at.sidebar.date_input(key="from_day").set_value(today)
    at.sidebar.date_input(key="to_day").set_value(today - timedelta(days=1))
    at.run()
    assert not at.exception
    assert any("start of the range must be before its end" in e for e in said(at.error))
    assert not at.metric and not at.get("plotly_chart")


def _expected_pin(days: int) -> dict[str, object]:
    """The Custom fields that hold the preset "last N days" (N × 24 h up to the end of
    the open hour), in the sensor's local time."""
    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    if end != now:
        end += timedelta(hours=1)
    a, b = (end - timedelta(days=days)).astimezone(PARIS), end.astimezone(PARIS)
    return {"range": "Custom", "from_day": a.date(), "from_hour": f"{a.hour:02d}:00",
            "to_day": b.date(), "to_hour": f"{b.hour:02d}:00"}


def test_pin_turns_a_relative_range_into_fixed_dates() -> None:
    def runs() -> tuple[AppTest, dict[str, str], list[dict]]:
        at = new_app({"range": "Last 7 days"})
        at.run()
        before = metrics(at)
        expected = [_expected_pin(7)]
        at.sidebar.button(key="pin_btn").click().run()
        expected.append(_expected_pin(7))  # the hour may turn between the two
        return at, before, expected

    at, before, expected = in_one_hour(runs)
    assert not at.exception
    got = {k: at.session_state[k] for k in expected[0]}
    assert got in expected
    # the date widgets show those dates, and the data is the same
    assert at.sidebar.selectbox(key="range").value == "Custom"
    assert at.sidebar.date_input(key="from_day").value == got["from_day"]
    assert at.sidebar.selectbox(key="from_hour").value == got["from_hour"]
    assert metrics(at) == before
    # The point of the button: the link now holds those fixed dates, not "Last 7 days".
    assert {k: param(at, k) for k in got} == {k: [str(v)] for k, v in got.items()}


# ------------------------------------------------------------------ refresh
def _first_hour(value: str) -> datetime:
    """The first whole hour a request's ``from`` covers (rows start on whole hours; the
    loader may send ``from`` a second before the hour)."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    hour = t.replace(minute=0, second=0, microsecond=0)
    return hour if hour == t else hour + timedelta(hours=1)


def _row_downloads(requests: list[dict[str, str]]) -> list[datetime]:
    """First hour of each flux request that downloads rows (the late-data recheck only
    counts: it asks for one row)."""
    return sorted(_first_hour(p["from"]) for p in requests if p.get("per_page") != "1")


def _range_start_24h() -> datetime:
    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    return (end + timedelta(hours=1) if end != now else end) - timedelta(hours=24)


def test_refresh_fetches_the_open_hour_again() -> None:
    in_one_hour(_refresh_fetches_the_open_hour_again)  # "a plain rerun" fetches a new hour


def _refresh_fetches_the_open_hour_again() -> None:
    sim = embedded_simulator(False)  # the demo API the app reads in this process
    started = datetime.now(UTC)
    at = new_app()
    at.run()
    mark = len(sim.requests)
    at.run()
    assert flux_requests(sim, mark) == [], "a plain rerun fetched flows again"
    at.sidebar.button(key="refresh_btn").click().run()
    assert not at.exception and not at.error
    downloads = _row_downloads(flux_requests(sim, mark))
    assert downloads, "Refresh made no flux request"
    # only the hours still open (not settled 15 min after their end) when the data was loaded
    open_from = (started - timedelta(minutes=15)).replace(minute=0, second=0, microsecond=0)
    assert downloads[0] >= open_from, (downloads, open_from)
    assert [t.value for t in at.title] == ["Overview"] and metrics(at)


def test_refresh_whole_range_fetches_every_hour_again() -> None:
    sim = embedded_simulator(False)
    starts = {_range_start_24h()}
    at = new_app()
    at.run()
    mark = len(sim.requests)
    at.sidebar.button(key="refresh_all_btn").click().run()
    starts.add(_range_start_24h())
    assert not at.exception and not at.error
    downloads = _row_downloads(flux_requests(sim, mark))
    assert downloads and downloads[0] in starts, (downloads[:3], starts)
    assert [t.value for t in at.title] == ["Overview"] and metrics(at)


@pytest.mark.parametrize("key", ["refresh_btn", "refresh_all_btn"])
def test_refresh_buttons_run_cleanly(key: str) -> None:
    at = new_app()
    at.run()
    before = metrics(at)
    at.sidebar.button(key=key).click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert [t.value for t in at.title] == ["Overview"]
    assert list(metrics(at)) == list(before) == OVERVIEW_METRICS


# ------------------------------------------------------------------ links that cannot apply
def default_metrics(query: dict[str, str] | None = None) -> dict[str, str]:
    """The overview's numbers on a plain link (or ``query``), now (the open hour grows
    with the clock)."""
    at = new_app(query)
    at.run()
    return metrics(at)


def test_unknown_sensor_in_a_link_warns_and_shows_the_first_sensor() -> None:
    at = new_app({"sensor": "999", **fixed_link()})
    at.run()
    assert not at.exception and not at.error
    assert any("999" in w for w in said(at.warning)), said(at.warning)
    assert at.session_state["sensor_id"] == MAIN
    assert metrics(at) == default_metrics(fixed_link())


def test_superscript_digit_sensor_in_a_link_warns_and_falls_back() -> None:
    at = new_app({"sensor": "²"})  # str.isdigit() says yes; int() says no
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert any("²" in w for w in said(at.warning)), said(at.warning)
    assert at.session_state["sensor_id"] == MAIN
    assert metrics(at)


def test_range_over_the_maximum_is_an_error_and_fetches_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_MAX_RANGE_DAYS", "5")
    sim = embedded_simulator(False)
    mark = len(sim.requests)
    at = new_app({"range": "Last 7 days"})
    at.run()
    assert not at.exception
    assert any("The range is 7 days long; the maximum is 5 days" in e
               for e in said(at.error)), said(at.error)
    assert any("nothing was fetched" in i for i in said(at.info))
    assert not at.metric and not at.title
    assert flux_requests(sim, mark) == []


def test_custom_range_over_92_days_is_an_error() -> None:
    first = datetime.now(PARIS).date() - timedelta(days=100)
    sim = embedded_simulator(False)
    mark = len(sim.requests)
    at = new_app(fixed_link(first, days=95))
    at.run()
    assert not at.exception
    assert any("the maximum is 92 days" in e for e in said(at.error)), said(at.error)
    assert not at.metric
    assert flux_requests(sim, mark) == []


def test_a_range_larger_than_the_memory_budget_says_what_to_narrow_and_loads_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: a window the server could not keep in memory is refused up front,
    judged from the disk cache's metadata, with the number of days that would fit."""
    from flux_dashboard.schema import COMPACT_ROW_BYTES

    monkeypatch.setenv("FLUX_MEMORY_MB", "64")  # 25.6 MB for one range: ~200k flows
    sim = embedded_simulator(False)
    week = new_app({"range": "Last 7 days"})
    week.run()  # fills the cache: a week of the demo sensor fits
    assert not week.exception and not week.error, said(week.error)
    assert week.metric
    first = datetime.now(PARIS).date() - timedelta(days=61)
    mark = len(sim.requests)
    at = new_app(fixed_link(first, days=60))
    at.run()
    assert not at.exception
    refusal = [e for e in said(at.error) if "more than this server keeps" in e]
    assert refusal, said(at.error)
    got = re.search(r"about ([\d.]+) million flows, about ([\d,]+) MB.*choose at most "
                    r"(\d+) days", refusal[0])
    assert got, refusal[0]
    rows = float(got.group(1)) * 1e6
    assert rows * COMPACT_ROW_BYTES > 64 * 0.4 * 2**20  # really over the budget
    assert 10 <= int(got.group(3)) < 60
    assert not at.metric and flux_requests(sim, mark) == []
    # The days it names do fit: the last of them are loaded and shown.
    fit = int(got.group(3))
    ok = new_app(fixed_link(first + timedelta(days=60 - fit), days=fit))
    ok.run()
    assert not ok.exception and not [e for e in said(ok.error) if "server keeps" in e]
    assert ok.metric


def test_unknown_device_in_a_link_warns_and_is_ignored() -> None:
    at = new_app({"device": "10.99.99.99", **fixed_link()})
    at.run()
    assert not at.exception and not at.error
    assert any("10.99.99.99" in w and "ignored" in w for w in said(at.warning)), [
        w for w in said(at.warning)]
    assert at.sidebar.multiselect(key="device").value == []
    assert metrics(at) == default_metrics(fixed_link())


# ------------------------------------------------------------------ API errors (over HTTP)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Point the app at an API URL: a simulator served over real HTTP by this process
    (or, with None, a port where nothing listens). Retries wait 0 s, no client-side
    rate limit, a private cache."""
    from flux_dashboard import client

    monkeypatch.setattr(client, "backoff_delay", lambda *a, **k: 0.0)
    servers = []

    def use(sim: Simulator | None, *, key: str | None = None) -> str:
        if sim is None:
            url = f"http://127.0.0.1:{_free_port()}/api/v1"
        else:
            servers.append(sim.serve(port=0))
            url = servers[-1].url
        monkeypatch.setenv("SERENICITY_API_URL", url)
        if key is not None:
            monkeypatch.setenv("SERENICITY_API_KEY", key)
        monkeypatch.setenv("FLUX_RATE_LIMIT", "60000")
        # A real key and no sign-in: the app refuses unless anonymous access is explicit.
        monkeypatch.setenv("FLUX_ALLOW_ANONYMOUS", "1")
        monkeypatch.setenv("FLUX_CACHE_DIR", str(tmp_path / "cache"))
        return url

    yield use
    for server in servers:
        server.shutdown()


def _nothing_rendered(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.metric and not at.title and not at.get("plotly_chart") and not at.dataframe


def test_api_mode_renders_from_the_simulator_over_http(api_mode) -> None:
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None))
    url = api_mode(sim)
    at = run_page(OVERVIEW, fixed_link())
    assert not at.error
    # only the banner that says anonymous access is on
    assert all("anonymous" in w.lower() for w in said(at.warning)), said(at.warning)
    assert any(url.split("/")[2] in md for md in said(at.sidebar.markdown))
    assert as_int(metrics(at)["Flows"]) == sim.count_rows(MAIN, *local_days(FIXED_DAY))
    assert flux_requests(sim)


def test_api_bad_key_is_shown_and_nothing_is_fetched(api_mode) -> None:
    sim = Simulator(SimulatorConfig(api_key="the-right-key", rate_limit_per_min=None))
    api_mode(sim, key="a-wrong-key-4242")
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("refused the API key (HTTP 401)" in e for e in said(at.error)), [
        e for e in said(at.error)]
    assert sim.requests and flux_requests(sim) == []
    assert not [t for _, t in texts(at) if "a-wrong-key-4242" in t]


def test_api_forbidden_sensor_is_shown_without_retry(api_mode) -> None:
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, forbidden_sensors=()))
    listed = sim.sensors()
    # The key still lists sensor 54 but may no longer read its flows.
    sim.config.forbidden_sensors = (MAIN,)
    sim.sensors = lambda: listed
    api_mode(sim)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("may not read flows of sensor 54 (HTTP 403)" in e for e in said(at.error)), [
        e for e in said(at.error)]
    assert len(flux_requests(sim)) == 1  # a 403 is final: no retry

    # the other sensor still works
    at.sidebar.selectbox(key="sensor_id").set_value(SMALL).run()
    assert not at.exception and not at.error
    assert metrics(at)


def test_api_unreachable_is_shown(api_mode) -> None:
    url = api_mode(None)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    host = url.split("/")[2]
    assert any(f"Could not reach the Serenicity API at {host}" in e
               for e in said(at.error)), said(at.error)


def test_api_server_errors_are_shown_after_bounded_retries(api_mode) -> None:
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, fault_rate=1.0,
                                    fault_kinds=("503",)))
    api_mode(sim)
    at = new_app()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = said([*at.error, *at.warning])
    assert any("server error (HTTP 503)" in s for s in shown), shown
    # the cost estimate's count (one try and two retries, then a conservative guess),
    # then one request for the range, retried MAX_RETRIES times, then given up
    assert len(flux_requests(sim)) == 3 + MAX_RETRIES + 1
    # no numbers that look like a real, empty day
    assert not at.metric


@pytest.mark.parametrize("quota", [0, 1])
def test_api_quota_exhausted_is_shown(api_mode, quota: int) -> None:
    # quota 0: even the sensor list is refused; quota 1: the sensor list passes, flows don't.
    sim = Simulator(SimulatorConfig(rate_limit_per_min=None, monthly_quota=quota))
    api_mode(sim)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("monthly request quota" in e for e in said(at.error)), said(at.error)
    assert len(flux_requests(sim)) == quota  # a quota is final: no retry


class _OldFluxFails(Simulator):
    """Answers every flux request for data older than ``cutoff`` with ``status``."""

    def __init__(self, cutoff: datetime, status: int) -> None:
        super().__init__(SimulatorConfig(rate_limit_per_min=None))
        self.cutoff, self.status = cutoff, status

    def handle(self, method, path, params, headers):
        start = params.get("from")
        if path.rstrip("/").endswith("/flux") and start and datetime.fromisoformat(
                start.replace("Z", "+00:00")) < self.cutoff:
            self.requests.append((path, dict(params)))
            extra = {"retry-after": "864000"} if self.status == 429 else {}
            body = json.dumps({"message": "Unavailable"}).encode()
            return self.status, {"content-type": "application/json", **extra}, body
        return super().handle(method, path, params, headers)


@pytest.mark.parametrize("status", [503, 429])
def test_digest_says_so_when_its_comparison_cannot_be_loaded(api_mode, status: int) -> None:
    """The week-before lookback fails (server errors / quota): a visible warning, never a
    silent gap, and no digest that pretends the comparison day was empty."""
    sim = _OldFluxFails(datetime.now(UTC) - timedelta(days=3), status)
    api_mode(sim)
    at = new_app()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert metrics(at)  # the range itself loaded
    assert any("week before" in w.lower() for w in said(at.warning)), [
        w for w in said(at.warning)]
    assert not [c.value for c in at.caption if "comparison day has no flows" in c.value]
    assert _digest_bullets(at) == []


# ------------------------------------------------------------------ masking
@pytest.fixture(scope="module")
def originals(truth: Simulator) -> dict[str, set[str]]:
    """Every identifier the masked runs could show, from the simulator's own rows: the
    last 10 days of the demo sensor (range, digest day and week before, hunting
    baseline) and the sensor objects."""
    now = datetime.now(UTC)
    rows = truth.rows(MAIN, now - timedelta(days=10), now + timedelta(hours=1))
    ips, macs, names, vendors = set(), set(), set(), set()
    for r in rows:
        ips.update((r["ip0"], r["ip1"]))
        macs.update(m.lower() for m in r["mac_address_list"])
        names.update(n for n in (*r["netbios_list"], r["last_netbios"]) if n)
        if r["custom_ip0"] and r["custom_ip0"].get("name"):
            names.add(r["custom_ip0"]["name"])
        if r.get("vendor"):
            vendors.add(r["vendor"])
    for s in truth.sensors():
        ips.update(s[k] for k in ("public_ip", "local_ip") if s.get(k))
        macs.add(s["mac_address"].lower())
        names.update(s[k] for k in ("name", "full_name") if s.get(k))
    # Short names ("TV", "IPBX") would match ordinary words; HTML_NAME is checked escaped.
    names = {n for n in names if len(n) >= 5} | set(KNOWN_NAMES) | set(SENSOR_NAMES)
    assert len(ips) > 100 and len(macs) > 20 and len(vendors) > 5
    return {"ips": ips, "macs": macs, "names": names, "vendors": vendors}


def _plain(text: str) -> str:
    """Markdown/HTML-escaped text as a reader sees it."""
    return html.unescape(re.sub(r"\\(.)", r"\1", text))


def leaks(text: str, originals: dict[str, set[str]]) -> list[str]:
    plain = _plain(text)
    found = [ip for ip in IPV4.findall(plain) if ip in originals["ips"]]
    found += [m for m in MAC.findall(plain) if m.lower().replace("-", ":") in originals["macs"]]
    found += [n for n in (*originals["names"], *originals["vendors"]) if n in plain]
    return found


def masked_texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """What a masked page shows, and what its download buttons save."""
    yield from texts(at)
    for button in at.get("download_button"):
        name, content = download(button)
        for member, text in readable(name, content):
            yield f"download {button.key}: {member}", text


@pytest.mark.parametrize("page", PAGES)
def test_masking_hides_every_identifier(page_runs: dict[str, AppTest],
                                        masked_runs: dict[str, AppTest],
                                        originals: dict[str, set[str]], page: str) -> None:
    at = masked_runs[page]
    assert not at.exception, [e.message for e in at.exception]
    assert unexpected_errors(at, page) == []
    assert at.sidebar.toggle(key="mask").value is True
    assert [t.value for t in at.title] == [TITLES[page]]
    found, downloads = [], set()
    for where, text in masked_texts(at):
        found += [(where, leak) for leak in leaks(text, originals)]
        found += [(where, m.group(0)) for m in ORIGINAL_IP.finditer(_plain(text))]
        if where.startswith("download"):
            downloads.add(where.split(":")[0])
    assert found == []
    assert len(downloads) == len(at.get("download_button"))
    # the page still shows the same amount of data as unmasked
    assert len(at.dataframe) == len(page_runs[page].dataframe)
    assert [m.value for m in at.metric if m.label in ("Flows", "Devices")] == [
        m.value for m in page_runs[page].metric if m.label in ("Flows", "Devices")]


def test_the_leak_scanner_finds_each_kind_of_identifier(page_runs: dict[str, AppTest],
                                                        originals: dict[str, set[str]]) -> None:
    """The scanner itself: on the unmasked pages it finds each kind, separately in the
    page's tables, in its other elements (captions, selects, charts) and in what its
    downloads save, so that a scanner skipping any of the three fails here."""
    seen = {where: {"ips": set(), "macs": set(), "names": set(), "vendors": set()}
            for where in ("tables", "page", "downloads")}
    for page in (DEVICES, TOXIC):
        for source, text in masked_texts(page_runs[page]):
            kinds = seen["downloads" if source.startswith("download ") else
                         "tables" if source == "Dataframe" else "page"]
            for leak in leaks(text, originals):
                for kind, values in originals.items():
                    if leak in values or leak.lower() in values:
                        kinds[kind].add(leak)
    for where, kinds in seen.items():
        assert all(kinds.values()), (where, {k: len(v) for k, v in kinds.items()})
        assert any(not re.match(r"(10|192\.168)\.", ip) for ip in kinds["ips"]), where  # public


def test_masked_link_first_run_hides_sensor_names() -> None:
    at = new_app({"mask": "true"})
    at.run()
    assert at.sidebar.toggle(key="mask").value is True
    # masked, the picker has its own widget key (sidebar.py: so the browser redraws it)
    assert "sensor_id" not in [s.key for s in at.sidebar.selectbox]
    options = " ".join(at.sidebar.selectbox(key="sensor_id_masked").options)
    assert not [s for s in SENSOR_NAMES if s in options], options


def test_masking_off_again_brings_the_real_identifiers_back(
        page_runs: dict[str, AppTest]) -> None:
    at = run_page(DEVICES, {"mask": "true"})
    masked = table_with(at, {"device_name", "ip0", "mac_address", "vendor"})
    assert not set(masked["ip0"]) & set(page_runs[DEVICES].dataframe[0].value["ip0"])

    at.sidebar.toggle(key="mask").set_value(False).run()
    assert not at.exception and not at.error
    shown = table_with(at, {"device_name", "ip0", "mac_address", "vendor"})
    real = page_runs[DEVICES].dataframe[0].value
    columns = ["ip0", "device_name", "mac_address", "vendor"]
    assert {tuple(r) for r in shown[columns].itertuples(index=False)} == {
        tuple(r) for r in real[columns].itertuples(index=False)}
    text = "\n".join(t for _, t in texts(at))
    for name in (*KNOWN_NAMES, *SENSOR_NAMES):
        assert name in _plain(text), name
    assert "masked" not in at.caption[0].value


def test_masked_aliases_are_consistent_across_pages(masked_runs: dict[str, AppTest]) -> None:
    devices = masked_runs[DEVICES].dataframe[0].value
    alias = dict(zip(devices["ip0"], devices["device_name"], strict=True))
    assert len(alias) == len(devices)
    # sidebar options use the same aliases
    for opt in device_options(masked_runs[DEVICES]):
        name, _, ip = opt.rpartition(" · ")
        assert ip in alias
        if name:
            assert alias[ip] == name
    # toxic page: devices that initiated toxic OUT flows, and the flow table
    checked = 0
    for df in (d.value for d in masked_runs[TOXIC].dataframe):
        if {"ip0", "device_name"} <= set(df.columns):
            for ip, name in zip(df["ip0"], df["device_name"], strict=True):
                assert alias.get(ip) == name, (ip, name, alias.get(ip))
                checked += 1
    assert checked > 0
    # hunting page tables too
    checked = 0
    for df in (d.value for d in masked_runs[HUNTING].dataframe):
        if {"ip0", "device_name"} <= set(df.columns):
            for ip, name in zip(df["ip0"], df["device_name"], strict=True):
                assert alias.get(ip) == name
                checked += 1
    assert checked > 0


# ------------------------------------------------------------------ safety
def _assert_markdown_safe(at: AppTest) -> None:
    for body in markdown_bodies(at):
        assert "<img" not in body, body
        assert "<b>" not in body, body
        assert "](javascript:" not in body, body


@pytest.mark.parametrize("page", PAGES)
def test_html_device_name_never_rendered_raw(page_runs: dict[str, AppTest], page: str) -> None:
    _assert_markdown_safe(page_runs[page])


def test_html_device_name_escaped_when_shown(page_runs: dict[str, AppTest]) -> None:
    """Filter on the devices named with HTML/markdown and drill into them: escaped."""
    ips = {}
    for opt in device_options(page_runs[OVERVIEW]):
        name, _, ip = opt.rpartition(" · ")
        if name in (HTML_NAME, MARKDOWN_NAME):
            ips[name] = ip
    assert HTML_NAME in ips, "the simulator's HTML-named device is not in the data"
    at = new_app()
    at.run()
    at.sidebar.multiselect(key="device").set_value(sorted(ips.values())).run()
    seen = False
    for page in PAGES:
        if page != OVERVIEW:
            at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        _assert_markdown_safe(at)
        # the name is in the header caption, escaped
        seen |= any("&lt;img" in b or "\\<img" in b for b in markdown_bodies(at))
    at.switch_page(DEVICES).run()
    at.selectbox(key="drill").set_value(ips[HTML_NAME]).run()
    assert not at.exception
    _assert_markdown_safe(at)
    heading = [b for b in markdown_bodies(at) if b.startswith("#### ")]
    assert heading and "&lt;img" in heading[0], heading
    assert seen


PHISH = "[Session expired, sign in](https://evil.example) ![](https://evil.example/p.gif)"
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"(?<!\\)\]\(\s*<?https?://evil", re.I)
_IMAGE = re.compile(r"(?<!\\)!\[")


def markdown_links_to_evil(at: AppTest) -> list[str]:
    """Markdown bodies that would render a link or an image (to evil.example): an
    unescaped ``](https://evil`` or ``![`` outside code spans."""
    bad = []
    for body in markdown_bodies(at):
        outside_code = _CODE_SPAN.sub("", body)
        if _LINK.search(outside_code) or _IMAGE.search(outside_code):
            bad.append(body)
    return bad


@pytest.mark.parametrize("query", [
    {"remote": PHISH}, {"sensor": PHISH}, {"protocol": PHISH}, {"port": PHISH},
    {"mac": PHISH}, {"device": PHISH}, {"threat": PHISH}, {PHISH: "1"},
], ids=["remote", "sensor", "protocol", "port", "mac", "device", "threat", "unknown-name"])
def test_link_values_never_render_as_links_or_images(query: dict[str, str]) -> None:
    at = new_app(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    # the value is reported (an error or a warning), as text
    shown = said([*at.error, *at.warning])
    assert any("evil" in s.lower() for s in shown), shown
    assert markdown_links_to_evil(at) == []


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_digest_of_a_dst_day_covers_its_23_or_25_local_hours(rows_of, day: date) -> None:
    """The Overview's "What changed" on Paris's DST days: the day's own local hours
    (23 in March, 25 in October) against the same local day a week before, never 24 h
    in UTC (the digest of the hand-cut windows; a window off by an hour differs)."""
    at = run_page(OVERVIEW, fixed_link(day))
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="digest_day").value == day
    start, end = local_days(day)
    hours = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600
    assert hours == (23 if day.month == 3 else 25)  # (same-zone subtraction is wall time)
    expected = _expected_digest(rows_of, day)
    assert expected and _digest_bullets(at) == expected
