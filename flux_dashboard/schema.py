"""The data contract: API flux rows -> one typed polars frame.

``to_frame(rows)`` turns the JSON rows of ``GET /sensors/:id/flux`` into a
frame with exactly ``FLOW_SCHEMA``. It survives every documented quirk
(volumes as strings or numbers, interval objects with omitted parts, null
ports, absent ``vendor``, null ``custom_ip0``) and is strict about the rest: a
value that cannot be converted raises ``SchemaError`` naming the column and the
value, never a silent null or zero.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from flux_dashboard.errors import SchemaError

UTC_US = pl.Datetime("us", "UTC")

# Threat flags under their API names, most dangerous first. The vendor's
# glossary calls four of them critical ("hcard" is its known-attacker list).
THREATS: dict[str, dict[str, Any]] = {
    "command_center": {"label": "Command center (C2)", "critical": True},
    "trojan": {"label": "Trojan horse", "critical": True},
    "supply_chain_compromise": {"label": "Supply-chain compromise", "critical": True},
    "hcard": {"label": "Known attacker", "critical": True},
    "bruteforce": {"label": "Bruteforce", "critical": False},
    "tor_node": {"label": "Tor node", "critical": False},
    "military": {"label": "Military", "critical": False},
    "sip": {"label": "SIP abuse", "critical": False},
    "video": {"label": "Video surveillance", "critical": False},
}
THREAT_FLAGS: tuple[str, ...] = tuple(THREATS)
CRITICAL_THREATS: tuple[str, ...] = tuple(k for k, v in THREATS.items() if v["critical"])

NATURAL_KEY: tuple[str, ...] = ("start_of_hour", "ip0", "ip1", "dir", "protocol", "port")

FLOW_SCHEMA = pl.Schema(
    {
        "start_of_hour": UTC_US,
        "ip0": pl.String,
        "ip1": pl.String,
        "dir": pl.String,
        "protocol": pl.String,
        "port": pl.Int32,
        "occurrences": pl.Int64,
        "duration_s": pl.Float64,
        "first_seen": UTC_US,
        "last_seen": UTC_US,
        "out_bytes": pl.Int64,
        "in_bytes": pl.Int64,
        "filtered": pl.Boolean,
        "toxic": pl.Boolean,
        **{flag: pl.Boolean for flag in THREAT_FLAGS},
        "device_name": pl.String,
        "custom_name": pl.String,
        "netbios": pl.String,
        "mac_address": pl.String,
        "vendor": pl.String,
        "is_critical": pl.Boolean,
        "device_category": pl.String,
    }
)

_INTERVAL_PARTS = {
    "years": 365 * 86400.0,
    "months": 30 * 86400.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}

# What we read from the JSON. Scalars whose type varies between API versions
# (volumes, ports, booleans) are read as strings and converted below, so that
# one code path handles "1260", 1260 and true/"true" alike.
_RAW_SCHEMA = {
    "start_of_hour": pl.String,
    "ip0": pl.String,
    "ip1": pl.String,
    "dir": pl.String,
    "protocol": pl.String,
    "port": pl.String,
    "occurrences": pl.String,
    "duration": pl.Struct({k: pl.Float64 for k in _INTERVAL_PARTS}),
    "timestamps": pl.List(pl.List(pl.String)),
    "last_netbios": pl.String,
    "last_mac_address": pl.String,
    "out_flux": pl.String,
    "in_flux": pl.String,
    "filtered": pl.String,
    "toxic": pl.String,
    **{flag: pl.String for flag in THREAT_FLAGS},
    "custom_ip0": pl.Struct(
        {"name": pl.String, "is_critical": pl.String, "category": pl.String}
    ),
    "vendor": pl.String,
}
_REQUIRED = ("start_of_hour", "ip0", "ip1", "dir", "protocol", "occurrences",
             "out_flux", "in_flux", "toxic")
_BOOL_COLUMNS = ("filtered", "toxic", *THREAT_FLAGS)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=FLOW_SCHEMA)


# Columns whose values repeat from row to row: a month of a busy sensor has about
# 1.2 M rows but a few hundred devices, a few thousand remotes, two directions and a
# handful of protocols, vendors and countries. As ``String`` each costs at least
# 16 bytes a row (a string view) plus the text; as ``Categorical`` 4 bytes a row and
# the text once, in polars' shared category mapping (which grows with the distinct
# values seen, not with the rows).
COMPACT_COLUMNS: tuple[str, ...] = (
    "ip0", "ip1", "dir", "protocol", "device_name", "custom_name", "netbios",
    "mac_address", "vendor", "device_category",
    # added by geo.with_country / with_owner when a frame is prepared for the pages
    "country_code", "country", "iso3", "owner", "owner_net")


# Bytes a loaded row takes in memory, compact and with countries and owners added
# (``make bench``: 116 MB per million rows on the dense month), rounded up.
COMPACT_ROW_BYTES = 125


def compact(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its repeated-string columns as ``pl.Categorical`` (same values).

    What the dashboard holds in memory; the disk cache, the API contract
    (``FLOW_SCHEMA``) and exports keep ``String``. Every analysis gives the same
    results on either (``tests/test_compact.py`` checks this function by function).
    """
    cols = [c for c in COMPACT_COLUMNS if df.schema.get(c) == pl.String]
    return df.with_columns(pl.col(cols).cast(pl.Categorical)) if cols else df


