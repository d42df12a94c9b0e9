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
- ``digest``: "what changed" against the same weekday a week before, in plain
  sentences that are safe to render as text (``as_markdown`` escapes them).

A "flow" is one row of the flow frame (hour × device × remote × direction ×
protocol × port), as in the vendor's counts; ``occurrences`` (sessions) is
reported separately where useful.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import polars as pl

from flux_dashboard.analytics import (
    critical_expr,
    flag_aggs,
    human_bytes,
    threat_label_expr,
)
from flux_dashboard.geo import OWNER_COLUMNS, with_country, with_owner
from flux_dashboard.schema import UTC_US

UNQUALIFIED = "Unqualified"  # same wording as analytics.threat_label_expr

# ---------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------

# Everything CommonMark lets us backslash-escape, plus ':' (Streamlit's
# :emoji: / :color[...] / :material/...: directives) and '$' (LaTeX).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$:=\"'^])")


# GFM turns bare "https://…", "http://…", "www.…" and "a@b.c" into links after the
# escapes are resolved (on the text's final characters), so no escape prevents it. A
# word joiner (U+2060, invisible, no line break) inside each pattern breaks it.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)")
WORD_JOINER = "\u2060"


def escape_markdown(text: str) -> str:
    """Make any text render literally in (Streamlit) markdown.

    ``&``, ``<`` and ``>`` become HTML entities (so raw HTML never renders),
    every markdown punctuation character is backslash-escaped, so links,
    images, emphasis, directives and LaTeX from data values stay plain text,
    and bare URLs, ``www.`` names and e-mail addresses get an invisible word
    joiner, so that GFM cannot turn them into links either.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _AUTOLINK.sub(WORD_JOINER, text)
    return _MD_SPECIAL.sub(r"\\\1", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def _clean(value: object, limit: int = 60) -> str:
    """A data value as one safe line of plain text (no control chars, bounded)."""
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def device_label(ip0: str | None, name: str | None) -> str:
    """'NAS (192.168.1.20)', or just the IP when the device has no name."""
    ip = _clean(ip0)
    nm = _clean(name)
    return ip if not nm or nm == ip else f"{nm} ({ip})"


def threats_label_expr(toxic: str = "toxic") -> pl.Expr:
    """Threat labels (see ``analytics.threat_label_expr``) of row- or group-level flags."""
    return threat_label_expr(pl.col(toxic).fill_null(False))


def _contact_time() -> pl.Expr:
    return pl.coalesce("first_seen", "start_of_hour")


def _latest_name() -> pl.Expr:
    """The device name of the device's newest row (names can change over time)."""
    return pl.col("device_name").sort_by("start_of_hour").last().alias("device_name")


def _add_country(df: pl.DataFrame, source: pl.DataFrame) -> pl.DataFrame:
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
            _latest_name(),
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
            _latest_name(),
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
    return _add_country(new, df).select(FIRST_SEEN_COLUMNS.names()).cast(dict(FIRST_SEEN_COLUMNS))


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
        _latest_name(),
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
    return _add_country(out, df).select(STORYLINE_COLUMNS.names()).cast(dict(STORYLINE_COLUMNS))


def beaconing(stories: pl.DataFrame) -> pl.DataFrame:
    """The storylines that hint at beaconing: very regular contacts (regularity ≥
    ``BEACONING_REGULARITY``) of a device that initiated flows (OUT) to the toxic host."""
    return stories.filter((pl.col("regularity") >= BEACONING_REGULARITY)
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
    are reported by ``digest`` and ``first_seen_remotes``).

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


# ---------------------------------------------------------------------------
# 5. What changed
# ---------------------------------------------------------------------------

NEW_DEVICES_COLUMNS = pl.Schema(
    {"ip0": pl.String, "device_name": pl.String, "flows": pl.UInt32, "bytes": pl.Int64}
)
NEW_COUNTRIES_COLUMNS = pl.Schema(
    {
        "country_code": pl.String,
        "country": pl.String,
        "remotes": pl.UInt32,
        "flows": pl.UInt32,
        "bytes": pl.Int64,
    }
)
NEW_TOXIC_COLUMNS = pl.Schema(
    {
        "ip1": pl.String,
        "owner": pl.String,
        "country_code": pl.String,
        "country": pl.String,
        "devices": pl.UInt32,
        "flows": pl.UInt32,
        "has_out": pl.Boolean,
        "threats": pl.String,
    }
)
DEVICE_CHANGES_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "bytes_before": pl.Int64,
        "bytes_after": pl.Int64,
        "change": pl.Int64,
        "change_pct": pl.Float64,
    }
)


