"""Pages opened on a closed day (FIXED_DAY) show the simulator's own numbers: the
Overview's counts, the toxic page's flows and devices, the hunting tabs (first-seen
pairs, upload anomalies, the sensitivity slider, the baseline switch), each checked
against a hand count or an analysis function on the ground truth's rows."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard import hunting as Hn
from tests.kit.apptest import (
    HUNTING,
    OVERVIEW,
    TOXIC,
    as_int,
    metrics,
    plain,
    run_page,
    said,
    table_with,
)
from tests.kit.clock import days_link, local_days
from tests.kit.demo import (
    FIXED_DAY,
    count,
    frame_of,
    toxic_flow_table,
    unexpected_errors,
)

pytestmark = pytest.mark.usefixtures("app_env")


# ------------------------------------------------------------------ numbers vs ground truth
def test_fixed_day_link_shows_the_simulator_numbers(fixed_runs: dict[str, AppTest],
                                                    day_rows: list[dict]) -> None:
    at = fixed_runs[OVERVIEW]
    assert not at.exception and not at.error and not at.warning
    start, end = local_days(FIXED_DAY)
    assert f"{start:%a %d %b %Y %H:%M} → {end:%a %d %b %Y %H:%M} (Europe/Paris)" in plain(
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
    at = run_page(HUNTING, days_link(FIXED_DAY))
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
    at = run_page(HUNTING, days_link(FIXED_DAY))
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

