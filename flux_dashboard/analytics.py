"""Pure polars aggregations over the normalised flow frame (``FLOW_SCHEMA``).

Every function takes the flow frame plus plain parameters and returns a small
frame (or a dict for the KPIs). An empty input gives an empty frame with the
same columns, never an exception. Vocabulary:

- a *flow* is one row (one hour x device x remote x direction x protocol x port);
- *sessions* are ``sum(occurrences)``; ``bytes_in``/``bytes_out`` are the
  sums of ``in_bytes``/``out_bytes`` and ``bytes`` is their total;
- toxic IN/OUT are toxic rows by direction and ``cyT = 1 x IN + 10 x OUT``;
- a threat flag only counts on a toxic row; a toxic row with no flag is
  "Unqualified".

Times are stored in UTC. Functions that bucket by time take an IANA ``tz``
and bucket in the sensor's local time; their ``bucket`` column is a
tz-aware ``Datetime("us", tz)``. Functions returning timestamps take an
optional ``tz`` to convert them (UTC otherwise).

Ranked breakdowns (``top_*``) keep the ``top`` largest categories and fold
the rest into one ``"Others"`` row (always last; its key column - ip0, ip1,
protocol or port_label - is "Others"), with ``members`` saying how many
categories each row stands for. Counts of distinct values (devices, remotes)
cannot be added up, so they are null on the Others row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from flux_dashboard.escaping import one_line
from flux_dashboard.geo import with_country, with_owner
from flux_dashboard.schema import CRITICAL_THREATS, THREAT_FLAGS, THREATS

OTHERS = "Others"
UNQUALIFIED = "Unqualified"

# (minimum cyT, level, name, colour), mildest first.
CYBERWEATHER_LEVELS: list[tuple[int, int, str, str]] = [
    (0, 0, "Clear", "#2e9e5b"),
    (1, 1, "Light", "#f2c94c"),
    (6, 2, "Moderate", "#f2994a"),
    (11, 3, "Severe", "#d64545"),
    (100, 4, "Critical", "#6b1238"),
]
LEVEL_NAMES: dict[int, str] = {lvl: name for _, lvl, name, _ in CYBERWEATHER_LEVELS}
LEVEL_COLOURS: dict[int, str] = {lvl: colour for _, lvl, _, colour in CYBERWEATHER_LEVELS}


def _level_ranges() -> dict[int, str]:
    out = {}
    for i, (lower, lvl, _, _) in enumerate(CYBERWEATHER_LEVELS):
        nxt = CYBERWEATHER_LEVELS[i + 1][0] if i + 1 < len(CYBERWEATHER_LEVELS) else None
        out[lvl] = (f"{lower}+" if nxt is None else str(lower) if nxt == lower + 1
                    else f"{lower}–{nxt - 1}")
    return out


# The cyT each level covers: {0: "0", 1: "1–5", 2: "6–10", 3: "11–99", 4: "100+"}.
LEVEL_RANGES: dict[int, str] = _level_ranges()
# How a level is computed, in one sentence (help texts, the evidence report).
CYBERWEATHER_RULE = (
    "A level rates one local day (or hour) of the sensor: cyT = 1 × toxic IN flows + "
    "10 × toxic OUT flows, then "
    + ", ".join(f"{LEVEL_RANGES[lvl]} {name}" for lvl, name in LEVEL_NAMES.items())
    + "."
)

# Cybercarbon (the vendor's figures): gCO2e per GB of traffic, and per km driven.
FIXED_G_PER_GB = 18.0
MOBILE_G_PER_GB = 50.0
CAR_G_PER_KM = 198.0

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Well-known services, only to make port labels readable.
SERVICES: dict[int, str] = {
    20: "FTP-data", 21: "FTP", 22: "SSH", 23: "Telnet", 25: "SMTP", 53: "DNS", 67: "DHCP",
    68: "DHCP", 69: "TFTP", 80: "HTTP", 110: "POP3", 123: "NTP", 137: "NetBIOS",
    138: "NetBIOS", 139: "NetBIOS", 143: "IMAP", 161: "SNMP", 389: "LDAP", 443: "HTTPS",
    445: "SMB", 465: "SMTPS", 500: "IKE", 514: "Syslog", 587: "SMTP-sub", 636: "LDAPS",
    853: "DoT", 993: "IMAPS", 995: "POP3S", 1194: "OpenVPN", 1433: "MSSQL", 1883: "MQTT",
    1900: "SSDP", 3306: "MySQL", 3389: "RDP", 3478: "STUN", 4500: "IPsec NAT-T",
    5060: "SIP", 5061: "SIP-TLS", 5222: "XMPP", 5353: "mDNS", 5432: "PostgreSQL",
    5900: "VNC", 8080: "HTTP-alt", 8443: "HTTPS-alt", 8883: "MQTT-TLS",
}

_BY_VOLUME = ("bytes", "bytes_in", "bytes_out", "flows", "toxic_flows")


# ---------------------------------------------------------------------------
# Expression helpers
# ---------------------------------------------------------------------------

def _toxic() -> pl.Expr:
    return pl.col("toxic").fill_null(False)


def _threat(flag: str) -> pl.Expr:
    """A threat flag, counted only on toxic rows."""
    return pl.col(flag).fill_null(False) & _toxic()


def _is_in() -> pl.Expr:
    return pl.col("dir") == "IN"


def _is_out() -> pl.Expr:
    return pl.col("dir") == "OUT"


def _count(expr: pl.Expr) -> pl.Expr:
    """Number of rows where a boolean expression holds, as Int64."""
    return expr.sum().cast(pl.Int64)


def _local(tz: str) -> pl.Expr:
    return pl.col("start_of_hour").dt.convert_time_zone(tz)


def _per_hour(df: pl.DataFrame, parts: dict[str, pl.Expr]) -> pl.DataFrame:
    """``parts`` (sums and counts, as Int64) per ``start_of_hour``.

    Flows are hourly: a month of a busy sensor has 1.2 M rows but 744 distinct
    hours. Aggregating per UTC hour first, then converting those few hours to
    local time and summing them into local buckets, gives the same sums as
    converting every row, for a fraction of the time and memory. Only additive
    parts belong here (a sum of sums is the sum; a maximum or a distinct count is
    not).
    """
    return df.group_by("start_of_hour").agg(
        expr.cast(pl.Int64).alias(name) for name, expr in parts.items())


def _sum_by(hourly: pl.DataFrame, *keys: pl.Expr) -> pl.DataFrame:
    cols = [c for c in hourly.columns if c != "start_of_hour"]
    return hourly.group_by(*keys).agg(pl.col(cols).sum())


def _volume_aggs() -> list[pl.Expr]:
    return [
        pl.col("in_bytes").sum().alias("bytes_in"),
        pl.col("out_bytes").sum().alias("bytes_out"),
        pl.len().cast(pl.Int64).alias("flows"),
        _count(_toxic()).alias("toxic_flows"),
    ]


def flag_aggs() -> list[pl.Expr]:
    """Per group: was each threat flag seen on a toxic row."""
    return [_threat(f).any().alias(f) for f in THREAT_FLAGS]


def _bytes_total() -> pl.Expr:
    return (pl.col("bytes_in") + pl.col("bytes_out")).alias("bytes")


def _latest(col: str) -> pl.Expr:
    """Per group: the most recent non-null value of ``col``."""
    return pl.col(col).sort_by("start_of_hour").drop_nulls().last().alias(col)


def _first_time() -> pl.Expr:
    return pl.coalesce("first_seen", "start_of_hour").min().alias("first_seen")


def _last_time() -> pl.Expr:
    return pl.coalesce("last_seen", "start_of_hour").max().alias("last_seen")


def _in_tz(cols: Iterable[str], tz: str | None) -> list[pl.Expr]:
    return [] if tz is None else [pl.col(c).dt.convert_time_zone(tz) for c in cols]


_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(n: float | int | None) -> str:
    """Decimal byte size: 0 → '0 B', 1_234 → '1.2 KB', 4.8e9 → '4.8 GB'; None → ''."""
    if n is None:
        return ""
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 1000:
        return f"{sign}{value:.0f} B"
    for unit in _BYTE_UNITS[1:]:
        value /= 1000.0
        if value < 999.95 or unit == _BYTE_UNITS[-1]:
            return f"{sign}{value:.1f} {unit}"
    raise AssertionError("unreachable")


def cyt_of(toxic_in, toxic_out):
    """cyT = 1 x toxic IN flows + 10 x toxic OUT flows (the vendor's definition).

    The one place the formula is written: takes ints (gives an int) or polars
    columns or expressions (gives an expression).
    """
    return toxic_in + 10 * toxic_out


def cyt_expr(toxic_in: str = "toxic_in", toxic_out: str = "toxic_out") -> pl.Expr:
    """:func:`cyt_of` of two columns, as the Int64 column ``cyt``."""
    return cyt_of(pl.col(toxic_in), pl.col(toxic_out)).cast(pl.Int64).alias("cyt")


def cyt_level(cyt: int | None) -> int:
    """Cyberweather level 0-4 of a cyT value (0 Clear ... 4 Critical)."""
    level = 0
    for lower, lvl, _, _ in CYBERWEATHER_LEVELS:
        if cyt is not None and cyt >= lower:
            level = lvl
    return level


def cyt_level_expr(cyt: str | pl.Expr = "cyt") -> pl.Expr:
    """Polars version of :func:`cyt_level` (Int64 column ``level``)."""
    c = pl.col(cyt) if isinstance(cyt, str) else cyt
    expr = pl.lit(0, pl.Int64)
    for lower, lvl, _, _ in CYBERWEATHER_LEVELS[1:]:
        expr = pl.when(c >= lower).then(pl.lit(lvl, pl.Int64)).otherwise(expr)
    return expr.alias("level")


def level_name_expr(level: str | pl.Expr = "level") -> pl.Expr:
    c = pl.col(level) if isinstance(level, str) else level
    return c.replace_strict(LEVEL_NAMES, default=None, return_dtype=pl.String).alias("level_name")


def threat_label_expr(toxic: pl.Expr | None = None) -> pl.Expr:
    """Comma-separated labels of the threat flags that are set, most dangerous first.

    Works on flow rows and on aggregates that carry one boolean column per
    flag (see ``flag_aggs``). ``toxic`` tells whether the row/group is toxic
    (default: the ``toxic`` column): toxic with no flag gives "Unqualified",
    non-toxic gives "".
    """
    toxic = _toxic() if toxic is None else toxic
    labels = pl.concat_str(
        [pl.when(pl.col(f).fill_null(False)).then(pl.lit(THREATS[f]["label"]))
         for f in THREAT_FLAGS],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        pl.when(labels != "").then(labels)
        .when(toxic).then(pl.lit(UNQUALIFIED))
        .otherwise(pl.lit(""))
        .alias("threats")
    )


def critical_expr() -> pl.Expr:
    """True where any critical threat flag is set (rows or flag aggregates)."""
    return pl.any_horizontal([pl.col(f).fill_null(False) for f in CRITICAL_THREATS]).alias(
        "critical"
    )


def device_label_expr(name: str = "device_name", ip: str = "ip0") -> pl.Expr:
    """``name (ip)`` where the name differs from the IP, else the IP."""
    n, i = pl.col(name), pl.col(ip)
    return (
        pl.when(n.is_null() | (n == i)).then(i)
        .otherwise(pl.concat_str(n, pl.lit(" ("), i, pl.lit(")")))
        .alias("label")
    )


def device_label(ip0: str | None, name: str | None) -> str:
    """'NAS (192.168.1.20)', or just the IP when the device has no name: the label of
    :func:`device_label_expr` for one device, as one line of plain text (sentences,
    the evidence pack's README)."""
    ip = one_line(ip0)
    nm = one_line(name)
    return ip if not nm or nm == ip else f"{nm} ({ip})"


def port_label_expr() -> pl.Expr:
    """The port number as text, or the protocol name when there is no port (ICMP)."""
    return (
        pl.when(pl.col("port").is_null()).then(pl.col("protocol"))
        .otherwise(pl.col("port").cast(pl.String))
        .alias("port_label")
    )


def direction_filter(direction: str = "all") -> pl.Expr:
    d = direction.upper()
    if d == "ALL":
        return pl.lit(True)
    if d in ("IN", "OUT"):
        return pl.col("dir") == d
    raise ValueError(f"direction must be 'all', 'IN' or 'OUT', not {direction!r}")


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------

def _rank_and_fold(
    agg: pl.DataFrame,
    *,
    top: int,
    by: str,
    key: str,
    sum_cols: Sequence[str],
    any_cols: Sequence[str] = (),
    others: dict[str, object] | None = None,
) -> pl.DataFrame:
    """Sort by ``by`` (desc, ties by ``key``), keep ``top`` rows, fold the rest into Others."""
    agg = agg.sort([by, key], descending=[True, False], nulls_last=True)
    agg = agg.with_columns(pl.lit(1, pl.Int64).alias("members"))
    if agg.height <= max(top, 0):
        return agg
    rest = agg.slice(top).select(
        *[pl.col(c).sum() for c in sum_cols],
        *[pl.col(c).any() for c in any_cols],
        pl.len().cast(pl.Int64).alias("members"),
    )
    fill = {key: OTHERS, **(others or {})}
    rest = rest.with_columns(pl.lit(v).alias(k) for k, v in fill.items())
    rest = rest.select(
        pl.col(c).cast(agg.schema[c]) if c in rest.columns else pl.lit(None, agg.schema[c])
        .alias(c)
        for c in agg.columns
    )
    return pl.concat([agg.head(top), rest], how="vertical")


def _fill_buckets(agg: pl.DataFrame, every: str, zero_cols: Sequence[str]) -> pl.DataFrame:
    """Add the missing time buckets between the first and the last one, as zeros."""
    if agg.is_empty():
        return agg.sort("bucket")
    grid = agg.select(
        pl.datetime_range(pl.col("bucket").min(), pl.col("bucket").max(), every).alias("bucket")
    )
    return (
        grid.join(agg, on="bucket", how="left", maintain_order="left")
        .with_columns(pl.col(c).fill_null(0) for c in zero_cols)
        .sort("bucket")
    )


def _with_levels(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(cyt_expr()).with_columns(cyt_level_expr()).with_columns(
        level_name_expr()
    )


# ---------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------

def kpis(df: pl.DataFrame, tz: str | None = None) -> dict:
    """Headline numbers; ``first_hour``/``last_hour`` are datetimes (UTC unless ``tz``).

    ``cyt`` is the range's total; it is never mapped onto the cyberweather
    scale, which rates one day or hour.
    """
    row = df.select(
        pl.len().cast(pl.Int64).alias("flows"),
        pl.col("occurrences").sum().alias("sessions"),
        pl.col("in_bytes").sum().alias("bytes_in"),
        pl.col("out_bytes").sum().alias("bytes_out"),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        pl.col("ip1").n_unique().cast(pl.Int64).alias("remote_hosts"),
        _count(_toxic() & _is_in()).alias("toxic_in"),
        _count(_toxic() & _is_out()).alias("toxic_out"),
        _count(_toxic()).alias("toxic_flows"),
        pl.col("start_of_hour").min().alias("first_hour"),
        pl.col("start_of_hour").max().alias("last_hour"),
    ).with_columns(_in_tz(["first_hour", "last_hour"], tz))
    out = row.row(0, named=True)
    # The range's cyT is a total, not a level: levels rate a day or an hour
    # (see ``cyberweather_summary``).
    out["cyt"] = cyt_of(out["toxic_in"], out["toxic_out"])
    return out


def auto_every(df: pl.DataFrame) -> str:
    """"1h" when the data spans at most 3 days, else "1d"."""
    lo, hi = df.select(
        pl.col("start_of_hour").min().alias("lo"), pl.col("start_of_hour").max().alias("hi")
    ).row(0)
    if lo is None or (hi - lo).total_seconds() <= 3 * 86400:
        return "1h"
    return "1d"


def traffic_over_time(df: pl.DataFrame, tz: str, every: str = "1h") -> pl.DataFrame:
    """Per local time bucket: bytes_in, bytes_out, toxic_bytes, flows, toxic_flows (no gaps).

    ``every`` is a polars duration ("1h", "1d", "1w") or "auto" (see ``auto_every``).
    """
    if every == "auto":
        every = auto_every(df)
    hourly = _per_hour(df, {
        "bytes_in": pl.col("in_bytes").sum(),
        "bytes_out": pl.col("out_bytes").sum(),
        "toxic_bytes": (pl.col("in_bytes") + pl.col("out_bytes")).filter(_toxic()).sum(),
        "flows": pl.len(),
        "toxic_flows": _count(_toxic()),
    })
    agg = _sum_by(hourly, _local(tz).dt.truncate(every).alias("bucket"))
    cols = ["bytes_in", "bytes_out", "toxic_bytes", "flows", "toxic_flows"]
    return _fill_buckets(agg, every, cols)


_CYT_PARTS = {"toxic_in": _count(_toxic() & _is_in()), "toxic_out": _count(_toxic() & _is_out()),
              "flows": pl.len()}


def cyberweather(df: pl.DataFrame, tz: str, every: str = "1d") -> pl.DataFrame:
    """Per local day (or hour): bucket, toxic_in, toxic_out, cyt, level, level_name, flows.

    Buckets with flows but no toxic flow, and gaps between buckets, are level 0.
    """
    agg = _sum_by(_per_hour(df, _CYT_PARTS), _local(tz).dt.truncate(every).alias("bucket"))
    agg = _fill_buckets(agg, every, ["toxic_in", "toxic_out", "flows"])
    return _with_levels(agg).select(
        "bucket", "toxic_in", "toxic_out", "cyt", "level", "level_name", "flows"
    )


def cyberweather_hours(df: pl.DataFrame, tz: str, day: date) -> pl.DataFrame:
    """The 24 local hours of ``day``: hour, toxic_in, toxic_out, cyt, level, level_name, flows.

    Empty when there is no flow that day. Hours are wall-clock hours: on the
    autumn DST day both 02:00 hours are summed; on the spring day 02:00 is 0.
    """
    local = _local(tz)
    hourly = _per_hour(df, _CYT_PARTS).filter(local.dt.date() == day)
    agg = _sum_by(hourly, local.dt.hour().cast(pl.Int64).alias("hour"))
    if not agg.is_empty():
        hours = pl.DataFrame({"hour": pl.int_range(0, 24, dtype=pl.Int64, eager=True)})
        agg = hours.join(agg, on="hour", how="left").with_columns(
            pl.col(c).fill_null(0) for c in ("toxic_in", "toxic_out", "flows")
        )
    return _with_levels(agg.sort("hour")).select(
        "hour", "toxic_in", "toxic_out", "cyt", "level", "level_name", "flows"
    )


@dataclass(frozen=True)
class DayLevel:
    """The cyberweather of one local day."""

    day: date
    cyt: int
    level: int

    @property
    def name(self) -> str:
        return LEVEL_NAMES[self.level]


@dataclass(frozen=True)
class CyberweatherSummary:
    """Cyberweather of a range, read day by day (the scale rates a day, never a range).

    ``worst``: the day with the highest cyT (the latest of equals), None without flows;
    ``today``: today so far, when asked for (cyT 0 when it has no flow yet);
    ``days_per_level``: every level 0-4 with its number of days, zeros included.
    """

    days: int
    worst: DayLevel | None
    today: DayLevel | None
    days_per_level: dict[int, int]


def cyberweather_summary(df: pl.DataFrame, tz: str, today: date | None = None
                         ) -> CyberweatherSummary:
    """Worst day, today so far and days per level, over the local days of ``df``.

    Days run from the first to the last local day with flows; days in between
    without any flow are Clear (as in :func:`cyberweather`). Pass ``today`` only
    when today is inside the selected range.
    """
    return summary_of_days(cyberweather(df, tz, "1d"), today)


def summary_of_days(days: pl.DataFrame, today: date | None = None) -> CyberweatherSummary:
    """``cyberweather_summary`` of days already rated (``cyberweather(every="1d")``'s
    columns; the hourly totals' first view builds them without flows)."""
    days = days.with_columns(pl.col("bucket").dt.date().alias("day"))
    counts = dict(days.group_by("level").len().iter_rows())
    per_level = {lvl: int(counts.get(lvl, 0)) for lvl in LEVEL_NAMES}
    worst = None
    if days.height:
        top = days.sort(["cyt", "day"], descending=True).row(0, named=True)
        worst = DayLevel(top["day"], int(top["cyt"]), int(top["level"]))
    now = None
    if today is not None:
        hit = days.filter(pl.col("day") == today)
        cyt = int(hit["cyt"][0]) if hit.height else 0
        now = DayLevel(today, cyt, cyt_level(cyt))
    return CyberweatherSummary(days.height, worst, now, per_level)


# ---------------------------------------------------------------------------
# Cybercarbon
# ---------------------------------------------------------------------------

def carbon_grams(n_bytes: float | int | None, g_per_gb: float) -> float:
    """Estimated gCO2e of ``n_bytes`` of traffic at ``g_per_gb`` (decimal GB, 1e9 B)."""
    return (n_bytes or 0) / 1e9 * g_per_gb


def car_km(grams: float) -> float:
    """The km an average petrol car drives for ``grams`` of CO2e (198 g/km)."""
    return grams / CAR_G_PER_KM


def human_grams(grams: float | None) -> str:
    """180 → '180 g', 0.00054 → '0.00054 g', 1_840 → '1.84 kg', 2.5e6 → '2.5 t' (CO2e)."""
    g = float(grams or 0)
    if g < 1000:
        return f"{g:,.0f} g" if g >= 10 or g == 0 else f"{g:.2g} g"
    if g < 1e6:
        return f"{g / 1e3:,.3g} kg" if g < 1e5 else f"{g / 1e3:,.0f} kg"
    return f"{g / 1e6:,.3g} t" if g < 1e8 else f"{g / 1e6:,.0f} t"


def human_km(km: float | None) -> str:
    """0.909 → '0.91 km', 12.34 → '12.3 km', 1234.5 → '1,234 km'."""
    k = float(km or 0)
    if k < 10:
        return f"{k:.2f} km"
    if k < 100:
        return f"{k:.1f} km"
    return f"{k:,.0f} km"


def cybercarbon(df: pl.DataFrame, g_per_gb: float) -> dict:
    """Footprint of all traffic (in + out): bytes, co2e_g, car_km, g_per_gb."""
    return carbon_of_bytes(
        df.select(pl.col("in_bytes").sum() + pl.col("out_bytes").sum()).item() or 0, g_per_gb)


def carbon_of_bytes(total: int, g_per_gb: float) -> dict:
    """``cybercarbon`` of ``total`` bytes of traffic."""
    grams = carbon_grams(total, g_per_gb)
    return {"bytes": int(total), "co2e_g": grams, "car_km": car_km(grams),
            "g_per_gb": float(g_per_gb)}


def cybercarbon_text(c: dict) -> str:
    """One line: '≈ 180 g CO2e for 10.0 GB at 18 g/GB, like 0.91 km by petrol car (198 g/km)'."""
    return (f"≈ {human_grams(c['co2e_g'])} CO2e for {human_bytes(c['bytes'])} at "
            f"{c['g_per_gb']:g} gCO2e/GB, about {human_km(c['car_km'])} driven by an average "
            f"petrol car ({CAR_G_PER_KM:g} gCO2e/km)")


def carbon_by_device(df: pl.DataFrame, g_per_gb: float, top: int = 10) -> pl.DataFrame:
    """Top devices by footprint (Others last): ``top_devices`` by bytes plus co2e_g, car_km.

    The footprint is proportional to bytes, so the ranking is the bytes ranking.
    """
    grams = pl.col("bytes").cast(pl.Float64) / 1e9 * g_per_gb
    return top_devices(df, top, by="bytes").with_columns(
        grams.alias("co2e_g"), (grams / CAR_G_PER_KM).alias("car_km")
    )


def _device_breakdown(df: pl.DataFrame) -> pl.DataFrame:
    return df.group_by("ip0").agg(_latest("device_name"), *_volume_aggs())


def top_devices(df: pl.DataFrame, top: int = 10, by: str = "bytes") -> pl.DataFrame:
    """ip0, device_name, label, bytes_in, bytes_out, bytes, flows, toxic_flows, members."""
    _check("by", by, _BY_VOLUME)
    agg = _device_breakdown(df).with_columns(_bytes_total())
    out = _rank_and_fold(
        agg, top=top, by=by, key="ip0",
        sum_cols=("bytes_in", "bytes_out", "bytes", "flows", "toxic_flows"),
        others={"device_name": OTHERS},
    )
    return out.with_columns(device_label_expr()).select(
        "ip0", "device_name", "label", "bytes_in", "bytes_out", "bytes", "flows", "toxic_flows",
        "members",
    )


def top_protocols(df: pl.DataFrame, top: int = 8, by: str = "bytes") -> pl.DataFrame:
    """protocol, label, bytes_in, bytes_out, bytes, flows, toxic_flows, members."""
    _check("by", by, _BY_VOLUME)
    agg = df.group_by("protocol").agg(*_volume_aggs()).with_columns(_bytes_total())
    out = _rank_and_fold(
        agg, top=top, by=by, key="protocol",
        sum_cols=("bytes_in", "bytes_out", "bytes", "flows", "toxic_flows"),
    )
    return out.with_columns(pl.col("protocol").alias("label")).select(
        "protocol", "label", "bytes_in", "bytes_out", "bytes", "flows", "toxic_flows", "members"
    )


def _service_expr() -> pl.Expr:
    return pl.col("port").replace_strict(SERVICES, default=None, return_dtype=pl.String)


def top_ports(df: pl.DataFrame, top: int = 10, by: str = "bytes") -> pl.DataFrame:
    """port_label, port, protocols, service, label, bytes_in, bytes_out, bytes, flows,
    toxic_flows, members.

    Ports are merged across protocols ("443" covers TCP and UDP; ``protocols``
    lists them); flows without a port are keyed by protocol ("ICMP").
    ``label`` reads "443 (HTTPS)" when the service is well known.
    """
    _check("by", by, _BY_VOLUME)
    volumes = ["bytes_in", "bytes_out", "flows", "toxic_flows"]
    agg = (
        df.group_by("port", "protocol").agg(*_volume_aggs())  # then one label per port
        .group_by(port_label_expr())
        .agg(
            pl.col("port").first(),
            pl.col("protocol").unique().sort().str.join(", ").alias("protocols"),
            pl.col(volumes).sum(),
        )
        .with_columns(_bytes_total())
    )
    out = _rank_and_fold(
        agg, top=top, by=by, key="port_label",
        sum_cols=("bytes_in", "bytes_out", "bytes", "flows", "toxic_flows"),
    )
    service = _service_expr()
    return out.with_columns(
        service.alias("service"),
        pl.when(service.is_not_null())
        .then(pl.concat_str(pl.col("port_label"), pl.lit(" ("), service, pl.lit(")")))
        .otherwise(pl.col("port_label"))
        .alias("label"),
    ).select("port_label", "port", "protocols", "service", "label", "bytes_in", "bytes_out",
             "bytes", "flows", "toxic_flows", "members")


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

def device_table(df: pl.DataFrame, tz: str | None = None) -> pl.DataFrame:
    """One row per device (ip0), most toxic-OUT first then by bytes.

    device_name, ip0, mac_address, vendor, netbios, custom_name, device_category,
    is_critical, first_seen, last_seen, bytes_in, bytes_out, bytes, flows, sessions,
    remote_hosts, toxic_flows, toxic_out_flows. Text columns hold the latest non-null
    value; first/last seen fall back to start_of_hour where the API gave no timestamps.
    """
    text = ("device_name", "mac_address", "vendor", "netbios", "custom_name",
            "device_category", "is_critical")
    agg = df.group_by("ip0").agg(
        *[_latest(c) for c in text],
        _first_time(),
        _last_time(),
        *_volume_aggs(),
        pl.col("occurrences").sum().alias("sessions"),
        pl.col("ip1").n_unique().cast(pl.Int64).alias("remote_hosts"),
        _count(_toxic() & _is_out()).alias("toxic_out_flows"),
    )
    return (
        agg.with_columns(_bytes_total(), pl.col("is_critical").fill_null(False))
        .with_columns(_in_tz(["first_seen", "last_seen"], tz))
        .sort(["toxic_out_flows", "bytes", "ip0"], descending=[True, True, False])
        .select(
            "device_name", "ip0", "mac_address", "vendor", "netbios", "custom_name",
            "device_category", "is_critical", "first_seen", "last_seen", "bytes_in",
            "bytes_out", "bytes", "flows", "sessions", "remote_hosts", "toxic_flows",
            "toxic_out_flows",
        )
    )


def top_remotes(df: pl.DataFrame, top: int = 15, by: str = "bytes") -> pl.DataFrame:
    """ip1, label, owner, owner_net, country_code, country, bytes_in, bytes_out, bytes, flows,
    toxic_flows, devices, threats, critical, members (Others row last; its country and owner
    are null)."""
    _check("by", by, _BY_VOLUME)
    agg = df.group_by("ip1").agg(
        *_volume_aggs(),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        *flag_aggs(),
    ).with_columns(_bytes_total())
    out = _rank_and_fold(
        agg, top=top, by=by, key="ip1",
        sum_cols=("bytes_in", "bytes_out", "bytes", "flows", "toxic_flows"),
        any_cols=THREAT_FLAGS,
    )
    out = out.with_columns(
        threat_label_expr(pl.col("toxic_flows") > 0), critical_expr(), pl.col("ip1").alias("label")
    )
    out = with_owner(with_country(out, "ip1", source=df), "ip1", source=df).with_columns(
        pl.when(pl.col("ip1") == OTHERS).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("country_code", "country", "owner", "owner_net")
    )
    return out.select(
        "ip1", "label", "owner", "owner_net", "country_code", "country", "bytes_in",
        "bytes_out", "bytes", "flows", "toxic_flows", "devices", "threats", "critical", "members",
    )


def hour_weekday_heatmap(df: pl.DataFrame, tz: str, value: str = "bytes") -> pl.DataFrame:
    """All 168 local (weekday, hour) cells: weekday (0 = Monday), weekday_name, hour, value.

    ``value``: "bytes" (in + out), "flows", "toxic_flows" or "sessions". Empty input
    gives an empty frame.
    """
    _check("value", value, ("bytes", "flows", "toxic_flows", "sessions"))
    metric = {
        "bytes": (pl.col("in_bytes") + pl.col("out_bytes")).sum(),
        "flows": pl.len().cast(pl.Int64),
        "toxic_flows": _count(_toxic()),
        "sessions": pl.col("occurrences").sum(),
    }[value]
    local = _local(tz)
    agg = _sum_by(_per_hour(df, {"value": metric}),
                  (local.dt.weekday().cast(pl.Int64) - 1).alias("weekday"),
                  local.dt.hour().cast(pl.Int64).alias("hour"))
    schema = {"weekday": pl.Int64, "weekday_name": pl.String, "hour": pl.Int64,
              "value": pl.Int64}
    if agg.is_empty():
        return pl.DataFrame(schema=schema)
    grid = pl.DataFrame({"weekday": list(range(7))}, schema={"weekday": pl.Int64}).join(
        pl.DataFrame({"hour": list(range(24))}, schema={"hour": pl.Int64}), how="cross"
    )
    return (
        grid.join(agg, on=["weekday", "hour"], how="left")
        .with_columns(
            pl.col("value").fill_null(0),
            pl.col("weekday").replace_strict(dict(enumerate(WEEKDAYS)), return_dtype=pl.String)
            .alias("weekday_name"),
        )
        .sort(["weekday", "hour"])
        .select(list(schema))
    )


# ---------------------------------------------------------------------------
# Protocols & ports
# ---------------------------------------------------------------------------

def protocol_port_tree(
    df: pl.DataFrame, top_ports_per_protocol: int = 10, value: str = "bytes"
) -> pl.DataFrame:
    """protocol, port_label ("443", "ICMP", "Others"), bytes, flows, toxic_flows.

    Ports beyond the top per protocol (by ``value``) are folded into "Others".
    Sorted by protocol total (desc), then port (desc, Others last).
    """
    _check("value", value, ("bytes", "flows", "toxic_flows"))
    # Per (protocol, port) first, then labelled: one label per port, not per flow.
    agg = df.group_by("protocol", "port").agg(
        (pl.col("in_bytes") + pl.col("out_bytes")).sum().alias("bytes"),
        pl.len().cast(pl.Int64).alias("flows"),
        _count(_toxic()).alias("toxic_flows"),
    ).group_by("protocol", port_label_expr()).agg(pl.col("bytes", "flows", "toxic_flows").sum())
    rank = pl.col(value).rank("ordinal", descending=True).over(
        "protocol", order_by="port_label"
    )
    folded = (
        agg.with_columns(
            pl.when(rank <= top_ports_per_protocol).then(pl.col("port_label"))
            .otherwise(pl.lit(OTHERS)).alias("port_label")
        )
        .group_by("protocol", "port_label")
        .agg(pl.col("bytes", "flows", "toxic_flows").sum())
    )
    return folded.sort(
        [pl.col(value).sum().over("protocol"), "protocol", pl.col("port_label") == OTHERS,
         value, "port_label"],
        descending=[True, False, False, True, False],
    ).select("protocol", "port_label", "bytes", "flows", "toxic_flows")


def port_device_matrix(
    df: pl.DataFrame, top_ports: int = 15, top_devices: int = 15, value: str = "bytes",
    others: bool = True,
) -> pl.DataFrame:
    """Long form of the port x device grid: port_label, device, ip0, value.

    Rows cover every (port, device) pair of the kept categories (zeros
    included), ordered by port total then device total, "Others" last on both
    axes (``others=False`` drops the Others row and column, which otherwise
    can dwarf the rest of a heatmap). ``device`` is the device label
    ("name (ip)"); ip0 is "Others" for Others.
    """
    _check("value", value, ("bytes", "flows", "toxic_flows"))
    metric = {
        "bytes": (pl.col("in_bytes") + pl.col("out_bytes")).sum(),
        "flows": pl.len(),
        "toxic_flows": _toxic().sum(),
    }[value].cast(pl.Int64).alias("value")
    schema = {"port_label": pl.String, "device": pl.String, "ip0": pl.String,
              "value": pl.Int64}
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    # The value per (device, protocol, port) first: a few thousand rows, on which
    # the port labels are built (never one label string per flow).
    pairs = df.group_by("ip0", "protocol", "port").agg(metric)
    total = pl.col("value").sum()
    ports = pairs.group_by(port_label_expr()).agg(total).sort(
        ["value", "port_label"], descending=[True, False]
    )
    devices = (
        df.group_by("ip0").agg(_latest("device_name"))
        .join(pairs.group_by("ip0").agg(total), on="ip0", nulls_equal=True)
        .sort(["value", "ip0"], descending=[True, False])
        .with_columns(device_label_expr().alias("device"))
    )
    kept_ports = ports.head(top_ports)["port_label"]
    kept_dev = devices.head(top_devices)
    port_bucket = (
        pl.when(port_label_expr().is_in(kept_ports.implode()))
        .then(port_label_expr()).otherwise(pl.lit(OTHERS)).alias("port_label")
    )
    dev_bucket = (
        pl.when(pl.col("ip0").is_in(kept_dev["ip0"].implode()))
        .then(pl.col("ip0").cast(pl.String)).otherwise(pl.lit(OTHERS)).alias("ip0")
    )
    cells = pairs.group_by(port_bucket, dev_bucket).agg(total)

    port_axis = kept_ports.to_frame()
    if others and ports.height > top_ports:
        port_axis = pl.concat([port_axis, pl.DataFrame({"port_label": [OTHERS]})])
    dev_axis = kept_dev.select(pl.col("ip0", "device").cast(pl.String))  # categoricals too
    if others and devices.height > top_devices:
        dev_axis = pl.concat(
            [dev_axis, pl.DataFrame({"ip0": [OTHERS], "device": [OTHERS]})]
        )
    grid = port_axis.join(dev_axis, how="cross")
    return (
        grid.join(cells, on=["port_label", "ip0"], how="left", maintain_order="left")
        .with_columns(pl.col("value").fill_null(0))
        .select(list(schema))
    )


# ---------------------------------------------------------------------------
# Toxic flows
# ---------------------------------------------------------------------------

def _threat_meta() -> pl.DataFrame:
    rows = [
        (flag, meta["label"], bool(meta["critical"]), i)
        for i, (flag, meta) in enumerate(THREATS.items())
    ]
    rows.append(("unqualified", UNQUALIFIED, False, len(rows)))
    return pl.DataFrame(
        rows, orient="row",
        schema={"threat": pl.String, "label": pl.String, "critical": pl.Boolean,
                "danger": pl.Int64},
    )


def threats_by_category(df: pl.DataFrame, include_empty: bool = False) -> pl.DataFrame:
    """One row per threat category, most dangerous first (THREATS order, Unqualified last).

    threat (API flag or "unqualified"), label, critical, danger (0 = worst), flows,
    toxic_in, toxic_out, devices, remotes. A flow with several flags counts in each.
    Categories with no flow are dropped unless ``include_empty``.
    """
    toxic = df.filter(_toxic()).select(
        "ip0", "ip1", "dir",
        *[pl.col(f).fill_null(False) for f in THREAT_FLAGS],
        (~pl.any_horizontal([pl.col(f).fill_null(False) for f in THREAT_FLAGS]))
        .alias("unqualified"),
    )
    long = toxic.unpivot(
        index=["ip0", "ip1", "dir"], on=[*THREAT_FLAGS, "unqualified"],
        variable_name="threat", value_name="set",
    ).filter(pl.col("set"))
    agg = long.group_by("threat").agg(
        pl.len().cast(pl.Int64).alias("flows"),
        _count(_is_in()).alias("toxic_in"),
        _count(_is_out()).alias("toxic_out"),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        pl.col("ip1").n_unique().cast(pl.Int64).alias("remotes"),
    )
    how = "left" if include_empty else "inner"
    counts = ("flows", "toxic_in", "toxic_out", "devices", "remotes")
    return (
        _threat_meta().join(agg, on="threat", how=how, maintain_order="left")
        .with_columns(pl.col(c).fill_null(0) for c in counts)
        .sort("danger")
    )


def toxic_out_devices(df: pl.DataFrame, tz: str | None = None) -> pl.DataFrame:
    """Devices that initiated toxic OUT flows, most urgent first (critical threat, then flows).

    ip0, device_name, label, flows, remotes, threats, critical, first_seen, last_seen,
    hours_active, bytes_out, bytes_in.
    """
    agg = df.filter(_toxic() & _is_out()).group_by("ip0").agg(
        _latest("device_name"),
        pl.len().cast(pl.Int64).alias("flows"),
        pl.col("ip1").n_unique().cast(pl.Int64).alias("remotes"),
        *flag_aggs(),
        _first_time(),
        _last_time(),
        pl.col("start_of_hour").n_unique().cast(pl.Int64).alias("hours_active"),
        pl.col("out_bytes").sum().alias("bytes_out"),
        pl.col("in_bytes").sum().alias("bytes_in"),
    )
    return (
        agg.with_columns(threat_label_expr(pl.lit(True)), critical_expr(), device_label_expr())
        .with_columns(_in_tz(["first_seen", "last_seen"], tz))
        .sort(["critical", "flows", "ip0"], descending=[True, True, False])
        .select("ip0", "device_name", "label", "flows", "remotes", "threats", "critical",
                "first_seen", "last_seen", "hours_active", "bytes_out", "bytes_in")
    )


def top_toxic_remotes(df: pl.DataFrame, top: int = 15) -> pl.DataFrame:
    """Toxic remote hosts by toxic flows (Others last).

    ip1, label, owner, owner_net, country_code, country, dirs ("IN", "OUT" or "IN, OUT"), flows,
    toxic_in, toxic_out, toxic_flows (= flows: every one is toxic), devices, threats, critical,
    bytes_in, bytes_out, bytes, members.
    """
    agg = df.filter(_toxic()).group_by("ip1").agg(
        pl.col("dir").unique().sort().str.join(", ").alias("dirs"),
        pl.len().cast(pl.Int64).alias("flows"),
        _count(_is_in()).alias("toxic_in"),
        _count(_is_out()).alias("toxic_out"),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        *flag_aggs(),
        pl.col("in_bytes").sum().alias("bytes_in"),
        pl.col("out_bytes").sum().alias("bytes_out"),
    ).with_columns(_bytes_total())
    out = _rank_and_fold(
        agg, top=top, by="flows", key="ip1",
        sum_cols=("flows", "toxic_in", "toxic_out", "bytes_in", "bytes_out", "bytes"),
        any_cols=THREAT_FLAGS,
    )
    out = out.with_columns(
        threat_label_expr(pl.lit(True)), critical_expr(), pl.col("ip1").alias("label"),
        pl.col("flows").alias("toxic_flows"),
    )
    out = with_owner(with_country(out, "ip1", source=df), "ip1", source=df).with_columns(
        pl.when(pl.col("ip1") == OTHERS).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("country_code", "country", "owner", "owner_net")
    )
    return out.select(
        "ip1", "label", "owner", "owner_net", "country_code", "country", "dirs", "flows",
        "toxic_in", "toxic_out",
        "toxic_flows", "devices", "threats", "critical", "bytes_in", "bytes_out", "bytes",
        "members",
    )


def toxic_flow_table(df: pl.DataFrame, tz: str | None = None) -> pl.DataFrame:
    """Toxic rows only, newest first.

    time (start_of_hour), device_name, ip0, ip1, owner, dir, protocol, port, bytes_in,
    bytes_out, occurrences, threats ("Unqualified" when no flag), filtered, critical.
    """
    return (
        with_owner(df.filter(_toxic()), "ip1")
        .select(
            pl.col("start_of_hour").alias("time"),
            "device_name", "ip0", "ip1", "owner", "dir", "protocol", "port",
            pl.col("in_bytes").alias("bytes_in"),
            pl.col("out_bytes").alias("bytes_out"),
            "occurrences",
            threat_label_expr(),
            pl.col("filtered").fill_null(False),
            critical_expr(),
        )
        .with_columns(_in_tz(["time"], tz))
        .sort(["time", "critical", "ip0", "ip1", "dir", "protocol", "port"],
              descending=[True, True, False, False, False, False, False], nulls_last=True)
    )


# ---------------------------------------------------------------------------
# Remote hosts / map
# ---------------------------------------------------------------------------

_REMOTE_SORTS = {
    "threat": (["critical", "toxic_flows", "bytes", "ip1"], [True, True, True, False]),
    "bytes": (["bytes", "ip1"], [True, False]),
    "flows": (["flows", "bytes", "ip1"], [True, True, False]),
}


def remote_hosts(
    df: pl.DataFrame, direction: str = "all", sort_by: str = "threat"
) -> pl.DataFrame:
    """One row per public IP: ip1, owner, owner_net, country_code, country, iso3, flows,
    bytes_in, bytes_out, bytes, devices, toxic_flows, threats, critical.

    ``direction``: "all", "IN" or "OUT"; ``sort_by``: "threat" (critical, then toxic
    flows, then bytes), "bytes" or "flows".
    """
    _check("sort_by", sort_by, tuple(_REMOTE_SORTS))
    agg = df.filter(direction_filter(direction)).group_by("ip1").agg(
        pl.len().cast(pl.Int64).alias("flows"),
        pl.col("in_bytes").sum().alias("bytes_in"),
        pl.col("out_bytes").sum().alias("bytes_out"),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        _count(_toxic()).alias("toxic_flows"),
        *flag_aggs(),
    )
    cols, desc = _REMOTE_SORTS[sort_by]
    out = agg.with_columns(
        _bytes_total(), threat_label_expr(pl.col("toxic_flows") > 0), critical_expr()
    ).sort(cols, descending=desc)
    return with_owner(with_country(out, "ip1", source=df), "ip1", source=df).select(
        "ip1", "owner", "owner_net", "country_code", "country", "iso3", "flows", "bytes_in",
        "bytes_out", "bytes",
        "devices", "toxic_flows", "threats", "critical",
    )


def countries_summary(df: pl.DataFrame, direction: str = "all") -> pl.DataFrame:
    """Per country (by bytes desc): iso3, country_code, country, flows, bytes_in, bytes_out,
    bytes, remotes, toxic_flows, toxic_remotes. Unknown/private IPs form one row with
    country_code "--" and a null iso3 (the map skips it)."""
    hosts = remote_hosts(df, direction=direction, sort_by="bytes")
    return (
        hosts.group_by("iso3", "country_code", "country")
        .agg(
            pl.col("flows", "bytes_in", "bytes_out", "bytes").sum(),
            pl.len().cast(pl.Int64).alias("remotes"),
            pl.col("toxic_flows").sum(),
            _count(pl.col("toxic_flows") > 0).alias("toxic_remotes"),
        )
        .sort(["bytes", "country_code"], descending=[True, False], nulls_last=True)
        .select("iso3", "country_code", "country", "flows", "bytes_in", "bytes_out", "bytes",
                "remotes", "toxic_flows", "toxic_remotes")
    )


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------

def search(df: pl.DataFrame, text: str, columns: Sequence[str]) -> pl.DataFrame:
    """The rows where any of ``columns`` contains ``text``: case-insensitive, the
    spaces around ``text`` ignored, a literal match (not a pattern); a null cell
    never matches. Blank ``text`` keeps every row (the tables' search boxes)."""
    needle = text.strip().lower()
    if not needle:
        return df
    return df.filter(pl.any_horizontal(
        pl.col(c).cast(pl.String).fill_null("").str.to_lowercase()
        .str.contains(needle, literal=True)
        for c in columns))


def time_window(df: pl.DataFrame) -> tuple[datetime | None, datetime | None]:
    """(first, last) start_of_hour in UTC, or (None, None)."""
    return df.select(
        pl.col("start_of_hour").min().alias("lo"), pl.col("start_of_hour").max().alias("hi")
    ).row(0)
