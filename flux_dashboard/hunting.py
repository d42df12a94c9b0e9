"""Threat-hunting analyses that flow tools do not offer out of the box.

Every function is pure polars (no streamlit), takes frames with the columns of
``schema.FLOW_SCHEMA`` (extra columns are ignored) and returns a new frame.
Empty inputs give empty frames with the documented columns, never an error.

- ``off_hours_by_device`` / ``off_hours_toxic``: activity in the site's
  non-working hours (the sensor's ``hno_hours``, local time, plus weekends).
- ``first_seen_remotes``: remotes a device contacts for the first time
  compared with a lookback frame.
- ``storylines``: one line per device and toxic remote, with a regularity
  score that hints at beaconing (``beaconing`` keeps the lines that do).
- ``upload_anomalies``: device-hours whose upload beats the device's own
  robust baseline (median + k × MAD).

"What changed" against the same weekday a week before lives in ``digest``, which
uses the shared helpers below (``latest_name``, ``add_country``,
``threats_label_expr``).

A "flow" is one row of the flow frame (hour × device × remote × direction ×
protocol × port), as in the vendor's counts; ``occurrences`` (sessions) is
reported separately where useful.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from flux_dashboard.analytics import (
    critical_expr,
    flag_aggs,
    threat_label_expr,
)
from flux_dashboard.geo import OWNER_COLUMNS, with_country, with_owner
from flux_dashboard.schema import UTC_US

# ---------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------


def threats_label_expr(toxic: str = "toxic") -> pl.Expr:
    """Threat labels (see ``analytics.threat_label_expr``) of row- or group-level flags."""
    return threat_label_expr(pl.col(toxic).fill_null(False))


def _contact_time() -> pl.Expr:
    return pl.coalesce("first_seen", "start_of_hour")


def latest_name() -> pl.Expr:
    """The device name of the device's newest row (names can change over time)."""
    return pl.col("device_name").sort_by("start_of_hour").last().alias("device_name")


def add_country(df: pl.DataFrame, source: pl.DataFrame) -> pl.DataFrame:
    """Countries and owners of ``ip1``, reused from the flow frame ``source`` when it
    has them."""
    if df.height == 0:
        return df.with_columns(
            pl.lit(None, pl.String).alias("country_code"), pl.lit(None, pl.String).alias("country"),
            *(pl.lit(None, pl.String).alias(c) for c in OWNER_COLUMNS)
        )
    return with_owner(with_country(df, "ip1", source=source).drop("iso3"), "ip1", source=source)


def _valid_hours(hno_hours: Iterable[int] | None) -> list[int]:
    # Sensor data: silently ignore anything that is not an hour 0-23.
    out = set()
    for h in hno_hours or ():
        try:
            h = int(h)
        except (TypeError, ValueError):
            continue
        if 0 <= h <= 23:
            out.add(h)
    return sorted(out)


# ---------------------------------------------------------------------------
# 1. Non-working hours
# ---------------------------------------------------------------------------


def is_off_hours_expr(
    tz: str, hno_hours: Iterable[int], weekend_off: bool = True, col: str = "start_of_hour"
) -> pl.Expr:
    """True for rows whose hour, in the sensor's time zone ``tz``, is non-working.

    Non-working = the local hour (0-23, of the hour's start) is in ``hno_hours``,
    or, with ``weekend_off``, the local day is a Saturday or Sunday. Values of
    ``hno_hours`` outside 0-23 are ignored. Daylight-saving changes are handled
    by the time-zone conversion.
    """
    local = pl.col(col).dt.convert_time_zone(tz)
    hours = pl.Series(_valid_hours(hno_hours), dtype=pl.Int8)
    off = local.dt.hour().is_in(hours.implode())
    if weekend_off:
        off = off | (local.dt.weekday() >= 6)  # Monday = 1 ... Sunday = 7
    return off.fill_null(False).alias("off_hours")


OFF_HOURS_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "flows_work": pl.UInt32,
        "flows_off": pl.UInt32,
        "bytes_work": pl.Int64,
        "bytes_off": pl.Int64,
        "bytes_total": pl.Int64,
        "off_share": pl.Float64,
        "mostly_off": pl.Boolean,
    }
)