@dataclass
class Digest:
    """What changed between ``previous_day`` and ``day`` (same weekday a week before).

    ``sentences`` are plain text built from data values (control characters
    removed, long names shortened); render them with ``st.text`` or use
    ``as_markdown()``, which escapes them. ``change_pct`` is null when the
    device had no traffic before.
    """

    day: date
    previous_day: date
    sentences: list[str]
    new_devices: pl.DataFrame
    new_countries: pl.DataFrame
    new_toxic_remotes: pl.DataFrame
    device_changes: pl.DataFrame
    toxic_in_before: int = 0
    toxic_out_before: int = 0
    toxic_in_after: int = 0
    toxic_out_after: int = 0
    cyt_before: int = 0
    cyt_after: int = 0
    previous_empty: bool = False

    @property
    def title(self) -> str:
        return f"What changed on {self.day:%a %Y-%m-%d} vs {self.previous_day:%a %Y-%m-%d}"

    def as_text(self) -> str:
        return "\n".join([self.title, "", *(f"- {s}" for s in self.sentences)]) + "\n"

    def as_markdown(self) -> str:
        body = "\n".join(f"- {escape_markdown(s)}" for s in self.sentences)
        return f"**{escape_markdown(self.title)}**\n\n{body}\n"


def _local_day(df: pl.DataFrame, tz: str, day: date) -> pl.DataFrame:
    return df.filter(pl.col("start_of_hour").dt.convert_time_zone(tz).dt.date() == day)


def _toxic_counts(df: pl.DataFrame) -> tuple[int, int]:
    t = df.filter(pl.col("toxic").fill_null(False))
    n_out = t.filter(pl.col("dir") == "OUT").height
    return t.height - n_out, n_out


def _cyt(n_in: int, n_out: int) -> int:
    # Vendor definition: cyT = 1 × toxic IN flows + 10 × toxic OUT flows.
    return n_in + 10 * n_out


def _pct(before: float, after: float) -> str:
    if before == 0:
        return "new" if after else "0%"
    return f"{(after - before) / before * 100:+.0f}%"


