"""fleet.py on hand-made hourly totals: silence, the day levels in the sensor's zone,
the change against a week before, the worst-first order, the threshold setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from flux_dashboard.errors import ConfigError
from flux_dashboard.fleet import (
    SensorFacts,
    daily_levels,
    fleet_table,
    sensor_row,
    silent_after,
)
from flux_dashboard.hourly import HOURLY_SCHEMA

NOW = datetime(2026, 11, 18, 10, 30, tzinfo=UTC)


def totals(last_data: datetime, toxic_out_at: dict[datetime, int] | None = None,
           days: int = 10) -> pl.DataFrame:
    """An hourly flow until ``last_data`` (exclusive), zeros after, toxic OUT as given."""
    start = (NOW - timedelta(days=days)).replace(minute=0)
    n = int((NOW - start) // timedelta(hours=1)) + 1
    hours = [start + timedelta(hours=i) for i in range(n)]
    tox = toxic_out_at or {}
    rows = [{"start_of_hour": h, "flows": 10 if h < last_data else 0, "bytes_in": 1_000,
             "bytes_out": 500, "toxic_in": 0, "toxic_out": tox.get(h, 0),
             "cyt": 10 * tox.get(h, 0)} for h in hours]
    return pl.DataFrame(rows, schema=HOURLY_SCHEMA)


def test_silence_levels_and_order():
    live = totals(NOW + timedelta(hours=1))
    quiet = totals(NOW - timedelta(hours=5))
    bad_hour = datetime(2026, 11, 17, 2, tzinfo=UTC)  # 03:00 in Paris, yesterday
    bad = totals(NOW + timedelta(hours=1), {bad_hour: 12})
    rows = [sensor_row(SensorFacts({"id": i, "name": n, "status": "CONNECTED"},
                                   "Europe/Paris", t), NOW, 3)
            for i, n, t in ((1, "live", live), (2, "quiet", quiet), (3, "bad", bad))]
    by = {r["name"]: r for r in rows}
    assert not by["live"]["silent"] and by["quiet"]["silent"]
    assert by["quiet"]["silent_hours"] == 4  # its last flow ended at 06:00, now 10:30
    assert by["bad"]["yesterday"] == "Critical" and by["bad"]["yesterday_cyt"] == 120
    assert by["bad"]["toxic_out_yesterday"] == 12 and by["bad"]["toxic_out_week_before"] == 0
    assert by["live"]["flows_change_pct"] == 0.0
    assert fleet_table(rows)["name"].to_list() == ["quiet", "bad", "live"]
    # The same totals in another zone: yesterday's 03:00 in Paris is still yesterday in
    # Tokyo's 11:00; one at 20:00 UTC would be today there.
    late = totals(NOW + timedelta(hours=1), {datetime(2026, 11, 17, 20, tzinfo=UTC): 1})
    paris = daily_levels(late, "Europe/Paris").filter(pl.col("cyt") > 0)["day"].to_list()
    tokyo = daily_levels(late, "Asia/Tokyo").filter(pl.col("cyt") > 0)["day"].to_list()
    assert [d.isoformat() for d in paris] == ["2026-11-17"]
    assert [d.isoformat() for d in tokyo] == ["2026-11-18"]
    # A sensor whose totals could not be read is not called silent: its note says why.
    unknown = sensor_row(SensorFacts({"id": 4, "name": "x"}, "UTC",
                                     pl.DataFrame(schema=HOURLY_SCHEMA), note="budget"), NOW)
    assert not unknown["silent"] and unknown["note"] == "budget"


def test_the_threshold_setting():
    assert silent_after({}) == 3 and silent_after({"FLUX_SILENT_HOURS": "12"}) == 12
    for bad in ("0", "200", "3h", "²"):
        with pytest.raises(ConfigError, match="FLUX_SILENT_HOURS"):
            silent_after({"FLUX_SILENT_HOURS": bad})