def off_hours_by_device(
    df: pl.DataFrame,
    tz: str,
    hno_hours: Iterable[int],
    mostly_threshold: float = 0.5,
    *,
    weekend_off: bool = True,
    min_bytes: int = 1_000_000,
) -> pl.DataFrame:
    """Per device: flows and bytes (in + out) inside vs outside working hours.

    ``off_share`` = bytes_off / bytes_total (null when the device moved no
    bytes). ``mostly_off`` = off_share > ``mostly_threshold`` **and**
    bytes_total >= ``min_bytes``: devices with negligible traffic stay in the
    table but are never flagged (a printer's 3 kB of night-time keep-alives is
    not a finding). Sorted: flagged first, then bytes_off desc.
    """
    if df.height == 0:
        return pl.DataFrame(schema=OFF_HOURS_COLUMNS)
    off = is_off_hours_expr(tz, hno_hours, weekend_off)
    volume = pl.col("out_bytes").fill_null(0) + pl.col("in_bytes").fill_null(0)
    out = (
        df.lazy()
        .select("ip0", "device_name", "start_of_hour", off, volume.alias("bytes"))
        .group_by("ip0")
        .agg(
            latest_name(),
            (~pl.col("off_hours")).sum().cast(pl.UInt32).alias("flows_work"),
            pl.col("off_hours").sum().cast(pl.UInt32).alias("flows_off"),
            pl.col("bytes").filter(~pl.col("off_hours")).sum().cast(pl.Int64).alias("bytes_work"),
            pl.col("bytes").filter(pl.col("off_hours")).sum().cast(pl.Int64).alias("bytes_off"),
        )
        .with_columns((pl.col("bytes_work") + pl.col("bytes_off")).alias("bytes_total"))
        .with_columns(
            pl.when(pl.col("bytes_total") > 0)
            .then(pl.col("bytes_off") / pl.col("bytes_total"))
            .alias("off_share")
        )
        .with_columns(
            ((pl.col("off_share") > mostly_threshold) & (pl.col("bytes_total") >= min_bytes))
            .fill_null(False)
            .alias("mostly_off")
        )
        .sort(["mostly_off", "bytes_off", "ip0"], descending=[True, True, False])
        .collect(engine="in-memory")
    )
    return out.select(OFF_HOURS_COLUMNS.names()).cast(dict(OFF_HOURS_COLUMNS))


def off_hours_toxic(
    df: pl.DataFrame, tz: str, hno_hours: Iterable[int], *, weekend_off: bool = True
) -> pl.DataFrame:
    """Toxic rows of ``df`` plus a boolean ``off_hours`` column.

    Off-hours rows first, then newest first (start_of_hour desc).
    """
    base = df.filter(pl.col("toxic").fill_null(False))
    return base.with_columns(is_off_hours_expr(tz, hno_hours, weekend_off)).sort(
        ["off_hours", "start_of_hour"], descending=[True, True], maintain_order=True
    )


# ---------------------------------------------------------------------------
# 2. First-seen remotes
# ---------------------------------------------------------------------------

FIRST_SEEN_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "ip1": pl.String,
        "owner": pl.String,
        "country_code": pl.String,
        "country": pl.String,
        "first_contact": UTC_US,
        "flows": pl.UInt32,
        "bytes_out": pl.Int64,
        "bytes_in": pl.Int64,
        "toxic": pl.Boolean,
        "threats": pl.String,
    }
)


def first_seen_remotes(df: pl.DataFrame, baseline: pl.DataFrame) -> pl.DataFrame:
    """Per device, the remotes in ``df`` it never contacted in ``baseline``.

    ``baseline`` is the lookback (e.g. the 7 days before the range). An empty
    baseline makes every pair new: the caller should say no baseline was
    available. ``first_contact`` is the earliest session start (falling back to
    ``start_of_hour``). Ranked toxic first, then bytes (out + in) desc.
    """
    if df.height == 0:
        return pl.DataFrame(schema=FIRST_SEEN_COLUMNS)
    known = baseline.select("ip0", "ip1").unique()
    new = (
        df.lazy()
        .join(known.lazy(), on=["ip0", "ip1"], how="anti")
        .group_by("ip0", "ip1")
        .agg(
            latest_name(),
            _contact_time().min().alias("first_contact"),
            pl.len().cast(pl.UInt32).alias("flows"),
            pl.col("out_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_out"),
            pl.col("in_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_in"),
            pl.col("toxic").fill_null(False).any().alias("toxic"),
            *flag_aggs(),
        )
        .with_columns(threats_label_expr())
        .sort(
            ["toxic", pl.col("bytes_out") + pl.col("bytes_in"), "ip0", "ip1"],
            descending=[True, True, False, False],
        )
        .collect(engine="in-memory")
    )
    return add_country(new, df).select(FIRST_SEEN_COLUMNS.names()).cast(dict(FIRST_SEEN_COLUMNS))


# ---------------------------------------------------------------------------
# 3. Threat storylines
# ---------------------------------------------------------------------------

