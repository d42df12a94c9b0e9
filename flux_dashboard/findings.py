"""Findings: what the analyses flag in a range, one row per thing a team looks into.

Owns the detection, the identity (``key``) and the severity of a finding.
``detect(frame, baseline, sensor, tz, hno_hours, settings)`` takes the flows of
a range (``schema.FLOW_SCHEMA``, plain or ``schema.compact``) and its look-back
``baseline`` (the days before the range) and returns one frame with
``FINDINGS_SCHEMA``, most severe first. Pure polars: no Streamlit, no database,
no lookup (the remote's owner and country come from the frame's ``geo``
columns when it has them, else stay null). The kinds are what the pages show:

- ``toxic_out``: a device initiated flows (OUT) to a toxic remote; one per device
  and remote: the ``hunting.storylines`` with an OUT flow;
- ``beacon``: a storyline whose regularity is at least ``beacon_regularity``
  (``hunting.beaconing``);
- ``first_seen``: a remote a device contacts (OUT) for the first time against
  the baseline (``hunting.first_seen_remotes`` on the OUT flows: inbound scanners
  are ``inbound_attack``'s), when it is toxic or in a country the baseline never
  shows (read from its ``country_code``, when it has one): a busy network meets
  hundreds of new cloud and CDN addresses a week, which the hunting page lists
  and an inbox must not (``first_seen_all`` keeps every new pair); toxic pairs
  first; none without a baseline (every pair would be new);
- ``upload_anomaly``: a device's upload on one local day above its own baseline:
  the hours ``hunting.upload_anomalies`` flags (median + k·MAD), per local day;
- ``off_hours``: a device's activity outside working hours
  (``hunting.is_off_hours_expr``: ``hno_hours`` local, plus weekends) on one
  local day, at least ``off_hours_min_flows`` flows and ``off_hours_min_bytes``;
- ``inbound_attack``: toxic IN flows from one remote to one device on one local
  day, at least ``inbound_min_flows`` (brute-force waves on 22/3389, scans).

Key rule (``finding_key``): ``key`` is the first 20 hex digits of the SHA-256
of ``"sensor|kind|ip0|mac|ip1|day"``, where ``mac`` is the device's MAC (its
latest on that day) for the kinds about the machine (upload_anomaly,
off_hours) and empty otherwise, ``ip1`` the remote (empty for those two), and
``day`` the local date in ``tz`` (ISO, DST-correct) for the day-bound kinds
(upload_anomaly, off_hours, inbound_attack) and empty otherwise; an unknown
part is empty. No count, threshold or range boundary enters the key: the same
thing found from two overlapping ranges has the same key.

Severity rule: ``SEVERITY_RULE`` (words), ``severity`` (one finding) and
``severity_expr`` (the frame's column) say the same thing.

Evidence: flows (rows), bytes (out + in; upload_anomaly: the upload of its
anomalous hours), hours (distinct active hours), first/last contact (UTC),
threats (labels), critical (a critical threat), the device (name, MAC,
is_critical) and the remote (owner, country), ``deviation`` (the measure over
its threshold: upload peak ÷ threshold, off-hours bytes ÷ minimum, inbound
flows ÷ minimum; null for the other kinds), ``regularity`` (storylines) and a
plain-text ``note``. ``link_query`` gives the query of a finding's device
drill-down or remote profile with its range pinned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import polars as pl
import polars.selectors as cs

from flux_dashboard import hunting as Hn
from flux_dashboard.analytics import flag_aggs
from flux_dashboard.hours import HOUR, ceil_hour, floor_hour, local_day_window, range_query
from flux_dashboard.schema import CRITICAL_THREATS, THREATS, UTC_US

KINDS: tuple[str, ...] = ("toxic_out", "beacon", "inbound_attack", "upload_anomaly",
                          "first_seen", "off_hours")
DAY_KINDS = frozenset({"upload_anomaly", "off_hours", "inbound_attack"})
MACHINE_KINDS = frozenset({"upload_anomaly", "off_hours"})
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")  # most severe first
KIND_LABELS = {"toxic_out": "Toxic contact (OUT)", "beacon": "Beaconing",
               "inbound_attack": "Inbound attack", "upload_anomaly": "Upload anomaly",
               "first_seen": "First-seen remote", "off_hours": "Off-hours activity"}

# Severity: a level per kind (0 low … 3 critical), raised one step per aggravating fact.
_BASE = {"toxic_out": 2, "beacon": 2, "inbound_attack": 1, "upload_anomaly": 1,
         "first_seen": 0, "off_hours": 0}
_TOXIC_RAISES = frozenset({"first_seen", "upload_anomaly", "off_hours"})  # not toxic by nature
_CRITICAL_LABELS: tuple[str, ...] = tuple(THREATS[f]["label"] for f in CRITICAL_THREATS)
LARGE_DEVIATION = 3.0
SEVERITY_RULE = (
    "Each kind starts at a level: outbound contact with a toxic host (toxic_out) and "
    "beaconing high; inbound attacks and upload anomalies medium; first-seen remotes and "
    "off-hours activity low. It rises one level for each of: a critical threat ("
    + ", ".join(_CRITICAL_LABELS) + "); a device marked critical; a deviation of at least "
    f"{LARGE_DEVIATION:g}× the kind's threshold; a toxic flow in a kind that is not about "
    "toxic hosts (first-seen, upload, off-hours). Critical is the ceiling."
)

FINDINGS_SCHEMA = pl.Schema({
    "key": pl.String, "sensor": pl.Int64, "kind": pl.String, "severity": pl.String,
    "day": pl.Date, "ip0": pl.String, "device_name": pl.String, "mac_address": pl.String,
    "is_critical": pl.Boolean, "ip1": pl.String, "owner": pl.String,
    "country_code": pl.String, "country": pl.String, "first_contact": UTC_US,
    "last_contact": UTC_US, "flows": pl.Int64, "bytes": pl.Int64, "hours": pl.Int64,
    "threats": pl.String, "critical": pl.Boolean, "deviation": pl.Float64,
    "regularity": pl.Float64, "note": pl.String,
})
_GEO = ("country_code", "country", "iso3", "owner", "owner_net")


@dataclass(frozen=True)
class DetectSettings:
    """The thresholds of ``detect`` (defaults: the hunting page's)."""

    beacon_regularity: float = Hn.BEACONING_REGULARITY
    upload_k: float = 3.0  # pagedata.ANOMALY_K, the hunting page's default sensitivity
    upload_min_bytes: int = 1_000_000  # an hour under this never alerts
    upload_min_baseline_hours: int = 3
    off_hours_min_flows: int = 10
    off_hours_min_bytes: int = 100_000_000
    weekend_off: bool = True  # weekends count as off-hours, as on the hunting page
    inbound_min_flows: int = 6  # e.g. three hours on two ports
    first_seen_all: bool = False  # every new pair, not only toxic ones and new countries


# --------------------------------------------------------------------- key and severity


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def finding_key(sensor: int | str, kind: str, ip0: str | None, mac: str | None = None,
                ip1: str | None = None, day: date | None = None) -> str:
    """The key of one finding (the module's key rule)."""
    machine = kind in MACHINE_KINDS
    parts = (str(sensor), kind, ip0 or "", (mac or "") if machine else "",
             "" if machine else (ip1 or ""),
             day.isoformat() if day is not None and kind in DAY_KINDS else "")
    return _digest("|".join(parts))


def _key_expr(sensor: int) -> pl.Expr:
    machine = pl.col("kind").is_in(list(MACHINE_KINDS))
    daily = pl.col("kind").is_in(list(DAY_KINDS))
    empty = pl.lit("")
    text = pl.concat_str([
        pl.lit(str(sensor)), pl.col("kind"), pl.col("ip0").fill_null(""),
        pl.when(machine).then(pl.col("mac_address").fill_null("")).otherwise(empty),
        pl.when(machine).then(empty).otherwise(pl.col("ip1").fill_null("")),
        pl.when(daily).then(pl.col("day").dt.to_string("%Y-%m-%d")).otherwise(empty)
        .fill_null(""),
    ], separator="|")
    return text.map_elements(_digest, return_dtype=pl.String).alias("key")


def severity(kind: str, threats: str | None, is_critical: bool | None,
             deviation: float | None) -> str:
    """The severity of one finding (``SEVERITY_RULE``); ``threats`` are its labels
    (comma-separated, "" or None: not toxic)."""
    labels = set(threats.split(", ")) if threats else set()
    level = (_BASE[kind] + (bool(labels) and kind in _TOXIC_RAISES)
             + bool(labels & set(_CRITICAL_LABELS)) + bool(is_critical)
             + (deviation is not None and deviation >= LARGE_DEVIATION))
    return SEVERITIES[3 - min(level, 3)]


def critical_label_expr(threats: str = "threats") -> pl.Expr:
    """True where the threat labels hold a critical threat."""
    return (pl.col(threats).fill_null("").str.split(", ")
            .list.eval(pl.element().is_in(list(_CRITICAL_LABELS))).list.any().alias("critical"))


def severity_expr() -> pl.Expr:
    """``severity`` over a frame with kind, threats, is_critical and deviation."""
    toxic = pl.col("threats").fill_null("") != ""
    level = (pl.col("kind").replace_strict(_BASE, return_dtype=pl.Int32)
             + (toxic & pl.col("kind").is_in(list(_TOXIC_RAISES))).cast(pl.Int32)
             + critical_label_expr().cast(pl.Int32)
             + pl.col("is_critical").fill_null(False).cast(pl.Int32)
             + (pl.col("deviation") >= LARGE_DEVIATION).fill_null(False).cast(pl.Int32))
    rank = 3 - pl.min_horizontal(level, pl.lit(3, pl.Int32))
    return rank.replace_strict(dict(enumerate(SEVERITIES)), return_dtype=pl.String
                               ).alias("severity")


# --------------------------------------------------------------------- evidence helpers


def _latest(col: str) -> pl.Expr:
    return pl.col(col).sort_by("start_of_hour").drop_nulls().last().alias(col)


def _evidence() -> list[pl.Expr]:
    """Per group of flow rows: the evidence columns."""
    out, inn = pl.col("out_bytes").fill_null(0), pl.col("in_bytes").fill_null(0)
    return [
        pl.len().cast(pl.Int64).alias("flows"),
        (out + inn).sum().cast(pl.Int64).alias("bytes"),
        out.sum().cast(pl.Int64).alias("bytes_out"),
        pl.col("start_of_hour").n_unique().cast(pl.Int64).alias("hours"),
        pl.coalesce("first_seen", "start_of_hour").min().alias("first_contact"),
        pl.coalesce("last_seen", "start_of_hour").max().alias("last_contact"),
        pl.col("toxic").fill_null(False).any().alias("toxic"),
        *flag_aggs(), _latest("device_name"), _latest("mac_address"),
        pl.col("is_critical").fill_null(False).any().alias("is_critical"),
    ]


def _by_day(rows: pl.LazyFrame, keys: list[str], tz: str, *extra: pl.Expr) -> pl.DataFrame:
    """``_evidence`` per ``keys`` and local day (in ``tz``) of the rows' hour."""
    day = pl.col("start_of_hour").dt.convert_time_zone(tz).dt.date().alias("day")
    return (rows.with_columns(day).group_by(*keys, "day").agg(*_evidence(), *extra)
            .with_columns(Hn.threats_label_expr()).collect(engine="in-memory"))


def _strings(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(cs.categorical().cast(pl.String))


def _with_geo(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with the geo columns it lacks, null: the hunting functions then reuse
    them instead of looking the remotes up."""
    return df.with_columns(pl.lit(None, pl.String).alias(c) for c in _GEO if c not in df.columns)


def _like(baseline: pl.DataFrame, df: pl.DataFrame) -> pl.DataFrame:
    """``baseline`` with its shared columns in ``df``'s types (plain or compact)."""
    same = [c for c in baseline.columns if c in df.columns and baseline.schema[c] != df.schema[c]]
    return baseline.with_columns(pl.col(c).cast(df.schema[c]) for c in same)


# --------------------------------------------------------------------- the kinds


def _storyline_kinds(df: pl.DataFrame, s: DetectSettings) -> pl.DataFrame:
    """toxic_out (storylines with an OUT flow) and beacon (``hunting.beaconing``)."""
    stories = Hn.storylines(df)
    out = stories.filter(pl.col("dirs").str.contains("OUT", literal=True))
    beacons = Hn.beaconing(stories, s.beacon_regularity)

    def shaped(lines: pl.DataFrame, kind: str, note: pl.Expr) -> pl.DataFrame:
        return lines.select(
            pl.lit(kind).alias("kind"), "ip0", "ip1", "device_name", "owner", "country_code",
            "country", "first_contact", "last_contact", pl.col("flows").cast(pl.Int64),
            (pl.col("bytes_out") + pl.col("bytes_in")).alias("bytes"),
            pl.col("hours_active").cast(pl.Int64).alias("hours"), "threats", "regularity",
            note.alias("note"), pl.lit(True).alias("_notable"))

    return pl.concat([
        shaped(out, "toxic_out", pl.format("directions {}; {}", "dirs", "regularity_note")),
        shaped(beacons, "beacon", pl.col("regularity_note")),
    ])


def _first_seen(df: pl.DataFrame, baseline: pl.DataFrame, s: DetectSettings
                ) -> pl.DataFrame | None:
    """first_seen: the remotes a device contacted (OUT) that the baseline never shows
    with it (in either direction), with their last contact and hours."""
    if baseline.height == 0:
        return None
    df = df.filter(pl.col("dir") == "OUT")
    new = Hn.first_seen_remotes(df, baseline)
    if new.height == 0:
        return None
    pairs = new.select(pl.col("ip0").cast(df.schema["ip0"]), pl.col("ip1").cast(df.schema["ip1"]))
    span = _strings(df.join(pairs, on=["ip0", "ip1"], how="semi").group_by("ip0", "ip1").agg(
        pl.coalesce("last_seen", "start_of_hour").max().alias("last_contact"),
        pl.col("start_of_hour").n_unique().cast(pl.Int64).alias("hours")))
    seen = (baseline.get_column("country_code").cast(pl.String).drop_nulls().unique()
            if "country_code" in baseline.columns else pl.Series([], dtype=pl.String))
    new_country = (pl.col("country_code").is_not_null() & (pl.col("country_code") != "--")
                   & ~pl.col("country_code").is_in(seen.implode()))
    return new.join(span, on=["ip0", "ip1"], how="left").select(
        pl.lit("first_seen").alias("kind"), "ip0", "ip1", "device_name", "owner",
        "country_code", "country", "first_contact", "last_contact",
        pl.col("flows").cast(pl.Int64), (pl.col("bytes_out") + pl.col("bytes_in")).alias("bytes"),
        "hours", "threats",
        pl.when(new_country).then(pl.format("first contact; new country: {}", "country"))
        .otherwise(pl.lit("first contact")).alias("note"),
        (pl.col("toxic") | new_country).alias("_notable"),
    ).filter(pl.lit(s.first_seen_all) | pl.col("_notable"))


def _upload(df: pl.DataFrame, baseline: pl.DataFrame, tz: str,
            s: DetectSettings) -> pl.DataFrame | None:
    """upload_anomaly: the anomalous hours of ``hunting.upload_anomalies`` per local day."""
    hours = Hn.upload_anomalies(df, baseline, k=s.upload_k, min_bytes=s.upload_min_bytes,
                                min_baseline_hours=s.upload_min_baseline_hours)
    if hours.height == 0:
        return None
    marks = hours.select(pl.col("ip0").cast(df.schema["ip0"]),
                         pl.col("hour").alias("start_of_hour"), "ratio")
    rows = df.lazy().join(marks.lazy(), on=["ip0", "start_of_hour"], how="inner")
    days = _by_day(rows, ["ip0"], tz, pl.col("ratio").max().alias("deviation"))
    return days.with_columns(
        pl.lit("upload_anomaly").alias("kind"), pl.col("bytes_out").alias("bytes"),
        pl.format("upload above median + {}·MAD of its baseline in {} h, peak {}× the "
                  "threshold", pl.lit(s.upload_k), "hours", pl.col("deviation").round(1))
        .alias("note"), pl.lit(True).alias("_notable"))


def _ratio(col: str, minimum: float) -> pl.Expr:
    return (pl.col(col) / minimum) if minimum > 0 else pl.lit(None, pl.Float64)


def _off_hours(df: pl.DataFrame, tz: str, hno_hours: Iterable[int],
               s: DetectSettings) -> pl.DataFrame:
    """off_hours: a device's rows in non-working hours, per local day, over the minimums."""
    off = Hn.is_off_hours_expr(tz, list(hno_hours), s.weekend_off)
    days = _by_day(df.lazy().filter(off), ["ip0"], tz)
    return days.filter((pl.col("flows") >= s.off_hours_min_flows)
                       & (pl.col("bytes") >= s.off_hours_min_bytes)).with_columns(
        pl.lit("off_hours").alias("kind"),
        _ratio("bytes", s.off_hours_min_bytes).alias("deviation"),
        pl.format("{} flows in {} non-working hours", "flows", "hours").alias("note"),
        pl.lit(True).alias("_notable"))


def _inbound(df: pl.DataFrame, tz: str, s: DetectSettings) -> pl.DataFrame:
    """inbound_attack: toxic IN rows per device, remote and local day, over the minimum."""
    rows = df.lazy().filter(pl.col("toxic").fill_null(False) & (pl.col("dir") == "IN"))
    days = _by_day(rows, ["ip0", "ip1"], tz,
                   *(pl.col(c).first() for c in ("owner", "country_code", "country")),
                   pl.col("port").drop_nulls().unique().sort().cast(pl.String)
                   .str.join(", ").alias("_ports"))
    return days.filter(pl.col("flows") >= s.inbound_min_flows).with_columns(
        pl.lit("inbound_attack").alias("kind"),
        _ratio("flows", s.inbound_min_flows).alias("deviation"),
        pl.format("toxic IN flows on ports {}", "_ports").alias("note"),
        pl.lit(True).alias("_notable"))


# --------------------------------------------------------------------- detect


def _devices(df: pl.DataFrame) -> pl.DataFrame:
    """Per device over the range: its latest MAC and whether it is marked critical."""
    return _strings(df.group_by("ip0").agg(
        _latest("mac_address").alias("_mac"),
        pl.col("is_critical").fill_null(False).any().alias("_is_critical")))


def _finish(found: pl.DataFrame, df: pl.DataFrame, sensor: int) -> pl.DataFrame:
    """Device facts, key, severity, order and schema of the findings of every kind."""
    found = found.with_columns(pl.lit(None, t).alias(c) for c, t in FINDINGS_SCHEMA.items()
                               if c not in found.columns)
    found = found.join(_devices(df), on="ip0", how="left").with_columns(
        pl.coalesce("mac_address", "_mac").alias("mac_address"),
        pl.coalesce("is_critical", "_is_critical").fill_null(False).alias("is_critical"),
        pl.lit(sensor, pl.Int64).alias("sensor"), critical_label_expr())
    found = found.with_columns(_key_expr(sensor), severity_expr())
    return found.sort(
        [pl.col("severity").replace_strict(SEVERITIES, list(range(4)), return_dtype=pl.Int8),
         pl.col("kind").replace_strict(KINDS, list(range(len(KINDS))), return_dtype=pl.Int8),
         "_notable", "deviation", "bytes", "key"],
        descending=[False, False, True, True, True, False], nulls_last=True,
    ).select(FINDINGS_SCHEMA.names()).cast(dict(FINDINGS_SCHEMA))


def detect(frame: pl.DataFrame, baseline: pl.DataFrame, sensor: int, tz: str,
           hno_hours: Iterable[int], settings: DetectSettings | None = None) -> pl.DataFrame:
    """The findings of ``frame`` (the range's flows) against ``baseline`` (the look-back
    before the range), for the sensor id ``sensor`` in its time zone ``tz`` with its
    non-working hours ``hno_hours``: ``FINDINGS_SCHEMA``, most severe first (then by
    kind in ``KINDS`` order, notable first, largest deviation, bytes, key)."""
    s = settings or DetectSettings()
    if frame.height == 0:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    df = _with_geo(frame)
    base = _like(baseline, frame)
    parts = [_storyline_kinds(df, s), _first_seen(df, base, s), _upload(df, base, tz, s),
             _off_hours(df, tz, hno_hours, s), _inbound(df, tz, s)]
    parts = [_strings(p) for p in parts if p is not None and p.height]
    if not parts:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    return _finish(pl.concat(parts, how="diagonal_relaxed"), df, int(sensor))


# --------------------------------------------------------------------- links

DEVICE_PAGE, REMOTE_PAGE = "devices", "remotes"  # ui.frame.PAGES url paths


def link_query(finding: Mapping, tz: str, target: str = "device"
               ) -> tuple[str, dict[str, str | list[str]]]:
    """(page url path, link query) of a finding's device drill-down (``target``
    "device": the Devices page filtered on ``ip0``) or remote profile ("remote": the
    Remote hosts page with ``remote=ip1``), the range pinned as the sidebar's custom
    range reads it: the local day of a day-bound finding, else the local hours from
    its first to its last contact (an edge in the hour a DST fall-back repeats is
    labelled "(2nd)" when it is the second, as ``hours.hour_label`` writes it)."""
    zone = ZoneInfo(tz)
    if finding.get("day") is not None:
        start, end = local_day_window(finding["day"], zone)
    else:
        start = floor_hour(finding["first_contact"])
        end = max(ceil_hour(finding["last_contact"]), start + HOUR)
    query: dict[str, str | list[str]] = range_query(finding["sensor"], start, end, zone)
    if target == "device" and finding.get("ip0"):
        return DEVICE_PAGE, {**query, "device": [finding["ip0"]]}
    if target == "remote" and finding.get("ip1"):
        return REMOTE_PAGE, {**query, "remote": finding["ip1"]}
    raise ValueError(f"This finding has no {target} to link to (target: 'device' or 'remote').")
