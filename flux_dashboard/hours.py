"""Hours and local days: the one place the project does calendar arithmetic.

Flows are stored per UTC hour (``start_of_hour``); people think in the sensor's
local days, which last 23 or 25 hours on a daylight-saving change. Everything
here builds local days from local midnights, never by adding 24 hours, and
shifts by calendar days in the sensor's zone, never by 7 × 24 hours.

- ``floor_hour``, ``ceil_hour``, ``hours_between``, ``iso``: UTC hours;
- ``SETTLE``: how long after its end an hour is final (inferred from the API);
- ``local_day_window``, ``local_datetime``, ``local_days``: local days and times;
- ``weeks_before``: the same local hours a week earlier (the digests' baseline);
- ``week_on_week``: a local day (so far) and that baseline, as a digest compares them;
- ``range_days``: the local days of a range, today and the last complete day (Overview);
- ``days_before``: the whole 24-hour days before a range (the hunting baseline, look-backs);
- ``preset_range``: the sidebar's relative ranges ("Last 24 hours", "Yesterday"…);
- ``sensor_zone``, ``sensor_hno``: a sensor's time zone and non-working hours, as
  far as its (untrusted) metadata gives usable ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=15)  # an hour is final this long after it ends (inferred)


def floor_hour(t: datetime) -> datetime:
    """The UTC hour that holds ``t``."""
    t = t.astimezone(UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    """``t`` if it is a whole UTC hour, else the next one."""
    f = floor_hour(t)
    return f if f == t.astimezone(UTC) else f + HOUR


def iso(t: datetime) -> str:
    """An instant as the API writes it: ``2026-11-18T10:00:00.000Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every hour of ``[start, end)`` (both whole hours)."""
    n = int((end - start) / HOUR)
    return [start + i * HOUR for i in range(max(n, 0))]


def local_datetime(day: date, hour: int, zone: ZoneInfo, fold: int = 0) -> datetime:
    """``hour``:00 of the local ``day`` in ``zone``, in UTC. On the day clocks go back,
    one local hour happens twice: ``fold=1`` picks its second occurrence."""
    return datetime(day.year, day.month, day.day, int(hour), tzinfo=zone,
                    fold=fold).astimezone(UTC)


# The custom range's hours as the sidebar and links write them: "HH:00", and for the
# second occurrence of an hour that happens twice (the day clocks go back) "HH:00 (2nd)".
HOUR_LABELS = [f"{h:02d}:00" for h in range(24)]
SECOND = " (2nd)"


def _repeated(day: date, hour: int, zone: ZoneInfo) -> bool:
    """Whether ``hour``:00 happens twice on the local ``day`` (clocks going back), not
    once or never (clocks going forward skip it)."""
    first, second = (local_datetime(day, hour, zone, fold=f) for f in (0, 1))
    return first != second and all(t.astimezone(zone).hour == hour for t in (first, second))


def hour_labels(day: date, zone: ZoneInfo) -> list[str]:
    """The hours of the local ``day`` a range can start or end at: the 24 labels, and
    after an hour that happens twice its second occurrence."""
    out: list[str] = []
    for h, label in enumerate(HOUR_LABELS):
        out.append(label)
        if _repeated(day, h, zone):
            out.append(label + SECOND)
    return out


def hour_label(moment: datetime, zone: ZoneInfo) -> tuple[date, str]:
    """The local day and hour label of a whole hour (the inverse of ``labelled_datetime``)."""
    local = moment.astimezone(zone)
    label = HOUR_LABELS[local.hour]
    if local.fold and _repeated(local.date(), local.hour, zone):
        label += SECOND
    return local.date(), label


def labelled_datetime(day: date, label: str, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of an hour label of ``day`` (``hour_labels``), or None when it is
    not one."""
    base = label.removesuffix(SECOND)
    if base not in HOUR_LABELS:
        return None
    return local_datetime(day, HOUR_LABELS.index(base), zone, fold=int(label != base))


def range_query(sensor: int | str, start: datetime, end: datetime, tz: str | ZoneInfo
                ) -> dict[str, str]:
    """A link's query pinning the sidebar's custom range to ``[start, end)`` in the
    sensor's local days and hours (an edge in the hour a DST fall-back repeats is
    labelled "(2nd)" when it is the second, as ``hour_label`` writes it)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    (a, a_hour), (b, b_hour) = hour_label(start, zone), hour_label(end, zone)
    return {"sensor": str(sensor), "range": "Custom", "from_day": a.isoformat(),
            "from_hour": a_hour, "to_day": b.isoformat(), "to_hour": b_hour}


def sensor_zone(sensor: Mapping) -> str:
    """The sensor's ``timezone`` when it names a zone this machine knows, else "UTC"."""
    tz = sensor.get("timezone")
    if not isinstance(tz, str) or not tz:
        return "UTC"
    try:
        ZoneInfo(tz)
    except Exception:  # noqa: BLE001 - unknown, malformed, a path: the API is untrusted
        return "UTC"
    return tz


