"""Every sensor at a glance: one row per sensor from its hourly totals (``hourly.py``).

Pure polars: ``daily_levels`` turns a sensor's hourly totals into its local days'
cyberweather (cyT = toxic IN + 10 × toxic OUT summed over the day, the same rule and
the same days as the Overview's cyberweather per day); ``sensor_row`` says what a
provider's morning check asks of one sensor (is it sending, how were yesterday and
today, against the same weekday a week before); ``fleet_table`` sorts the rows
worst first: silent sensors, then the worst level yesterday, then today.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from flux_dashboard.analytics import LEVEL_NAMES, cyt_level_expr
from flux_dashboard.hours import HOUR, local_day_window

FLEET_DAYS = 30
SILENT_AFTER_H = 3
STRIP = {0: "🟩", 1: "🟨", 2: "🟧", 3: "🟥", 4: "🟪"}
NO_DATA = "⬜"
DAY_SCHEMA = pl.Schema({"day": pl.Date, "flows": pl.Int64, "toxic_in": pl.Int64,
                        "toxic_out": pl.Int64, "cyt": pl.Int64, "level": pl.Int8})
ROW_SCHEMA = pl.Schema({
    "sensor": pl.Int64, "name": pl.String, "status": pl.String,
    "last_data": pl.Datetime("us", "UTC"), "silent": pl.Boolean, "silent_hours": pl.Int64,
    "strip": pl.String, "levels": pl.List(pl.Int8), "yesterday": pl.String,
    "yesterday_level": pl.Int8,
    "yesterday_cyt": pl.Int64, "today": pl.String, "today_level": pl.Int8,
    "today_cyt": pl.Int64, "toxic_out_yesterday": pl.Int64,
    "toxic_out_week_before": pl.Int64, "flows_yesterday": pl.Int64,
    "flows_change_pct": pl.Float64, "flows_cached": pl.Float64, "synced": pl.String,
    "open_findings": pl.Int64, "note": pl.String})


def silent_after(env: Mapping[str, str]) -> int:
    """``FLUX_SILENT_HOURS`` (1 to 168), else ``SILENT_AFTER_H``; ConfigError when bad."""
    from flux_dashboard.errors import ConfigError

    raw = (env.get("FLUX_SILENT_HOURS") or "").strip()
    if not raw:
        return SILENT_AFTER_H
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 168:
        raise ConfigError("FLUX_SILENT_HOURS must be a whole number of hours from 1 to 168.")
    return int(raw)


def daily_levels(totals: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Per local day of ``totals`` (``hourly.HOURLY_SCHEMA``): flows, toxic counts, cyT
    and level (0 Clear … 4 Critical)."""
    if totals.height == 0:
        return pl.DataFrame(schema=DAY_SCHEMA)
    return (totals.with_columns(pl.col("start_of_hour").dt.convert_time_zone(tz).dt.date()
                                .alias("day"))
            .group_by("day").agg(pl.col("flows").sum(), pl.col("toxic_in").sum(),
                                 pl.col("toxic_out").sum())
            .with_columns((pl.col("toxic_in") + 10 * pl.col("toxic_out")).alias("cyt"))
            .with_columns(cyt_level_expr("cyt").cast(pl.Int8).alias("level"))
            .select(DAY_SCHEMA.names()).cast(dict(DAY_SCHEMA)).sort("day"))


def last_data(totals: pl.DataFrame) -> datetime | None:
    """The end of the newest hour with at least one flow."""
    busy = totals.filter(pl.col("flows") > 0)
    return busy["start_of_hour"].max() + HOUR if busy.height else None


@dataclass(frozen=True)
class SensorFacts:
    sensor: Mapping  # the sensor object, masked when the view is
    tz: str
    totals: pl.DataFrame  # the last FLEET_DAYS local days and today, hourly
    flows_cached: float | None = None  # share of those hours whose flows are cached
    synced: str | None = None  # the sync worker's line ("Synced up to 14:00 · …")
    open_findings: int | None = None
    note: str | None = None  # why figures are missing (a budget, an API error)


def sensor_row(f: SensorFacts, now: datetime, silent_after_h: int = SILENT_AFTER_H,
               days: pl.DataFrame | None = None, span: int = FLEET_DAYS) -> dict:
    """The sensor's row; ``days``: its ``daily_levels`` when already computed."""
    zone = ZoneInfo(f.tz)
    today = now.astimezone(zone).date()
    yesterday, week_before = today - timedelta(days=1), today - timedelta(days=8)
    per_day = days if days is not None else daily_levels(f.totals, f.tz)
    levels = {r["day"]: r for r in per_day.iter_rows(named=True)}
    window = [today - timedelta(days=span - i) for i in range(span)]
    strip = "".join(STRIP[levels[d]["level"]] if d in levels and levels[d]["flows"] else NO_DATA
                    for d in window)
    daily = [levels[d]["level"] if d in levels and levels[d]["flows"] else None for d in window]
    last = last_data(f.totals)
    silent_h = int((now - last) // HOUR) if last is not None and now > last else 0
    # Silent: no flow for more than the threshold (or in the whole window). Unknown when
    # the totals could not be read at all (``note`` says why): not flagged.
    silent = f.totals.height > 0 and (
        last is None or now - last > timedelta(hours=silent_after_h))

    def day(d: date, key: str, default=0):
        return levels[d][key] if d in levels else default

    y_flows, w_flows = day(yesterday, "flows"), day(week_before, "flows")
    return {
        "sensor": int(f.sensor["id"]),
        "name": str(f.sensor.get("full_name") or f.sensor.get("name") or f.sensor["id"]),
        "status": str(f.sensor.get("status") or "?"),
        "last_data": last, "silent": silent,
        "silent_hours": silent_h if last is not None else None, "strip": strip,
        "levels": daily,
        "yesterday": LEVEL_NAMES[day(yesterday, "level")],
        "yesterday_level": day(yesterday, "level"), "yesterday_cyt": day(yesterday, "cyt"),
        "today": LEVEL_NAMES[day(today, "level")], "today_level": day(today, "level"),
        "today_cyt": day(today, "cyt"),
        "toxic_out_yesterday": day(yesterday, "toxic_out"),
        "toxic_out_week_before": day(week_before, "toxic_out"),
        "flows_yesterday": y_flows,
        "flows_change_pct": (y_flows - w_flows) / w_flows * 100 if w_flows else None,
        "flows_cached": f.flows_cached, "synced": f.synced,
        "open_findings": f.open_findings, "note": f.note,
    }


def fleet_table(rows: Sequence[dict]) -> pl.DataFrame:
    """The rows worst first: silent, then yesterday's level, then today's, then name."""
    df = pl.DataFrame(list(rows), schema=ROW_SCHEMA, orient="row") if rows else \
        pl.DataFrame(schema=ROW_SCHEMA)
    return df.sort(["silent", "yesterday_level", "today_level", "name"],
                   descending=[True, True, True, False], nulls_last=True)


def fleet_window(now: datetime, tz: str, days: int = FLEET_DAYS) -> tuple[datetime, datetime]:
    """The sensor's last ``days`` local days and today so far (UTC bounds)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return local_day_window(today - timedelta(days=days), tz)[0], now


def strip_frame(per_sensor: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """(sensor name, day, level, cyt, flows) of every sensor: the fleet heatmap's data."""
    frames = [d.with_columns(pl.lit(name).alias("sensor")) for name, d in per_sensor.items()
              if d.height]
    if not frames:
        return pl.DataFrame(schema={"sensor": pl.String, **DAY_SCHEMA})
    return pl.concat(frames).select("sensor", *DAY_SCHEMA.names())
