"""Hand-built flow frames for the unit tests of the analyses (hunting, digest).

``row(**kw)`` is one flow of ``schema.FLOW_SCHEMA`` with plain defaults (an OUT
flow of 192.168.1.10 to 8.8.8.8 at 10:00 UTC on Tue 24 Nov 2026, nothing toxic);
``frame(*rows)`` builds the frame; ``EMPTY`` has the schema and no row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS


def utc(y, mo, d, hh, mi=0):
    return datetime(y, mo, d, hh, mi, tzinfo=UTC)


def row(**kw):
    base = {
        "start_of_hour": utc(2026, 11, 24, 10),
        "ip0": "192.168.1.10",
        "ip1": "8.8.8.8",
        "dir": "OUT",
        "protocol": "TCP",
        "port": 443,
        "occurrences": 1,
        "duration_s": 1.0,
        "first_seen": None,
        "last_seen": None,
        "out_bytes": 0,
        "in_bytes": 0,
        "filtered": False,
        "toxic": False,
        **{f: False for f in THREAT_FLAGS},
        "device_name": None,
        "custom_name": None,
        "netbios": None,
        "mac_address": None,
        "vendor": None,
        "is_critical": False,
        "device_category": None,
    }
    base.update(kw)
    if base["device_name"] is None:
        base["device_name"] = base["ip0"]
    return base


def frame(*rows):
    return pl.DataFrame(list(rows), schema=FLOW_SCHEMA)


EMPTY = pl.DataFrame(schema=FLOW_SCHEMA)
