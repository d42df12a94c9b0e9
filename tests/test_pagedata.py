"""The pages' computations (pagedata) on small hand-built frames; every expected value
is worked out by hand. Paris is UTC+1 in March 2024: 10:00 UTC is 11:00 local."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from flux_dashboard import pagedata as PD
from flux_dashboard.geo import with_owner
from tests.kit.flows import EMPTY, frame, row, utc

PARIS = "Europe/Paris"
A_IP, B_IP = "192.168.1.10", "192.168.1.20"
HNO = (0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23)  # working hours 08:00-19:00 local


def flows_of(rows: list[dict]) -> pl.DataFrame:
    return frame(*(row(**r) for r in rows))


def flows() -> pl.DataFrame:
    """Monday 4 March 2024, 11:00-13:00 in Paris: two devices, four flows, two toxic."""
    return flows_of([
        # PC-A: a plain OUT flow, then a toxic OUT one (a trojan: critical)
        {"ip0": A_IP, "device_name": "PC-A", "ip1": "8.8.8.8", "in_bytes": 100,
         "out_bytes": 50, "start_of_hour": utc(2024, 3, 4, 10)},
        {"ip0": A_IP, "device_name": "PC-A", "ip1": "1.1.1.1", "in_bytes": 10,
         "out_bytes": 20, "toxic": True, "trojan": True, "start_of_hour": utc(2024, 3, 4, 11)},
        # NAS: a toxic IN DNS flow the sensor blocked, and a plain OUT one
        {"ip0": B_IP, "device_name": "NAS", "ip1": "8.8.4.4", "dir": "IN", "protocol": "UDP",
         "port": 53, "in_bytes": 1000, "toxic": True, "bruteforce": True, "filtered": True,
         "start_of_hour": utc(2024, 3, 4, 12)},
        {"ip0": B_IP, "device_name": "NAS", "ip1": "8.8.8.8", "port": 80, "in_bytes": 5,
         "out_bytes": 5, "start_of_hour": utc(2024, 3, 4, 12)},
    ])


def titles(figures: dict) -> dict[str, str]:
    return {key: fig.layout.title.text for key, fig in figures.items()}


# ------------------------------------------------------------------ Overview
def test_overview_numbers_weather_carbon_and_charts():
    ov = PD.overview(flows(), PARIS, None, 18.0)
    k = ov.kpis
    assert (k["flows"], k["bytes_in"], k["bytes_out"]) == (4, 1115, 75)
    assert (k["devices"], k["remote_hosts"], k["toxic_in"], k["toxic_out"]) == (2, 3, 1, 1)
    # one local day, cyT = 1 IN + 10 × 1 OUT = 11: Severe (11-99)
    assert (ov.weather.days, ov.weather.worst.day, ov.weather.worst.cyt) == (
        1, date(2024, 3, 4), 11)
    assert ov.weather.worst.name == "Severe" and ov.weather.today is None
    assert ov.weather.days_per_level == {0: 0, 1: 0, 2: 0, 3: 1, 4: 0}
    # 1,190 bytes at 18 g per 1e9 bytes
    assert ov.carbon["bytes"] == 1190 and ov.carbon["co2e_g"] == pytest.approx(1190 * 18e-9)
    assert ov.every == "1h" and ov.traffic["flows"].to_list() == [1, 1, 2]  # 11h, 12h, 13h
    assert ov.hour_days == [date(2024, 3, 4)]
    assert ov.top_devices["ip0"].to_list() == [B_IP, A_IP]  # 1,010 bytes, then 180
    assert titles(ov.figures()) == {
        "traffic": "Traffic over time (1h buckets)", "cw_cal": "Cyberweather per day",
        "cw_days": "cyT per day", "top_dev": "Top devices by bytes",
        "top_proto": "Protocols by bytes", "top_port": "Top ports by bytes"}


def test_overview_today_so_far_only_when_asked():
    assert PD.overview(flows(), PARIS, date(2024, 3, 4), 18.0).weather.today.cyt == 11
    later = PD.overview(flows(), PARIS, date(2024, 3, 5), 18.0).weather.today
    assert (later.cyt, later.name) == (0, "Clear")


# ------------------------------------------------------------------ Devices
def test_devices_table_order_choices_and_charts():
    dv = PD.devices(flows(), PARIS, 18.0)
    # PC-A initiated a toxic OUT flow: first, though the NAS moved more bytes
    assert dv.ips == [A_IP, B_IP] and dv.names == {A_IP: "PC-A", B_IP: "NAS"}
    assert dv.device(B_IP)["bytes"] == 1010 and dv.device(A_IP)["toxic_out_flows"] == 1
    assert dv.by_bytes["ip0"].to_list() == [B_IP, A_IP]
    assert dv.by_toxic["ip0"].to_list() == [A_IP, B_IP]  # one each: by IP
    assert dv.carbon["co2e_g"].to_list() == pytest.approx([1010 * 18e-9, 180 * 18e-9])
    assert titles(dv.figures()) == {
        "dev_bytes": "Traffic per device (bytes)", "dev_toxic": "Toxic flows per device",
        "dev_carbon": "Cybercarbon per device (estimate at 18 gCO2e/GB)"}


def test_device_drill_is_one_device():
    d = PD.device_drill(flows(), A_IP, PARIS, 18.0)
    k = d.kpis
    assert (k["flows"], k["bytes_in"], k["bytes_out"], k["remote_hosts"]) == (2, 110, 70, 2)
    assert (k["toxic_in"], k["toxic_out"]) == (0, 1)
    assert d.carbon["bytes"] == 180
    assert d.remotes["ip1"].to_list() == ["8.8.8.8", "1.1.1.1"]  # 150 bytes, then 30
    assert d.toxic.select("ip1", "threats").rows() == [("1.1.1.1", "Trojan horse")]
    # Monday 11:00 and 12:00 local, out of the week's 168 hours
    heat = d.heatmap.filter(pl.col("value") > 0)
    assert d.heatmap.height == 168 and heat.select("weekday", "hour", "value").rows() == [
        (0, 11, 150), (0, 12, 30)]
    assert titles(d.figures()) == {
        "drill_time": "Timeline of this device", "drill_remotes": "Top remote hosts",
        "drill_heat": "Activity by hour of day and weekday", "drill_ports": "Ports",
        "drill_protocols": "Protocols"}


# ------------------------------------------------------------------ Protocols & ports
def test_protocols_ports_and_the_port_device_grid():
    pr = PD.protocols(flows())
    assert pr.by_bytes["port_label"].to_list() == ["53", "443", "80"]  # 1,000, 180, 10
    assert pr.by_flows["port_label"].to_list() == ["443", "53", "80"]  # 2, then 1 and 1
    assert pr.ports["port_label"].to_list() == ["53", "443", "80"]
    assert "members" not in pr.ports.columns
    assert titles(pr.figures()) == {"treemap": "Protocol → port (sized by bytes)",
                                    "ports_bytes": "Top ports by bytes",
                                    "ports_flows": "Top ports by flows"}
    grid = PD.port_device(flows(), "flows")
    assert grid.matrix.height == 6 and grid.matrix["value"].sum() == 4  # 3 ports × 2 devices
    assert titles(grid.figures()) == {"port_device": "Port × device (flows, top 15 × 15)"}


# ------------------------------------------------------------------ Toxic flows
def test_toxic_tables_search_and_toggles():
    tx = PD.toxic(flows(), PARIS)
    assert tx.table["ip0"].to_list() == [B_IP, A_IP]  # newest first
    assert tx.out_devices["ip0"].to_list() == [A_IP] and "label" not in tx.out_table.columns
    assert tx.matching("  nas ")["ip1"].to_list() == ["8.8.4.4"]  # a device name, any case
    assert tx.matching("")["ip1"].to_list() == ["8.8.4.4", "1.1.1.1"]
    assert tx.matching("", critical_only=True)["ip1"].to_list() == ["1.1.1.1"]
    assert tx.matching("", unblocked_only=True)["ip1"].to_list() == ["1.1.1.1"]
    assert tx.matching("nas", unblocked_only=True).height == 0
    assert titles(tx.figures()) == {
        "toxic_devices": "Devices that initiated toxic OUT flows",
        "threats": "Threats by category", "toxic_remotes": "Top toxic remote IPs (flows)"}


def test_toxic_without_out_flows_or_any_toxic_flow():
    inbound = PD.toxic(flows().filter(pl.col("dir") == "IN"), PARIS)
    assert inbound.out_devices.height == 0
    assert set(inbound.figures()) == {"threats", "toxic_remotes"}
    assert PD.toxic(flows().filter(~pl.col("toxic")), PARIS).table.height == 0


# ------------------------------------------------------------------ Remote hosts
def test_remotes_sorted_by_threat_searched_and_titled():
    rh = PD.remotes(flows(), "all", "threat")
    # critical first (the trojan), then toxic, then by bytes
    assert rh.hosts["ip1"].to_list() == ["1.1.1.1", "8.8.4.4", "8.8.8.8"]
    assert rh.value == "toxic_flows" and "iso3" not in rh.table.columns
    assert rh.matching(" 8.8.")["ip1"].to_list() == ["8.8.4.4", "8.8.8.8"]
    assert rh.matching("australia")["ip1"].to_list() == ["1.1.1.1"]
    assert rh.matching("").height == 3
    assert titles(rh.figures()) == {"map": "Remote hosts by country (toxic flows)",
                                    "remote_bar": "Top remote hosts by toxic flows"}
    inbound = PD.remotes(flows(), "IN", "bytes")
    assert inbound.hosts["ip1"].to_list() == ["8.8.4.4"] and inbound.value == "bytes"
    assert titles(inbound.figures())["remote_bar"] == "Top remote hosts by bytes"


# ------------------------------------------------------------------ Threat hunting
def test_storylines_and_their_beacons():
    assert PD.storylines(flows()).table.height == 2  # two toxic pairs, one contact each
    assert PD.storylines(flows()).beacons.height == 0  # too few contacts to judge
    # PC-A reaches 1.1.1.1 at :05 every hour: clockwork, OUT; the NAS is reached the same way
    rows = [{"ip0": ip0, "dir": d, "ip1": "1.1.1.1", "toxic": True,
             "start_of_hour": utc(2024, 3, 4, h), "first_seen": utc(2024, 3, 4, h, 5)}
            for ip0, d in ((A_IP, "OUT"), (B_IP, "IN")) for h in range(10, 14)]
    stories = PD.storylines(flows_of(rows))
    assert stories.table.height == 2 and stories.beacons["ip0"].to_list() == [A_IP]


def test_first_seen_counts_new_pairs_toxic_and_devices():
    baseline = flows_of([{"ip0": A_IP, "ip1": "8.8.8.8", "start_of_hour": utc(2024, 3, 1, 9)}])
    new = PD.first_seen(flows(), baseline)
    # every pair but PC-A → 8.8.8.8, seen in the baseline; two of them toxic
    assert sorted(new.table.select("ip0", "ip1").rows()) == [
        (A_IP, "1.1.1.1"), (B_IP, "8.8.4.4"), (B_IP, "8.8.8.8")]
    assert (new.toxic, new.devices) == (2, 2)
    assert (PD.first_seen(flows(), EMPTY).table.height,
            PD.first_seen(flows(), EMPTY).toxic) == (4, 2)
    nothing = PD.first_seen(EMPTY, baseline)
    assert (nothing.table.height, nothing.toxic, nothing.devices) == (0, 0, 0)


def test_off_hours_flags_devices_and_puts_off_hours_toxic_first():
    df = with_owner(flows_of([
        # NAS: 2 MB of toxic IN at 21:00 local (off) -> mostly off-hours, flagged
        {"ip0": B_IP, "device_name": "NAS", "ip1": "8.8.4.4", "dir": "IN", "toxic": True,
         "in_bytes": 2_000_000, "start_of_hour": utc(2024, 3, 4, 20)},
        # PC-A: toxic OUT at 11:00 local (working hours), and 5 MB at 11:00 too
        {"ip0": A_IP, "ip1": "1.1.1.1", "toxic": True, "start_of_hour": utc(2024, 3, 4, 10)},
        {"ip0": A_IP, "out_bytes": 5_000_000, "start_of_hour": utc(2024, 3, 4, 10)},
    ]), "ip1")
    off = PD.off_hours(df, PARIS, HNO)
    assert off.per_device.select("ip0", "mostly_off").rows() == [(B_IP, True), (A_IP, False)]
    assert off.flagged == 1
    assert off.toxic.columns == list(PD.OFF_HOURS_TOXIC_COLUMNS)
    assert off.toxic.select("off_hours", "ip0").rows() == [(True, B_IP), (False, A_IP)]