def sensor_hno(sensor: Mapping) -> tuple[int, ...]:
    """The sensor's non-working hours (``hno_hours``): the ASCII whole numbers 0-23."""
    raw = sensor.get("hno_hours") or ()
    if not isinstance(raw, list | tuple):
        return ()
    return tuple(sorted({int(h) for h in raw
                         if re.fullmatch(r"[0-9]{1,2}", str(h)) and int(h) < 24}))


def local_day_window(day: date, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the local calendar ``day`` in ``tz``.

    Built from local midnights, never by adding 24 h: a day with a daylight
    saving change lasts 23 or 25 hours (Europe/Paris: 2026-03-29, 2026-10-25).
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return local_datetime(day, 0, zone), local_datetime(day + timedelta(days=1), 0, zone)


def local_days(start: datetime, end: datetime, tz: str | ZoneInfo) -> list[date]:
    """The local dates ``[start, end)`` touches, newest first."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [last - timedelta(days=i) for i in range((last - first).days + 1)]


def weeks_before(start: datetime, end: datetime, tz: str | ZoneInfo, weeks: int = 1
                 ) -> tuple[datetime, datetime]:
    """The same local wall-clock hours ``weeks`` weeks earlier, in UTC.

    Shifts by calendar days in the sensor's zone (not by 7 × 24 h), so the
    baseline of a day after a DST change covers the same local hours.
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)

    def shift(t: datetime) -> datetime:
        local = t.astimezone(zone).replace(tzinfo=None) - timedelta(days=7 * weeks)
        return local.replace(tzinfo=zone).astimezone(UTC)

    return shift(start), shift(end)


@dataclass(frozen=True)
class DayComparison:
    """A local day and the same local hours a week before: what a digest compares."""

    day: date
    previous: date  # the same weekday a week before
    window: tuple[datetime, datetime]  # the day in UTC, cut at ``until``
    previous_window: tuple[datetime, datetime]  # the same local hours a week before


def week_on_week(day: date, tz: str | ZoneInfo, until: datetime) -> DayComparison:
    """The local ``day`` up to ``until`` (the whole day if it ends before) and the
    same local hours a week before (``weeks_before``), DST-safe on both sides."""
    start, end = local_day_window(day, tz)
    end = min(end, until)
    return DayComparison(day, day - timedelta(days=7), (start, end),
                         weeks_before(start, end, tz))


@dataclass(frozen=True)
class RangeDays:
    """The local days a range ``[start, end)`` touches, seen at ``now``."""

    days: list[date]  # newest first (``local_days``)
    today: date  # the local date of ``now``

    @property
    def today_in_range(self) -> date | None:
        """Today, when the range holds it (its cyberweather "so far"), else None."""
        return self.today if self.days[-1] <= self.today <= self.days[0] else None

    @property
    def last_complete(self) -> date:
        """The newest day of the range, or the one before when that is today (still
        running) and the range holds another: the Overview's default digest day."""
        days = self.days
        return days[1] if days[0] == self.today and len(days) > 1 else days[0]


def range_days(start: datetime, end: datetime, now: datetime, tz: str | ZoneInfo) -> RangeDays:
    """The local days of ``[start, end)`` and today's local date at ``now``."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return RangeDays(local_days(start, end, zone), now.astimezone(zone).date())


def days_before(start: datetime, days: int) -> tuple[datetime, datetime]:
    """``[start - days × 24 h, start)``: a baseline counted in whole hours before a
    range (the hunting baseline, the profile's look-back), not in local days."""
    return start - timedelta(days=days), start


def preset_range(preset: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a relative range at ``now``, in the sensor's calendar.

    ``24h``, ``7d``, ``30d``: that long up to the end of the open hour; ``yesterday``:
    the previous local day, whole; ``month``: from the 1st, local midnight, to the end
    of the open hour.
    """
    end = ceil_hour(now)  # includes the open hour
    today = now.astimezone(zone).date()
    if preset == "24h":
        return end - timedelta(hours=24), end
    if preset == "7d":
        return end - timedelta(days=7), end
    if preset == "30d":
        return end - timedelta(days=30), end
    if preset == "yesterday":
        return local_day_window(today - timedelta(days=1), zone)
    if preset == "month":
        return local_datetime(today.replace(day=1), 0, zone), end
    raise ValueError(preset)
