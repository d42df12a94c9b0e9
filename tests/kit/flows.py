"""Hand-built flow frames: rows of ``FLOW_SCHEMA`` with defaults for whatever a test
does not care about (one OUT TCP/443 flow of 192.168.1.10 to 8.8.8.8 at T0, no
bytes, not toxic; the device named after its IP)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)  # a Monday, 11:00 in Paris (CET)


def make_flows(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "start_of_hour": T0, "ip0": "192.168.1.10", "ip1": "8.8.8.8", "dir": "OUT",
        "protocol": "TCP", "port": 443, "occurrences": 1, "duration_s": 1.0,
        "first_seen": None, "last_seen": None, "out_bytes": 0, "in_bytes": 0,
        "filtered": False, "toxic": False, **dict.fromkeys(THREAT_FLAGS, False),
        "device_name": None, "custom_name": None, "netbios": None, "mac_address": None,
        "vendor": None, "is_critical": False, "device_category": None,
    }
    full = [{**defaults, **r} for r in rows]
    for row in full:
        row["device_name"] = row["device_name"] or row["ip0"]
    return pl.from_dicts(full, schema=FLOW_SCHEMA)
