"""Streamlit AppTest suite: every page in demo mode, filters, URL state, masking, safety.

Hermetic: no API key or URL (the embedded deterministic simulator serves the
data), a temporary ``FLUX_CACHE_DIR`` and a fixed ``FLUX_MASK_SECRET``. The
simulator follows the real clock (the last 24 h move every hour), so the tests
assert on structure and relations between numbers, never on absolute values.

Runs are shared where possible: one module-scoped AppTest per page (plain and
masked); tests that change widgets build their own AppTest (warm caches make
those runs take well under a second).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator import HTML_NAME, MARKDOWN_NAME

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
                    "Toxic OUT", "Cyberweather"]
DEVICE_METRICS = ["Flows", "Bytes in", "Bytes out", "Remote hosts", "Toxic IN", "Toxic OUT"]
HUNTING_METRICS = ["New device → remote pairs", "Of which toxic", "Devices concerned"]
METRICS = {OVERVIEW: OVERVIEW_METRICS, DEVICES: DEVICE_METRICS, HUNTING: HUNTING_METRICS}
# Minimum number of plotly charts and of tables (st.dataframe) per page.
MIN_CHARTS = {OVERVIEW: 7, DEVICES: 7, PROTOCOLS: 4, TOXIC: 2, REMOTES: 2, HUNTING: 0}
MIN_TABLES = {OVERVIEW: 0, DEVICES: 1, PROTOCOLS: 1, TOXIC: 1, REMOTES: 1, HUNTING: 4}
# st.error is also used for findings in the data (not failures): allowed, by pattern.
FINDING_ERRORS = {
    TOXIC: re.compile(r"^\d+ device\(s\) on the LAN reached out to toxic hosts"),
    HUNTING: re.compile(r"^\d+ device/remote pair\(s\) show very regular OUT contacts"),
}

KNOWN_NAMES = ("PC-Compta", "NAS-Synology", "SRV-AD01")
ORIGINAL_IP = re.compile(r"(?<![\d.])(?:192\.168\.1|10\.0\.0|10\.0\.1)\.\d{1,3}(?![\d])")
SENSOR_NAMES = ("Cabinet Martin", "Pharmacie du Port")


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module", autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Demo mode, a private cache, a fixed masking secret (module-wide).

    Module scope because the app keeps process-wide caches (``st.cache_resource``
    service keyed by source id): one cache dir for the whole module.
    """
    cache = tmp_path_factory.mktemp("flux-cache")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("SERENICITY_API_KEY", "SERENICITY_API_URL", "FLUX_RATE_LIMIT",
                     "FLUX_PER_PAGE", "FLUX_MAX_CONCURRENCY", "FLUX_MAX_RANGE_DAYS",
                     "FLUX_DEMO_DENSE"):
            mp.delenv(name, raising=False)
        mp.setenv("FLUX_CACHE_DIR", str(cache))
        mp.setenv("FLUX_MASK_SECRET", "apptest-fixed-mask-secret")
        yield cache


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
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def as_int(value: str) -> int:
    return int(value.replace(",", "").replace("\u202f", ""))


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")
            if getattr(el.proto, "spec", "")]


def chart_title(spec: dict) -> str:
    title = spec.get("layout", {}).get("title")
    if isinstance(title, dict):
        return title.get("text") or ""
    return title or ""


def unexpected_errors(at: AppTest, page: str) -> list[str]:
    allowed = FINDING_ERRORS.get(page)
    return [e.value for e in at.error if not (allowed and allowed.search(e.value))]


def texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """(element type, text) for everything the page shows, sidebar included.

    Markdown-like bodies, alerts, metrics, dataframe values, plotly specs,
    widget labels/options/values, tab and expander labels. Placeholders of
    text inputs are not data and are skipped.
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
        elif kind in ("TextInput", "TextArea"):
            yield kind, f"{node.label}\n{node.value}"
        elif kind in ("Tab", "Expander"):
            yield kind, node.label
        elif hasattr(node, "proto") and hasattr(node, "value"):
            try:
                value = node.value
            except Exception:  # some widgets have no value outside a session
                value = None
            if isinstance(value, str):
                yield kind, value
            label = getattr(node, "label", None)
            if isinstance(label, str):
                yield kind, label


def markdown_bodies(at: AppTest) -> list[str]:
    """Bodies sent to st.markdown (captions, titles and alerts are markdown too)."""
    kinds = ("Markdown", "Caption", "Title", "Header", "Subheader", "Error", "Warning",
             "Info", "Success")
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


# ------------------------------------------------------------------ shared runs
@pytest.fixture(scope="module")
def page_runs(hermetic_env: Path) -> dict[str, AppTest]:
    """One demo-mode AppTest per page (the first run generates and caches the data)."""
    return {page: run_page(page) for page in PAGES}


@pytest.fixture(scope="module")
def masked_runs(hermetic_env: Path, page_runs: dict[str, AppTest]) -> dict[str, AppTest]:
    """Every page opened from a ?mask=true link (first run: nothing may leak even then)."""
    runs = {}
    for page in PAGES:
        at = new_app({"mask": "true"})
        at.run()
        if page != OVERVIEW:
            at.switch_page(page).run()
        runs[page] = at
    return runs


# ------------------------------------------------------------------ every page renders
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_demo_mode(page_runs: dict[str, AppTest], page: str) -> None:
    at = page_runs[page]
    assert not at.exception, [e.message for e in at.exception]
    assert unexpected_errors(at, page) == []
    assert [t.value for t in at.title] == [TITLES[page]]
    # demo mode says so in the sidebar
    assert any("simulated" in c.value for c in at.sidebar.caption)
    got = [m.label for m in at.metric]
    for label in METRICS.get(page, []):
        assert label in got, (label, got)
    if page not in METRICS:
        assert got == []
    for m in at.metric:
        assert isinstance(m.value, str) and m.value != ""
    assert len(at.dataframe) >= MIN_TABLES[page]
    for df in at.dataframe:
        assert len(df.value.columns) > 0


@pytest.mark.parametrize("page", PAGES)
def test_page_charts_have_titles(page_runs: dict[str, AppTest], page: str) -> None:
    at = page_runs[page]
    charts = at.get("plotly_chart")
    assert all(type(c).__name__ == "UnknownElement" for c in charts)
    specs = plotly_specs(at)
    assert len(specs) == len(charts)
    assert len(specs) >= MIN_CHARTS[page]
    for spec in specs:
        assert spec.get("data"), spec.get("layout", {}).get("title")
        assert chart_title(spec).strip(), "chart without a title"


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
    cw = next(x for x in at.metric if x.label == "Cyberweather")
    assert cw.delta.startswith("cyT ")
    # cyT = 1 x toxic IN + 10 x toxic OUT
    assert as_int(cw.delta.removeprefix("cyT ")) == (
        as_int(m["Toxic IN"]) + 10 * as_int(m["Toxic OUT"]))
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


def test_toxic_page_table_and_downloads(page_runs: dict[str, AppTest]) -> None:
    at = page_runs[TOXIC]
    tables = [d.value for d in at.dataframe]
    flow_table = next(t for t in tables if {"time", "ip1", "dir", "threats"} <= set(t.columns))
    assert len(flow_table) > 0
    toxic_total = as_int(metrics(page_runs[OVERVIEW])["Toxic IN"]) + as_int(
        metrics(page_runs[OVERVIEW])["Toxic OUT"])
    assert len(flow_table) == toxic_total
    assert any(f"{len(flow_table):,} of {len(flow_table):,} toxic flows" in c.value
               for c in at.caption)
    keys = {b.key for b in at.get("download_button")}
    assert {"toxic_dl_csv", "toxic_dl_pq"} <= keys
    labels = " ".join(b.label for b in at.get("download_button"))
    assert "CSV" in labels and "Parquet" in labels
    assert at.text_input(key="toxic_search").value == ""


def test_hunting_page_tabs_and_baseline(page_runs: dict[str, AppTest]) -> None:
    at = page_runs[HUNTING]
    labels = [t.label for t in at.tabs]
    assert len(labels) == 4
    for word in ("Threat storylines", "First-seen remotes", "Upload anomalies",
                 "Non-working hours"):
        assert any(word in label for label in labels), (word, labels)
    # it says which baseline it loaded, and from where
    captions = [c.value for c in at.caption]
    assert any(c.startswith(":material/history: Baseline (7 days before the range): flows of")
               and ("from the cache" in c or "fetching" in c) for c in captions), captions
    assert at.button_group(key="baseline_days").value == 7
    tabs = list(at.tabs)
    stories = [d.value for d in tabs[0].dataframe]
    assert stories and {"ip0", "ip1", "first_contact", "last_contact"} <= set(stories[0].columns)
    assert any(b.key == "stories_dl_csv" for b in tabs[0].get("download_button"))
    # first-seen: three metrics and a table
    assert [m.label for m in tabs[1].metric] == HUNTING_METRICS
    assert tabs[1].dataframe
    first_seen = tabs[1].dataframe[0].value
    assert as_int(tabs[1].metric[0].value) == len(first_seen)
    assert as_int(tabs[1].metric[1].value) <= len(first_seen)
    # anomalies: the sensitivity slider, then a table or an all-clear
    assert tabs[2].slider(key="anomaly_k").value == 3.0
    assert tabs[2].dataframe or tabs[2].success
    # off-hours (the demo sensor has non-working hours)
    assert any(c.value.startswith("Non-working hours:") for c in tabs[3].caption)
    assert tabs[3].dataframe
    assert any("Toxic flows, off-hours first" in md.value for md in tabs[3].markdown)


# ------------------------------------------------------------------ filters change the numbers
def test_toxic_toggle_then_direction_out_change_the_numbers(
        page_runs: dict[str, AppTest]) -> None:
    at = new_app()
    at.run()
    before = metrics(at)
    assert before == metrics(page_runs[OVERVIEW])

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


# ------------------------------------------------------------------ URL state
URL_FILTERS = {"dir": "OUT", "toxic": "true"}


def test_url_parameters_restore_the_filters() -> None:
    linked = new_app(URL_FILTERS)
    linked.run()
    assert not linked.exception and not linked.error
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    assert linked.sidebar.toggle(key="toxic").value is True
    assert not linked.warning, [w.value for w in linked.warning]

    clicked = new_app()
    clicked.run()
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.run()
    assert metrics(linked) == metrics(clicked)
    assert metrics(linked)["Toxic IN"] == "0"
    # the filters also hold on another page
    linked.switch_page(TOXIC).run()
    assert not linked.exception
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    flows = next(d.value for d in linked.dataframe if "threats" in d.value.columns
                 and "time" in d.value.columns)
    assert set(flows["dir"]) == {"OUT"}


def range_option(at: AppTest, word: str) -> tuple[int, str]:
    """(index, URL value) of a time-range option: Streamlit writes a bound selectbox's
    displayed option (its formatted label) into the URL."""
    options = at.sidebar.selectbox(key="range").options
    return next((i, o) for i, o in enumerate(options) if word in o)


def test_url_parameters_restore_range_and_filters() -> None:
    """A link as the app writes it (range label, dir, toxic) restores widgets and numbers."""
    clicked = new_app()
    clicked.run()
    index, url_range = range_option(clicked, "7 days")
    clicked.sidebar.selectbox(key="range").select_index(index)
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.run()
    assert not clicked.exception and not clicked.error

    linked = new_app({**URL_FILTERS, "range": url_range})
    linked.run()
    assert not linked.exception and not linked.error
    assert linked.sidebar.selectbox(key="range").index == index
    assert linked.session_state["range"] == clicked.session_state["range"]
    assert not linked.warning, [w.value for w in linked.warning]
    assert metrics(linked) == metrics(clicked)
    assert linked.caption[0].value == clicked.caption[0].value  # same range and filters


def test_url_device_by_ip(page_runs: dict[str, AppTest]) -> None:
    ip = page_runs[DEVICES].dataframe[0].value["ip0"].iloc[0]
    linked = new_app({**URL_FILTERS, "device": ip})
    linked.run()
    assert not linked.exception
    assert linked.sidebar.multiselect(key="device").value == [ip]
    assert not linked.warning, [w.value for w in linked.warning]

    clicked = new_app()
    clicked.run()
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.sidebar.multiselect(key="device").set_value([ip])
    clicked.run()
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
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert any("nothing was fetched" in i.value for i in at.info)
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
    assert any("does not know" in w.value and "foo" in w.value for w in at.warning)
    assert metrics(at)  # the data is still shown


def test_invalid_range_falls_back_to_default_with_warning(
        page_runs: dict[str, AppTest]) -> None:
    at = new_app({"range": "mars"})
    at.run()
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="range").index == 0
    assert any("fell back to defaults" in w.value and "range" in w.value for w in at.warning)
    assert metrics(at) == metrics(page_runs[OVERVIEW])


def test_custom_range_with_start_after_end_is_an_error() -> None:
    at = new_app()
    at.run()
    index, _ = range_option(at, "Custom")
    at.sidebar.selectbox(key="range").select_index(index).run()
    assert not at.exception and not at.error
    assert at.sidebar.date_input(key="from_day") is not None
    assert metrics(at)
    today = at.sidebar.date_input(key="to_day").value
    assert isinstance(today, date)
    at.sidebar.date_input(key="from_day").set_value(today)
    at.sidebar.date_input(key="to_day").set_value(today - timedelta(days=1))
    at.run()
    assert not at.exception
    assert any("start of the range must be before its end" in e.value for e in at.error)
    assert not at.metric and not at.get("plotly_chart")


# ------------------------------------------------------------------ masking
@pytest.mark.parametrize("page", PAGES)
def test_masking_hides_device_ips_and_names(page_runs: dict[str, AppTest],
                                            masked_runs: dict[str, AppTest],
                                            page: str) -> None:
    at = masked_runs[page]
    assert not at.exception, [e.message for e in at.exception]
    assert unexpected_errors(at, page) == []
    assert at.sidebar.toggle(key="mask").value is True
    assert [t.value for t in at.title] == [TITLES[page]]
    _, names = original_devices(page_runs[OVERVIEW])
    names = {n for n in names if len(n) >= 4} | set(KNOWN_NAMES)
    leaks = []
    for kind, text in texts(at):
        for m in ORIGINAL_IP.finditer(text):
            leaks.append((kind, m.group(0)))
        leaks += [(kind, n) for n in names if n in text]
        leaks += [(kind, s) for s in SENSOR_NAMES if s in text]
    assert leaks == []
    # the page still shows the same amount of data as unmasked
    assert len(at.dataframe) == len(page_runs[page].dataframe)
    assert [m.value for m in at.metric if m.label in ("Flows", "Devices")] == [
        m.value for m in page_runs[page].metric if m.label in ("Flows", "Devices")]


def test_masked_link_first_run_hides_sensor_names() -> None:
    at = new_app({"mask": "true"})
    at.run()
    assert at.sidebar.toggle(key="mask").value is True
    options = " ".join(at.sidebar.selectbox(key="sensor_id").options)
    assert not [s for s in SENSOR_NAMES if s in options], options


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
    for df in (d.value for d in masked_runs[HUNTING].dataframe):
        if {"ip0", "device_name"} <= set(df.columns):
            for ip, name in zip(df["ip0"], df["device_name"], strict=True):
                assert alias.get(ip) == name


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


def test_pin_turns_a_relative_range_into_fixed_dates() -> None:
    at = new_app({"range": "Last 7 days"})
    at.run()
    before = metrics(at)
    at.sidebar.button(key="pin_btn").click().run()
    assert not at.exception
    assert at.session_state["range"] == "Custom"
    start, end = at.session_state["from_day"], at.session_state["to_day"]
    assert (end - start).days in (7, 8)  # local dates of a 7-day window
    assert metrics(at) == before  # the same data, now with fixed dates
