"""Every page renders in demo mode: its title, metrics, charts with titles, tables,
downloads and tabs (AppTest, one shared run per page; see tests/conftest.py)."""

from __future__ import annotations

import io
import re

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from tests.kit.apptest import (
    DEVICES,
    HUNTING,
    OVERVIEW,
    PAGES,
    TOXIC,
    as_int,
    chart_specs,
    chart_title,
    download,
    metrics,
    said,
    table_with,
)
from tests.kit.clock import local_days
from tests.kit.demo import (
    CHART_KEYS,
    HUNTING_METRICS,
    INCIDENT_DAY,
    LEVELS,
    METRICS,
    OVERVIEW_METRICS,
    TABLES,
    TITLES,
    count,
    hand_level,
    original_devices,
    toxic_flow_table,
    unexpected_errors,
)

pytestmark = pytest.mark.usefixtures("app_env")


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
    titles = [chart_title(s) for s in chart_specs(at).values()]
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