def _list_text(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def digest(
    day_df: pl.DataFrame,
    previous_df: pl.DataFrame,
    tz: str,
    day: date,
    previous_day: date,
    *,
    top_n: int = 5,
) -> Digest:
    """Compare ``day`` with ``previous_day`` (normally the same weekday a week before).

    Both frames are cut to their local day in ``tz`` (so passing wider frames
    is fine). Bytes are out + in. Toxic flow counts are rows, cyT as the
    vendor defines it. ``device_changes`` holds the ``top_n`` devices by
    absolute change (zero changes left out).
    """
    now = _local_day(day_df, tz, day)
    before = _local_day(previous_df, tz, previous_day)
    volume = (pl.col("out_bytes").fill_null(0) + pl.col("in_bytes").fill_null(0)).alias("bytes")

    def per_device(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by("ip0").agg(
            _latest_name(), pl.len().cast(pl.UInt32).alias("flows"), volume.sum()
        )

    dev_now, dev_before = per_device(now), per_device(before)
    new_devices = (
        dev_now.join(dev_before.select("ip0"), on="ip0", how="anti")
        .sort(["bytes", "ip0"], descending=[True, False])
        .select(NEW_DEVICES_COLUMNS.names())
        .cast(dict(NEW_DEVICES_COLUMNS))
    )

    def per_country(frame: pl.DataFrame) -> pl.DataFrame:
        if frame.height == 0:
            return pl.DataFrame(schema=NEW_COUNTRIES_COLUMNS)
        g = frame.group_by("ip1").agg(pl.len().alias("flows"), volume.sum())
        return (
            _add_country(g, frame)
            .filter(pl.col("country_code").is_not_null() & (pl.col("country_code") != "--"))
            .group_by("country_code", "country")
            .agg(
                pl.len().alias("remotes"), pl.col("flows").sum(), pl.col("bytes").sum()
            )
            .cast(dict(NEW_COUNTRIES_COLUMNS))
        )

    new_countries = (
        per_country(now)
        .join(per_country(before).select("country_code"), on="country_code", how="anti")
        .sort(["bytes", "country_code"], descending=[True, False])
        .select(NEW_COUNTRIES_COLUMNS.names())
    )

    tox_now = now.filter(pl.col("toxic").fill_null(False))
    tox_before = before.filter(pl.col("toxic").fill_null(False)).select("ip1").unique()
    new_tox = (
        tox_now.join(tox_before, on="ip1", how="anti")
        .group_by("ip1")
        .agg(
            pl.col("ip0").n_unique().cast(pl.UInt32).alias("devices"),
            pl.len().cast(pl.UInt32).alias("flows"),
            (pl.col("dir") == "OUT").any().alias("has_out"),
            pl.lit(True).alias("toxic"),
            *flag_aggs(),
        )
        .with_columns(threats_label_expr(), critical_expr())
        .sort(["critical", "has_out", "flows", "ip1"], descending=[True, True, True, False])
    )
    new_tox = _add_country(new_tox, now).select(NEW_TOXIC_COLUMNS.names()).cast(
        dict(NEW_TOXIC_COLUMNS)
    )

    changes = (
        dev_now.select("ip0", "device_name", pl.col("bytes").alias("bytes_after"))
        .join(
            dev_before.select(
                "ip0", pl.col("device_name").alias("_name_b"), pl.col("bytes").alias("bytes_before")
            ),
            on="ip0",
            how="full",
            coalesce=True,
        )
        .with_columns(
            pl.coalesce("device_name", "_name_b").alias("device_name"),
            pl.col("bytes_before").fill_null(0).cast(pl.Int64),
            pl.col("bytes_after").fill_null(0).cast(pl.Int64),
        )
        .with_columns((pl.col("bytes_after") - pl.col("bytes_before")).alias("change"))
        .with_columns(
            pl.when(pl.col("bytes_before") > 0)
            .then(pl.col("change") / pl.col("bytes_before") * 100)
            .alias("change_pct")
        )
        .filter(pl.col("change") != 0)
        .sort([pl.col("change").abs(), "ip0"], descending=[True, False])
        .head(top_n)
        .select(DEVICE_CHANGES_COLUMNS.names())
        .cast(dict(DEVICE_CHANGES_COLUMNS))
    )

    tin_b, tout_b = _toxic_counts(before)
    tin_a, tout_a = _toxic_counts(now)
    cyt_b, cyt_a = _cyt(tin_b, tout_b), _cyt(tin_a, tout_a)

    s: list[str] = []
    if before.height == 0:
        s.append(
            f"No data for {previous_day:%A %Y-%m-%d}: everything below counts as new, "
            "so comparisons are not meaningful."
        )
    if now.height == 0:
        s.append(f"No data for {day:%A %Y-%m-%d}.")
    total_a = int(now.select(volume.sum()).item() or 0) if now.height else 0
    total_b = int(before.select(volume.sum()).item() or 0) if before.height else 0
    s.append(
        f"Total traffic: {human_bytes(total_a)} in {_plural(now.height, 'flow')} "
        f"(was {human_bytes(total_b)} in {_plural(before.height, 'flow')}, "
        f"{_pct(total_b, total_a)})."
    )
    if new_devices.height:
        pairs = new_devices.select("ip0", "device_name").rows()
        labels = [device_label(ip, nm) for ip, nm in pairs]
        s.append(
            f"{_plural(new_devices.height, 'new device')} appeared: {_list_text(labels)}."
        )
    else:
        s.append("No new devices.")
    if new_countries.height:
        names = [
            _clean(c or cc)
            for cc, c in new_countries.select("country_code", "country").rows()
        ]
        s.append(f"{_plural(new_countries.height, 'new remote country', 'new remote countries')}"
                 f": {_list_text(names, 8)}.")
    else:
        s.append("No new remote countries.")
    if new_tox.height:
        items = []
        for r in new_tox.iter_rows(named=True):
            where = _clean(r["country"] or "unknown country")
            items.append(f"{_clean(r['ip1'])} ({where}, {_clean(r['threats'], 80)})")
        n_out = int(new_tox["has_out"].sum())
        tail = f", {n_out} of them contacted from the LAN (OUT)" if n_out else ""
        s.append(
            f"{_plural(new_tox.height, 'new toxic remote')}{tail}: {_list_text(items)}."
        )
    else:
        s.append("No new toxic remotes.")
    s.append(
        f"Toxic flows: {tin_a} IN and {tout_a} OUT (was {tin_b} IN and {tout_b} OUT); "
        f"cyT {cyt_a} (was {cyt_b})."
    )
    for r in changes.iter_rows(named=True):
        verb = "rose" if r["change"] > 0 else "fell"
        s.append(
            f"Traffic of {device_label(r['ip0'], r['device_name'])} {verb} from "
            f"{human_bytes(r['bytes_before'])} to {human_bytes(r['bytes_after'])} "
            f"({_pct(r['bytes_before'], r['bytes_after'])})."
        )
    return Digest(
        day=day,
        previous_day=previous_day,
        sentences=s,
        new_devices=new_devices,
        new_countries=new_countries,
        new_toxic_remotes=new_tox,
        device_changes=changes,
        toxic_in_before=tin_b,
        toxic_out_before=tout_b,
        toxic_in_after=tin_a,
        toxic_out_after=tout_a,
        cyt_before=cyt_b,
        cyt_after=cyt_a,
        previous_empty=before.height == 0,
    )