STORYLINE_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "ip1": pl.String,
        "owner": pl.String,
        "country_code": pl.String,
        "country": pl.String,
        "dirs": pl.String,
        "first_contact": UTC_US,
        "last_contact": UTC_US,
        "hours_active": pl.UInt32,
        "contacts": pl.UInt32,
        "flows": pl.UInt32,
        "bytes_out": pl.Int64,
        "bytes_in": pl.Int64,
        "occurrences": pl.Int64,
        "threats": pl.String,
        "critical": pl.Boolean,
        "regularity": pl.Float64,
        "regularity_note": pl.String,
    }
)


def _fmt_minutes(minutes: pl.Expr) -> pl.Expr:
    """A gap in minutes as '45 min', '6.0 h' or '2.5 days'."""
    return (
        pl.when(minutes < 120)
        .then(pl.format("{} min", minutes.round(0).cast(pl.Int64)))
        .when(minutes < 48 * 60)
        .then(pl.format("{} h", (minutes / 60).round(1)))
        .otherwise(pl.format("{} days", (minutes / 1440).round(1)))
    )


BEACONING_REGULARITY = 0.9  # contacts this regular look like clockwork, not people


def _regularity_note() -> pl.Expr:
    n = pl.col("contacts")
    verdict = (
        pl.when(pl.col("regularity") >= BEACONING_REGULARITY)
        .then(pl.lit("very regular (beaconing hint)"))
        .when(pl.col("regularity") >= 0.7).then(pl.lit("fairly regular"))
        .when(pl.col("regularity") >= 0.4).then(pl.lit("somewhat irregular"))
        .otherwise(pl.lit("irregular"))
    )
    scored = pl.format(
        "{} contacts, median gap {}, variation {}% → {}",
        n,
        _fmt_minutes(pl.col("_median_gap")),
        (pl.col("_cv") * 100).round(0).cast(pl.Int64),
        verdict,
    )
    few = pl.format(
        "{} contact{}: too few to judge regularity (needs 3)",
        n,
        pl.when(n == 1).then(pl.lit("")).otherwise(pl.lit("s")),
    )
    same = pl.format("{} contacts, all at the same time: regularity not defined", n)
    return (
        pl.when(n < 3).then(few)
        .when(pl.col("regularity").is_null()).then(same)
        .otherwise(scored)
        .alias("regularity_note")
    )


def storylines(df: pl.DataFrame) -> pl.DataFrame:
    """One line per (device, toxic remote) built from the toxic rows of ``df``.

    - ``dirs``: "OUT", "IN" or "IN+OUT".
    - ``first_contact`` / ``last_contact``: min first_seen / max last_seen,
      each falling back to start_of_hour when the row has no timestamps.
    - ``hours_active``: distinct start_of_hour values.
    - ``contacts``: one contact per active hour, at the earliest session start
      of that hour (first_seen, else start_of_hour). Several rows of the same
      hour (other ports or directions) are the same contact, not a burst.
    - ``regularity`` (0-1): with gaps = intervals between consecutive contacts,
      CV = std / mean of the gaps (population std), regularity = 1 - min(1, CV).
      Null with fewer than 3 contacts (fewer than 2 gaps) or a zero mean gap.
      A periodic beacon scores near 1; human browsing scores low.
    - ``regularity_note``: that computation in words for this row.

    Order: critical first, then pairs with OUT flows, then regularity desc
    (nulls last), then bytes_out desc.
    """
    if df.height == 0:
        return pl.DataFrame(schema=STORYLINE_COLUMNS)
    tox = df.lazy().filter(pl.col("toxic").fill_null(False))
    pair = ["ip0", "ip1"]
    summary = tox.group_by(pair).agg(
        latest_name(),
        pl.col("dir").unique().sort().str.join("+").alias("dirs"),
        (pl.col("dir") == "OUT").any().alias("_has_out"),
        _contact_time().min().alias("first_contact"),
        pl.coalesce("last_seen", "start_of_hour").max().alias("last_contact"),
        pl.col("start_of_hour").n_unique().cast(pl.UInt32).alias("hours_active"),
        pl.len().cast(pl.UInt32).alias("flows"),
        pl.col("out_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_out"),
        pl.col("in_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_in"),
        pl.col("occurrences").fill_null(0).sum().cast(pl.Int64).alias("occurrences"),
        pl.lit(True).alias("toxic"),
        *flag_aggs(),
    )
    gap_min = (pl.col("_t").diff().dt.total_microseconds() / 60e6).over(pair)
    gaps = (
        tox.group_by([*pair, "start_of_hour"])
        .agg(_contact_time().min().alias("_t"))
        .sort([*pair, "_t"])
        .with_columns(gap_min.alias("_gap"))
        .group_by(pair)
        .agg(
            pl.len().cast(pl.UInt32).alias("contacts"),
            pl.col("_gap").mean().alias("_mean"),
            pl.col("_gap").std(ddof=0).alias("_std"),
            pl.col("_gap").median().alias("_median_gap"),
        )
        .with_columns(
            pl.when((pl.col("contacts") >= 3) & (pl.col("_mean") > 0))
            .then(pl.col("_std") / pl.col("_mean"))
            .alias("_cv")
        )
        .with_columns(
            # min_horizontal skips nulls: keep a null CV null explicitly.
            pl.when(pl.col("_cv").is_not_null())
            .then(1 - pl.min_horizontal(pl.lit(1.0), pl.col("_cv")))
            .alias("regularity")
        )
    )
    out = (
        summary.join(gaps, on=pair, how="left")
        .with_columns(threats_label_expr(), critical_expr(), _regularity_note())
        .sort(
            ["critical", "_has_out", "regularity", "bytes_out", "ip0", "ip1"],
            descending=[True, True, True, True, False, False],
            nulls_last=True,
        )
        .collect(engine="in-memory")
    )
    return add_country(out, df).select(STORYLINE_COLUMNS.names()).cast(dict(STORYLINE_COLUMNS))


