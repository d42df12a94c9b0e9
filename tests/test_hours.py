"""hours.py: UTC hours, local days across DST changes, the sidebar's relative ranges.

Every expected value is worked out by hand (Europe/Paris: UTC+1 in winter, UTC+2
in summer; 2026-03-29 has 23 hours, 2026-10-25 has 25).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flux_dashboard.hours import (
    ceil_hour,
    days_before,
    floor_hour,
    hour_label,
    hour_labels,
    hours_between,
    iso,
    labelled_datetime,
    local_datetime,
    local_day_window,
    local_days,
    preset_range,
    range_days,
    week_on_week,
    weeks_before,
)

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_hours_round_to_utc_hours_and_list_half_open():
    t = datetime(2026, 11, 18, 11, 30, 5, tzinfo=PARIS)  # 10:30:05 UTC
    assert floor_hour(t) == utc(2026, 11, 18, 10) and ceil_hour(t) == utc(2026, 11, 18, 11)
    assert ceil_hour(utc(2026, 11, 18, 10)) == utc(2026, 11, 18, 10)
    assert hours_between(utc(2026, 11, 18, 22), utc(2026, 11, 19, 1)) == [
        utc(2026, 11, 18, 22), utc(2026, 11, 18, 23), utc(2026, 11, 19, 0)]
    assert hours_between(utc(2026, 11, 19), utc(2026, 11, 18)) == []
    assert iso(datetime(2026, 11, 18, 11, tzinfo=PARIS)) == "2026-11-18T10:00:00.000Z"


def test_local_datetime_and_the_local_days_of_a_range():
    assert local_datetime(date(2026, 3, 29), 3, PARIS) == utc(2026, 3, 29, 1)  # after the jump
    assert local_datetime(date(2026, 3, 28), 3, PARIS) == utc(2026, 3, 28, 2)
    # 23:00 UTC on the 17th is already the 18th in Paris; the end is exclusive
    assert local_days(utc(2026, 11, 16, 23), utc(2026, 11, 18, 23), PARIS) == [
        date(2026, 11, 18), date(2026, 11, 17)]
    assert local_days(utc(2026, 11, 16, 23), utc(2026, 11, 18, 23, 0, 1), "Europe/Paris")[0] \
        == date(2026, 11, 19)


@pytest.mark.parametrize(("preset", "now", "start", "end"), [
    # mid-hour: the open hour is included
    ("24h", utc(2026, 11, 18, 10, 30), utc(2026, 11, 17, 11), utc(2026, 11, 18, 11)),
    # on the hour: that hour has not begun to hold data
    ("24h", utc(2026, 11, 18, 10), utc(2026, 11, 17, 10), utc(2026, 11, 18, 10)),
    ("7d", utc(2026, 11, 18, 10, 30), utc(2026, 11, 11, 11), utc(2026, 11, 18, 11)),
    ("30d", utc(2026, 11, 18, 10, 30), utc(2026, 10, 19, 11), utc(2026, 11, 18, 11)),
    # Yesterday is the whole previous local day: 23:59:50 in Paris is still the 6th
    ("yesterday", utc(2026, 12, 6, 22, 59, 50), utc(2026, 12, 4, 23), utc(2026, 12, 5, 23)),
    # ... and 00:00:05 in Paris is the 7th: yesterday is the 6th
    ("yesterday", utc(2026, 12, 6, 23, 0, 5), utc(2026, 12, 5, 23), utc(2026, 12, 6, 23)),
    # the day after spring forward: yesterday has 23 hours
    ("yesterday", utc(2026, 3, 30, 9), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
    # the day after fall back: 25 hours
    ("yesterday", utc(2026, 10, 26, 9), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
    # This month: from the 1st, local midnight (UTC+1 in November)
    ("month", utc(2026, 11, 18, 10, 30), utc(2026, 10, 31, 23), utc(2026, 11, 18, 11)),
])
def test_preset_ranges_by_hand(preset, now, start, end):
    assert preset_range(preset, now, PARIS) == (start, end)


def test_an_unknown_preset_is_an_error():
    with pytest.raises(ValueError):
        preset_range("fortnight", utc(2026, 11, 18), PARIS)


# ------------------------------------------------------------------ DST-safe windows
@pytest.mark.parametrize("day, start, end, hours", [
    # spring forward: Paris is UTC+1 until 02:00 local, then UTC+2 -> a 23-hour day
    (date(2026, 3, 29), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
    # fall back: UTC+2 until 03:00 local, then UTC+1 -> a 25-hour day
    (date(2026, 10, 25), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 25),
    (date(2026, 11, 24), utc(2026, 11, 23, 23), utc(2026, 11, 24, 23), 24),
])
def test_local_day_window_follows_dst(day, start, end, hours):
    got = local_day_window(day, "Europe/Paris")
    assert got == (start, end)
    assert (got[1] - got[0]) == timedelta(hours=hours)


def test_weeks_before_keeps_local_hours_across_dst():
    # Sunday 2026-04-05 (CEST) vs Sunday 2026-03-29 (the 23-hour day): whole local days
    start, end = local_day_window(date(2026, 4, 5), "Europe/Paris")
    assert weeks_before(start, end, "Europe/Paris") == local_day_window(
        date(2026, 3, 29), "Europe/Paris")
    # "so far" windows: 00:00-15:00 local on 2026-11-01 -> 00:00-15:00 local on 2026-10-25
    s, e = utc(2026, 10, 31, 23), utc(2026, 11, 1, 14)
    assert weeks_before(s, e, "Europe/Paris") == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 14))
    # a naive 7 x 24 h shift would be an hour off on both sides of that change
    assert s - timedelta(days=7) != utc(2026, 10, 24, 22)


# ------------------------------------------------------------------ the pages' days
def test_week_on_week_cuts_the_day_at_until_and_keeps_local_hours_a_week_before():
    # Sunday 2026-04-05 (CEST, UTC+2) until 15:00 local; the Sunday before is the
    # 23-hour day (CET until 02:00, then CEST): 00:00-15:00 local on both
    c = week_on_week(date(2026, 4, 5), "Europe/Paris", utc(2026, 4, 5, 13))
    assert (c.day, c.previous) == (date(2026, 4, 5), date(2026, 3, 29))
    assert c.window == (utc(2026, 4, 4, 22), utc(2026, 4, 5, 13))
    assert c.previous_window == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 13))
    # ``until`` after the day: the whole 23-hour day, against a whole 24-hour one
    c = week_on_week(date(2026, 3, 29), PARIS, utc(2026, 4, 1))
    assert c.previous == date(2026, 3, 22)
    assert c.window == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert c.previous_window == (utc(2026, 3, 21, 23), utc(2026, 3, 22, 23))


def test_range_days_today_and_the_last_complete_day():
    # [31 Mar 00:00, 1 Apr 00:00) UTC is 02:00 on the 31st to 02:00 on the 1st in Paris
    r = range_days(utc(2026, 3, 31), utc(2026, 4, 1), utc(2026, 4, 1, 12, 30), PARIS)
    assert r.days == [date(2026, 4, 1), date(2026, 3, 31)] and r.today == date(2026, 4, 1)
    assert r.today_in_range == date(2026, 4, 1)
    assert r.last_complete == date(2026, 3, 31)  # the 1st is still running
    # seen the day after: today is outside, the newest day is complete
    r = range_days(utc(2026, 3, 31), utc(2026, 4, 1), utc(2026, 4, 2, 8), "Europe/Paris")
    assert r.today_in_range is None and r.last_complete == date(2026, 4, 1)
    # a range of today only: today is all there is
    r = range_days(utc(2026, 3, 31, 22), utc(2026, 4, 1, 13), utc(2026, 4, 1, 12, 30), PARIS)
    assert r.days == [date(2026, 4, 1)] and r.last_complete == date(2026, 4, 1)
    # local midnight decides which day is today: 23:59:59 in Paris is still the 31st
    assert range_days(utc(2026, 3, 30), utc(2026, 4, 1), utc(2026, 3, 31, 21, 59, 59),
                      PARIS).today == date(2026, 3, 31)
    assert range_days(utc(2026, 3, 30), utc(2026, 4, 1), utc(2026, 3, 31, 22),
                      PARIS).today == date(2026, 4, 1)


def test_days_before_counts_whole_24_hour_days():
    # across the spring change: 168 hours, so 12:00 local on the 30th (CEST) is
    # 11:00 local (CET) a week before, not 12:00 as weeks_before would give
    start = utc(2026, 3, 30, 10)
    assert days_before(start, 7) == (utc(2026, 3, 23, 10), start)
    assert days_before(start, 1) == (utc(2026, 3, 29, 10), start)


# ------------------------------------------------------------------ the custom range's hour labels
def test_the_day_clocks_go_back_offers_its_repeated_hour_twice():
    # 2026-10-25, Paris: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:00 happens
    # twice: 00:00 UTC (CEST) and 01:00 UTC (CET).
    labels = hour_labels(date(2026, 10, 25), PARIS)
    assert len(labels) == 25 and labels[2:4] == ["02:00", "02:00 (2nd)"]
    assert labelled_datetime(date(2026, 10, 25), "02:00", PARIS) == \
        datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert labelled_datetime(date(2026, 10, 25), "02:00 (2nd)", PARIS) == \
        datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert hour_label(datetime(2026, 10, 25, 0, tzinfo=UTC), PARIS) == (date(2026, 10, 25), "02:00")
    assert hour_label(datetime(2026, 10, 25, 1, tzinfo=UTC), PARIS) == \
        (date(2026, 10, 25), "02:00 (2nd)")


def test_other_days_have_24_plain_hours_and_labels_round_trip():
    for day in (date(2026, 3, 29), date(2026, 11, 18)):  # spring forward; an ordinary day
        assert hour_labels(day, PARIS) == [f"{h:02d}:00" for h in range(24)]
    # 02:00 does not exist on 2026-03-29 (01:00 UTC is 03:00 CEST): the label of each
    # whole hour of the day reads back as that hour.
    start = datetime(2026, 3, 28, 23, tzinfo=UTC)
    for i in range(23):
        moment = start + timedelta(hours=i)
        day, label = hour_label(moment, PARIS)
        assert labelled_datetime(day, label, PARIS) == moment
    assert labelled_datetime(date(2026, 11, 18), "24:00", PARIS) is None
    assert labelled_datetime(date(2026, 11, 18), "x (2nd)", PARIS) is None
