"""Tests of the simulated Serenicity API (flux_dashboard.simulator)."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from flux_dashboard.simulator import (
    HTML_NAME,
    MARKDOWN_NAME,
    SERVICES,
    THREAT_FLAGS,
    TOXIC_IPS,
    LateUpload,
    Simulator,
    SimulatorConfig,
    main,
)

NOW = datetime(2026, 7, 23, 10, 17, 42, tzinfo=UTC)  # a Thursday
HOUR = datetime(2026, 7, 22, 9, tzinfo=UTC)  # Wednesday 11:00 in Paris: busy
DAY = (datetime(2026, 7, 22, tzinfo=UTC), datetime(2026, 7, 23, tzinfo=UTC))
JUNE = ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")
# The demo story's day 0: DAY (July 22) is day -4, a brute-force wave day of the beaconing
# PC (so it has toxic IN and OUT flows); June is all ordinary days (story.py).
STORY_DAY = date(2026, 7, 26)
AUTH = {"Authorization": "Api-Key test-key"}
BASE = "http://sim.test/api/v1"
ROW_KEYS = [
    "start_of_hour", "ip0", "ip1", "dir", "protocol", "port", "occurrences", "duration",
    "timestamps", "last_netbios", "netbios_list", "last_mac_address", "mac_address_list",
    "out_flux", "in_flux", "filtered", "toxic", "bruteforce", "command_center", "hcard",
    "military", "tor_node", "trojan", "sip", "supply_chain_compromise", "video", "custom_ip0",
]


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make(**kw) -> tuple[Simulator, httpx.Client, Clock]:
    clock = kw.pop("clock", None) or Clock()
    kw.setdefault("rate_limit_per_min", None)
    kw.setdefault("story_day", STORY_DAY)
    sim = Simulator(SimulatorConfig(now=clock, **kw))
    client = httpx.Client(base_url=BASE, transport=sim.transport(), headers=AUTH)
    return sim, client, clock


def nk(row: dict) -> tuple:
    return (row["start_of_hour"], row["ip0"], row["ip1"], row["dir"], row["protocol"],
            row["port"])


def flux(client: httpx.Client, **params) -> httpx.Response:
    params.setdefault("from", "2026-07-22T00:00:00Z")
    params.setdefault("to", "2026-07-23T00:00:00Z")
    return client.get("/sensors/54/flux", params=params)


def all_pages(client: httpx.Client, **params) -> list[dict]:
    params.setdefault("per_page", 1000)
    first = flux(client, **params).json()
    data = list(first["data"])
    for page in range(2, first["meta"]["last_page"] + 1):
        data += flux(client, page=page, **params).json()["data"]
    return data


@pytest.fixture(scope="module")
def world() -> tuple[Simulator, httpx.Client]:
    """The world with its hostile device names (the reference shape checks they are there)."""
    sim, client, _ = make(hostile_names=True)
    return sim, client


@pytest.fixture(scope="module")
def day_rows(world) -> list[dict]:
    sim, _ = world
    return sim.rows(54, *DAY)


@pytest.fixture(scope="module")
def june_toxic(world) -> list[dict]:
    _, client = world
    return all_pages(client, **{"from": JUNE[0], "to": JUNE[1]}, only_toxic="true")


# ----------------------------------------------------------------------------- data


def test_closed_hour_is_deterministic_across_calls_clocks_and_instances():
    a, _, clock = make()
    first = a.rows_for_hour(54, HOUR)
    assert first and first == a.rows_for_hour(54, HOUR)
    clock.now = NOW + timedelta(days=40)
    from flux_dashboard.simulator import traffic

    with traffic._HOURS_LOCK:  # generated again, not read from the shared hours
        traffic._HOURS.clear()
    assert a.rows_for_hour(54, HOUR) == first
    b, _, _ = make()
    assert b.rows_for_hour(54, HOUR) == first
    c, _, _ = make(seed=8)
    assert c.rows_for_hour(54, HOUR) != first


def test_open_hour_grows_and_future_and_pre_install_hours_are_empty():
    sim, _, clock = make()
    open_hour = datetime(2026, 7, 23, 10, tzinfo=UTC)
    clock.now = open_hour + timedelta(minutes=17, seconds=42)
    early = {nk(r): r for r in sim.rows_for_hour(54, open_hour)}
    clock.now = open_hour + timedelta(minutes=48)
    late = {nk(r): r for r in sim.rows_for_hour(54, open_hour)}
    assert early and set(early) < set(late)
    for key, row in early.items():
        assert late[key]["occurrences"] >= row["occurrences"]
        assert int(late[key]["out_flux"]) >= int(row["out_flux"])
        for first, last in row["timestamps"]:
            assert first <= last <= "2026-07-23T10:17:00.000Z"
    clock.now = open_hour + timedelta(hours=1, minutes=1)
    closed = sim.rows_for_hour(54, open_hour)
    assert len(closed) > len(late)
    assert sim.rows_for_hour(54, open_hour + timedelta(hours=2)) == []
    assert sim.rows_for_hour(54, datetime(2024, 12, 31, 23, tzinfo=UTC)) == []
    assert sim.rows_for_hour(54, datetime(2025, 1, 1, 0, tzinfo=UTC))


def test_late_upload_hides_the_outage_until_upload_then_shows_the_same_rows():
    # Wednesday 22 July: cut off from 09:20 to 12:40 UTC, buffered rows uploaded at 15:00.
    outage = LateUpload(54, datetime(2026, 7, 22, 9, 20, tzinfo=UTC),
                        datetime(2026, 7, 22, 12, 40, tzinfo=UTC),
                        datetime(2026, 7, 22, 15, 0, tzinfo=UTC))
    clock = Clock(datetime(2026, 7, 22, 14, 30, tzinfo=UTC))
    sim, client, _ = make(clock=clock, late_uploads=(outage,))
    plain, _, _ = make(clock=Clock(clock.now))
    hours = [datetime(2026, 7, 22, h, tzinfo=UTC) for h in range(8, 14)]
    window = {"from": "2026-07-22T08:00:00Z", "to": "2026-07-22T14:00:00Z"}

    def starts(row: dict) -> list[str]:
        return [first[11:19] for first, _ in row["timestamps"]]

    before = {h.hour: sim.rows_for_hour(54, h) for h in hours}
    full = {h.hour: plain.rows_for_hour(54, h) for h in hours}
    assert before[8] == full[8] and before[13] == full[13]  # outside the outage: untouched
    assert before[10] == [] and before[11] == [] and full[10] and full[11]
    # Cut hours keep only the sessions outside the outage, with their own counts.
    assert before[9] and len(before[9]) < len(full[9])
    assert all(t < "09:20:00" for r in before[9] for t in starts(r))
    assert before[12] and len(before[12]) < len(full[12])
    assert all(t >= "12:40:00" for r in before[12] for t in starts(r))
    assert all(r["occurrences"] == len(r["timestamps"]) for r in before[9] + before[12])
    assert flux(client, per_page=1, **window).json()["meta"]["total"] == sum(
        len(v) for v in before.values())
    assert sim.sensors()[0]["status"] == "CONNECTED"  # the link is back since 12:40
    clock.now = datetime(2026, 7, 22, 11, 0, tzinfo=UTC)
    assert sim.sensors()[0]["status"] == "DISCONNECTED"  # over an hour without logs

    clock.now = datetime(2026, 7, 22, 15, 0, tzinfo=UTC)  # uploaded: everything appears
    assert {h.hour: sim.rows_for_hour(54, h) for h in hours} == full
    # The same query is not answered from before the upload.
    assert flux(client, per_page=1, **window).json()["meta"]["total"] == sum(
        len(v) for v in full.values())
    with pytest.raises(ValueError):
        LateUpload(54, outage.end, outage.start, outage.uploaded)
    with pytest.raises(ValueError):
        LateUpload(54, outage.start, outage.end, outage.end - timedelta(minutes=1))


def test_rows_have_the_reference_shape(day_rows):
    rows = day_rows
    assert 3000 < len(rows) < 15000
    assert len({nk(r) for r in rows}) == len(rows), "natural key must be unique"
    for r in rows:
        assert list(r)[: len(ROW_KEYS)] == ROW_KEYS
        assert set(r) - set(ROW_KEYS) <= {"vendor"}
        assert r["start_of_hour"].endswith(":00:00.000Z")
        assert r["dir"] in ("IN", "OUT")
        assert r["occurrences"] == len(r["timestamps"]) >= 1
        assert all(v > 0 for v in r["duration"].values())
        assert set(r["duration"]) <= {"hours", "minutes", "seconds", "milliseconds"}
        hour = r["start_of_hour"][:13]
        for first, last in r["timestamps"]:
            assert first[:13] == last[:13] == hour and first <= last and last.endswith("Z")
        assert ipaddress.ip_address(r["ip0"]).is_private
        assert ipaddress.ip_address(r["ip1"]).is_global, r["ip1"]
        assert (r["port"] is None) == (r["protocol"] == "ICMP")
        assert isinstance(r["out_flux"], str) and r["out_flux"].isdigit()
        assert r["toxic"] or not (r["filtered"] or any(r[f] for f in THREAT_FLAGS))
        if r["custom_ip0"] is not None:
            assert set(r["custom_ip0"]) == {"id", "sensor_id", "ip0", "name", "icon",
                                            "is_critical", "category", "created_at",
                                            "updated_at"}
            assert r["custom_ip0"]["ip0"] == r["ip0"]
    durations = [r["duration"] for r in rows]
    assert {} in durations and any("hours" in d for d in durations)
    assert any("minutes" in d and "seconds" in d and "milliseconds" in d for d in durations)
    assert any(r["custom_ip0"] is None and r["last_netbios"] for r in rows)
    assert any(r["custom_ip0"] is None and r["last_netbios"] is None for r in rows)
    assert any("vendor" not in r for r in rows)
    assert {r["vendor"] for r in rows if "vendor" in r} >= {
        "Samsung Electronics Co.,Ltd", "Apple, Inc.", "Hewlett Packard", "Dell Inc.",
        "Intel Corporate", "Synology Incorporated", "Ubiquiti Inc"}
    assert any(r["custom_ip0"] and r["custom_ip0"]["is_critical"] for r in rows)
    names = {r["custom_ip0"]["name"] for r in rows if r["custom_ip0"]}
    assert HTML_NAME in names and MARKDOWN_NAME in names
    assert {"PC-Compta-01", "Télé salon", "NAS-Synology", "Imprimante RDC",
            "iPhone de Julie"} <= names
    assert {(r["protocol"], r["port"]) for r in rows} >= {
        ("TCP", 443), ("TCP", 80), ("UDP", 53), ("UDP", 123), ("UDP", 443), ("TCP", 993),
        ("TCP", 587), ("TCP", 22), ("TCP", 3389), ("UDP", 5060), ("ICMP", None)}
    assert max(int(r["out_flux"]) for r in rows) > 2**31  # the nightly NAS backup
    assert any(r["dir"] == "IN" and not r["toxic"] for r in rows)


def test_hostile_names_are_a_switch_off_by_default_that_renames_two_devices_only():
    """The demo a customer sees names its devices as an office would; the escaping
    tests' switch gives two of the main site's markup, and changes nothing else."""
    plain, _, _ = make()
    hostile, _, _ = make(hostile_names=True)

    def names(sim: Simulator) -> dict[str, str]:
        return {d.ip: d.custom["name"] for d in sim.traffic.sites[54].devices if d.custom}

    shown = names(plain)
    assert not [n for n in shown.values() if re.search(r"[<>]|\]\(", n)], shown
    assert shown["192.168.1.30"] == "Caméra entrée" and shown["192.168.1.21"] == "NAS-Réplique"
    renamed = {ip: n for ip, n in names(hostile).items() if shown.get(ip) != n}
    assert renamed == {"192.168.1.30": HTML_NAME, "192.168.1.21": MARKDOWN_NAME}

    def unnamed(rows: list[dict]) -> list[dict]:
        return [{**r, "custom_ip0": r["custom_ip0"] and {**r["custom_ip0"], "name": ""}}
                for r in rows]

    a, b = plain.rows(54, *DAY), hostile.rows(54, *DAY)
    assert a != b and unnamed(a) == unnamed(b)


def test_every_remote_address_is_public():
    pools = [ip for svc in SERVICES.values() for ip in svc.ips] + list(TOXIC_IPS)
    assert len(pools) > 500
    assert all(ipaddress.ip_address(ip).is_global for ip in pools)


def test_rhythm_busy_weekday_quiet_night_and_weekend_but_never_empty(world):
    sim, _ = world
    wed_11 = len(sim.rows_for_hour(54, datetime(2026, 7, 22, 9, tzinfo=UTC)))
    wed_03 = len(sim.rows_for_hour(54, datetime(2026, 7, 22, 1, tzinfo=UTC)))
    sun_11 = len(sim.rows_for_hour(54, datetime(2026, 7, 19, 9, tzinfo=UTC)))
    assert wed_11 > 3 * wed_03 > 0 and wed_11 > 3 * sun_11 > 0


def test_month_volumes_and_second_sensor(world):
    sim, _ = world
    start, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    main_rows = sim.count_rows(54, start, end)
    small_rows = sim.count_rows(77, start, end)
    assert 100_000 <= main_rows <= 300_000
    assert 0 < small_rows < main_rows / 3


def test_dense_mode_has_a_million_rows_per_30_days():
    # How fast the dense month is generated and served is the benchmark's (make bench).
    sim, _, _ = make(dense=True)
    n = sim.count_rows(54, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    assert n >= 1_000_000
    client = httpx.Client(base_url=BASE, transport=sim.transport(), headers=AUTH)
    resp = flux(client, **{"from": JUNE[0], "to": JUNE[1]}, per_page=1000, page=500)
    assert resp.status_code == 200 and resp.json()["meta"]["total"] == n
    assert len(resp.json()["data"]) == 1000  # a deep page of a full month is a full page


def test_every_threat_flag_and_unqualified_toxic_ips(june_toxic, world):
    sim, _ = world
    rows = june_toxic
    assert all(r["toxic"] for r in rows)
    for flag in THREAT_FLAGS:
        assert any(r[flag] for r in rows), flag
    assert any(not any(r[f] for f in THREAT_FLAGS) for r in rows)
    for r in rows:
        assert tuple(f for f in THREAT_FLAGS if r[f]) == tuple(
            f for f in THREAT_FLAGS if f in TOXIC_IPS[r["ip1"]]), "flags are fixed per IP"
    assert any(r["filtered"] for r in rows) and not all(r["filtered"] for r in rows)
    brute = {(r["dir"], r["port"]) for r in rows if r["bruteforce"]}
    assert {("IN", 22), ("IN", 3389)} <= brute
    assert all(r["dir"] == "IN" and r["port"] == 5060 for r in rows if r["sip"])
    assert all(r["dir"] == "OUT" for r in rows if r["tor_node"] or r["supply_chain_compromise"])
    assert all(r["dir"] == "IN" for r in rows if r["hcard"])
    # Ordinary days (story.py): every third day one toxic OUT row, the others 0-10 IN rows.
    assert 10 <= len(rows) <= 30 * 10


def test_the_story_c2_beacons_every_fifteen_minutes_from_day_minus_12_to_minus_3(world):
    sim, _ = world
    plan = sim.story
    assert plan.today == STORY_DAY
    rows = [r for r in sim.rows(54, *plan.window(-13, -2))
            if r["ip1"] == plan.c2_ip and r["port"] == plan.c2_port]
    assert {r["ip0"] for r in rows} == {plan.workstation_ip}
    assert all(r["command_center"] and r["toxic"] for r in rows)
    # every hour from July 14 15:00 Paris time (13:00Z) up to the clock, NOW = July 23
    # 10:17Z: the open hour 10:00Z already holds its 10:07 contact
    assert len(rows) == (datetime(2026, 7, 23, 11, tzinfo=UTC)
                         - datetime(2026, 7, 14, 13, tzinfo=UTC)).total_seconds() / 3600
    for r in rows:
        starts = [datetime.fromisoformat(a) for a, _ in r["timestamps"]]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        open_hour = r["start_of_hour"] == "2026-07-23T10:00:00.000Z"  # only 10:07 by 10:17
        assert r["occurrences"] == (1 if open_hour else 4) and all(899 <= g <= 901 for g in gaps)


# ----------------------------------------------------------------------------- sensors


def test_sensors_list_and_objects(world):
    _, client = world
    sensors = client.get("/sensors").json()
    assert [s["id"] for s in sensors] == [54, 77]  # 99 exists but is not listed
    fields = {"id", "type_fk", "name", "full_name", "mac_address", "public_ip", "local_ip",
              "installation_date", "supervision", "filtering", "version", "end_trial", "status",
              "hno_hours", "timezone", "latitude", "longitude", "current_cyt"}
    for s in sensors:
        assert set(s) == fields and s["type_fk"] == "DETOXIO" and s["end_trial"] is None
        assert s["installation_date"] == "2025-01-01T00:00:00.000Z"
    main_sensor = client.get("/sensors/54").json()
    assert main_sensor["name"] == "Cabinet Martin – Paris"
    assert main_sensor["timezone"] == "Europe/Paris" and main_sensor["status"] == "CONNECTED"
    assert main_sensor["hno_hours"] == [0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23]
    assert main_sensor["filtering"] is True
    small = client.get("/sensors/77").json()
    assert small["status"] == "DISCONNECTED" and small["timezone"] != "Europe/Paris"


def test_current_cyt_is_computed_from_the_last_24h(world):
    sim, client = world
    rows = all_pages(client, **{"from": "2026-07-22T11:00:00Z", "to": "2026-07-23T11:00:00Z"},
                     only_toxic="1")
    expected = sum(1 if r["dir"] == "IN" else 10 for r in rows)
    assert client.get("/sensors/54").json()["current_cyt"] == expected > 0


def test_disconnected_sensor_stops_about_two_hours_before_now(world):
    sim, _ = world
    assert sim.rows_for_hour(77, datetime(2026, 7, 23, 9, tzinfo=UTC)) == []
    assert sim.rows_for_hour(77, datetime(2026, 7, 23, 7, tzinfo=UTC))


# ----------------------------------------------------------------------------- flux endpoint


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"ip0": "192.168.1.10"}, lambda r: r["ip0"] == "192.168.1.10"),
        ({"ip1": "1.1.1.1"}, lambda r: r["ip1"] == "1.1.1.1"),
        ({"protocol": "UDP"}, lambda r: r["protocol"] == "UDP"),
        ({"protocol": "icmp"}, lambda r: r["protocol"] == "ICMP"),
        ({"port": "3389"}, lambda r: r["port"] == 3389),
        ({"only_toxic": "true"}, lambda r: r["toxic"]),
        ({"only_in": "true"}, lambda r: r["dir"] == "IN"),
        ({"only_out": "1"}, lambda r: r["dir"] == "OUT"),
        ({"only_toxic": "true", "only_in": "true"}, lambda r: r["toxic"] and r["dir"] == "IN"),
        ({"only_toxic": "false"}, lambda r: True),
    ],
)
def test_filters_match_ground_truth(world, day_rows, params, check):
    _, client = world
    truth = {nk(r) for r in day_rows if check(r)}
    got = all_pages(client, **params)
    assert truth and {nk(r) for r in got} == truth and len(got) == len(truth)
    assert flux(client, **params).json()["meta"]["total"] == len(truth)


def test_mac_address_filter_is_case_insensitive(world, day_rows):
    _, client = world
    rows = day_rows
    mac = next(r["last_mac_address"] for r in rows if r["ip0"] == "192.168.1.20")
    got = all_pages(client, mac_address=mac.upper())
    assert got and {r["ip0"] for r in got} == {"192.168.1.20"}
    assert len(got) == sum(r["last_mac_address"] == mac for r in rows)


def _ipkey(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


SORT_KEYS = {
    "startOfHour": lambda r: r["start_of_hour"],
    "ip0": lambda r: _ipkey(r["ip0"]),
    "ip1": lambda r: _ipkey(r["ip1"]),
    "sumFlux": lambda r: int(r["in_flux"]) + int(r["out_flux"]),
    "dir": lambda r: r["dir"],
    "protocol": lambda r: r["protocol"],
    "port": lambda r: 65_536 if r["port"] is None else r["port"],  # NULLS LAST ascending
}


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("sort_by", list(SORT_KEYS))
def test_every_sort_key_both_directions(world, sort_by, desc):
    sim, client = world
    params = {"from": "2026-07-22T08:00:00Z", "to": "2026-07-22T11:00:00Z",
              "sort_by": sort_by, "sort_desc": "true" if desc else "false"}
    got = all_pages(client, **params)
    keys = [SORT_KEYS[sort_by](r) for r in got]
    assert keys == sorted(keys, reverse=desc)
    truth = sim.rows(54, datetime(2026, 7, 22, 8, tzinfo=UTC), datetime(2026, 7, 22, 11,
                                                                          tzinfo=UTC))
    assert sorted(map(nk, got)) == sorted(map(nk, truth))  # stable mode: no dup, no miss


def test_default_sort_and_pagination_meta(world):
    _, client = world
    body = flux(client, per_page=50).json()
    meta = body["meta"]
    assert meta["per_page"] == 50 and meta["current_page"] == 1 and meta["first_page"] == 1
    assert meta["last_page"] == math.ceil(meta["total"] / 50)
    assert meta["first_page_url"] == "/?page=1"
    assert meta["last_page_url"] == f"/?page={meta['last_page']}"
    assert meta["next_page_url"] == "/?page=2" and meta["previous_page_url"] is None
    assert len(body["data"]) == 50
    hours = [r["start_of_hour"] for r in body["data"]]
    assert hours == sorted(hours)
    last = flux(client, per_page=50, page=meta["last_page"]).json()
    assert last["meta"]["next_page_url"] is None
    assert len(last["data"]) == meta["total"] - 50 * (meta["last_page"] - 1)
    default = flux(client).json()["meta"]
    assert default["per_page"] == 100


def test_meta_without_urls_and_empty_range():
    _, client, _ = make(meta_urls=False)
    meta = flux(client).json()["meta"]
    assert set(meta) == {"total", "per_page", "current_page", "last_page", "first_page"}
    empty = flux(client, **{"from": "2026-07-22T00:00:00Z", "to": "2026-07-22T00:00:00Z"})
    assert empty.json() == {"meta": {"total": 0, "per_page": 100, "current_page": 1,
                                     "last_page": 1, "first_page": 1}, "data": []}
    future = flux(client, **{"from": "2026-08-01T00:00:00Z", "to": "2026-08-02T00:00:00Z"})
    assert future.json()["meta"]["total"] == 0


def test_per_page_is_capped_silently():
    _, client, _ = make(max_per_page=250)
    body = flux(client, per_page=5000).json()
    assert body["meta"]["per_page"] == 250 and len(body["data"]) == 250
    assert body["meta"]["last_page"] == math.ceil(body["meta"]["total"] / 250)


def test_from_to_half_open_and_inclusive_to_hazard():
    params = {"from": "2026-07-22T08:00:00Z", "to": "2026-07-22T10:00:00Z"}
    sim, client, _ = make()
    hours = {r["start_of_hour"] for r in all_pages(client, **params)}
    assert hours == {"2026-07-22T08:00:00.000Z", "2026-07-22T09:00:00.000Z"}
    # Offsets are honoured: 08:30+02:00 is 06:30Z, and [06:30Z, 07:00Z) holds no hour start.
    assert all_pages(client, **{"from": "2026-07-22T08:30:00+02:00", "to": "2026-07-22T07:00Z"}
                     ) == []
    assert {r["start_of_hour"] for r in all_pages(
        client, **{"from": "2026-07-22T08:30:00+02:00", "to": "2026-07-22T08:00:01Z"})} == {
        "2026-07-22T07:00:00.000Z", "2026-07-22T08:00:00.000Z"}
    _, inc_client, _ = make(inclusive_to=True)
    inc = {r["start_of_hour"] for r in all_pages(inc_client, **params)}
    assert inc == hours | {"2026-07-22T10:00:00.000Z"}


def test_unstable_ties_reorder_ties_on_every_request_and_stable_mode_does_not():
    for unstable in (False, True):
        _, client, _ = make(unstable_ties=unstable)
        pages = [[nk(r) for r in flux(client, per_page=200, page=2).json()["data"]]
                 for _ in range(2)]
        assert (pages[0] != pages[1]) is unstable
        # Ties are only reordered among themselves: the sort key still holds.
        assert all(pages[0][i][0] <= pages[0][i + 1][0] for i in range(199))
    _, client, _ = make(unstable_ties=True)
    got = all_pages(client, per_page=500)
    meta_total = flux(client).json()["meta"]["total"]
    assert len(got) == meta_total and len({nk(r) for r in got}) < meta_total  # the hazard


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": None}, "from"),
        ({"to": None}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-07-23T00:00:00Z", "to": "2026-07-22T00:00:00Z"}, "to"),
        ({"sort_by": "start_of_hour"}, "sort_by"),
        ({"sort_desc": "yes"}, "sort_desc"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"page": "99999"}, "page"),
        ({"port": "http"}, "port"),
        ({"only_toxic": "maybe"}, "only_toxic"),
        ({"ip0": "not-an-ip"}, "ip0"),
    ],
)
def test_validation_errors_are_422(world, params, field):
    _, client = world
    query = {"from": "2026-07-22T00:00:00Z", "to": "2026-07-23T00:00:00Z", **params}
    query = {k: v for k, v in query.items() if v is not None}
    resp = client.get("/sensors/54/flux", params=query)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/json")
    errors = resp.json()["errors"]
    assert any(e["field"] == field for e in errors)
    assert all(set(e) == {"field", "rule", "message"} for e in errors)


def test_volumes_as_numbers_and_mixed():
    _, client, _ = make(volumes_as="number")
    rows = flux(client, per_page=300).json()["data"]
    assert all(isinstance(r["out_flux"], int) and isinstance(r["in_flux"], int) for r in rows)
    _, client, _ = make(volumes_as="mixed")
    rows = flux(client, per_page=300).json()["data"]
    kinds = {type(r["out_flux"]) for r in rows}
    assert kinds == {int, str}
    assert all(type(r["out_flux"]) is type(r["in_flux"]) for r in rows)
    with pytest.raises(ValueError):
        Simulator(SimulatorConfig(volumes_as="float"))
    with pytest.raises(ValueError):
        Simulator(SimulatorConfig(fault_schedule={1: "418"}))


# ----------------------------------------------------------------------------- stats endpoints


def test_flux_hour_ip0_and_sensor_match_the_rows(world):
    sim, client = world
    params = {"from": "2026-07-22T08:00:00Z", "to": "2026-07-22T10:00:00Z", "per_page": "1000"}
    rows = sim.rows(54, datetime(2026, 7, 22, 8, tzinfo=UTC), datetime(2026, 7, 22, 10,
                                                                         tzinfo=UTC))
    per_ip0 = client.get("/sensors/54/flux-hour-ip0", params=params).json()
    assert per_ip0["meta"]["total"] == len({(r["start_of_hour"], r["ip0"]) for r in rows})
    item = next(i for i in per_ip0["data"] if i["ip0"] == "192.168.1.10"
                and i["utc_hour"] == "2026-07-22T09:00:00.000Z")
    mine = [r for r in rows if r["ip0"] == "192.168.1.10"
            and r["start_of_hour"] == "2026-07-22T09:00:00.000Z"]
    tin = sum(r["toxic"] and r["dir"] == "IN" for r in mine)
    tout = sum(r["toxic"] and r["dir"] == "OUT" for r in mine)
    assert item == {
        "utc_hour": "2026-07-22T09:00:00.000Z", "ip0": "192.168.1.10",
        "in_flux": str(sum(int(r["in_flux"]) for r in mine)),
        "out_flux": str(sum(int(r["out_flux"]) for r in mine)),
        "in_toxic_flux": tin, "out_toxic_flux": tout, "toxic_count": tin + tout,
        "count": len(mine), "cyt": tin + 10 * tout,
    }
    by_ip = client.get("/sensors/54/flux-hour-ip0",
                       params={**params, "sort_by": "ip0", "sort_desc": "true"}).json()["data"]
    keys = [_ipkey(i["ip0"]) for i in by_ip]
    assert keys == sorted(keys, reverse=True)
    only = client.get("/sensors/54/flux-hour-ip0", params={**params, "ip0": "192.168.1.10"})
    assert {i["ip0"] for i in only.json()["data"]} == {"192.168.1.10"}
    sensor = client.get("/sensors/54/flux-hour-sensor", params=params).json()
    assert [i["utc_hour"] for i in sensor["data"]] == ["2026-07-22T08:00:00.000Z",
                                                       "2026-07-22T09:00:00.000Z"]
    assert sum(i["count"] for i in sensor["data"]) == len(rows)
    assert "ip0" not in sensor["data"][0]
    bad = client.get("/sensors/54/flux-hour-sensor", params={**params, "sort_by": "ip0"})
    assert bad.status_code == 422


# ----------------------------------------------------------------------------- cross-cutting


def test_auth_forbidden_and_not_found():
    sim, client, _ = make(api_key="s3cret")
    ok = {"Authorization": "Api-Key s3cret"}
    assert client.get("/sensors", headers=ok).status_code == 200
    for headers in ({"Authorization": "Api-Key wrong"}, {"Authorization": "Bearer s3cret"},
                    {"Authorization": ""}):
        resp = client.get("/sensors", headers=headers)
        assert resp.status_code == 401 and "message" in resp.json()
        assert resp.headers["content-type"].startswith("application/json")
    anon = httpx.Client(base_url=BASE, transport=sim.transport())
    assert anon.get("/sensors").status_code == 401
    _, any_key, _ = make()
    assert any_key.get("/sensors", headers={"Authorization": "Api-Key x"}).status_code == 200
    assert any_key.get("/sensors", headers={"Authorization": "Api-Key "}).status_code == 401
    assert client.get("/sensors/99", headers=ok).status_code == 403
    assert client.get("/sensors/99/flux", headers=ok, params={"from": JUNE[0]}).status_code == 403
    for path in ("/sensors/12", "/sensors/abc", "/nope", "/sensors/54/other"):
        resp = client.get(path, headers=ok)
        assert resp.status_code == 404 and "message" in resp.json()
    # The prefix is optional; every request is recorded, failed or not.
    no_prefix = httpx.Client(base_url="http://sim.test", transport=sim.transport(), headers=ok)
    assert no_prefix.get("/sensors/54").status_code == 200
    assert ("/sensors/99", {}) in sim.requests
    assert sim.requests[-1] == ("/sensors/54", {})


def test_rate_limit_slides_in_real_time_under_a_pinned_clock():
    """The data clock pinned (as every suite runs it), the limit's window still
    slides: after a minute of real time the key may send again."""
    ticks = [1000.0]
    sim, client, _ = make(rate_limit_per_min=2, limit_clock=lambda: ticks[0])
    assert client.get("/sensors/77").status_code == 200
    assert client.get("/sensors/77").status_code == 200
    assert client.get("/sensors/77").status_code == 429
    ticks[0] += 61
    assert client.get("/sensors/77").status_code == 200


def test_rate_limit_sliding_window_with_retry_after():
    clock = Clock()
    sim, client, _ = make(rate_limit_per_min=3, clock=clock,
                          limit_clock=lambda: clock.now.timestamp())
    for _ in range(3):
        assert client.get("/sensors/77").status_code == 200
        clock.now += timedelta(seconds=10)
    resp = client.get("/sensors/77")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "30"
    assert "message" in resp.json()
    other = client.get("/sensors/77", headers={"Authorization": "Api-Key another"})
    assert other.status_code == 200  # counted per key
    clock.now += timedelta(seconds=30)
    assert client.get("/sensors/77").status_code == 200
    assert len(sim.requests) == 6


def test_monthly_quota_until_next_month():
    clock = Clock(datetime(2026, 7, 31, 23, 0, tzinfo=UTC))
    _, client, _ = make(monthly_quota=2, clock=clock)
    assert client.get("/sensors/77").status_code == 200
    assert client.get("/sensors/nope").status_code == 404  # still a request
    resp = client.get("/sensors/77")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3600"
    assert "quota" in resp.json()["message"].lower()
    clock.now = datetime(2026, 8, 1, 0, 0, 1, tzinfo=UTC)
    assert client.get("/sensors/77").status_code == 200


def test_fault_schedule_and_truncated_body():
    sim, client, _ = make(fault_schedule={1: "500", 3: "truncated", 4: "timeout", 5: "503"})
    assert flux(client).status_code == 500
    assert flux(client).status_code == 200
    assert client.get("/sensors/54").status_code == 200  # not a flux request: no fault
    truncated = flux(client)
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    with pytest.raises(httpx.ReadTimeout):
        flux(client)
    assert flux(client).status_code == 503
    assert sim.flux_request_count() == 5
    sim.reset_counters()
    assert sim.flux_request_count() == 0 and sim.requests == []


def test_fault_rate_is_seeded_and_separate_from_the_data():
    statuses = []
    for _ in range(2):
        _, client, _ = make(fault_rate=0.5, fault_kinds=("502",))
        statuses.append([flux(client, per_page=5).status_code for _ in range(20)])
    assert statuses[0] == statuses[1] and {200, 502} == set(statuses[0])
    faulty, _, _ = make(fault_rate=0.5)
    assert faulty.rows_for_hour(54, HOUR) == make()[0].rows_for_hour(54, HOUR)


def test_latency_uses_the_injected_sleep_in_transport_mode():
    slept: list[float] = []
    _, client, _ = make(latency_s=0.25, sleep=slept.append)
    client.get("/sensors")
    assert slept == [0.25]


def test_http_server_round_trip():
    sim = Simulator(SimulatorConfig(now=Clock(), fault_schedule={2: "truncated", 3: "timeout"}))
    with sim.serve() as server:
        assert server.url == f"http://127.0.0.1:{server.port}/api/v1" and server.port > 0
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
            assert [s["id"] for s in client.get("/sensors").json()] == [54, 77]
            resp = flux(client, per_page=10, ip0="192.168.1.20")
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("application/json")
            body = resp.json()
            assert len(body["data"]) == 10 and body["data"][0]["ip0"] == "192.168.1.20"
            cut = flux(client)
            assert cut.status_code == 200 and len(cut.content) == int(
                cut.headers["content-length"])
            with pytest.raises(json.JSONDecodeError):
                json.loads(cut.content)
            with pytest.raises(httpx.TransportError):
                flux(client)
            assert flux(client).status_code == 200
            assert client.get("/sensors/99").status_code == 403
    assert sim.requests[1] == ("/sensors/54/flux", {
        "from": "2026-07-22T00:00:00Z", "to": "2026-07-23T00:00:00Z", "per_page": "10",
        "ip0": "192.168.1.20"})


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--port", "not-a-port"])
    assert "--port" in capsys.readouterr().err


@contextmanager
def simulate(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m flux_dashboard.simulator simulate --port 0 *args``: the process and the
    URL it printed; killed on the way out if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flux_dashboard.simulator", "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serves_until_sigterm():
    with simulate("--api-key", "k", "--rate-limit", "0", "--seed", "3") as (proc, url):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v1")
        resp = httpx.get(f"{url}/sensors", headers={"Authorization": "Api-Key k"}, timeout=5)
        assert resp.status_code == 200 and len(resp.json()) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_cli_serves_the_hostile_names_when_asked():
    with simulate("--hostile-names", "--rate-limit", "0", "--now", NOW.isoformat()) as (_, url):
        resp = httpx.get(f"{url}/sensors/54/flux", headers=AUTH, timeout=30, params={
            "from": "2026-07-22T00:00:00Z", "to": "2026-07-23T00:00:00Z",
            "ip0": "192.168.1.30", "per_page": 5})
        assert {r["custom_ip0"]["name"] for r in resp.json()["data"]} == {HTML_NAME}
