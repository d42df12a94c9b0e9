"""The demo world as the suites check it: its sensors, the days they open, ground truth.

Everything here is derived from ``clock.PINNED`` (never from the wall clock):
``FIXED_DAY`` is a closed local day three days before it, ``INCIDENT_DAY`` the
planted incident's last brute-force day (also a beacon day: toxic flows both
ways). ``rows`` reads the API rows of a window from a separate simulator at the
pinned clock, the ground truth the pages are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from functools import cache

import polars as pl
from streamlit.testing.v1 import AppTest

from flux_dashboard.geo import with_country
from flux_dashboard.schema import to_frame
from tests.kit.apptest import (
    DEVICES,
    HUNTING,
    MAIN,
    OVERVIEW,
    PROTOCOLS,
    REMOTES,
    TOXIC,
    said,
    table_with,
    truth,
)
from tests.kit.clock import PARIS, PLAN, local_days, today

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
LEVELS = ["Clear", "Light", "Moderate", "Severe", "Critical"]
# The four threat flags the vendor's glossary calls critical (written out here, not
# imported: the expectation must not come from the code under test).
CRITICAL_FLAGS = ("command_center", "trojan", "supply_chain_compromise", "hcard")
KNOWN_NAMES = ("PC-Compta", "NAS-Synology", "SRV-AD01")
SENSOR_NAMES = ("Cabinet Martin", "Pharmacie du Port")
ORIGINAL_IP = re.compile(r"(?<![\d.])(?:192\.168\.1|10\.0\.0|10\.0\.1)\.\d{1,3}(?![\d])")
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)")
MAC = re.compile(r"(?<![0-9a-f:-])[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}(?![0-9a-f:-])", re.I)

# A past local day whose hours are closed at PINNED.
FIXED_DAY = today(PARIS) - timedelta(days=3)
# Ordinary days are quiet (they may hold no toxic OUT flow, or no toxic flow at all):
# tests that need toxic flows of both directions open the last brute-force day, a
# beacon day too (toxic OUT from the PC, critical; toxic IN brute force, mostly not).
INCIDENT_DAY = PLAN.day(PLAN.bruteforce_days[-1])
assert PLAN.bruteforce_days[-1] in PLAN.beacon_days


def unexpected_errors(at: AppTest, page: str) -> list[str]:
    """Error boxes of a run that are not findings shown by design."""
    allowed = FINDING_ERRORS.get(page)
    return [e for e in said(at.error) if not (allowed and allowed.search(e))]


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


def toxic_flow_table(at: AppTest):
    return table_with(at, {"time", "ip1", "dir", "threats"})


def digest_bullets(at: AppTest) -> list[str]:
    """The Overview's "What changed" sentences, as markdown bullets."""
    return [md.value for md in at.markdown if md.value.startswith("- ")]


def expected_digest(day: date) -> list[str]:
    """The digest bullets of ``day`` against a week before, from the ground truth."""
    from flux_dashboard.digest import digest
    from flux_dashboard.escaping import escape_markdown

    prev = day - timedelta(days=7)
    dg = digest(frame_of(day_rows(day)), frame_of(day_rows(prev)), "Europe/Paris", day, prev)
    return ["- " + escape_markdown(s) for s in dg.sentences]


def hand_level(cyt: int) -> int:
    """The vendor's scale for one day: 0, 1-5, 6-10, 11-99, 100 and more."""
    return 0 if cyt == 0 else 1 if cyt <= 5 else 2 if cyt <= 10 else 3 if cyt <= 99 else 4


@cache
def _truth():
    return truth()


@cache
def rows(start, end, sensor: int = MAIN) -> list[dict]:
    """API rows of [start, end) for a sensor, straight from the ground truth."""
    return _truth().rows(sensor, start, end)


def day_rows(day: date = FIXED_DAY, days: int = 1, zone=PARIS, sensor: int = MAIN
             ) -> list[dict]:
    """The ground truth's rows of whole local days."""
    return rows(*local_days(day, days, zone), sensor=sensor)


def frame_of(api_rows: list[dict]) -> pl.DataFrame:
    """Rows as the app prepares them (schema, then countries), for analysis functions."""
    return with_country(to_frame(api_rows), "ip1")


def count(api_rows: list[dict], pred: Callable[[dict], bool]) -> int:
    return sum(1 for r in api_rows if pred(r))