def beaconing(stories: pl.DataFrame, regularity: float = BEACONING_REGULARITY) -> pl.DataFrame:
    """The storylines that hint at beaconing: very regular contacts (regularity ≥
    ``regularity``, by default ``BEACONING_REGULARITY``) of a device that initiated
    flows (OUT) to the toxic host."""
    return stories.filter((pl.col("regularity") >= regularity)
                          & pl.col("dirs").str.contains("OUT", literal=True))


# ---------------------------------------------------------------------------
# 4. Upload anomalies
# ---------------------------------------------------------------------------

UPLOAD_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "hour": UTC_US,
        "bytes_out": pl.Int64,
        "baseline_median": pl.Float64,
        "baseline_mad": pl.Float64,
        "baseline_hours": pl.UInt32,
        "threshold": pl.Float64,
        "ratio": pl.Float64,
    }
)


def _hourly_out(df: pl.LazyFrame) -> pl.LazyFrame:
    return df.group_by("ip0", "start_of_hour").agg(
        pl.col("out_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_out"),
        pl.col("device_name").last().alias("device_name"),
    )


def upload_anomalies(
    df: pl.DataFrame,
    baseline: pl.DataFrame,
    k: float = 3.0,
    min_bytes: int = 1_000_000,
    *,
    min_baseline_hours: int = 3,
) -> pl.DataFrame:
    """Device-hours of ``df`` whose upload beats the device's own baseline.

    Per device, from ``baseline``: the hourly outbound bytes (sum of out_bytes
    per ip0 per start_of_hour) over the hours **where the device had flows**.
    Hours without any row are left out on purpose: a missing row may be a
    sensor gap as much as silence, and zeros would drag the median to 0 for
    devices that sleep at night, turning every active hour into an alert.

    threshold = max(median + k × MAD, ``min_bytes``), MAD = median absolute
    deviation (raw, unscaled). A device-hour alerts when bytes_out > threshold;
    the ``min_bytes`` floor means tiny volumes never alert even for a device
    whose baseline is flat. Devices with fewer than ``min_baseline_hours``
    active baseline hours (including devices absent from the baseline) are
    skipped: with no history there is nothing to compare against (new devices
    are reported by ``digest.digest`` and ``first_seen_remotes``).

    ``ratio`` = bytes_out / threshold (> 1). ``hour`` is start_of_hour (UTC).
    Sorted by ratio desc.
    """
    if df.height == 0 or baseline.height == 0:
        return pl.DataFrame(schema=UPLOAD_COLUMNS)
    stats = (
        _hourly_out(baseline.lazy())
        .group_by("ip0")
        .agg(
            pl.col("bytes_out").median().alias("baseline_median"),
            (pl.col("bytes_out") - pl.col("bytes_out").median()).abs().median()
            .alias("baseline_mad"),
            pl.len().cast(pl.UInt32).alias("baseline_hours"),
        )
        .filter(pl.col("baseline_hours") >= min_baseline_hours)
        .with_columns(
            pl.max_horizontal(
                pl.col("baseline_median") + k * pl.col("baseline_mad"), pl.lit(float(min_bytes))
            ).alias("threshold")
        )
    )
    out = (
        _hourly_out(df.lazy())
        .join(stats, on="ip0", how="inner")
        .filter(pl.col("bytes_out") > pl.col("threshold"))
        .with_columns(
            pl.col("start_of_hour").alias("hour"),
            (pl.col("bytes_out") / pl.col("threshold")).alias("ratio"),
        )
        .sort(["ratio", "ip0", "hour"], descending=[True, False, False])
        .collect(engine="in-memory")
    )
    return out.select(UPLOAD_COLUMNS.names()).cast(dict(UPLOAD_COLUMNS))
