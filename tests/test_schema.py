"""Schema: every documented quirk converts; anything else fails loudly, naming the value."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import polars as pl
import pytest

from flux_dashboard.errors import SchemaError
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS, to_frame

REFERENCE_ROW = {  # the row of the vendor's reference page, verbatim
    "start_of_hour": "2024-07-23T07:00:00.000Z", "ip0": "192.168.1.10", "ip1": "3.219.173.44",
    "dir": "OUT", "protocol": "TCP", "port": 443, "occurrences": 1,
    "duration": {"minutes": 35, "seconds": 10, "milliseconds": 13},
    "timestamps": [["2024-07-23T07:14:01.854Z", "2024-07-23T07:49:11.867Z"]],
    "last_netbios": "TV", "netbios_list": ["TV"], "last_mac_address": "d8:e0:e1:69:d8:df",
    "mac_address_list": ["d8:e0:e1:69:d8:df"], "out_flux": "1260", "in_flux": "0",
    "filtered": False, "toxic": False, "bruteforce": False, "command_center": False,
    "hcard": False, "military": False, "tor_node": False, "trojan": False, "sip": False,
    "supply_chain_compromise": False, "video": False,
    "custom_ip0": {"id": 1341, "sensor_id": 54, "ip0": "192.168.1.10", "name": "Télé salon",
                   "icon": "i-lucide-monitor-smartphone", "is_critical": False,
                   "category": None, "created_at": "2024-02-12T18:17:28.561946+01:00",
                   "updated_at": "2024-08-01T16:25:11.408+02:00"},
    "vendor": "Samsung Electronics Co.,Ltd",
}


def row(**changes):
    r = copy.deepcopy(REFERENCE_ROW)
    for k, v in changes.items():
        if v is ...:
            r.pop(k)
        else:
            r[k] = v
    return r


def test_reference_row():
    df = to_frame([REFERENCE_ROW])
    assert df.schema == FLOW_SCHEMA
    r = df.row(0, named=True)
    assert r["start_of_hour"] == datetime(2024, 7, 23, 7, tzinfo=UTC)
    assert r["port"] == 443 and r["occurrences"] == 1
    assert r["duration_s"] == pytest.approx(35 * 60 + 10 + 0.013)
    assert r["first_seen"] == datetime(2024, 7, 23, 7, 14, 1, 854000, tzinfo=UTC)
    assert r["last_seen"] == datetime(2024, 7, 23, 7, 49, 11, 867000, tzinfo=UTC)
    assert (r["out_bytes"], r["in_bytes"]) == (1260, 0)
    assert r["device_name"] == "Télé salon" and r["netbios"] == "TV"
    assert r["mac_address"] == "d8:e0:e1:69:d8:df" and r["vendor"].startswith("Samsung")
    assert r["is_critical"] is False and r["toxic"] is False


def test_quirks_volumes_as_numbers_big_values_null_port_absent_vendor():
    rows = [
        row(out_flux=1260, in_flux=3_000_000_000),  # numbers, older API; > 2**31
        row(ip1="1.1.1.1", protocol="ICMP", port=None, vendor=...),
        row(ip1="8.8.8.8", custom_ip0=None),
        row(ip1="8.8.4.4", custom_ip0=None, last_netbios=None),
        row(ip1="9.9.9.9", duration={}),
        row(ip1="9.9.9.10", duration={"hours": 1, "milliseconds": 37}),
        row(ip1="9.9.9.11", out_flux="5000000000", in_flux="12"),
    ]
    df = to_frame(rows)
    assert df["in_bytes"].to_list()[0] == 3_000_000_000
    assert df["out_bytes"].to_list()[-1] == 5_000_000_000
    assert df["port"][1] is None and df["vendor"][1] is None
    assert df["device_name"].to_list()[2:4] == ["TV", "192.168.1.10"]  # netbios, then ip0
    assert df["is_critical"][2] is False
    assert df["duration_s"].to_list()[4:6] == [0.0, pytest.approx(3600.037)]


def test_booleans_as_strings_and_flags():
    df = to_frame([row(toxic="true", command_center="1", filtered="false")])
    assert df["toxic"][0] is True and df["command_center"][0] is True
    assert df["filtered"][0] is False
    assert all(df[f].dtype == pl.Boolean for f in THREAT_FLAGS)


def test_multiple_sessions_and_offsets():
    ts = [["2024-07-23T07:30:00.000Z", "2024-07-23T07:31:00.000Z"],
          ["2024-07-23T09:05:00+02:00", "2024-07-23T09:10:00+02:00"]]  # 07:05Z-07:10Z
    r = to_frame([row(timestamps=ts, occurrences=2)]).row(0, named=True)
    assert r["first_seen"] == datetime(2024, 7, 23, 7, 5, tzinfo=UTC)
    assert r["last_seen"] == datetime(2024, 7, 23, 7, 31, tzinfo=UTC)


def test_html_names_are_kept_verbatim():
    name = "<img src=x onerror=alert(1)>"
    custom = dict(REFERENCE_ROW["custom_ip0"], name=name, is_critical=True)
    r = to_frame([row(custom_ip0=custom)]).row(0, named=True)
    assert r["device_name"] == name and r["is_critical"] is True


def test_empty_input():
    df = to_frame([])
    assert df.height == 0 and df.schema == FLOW_SCHEMA


@pytest.mark.parametrize("changes,column,value", [
    ({"out_flux": "12kb"}, "out_flux", "12kb"),
    ({"in_flux": "-"}, "in_flux", "-"),
    ({"port": "https"}, "port", "https"),
    ({"occurrences": "many"}, "occurrences", "many"),
    ({"start_of_hour": "yesterday"}, "start_of_hour", "yesterday"),
    ({"toxic": "maybe"}, "toxic", "maybe"),
    ({"duration": "00:35:10"}, "duration", "00:35:10"),
    ({"dir": "SIDEWAYS"}, "dir", "SIDEWAYS"),
])
def test_strict_errors_name_column_and_value(changes, column, value):
    with pytest.raises(SchemaError) as info:
        to_frame([REFERENCE_ROW, row(ip1="4.4.4.4", **changes)])
    assert info.value.column == column and info.value.value == value
    assert column in str(info.value) and str(value) in str(info.value)


def test_missing_required_field():
    with pytest.raises(SchemaError, match="ip1"):
        to_frame([row(ip1=...)])


def test_bad_timestamps():
    with pytest.raises(SchemaError, match="timestamps"):
        to_frame([row(timestamps=[["not a date", "either"]])])


def test_not_objects():
    with pytest.raises(SchemaError):
        to_frame(["a string"])