def _bool(col: str) -> pl.Expr:
    s = pl.col(col).str.to_lowercase()
    return (
        pl.when(s.is_in(["true", "1", "t"])).then(True)
        .when(s.is_in(["false", "0", "f"])).then(False)
        .otherwise(None)
        .alias(col)
    )


def _first_bad(rows: list[dict], parsed: pl.Series, key: str):
    """The first raw value that is present in the JSON but became null."""
    for i in parsed.is_null().arg_true().to_list():
        raw = rows[i].get(key)
        if raw is not None:
            return raw
    return None


def to_frame(rows: list[dict]) -> pl.DataFrame:
    """Normalise API flux rows into ``FLOW_SCHEMA`` (strict)."""
    if not rows:
        return empty_frame()
    if not all(isinstance(r, dict) for r in rows):
        raise SchemaError("The API returned a flux row that is not a JSON object.")
    try:
        raw = pl.from_dicts(rows, schema=_RAW_SCHEMA)
    except Exception as exc:  # polars says which value it could not append
        raise SchemaError(f"The API returned flux rows of an unexpected shape: {exc}") from exc

    for col in _REQUIRED:
        if raw[col].null_count():
            bad = next((i for i, r in enumerate(rows) if r.get(col) is None), 0)
            raise SchemaError(
                f"Flux row {bad} has no value for required field '{col}'.", column=col
            )
    # A struct field given a non-object (e.g. an interval as text) reads as null.
    for col in ("duration", "custom_ip0"):
        if raw[col].null_count():
            bad = _first_bad(rows, raw[col], col)
            if bad is not None:
                raise SchemaError(
                    f"Field '{col}' has an unexpected value {bad!r} (expected an object).",
                    column=col, value=bad,
                )

    def ts_first(i: int) -> pl.Expr:
        return pl.element().list.get(i, null_on_oob=True).str.to_datetime(
            time_zone="UTC", time_unit="us", strict=False)

    custom = pl.col("custom_ip0")
    custom_name = custom.struct.field("name").str.strip_chars()
    custom_name = pl.when(custom_name != "").then(custom_name).alias("custom_name")
    netbios = pl.col("last_netbios").str.strip_chars()
    duration = pl.sum_horizontal(
        pl.col("duration").struct.field(k).fill_null(0.0) * f for k, f in _INTERVAL_PARTS.items()
    )
    out = raw.select(
        pl.col("start_of_hour").str.to_datetime(time_zone="UTC", time_unit="us", strict=False),
        "ip0", "ip1", pl.col("dir").str.to_uppercase(), pl.col("protocol").str.to_uppercase(),
        pl.col("port").cast(pl.Float64, strict=False).cast(pl.Int32, strict=False),
        pl.col("occurrences").cast(pl.Float64, strict=False).cast(pl.Int64, strict=False),
        pl.when(pl.col("duration").is_null()).then(None).otherwise(duration).alias("duration_s"),
        pl.col("timestamps").list.eval(ts_first(0)).list.min().alias("first_seen"),
        pl.col("timestamps").list.eval(ts_first(1)).list.max().alias("last_seen"),
        pl.col("out_flux").cast(pl.Int64, strict=False).alias("out_bytes"),
        pl.col("in_flux").cast(pl.Int64, strict=False).alias("in_bytes"),
        *(_bool(c) for c in _BOOL_COLUMNS),
        pl.coalesce(custom_name, pl.when(netbios != "").then(netbios), pl.col("ip0"))
        .alias("device_name"),
        custom_name,
        pl.col("last_netbios").alias("netbios"),
        pl.col("last_mac_address").str.to_lowercase().alias("mac_address"),
        "vendor",
        custom.struct.field("is_critical").str.to_lowercase()
        .is_in(["true", "1", "t"]).fill_null(False).alias("is_critical"),
        custom.struct.field("category").alias("device_category"),
    )

    checks = {
        "start_of_hour": "start_of_hour", "port": "port", "occurrences": "occurrences",
        "out_bytes": "out_flux", "in_bytes": "in_flux", **{c: c for c in _BOOL_COLUMNS},
    }
    for col, key in checks.items():
        if out[col].null_count():
            bad = _first_bad(rows, out[col], key)
            if bad is not None:
                raise SchemaError(
                    f"Field '{key}' has a value that is not a valid {FLOW_SCHEMA[col]}: {bad!r}.",
                    column=key, value=bad,
                )
    for col, key in (("first_seen", "timestamps"), ("last_seen", "timestamps")):
        bad_rows = out[col].is_null() & raw["timestamps"].list.len().fill_null(0).gt(0)
        if bad_rows.any():
            i = bad_rows.arg_true()[0]
            bad = rows[i].get(key)
            raise SchemaError(
                f"Field 'timestamps' is not a list of ISO datetime pairs: {bad!r}.",
                column=key, value=bad,
            )
    bad_dir = out.filter(~pl.col("dir").is_in(["IN", "OUT"]))
    if bad_dir.height:
        raise SchemaError(f"Field 'dir' must be IN or OUT, got {bad_dir['dir'][0]!r}.",
                          column="dir", value=bad_dir["dir"][0])
    for col in ("out_bytes", "in_bytes", "occurrences"):
        neg = out.filter(pl.col(col) < 0)
        if neg.height:
            raise SchemaError(f"Field '{col}' must not be negative, got {neg[col][0]}.",
                              column=col, value=neg[col][0])
    return out.cast(dict(FLOW_SCHEMA)).select(FLOW_SCHEMA.names())
