"""Filters and controls change the numbers as the ground truth says: toxic only,
direction, device, threat, off-hours, the other sensor, the toxic page's toggles and
search, the heatmap switch, Remote hosts' direction/sort/filter box and downloads, and
the device drill-down."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import datetime

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator import Simulator
from flux_dashboard.simulator.world import FLEET
from tests.kit.apptest import (
    DEVICES,
    MAIN,
    OVERVIEW,
    PROTOCOLS,
    REMOTES,
    SMALL,
    TOXIC,
    as_int,
    chart_specs,
    chart_title,
    download,
    markdown_bodies,
    metrics,
    new_app,
    param,
    plain,
    run_page,
    said,
    table_with,
)
from tests.kit.clock import PARIS, REUNION, days_link, local_days
from tests.kit.demo import (
    CRITICAL_FLAGS,
    FIXED_DAY,
    INCIDENT_DAY,
    count,
    toxic_flow_table,
)

pytestmark = pytest.mark.usefixtures("app_env")


# ------------------------------------------------------------------ filters change the numbers
def test_toxic_toggle_then_direction_out_change_the_numbers(rows_of) -> None:
    # INCIDENT_DAY has toxic flows both ways (an ordinary day may have no toxic OUT).
    rows = rows_of(*local_days(INCIDENT_DAY))
    at = new_app(days_link(INCIDENT_DAY))
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
    at = run_page(OVERVIEW, days_link(FIXED_DAY))
    at.sidebar.multiselect(key="threat").set_value(["command_center"]).run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert as_int(m["Flows"]) == count(day_rows, lambda r: r["command_center"]) > 0
    assert param(at, "threat") == ["command_center"]
    assert "Command center" in plain(at.caption[0].value)


def test_off_hours_filter_keeps_the_sensor_non_working_hours(truth: Simulator,
                                                             day_rows: list[dict]) -> None:
    hno = set(next(s for s in truth.sensors() if s["id"] == MAIN)["hno_hours"])
    assert hno and len(hno) < 24

    def off(r: dict) -> bool:
        hour = datetime.fromisoformat(r["start_of_hour"].replace("Z", "+00:00"))
        return hour.astimezone(PARIS).hour in hno

    at = run_page(OVERVIEW, days_link(FIXED_DAY))
    at.sidebar.toggle(key="offhours").set_value(True).run()
    assert not at.exception and not at.error
    expected = count(day_rows, off)
    assert 0 < expected < len(day_rows)
    assert as_int(metrics(at)["Flows"]) == expected
    assert "non-working hours" in plain(at.caption[0].value)


def test_choosing_the_other_sensor_shows_its_data(rows_of) -> None:
    at = run_page(OVERVIEW, days_link(FIXED_DAY))
    options = at.sidebar.selectbox(key="sensor_id").options
    assert len(options) == 2 + len(FLEET) and "#77" in options[1], options  # + the fleet
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
    assert "#77" in plain(at.caption[0].value)


def test_toxic_critical_and_not_blocked_toggles(rows_of) -> None:
    # INCIDENT_DAY: the C2 beacon (critical) and a brute-force wave (mostly not critical);
    # on FIXED_DAY every toxic flow is the beacon.
    toxic = [r for r in rows_of(*local_days(INCIDENT_DAY)) if r["toxic"]]
    critical = [r for r in toxic if any(r[f] for f in CRITICAL_FLAGS)]
    both = [r for r in critical if not r["filtered"]]
    unblocked = [r for r in toxic if not r["filtered"]]
    assert 0 < len(both) < len(critical) < len(toxic)

    at = run_page(TOXIC, days_link(INCIDENT_DAY))
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
    at = run_page(TOXIC, days_link(FIXED_DAY))
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
    at = run_page(PROTOCOLS, days_link(FIXED_DAY))
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
    assert sum(cells) <= as_int(metrics(run_page(OVERVIEW, days_link(FIXED_DAY)))["Flows"])
    assert heat["data"][0]["z"] != bytes_z


def test_remote_hosts_direction_and_sort(day_rows: list[dict]) -> None:
    at = run_page(REMOTES, days_link(FIXED_DAY))
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
    at = run_page(REMOTES, days_link(FIXED_DAY))
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
    at = run_page(DEVICES, days_link(FIXED_DAY))
    ips = list(table_with(at, {"device_name", "ip0", "mac_address", "vendor"})["ip0"])
    assert len(ips) > 3 and at.selectbox(key="drill").value == ips[0]
    ip = ips[3]
    at.selectbox(key="drill").set_value(ip).run()
    assert not at.exception
    heading = [plain(b) for b in markdown_bodies(at) if b.startswith("#### ")]
    assert len(heading) == 1 and re.search(rf" · `?{re.escape(ip)}`?$", heading[0]), heading
    mine = [r for r in day_rows if r["ip0"] == ip]
    m = metrics(at)
    assert as_int(m["Flows"]) == len(mine) > 0
    assert as_int(m["Remote hosts"]) == len({r["ip1"] for r in mine})
    assert as_int(m["Toxic OUT"]) == count(mine, lambda r: r["toxic"] and r["dir"] == "OUT")

