"""What a load would cost before it starts (``Loader.estimate``).

Nothing is asked when only open hours are missing (one request per run of
them); else one ``per_page=1`` count per missing segment (or over their span,
less the rows cached inside it, beyond ``MAX_COUNTS`` segments), the first time
a full page instead, whose ``meta.per_page`` shows the page size the server
grants. The cost depends on how rows spread over hours (``cost``), so the
counted rows are laid over the missing hours along the sensor's working-day
profile of rows per hour, the weekend taking the rest, and the requests are
those the load would make over them, plus one per due recheck run. The
profile comes from whole cached working days, or from ``SAMPLE_HOURS`` single
hours counted across the day when the load is big enough to be worth it (an
even spread already predicting ``SAMPLE_FROM`` requests; kept an hour); a
smaller load without one takes the middle between the even spread and
2 × rows / page. So an estimate costs 1 to 3 requests, 7 to 9 the first time
a sensor has a big uncached range. Estimates are kept ``ESTIMATE_TTL_S`` per
window and filters (Streamlit reruns on every click) and dropped when a load
of that sensor and filters ends. If counting fails (two retries, then it gives
up), the answer is one request per missing hour and per segment, ``exact=False``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from flux_dashboard import errors as E
from flux_dashboard.hours import HOUR, SETTLE, floor_hour, hours_between
from flux_dashboard.loader.cost import predict_planned, predict_walk
from flux_dashboard.loader.fetch import Accumulator, Fetcher
from flux_dashboard.loader.gate import Gate, Stop, gate_client
from flux_dashboard.loader.recheck import due_hours
from flux_dashboard.loader.results import Estimate
from flux_dashboard.loader.segments import HINT_RETRY, segments_of
from flux_dashboard.store import filters_key

if TYPE_CHECKING:
    from flux_dashboard.loader.core import Loader

log = logging.getLogger(__name__)

ESTIMATE_TTL_S = 180.0  # an estimate is reused this long (Streamlit reruns on every click)
ESTIMATE_WAIT_S = 30.0  # the longest a caller waits for the same estimate in flight
SHAPE_TTL_S = 3600.0  # a sensor's daily profile of rows per hour is kept this long
MAX_COUNTS = 3  # more missing segments than this are counted as one span
SAMPLE_HOURS = 6  # single hours counted to learn a sensor's daily profile, when worth it
SAMPLE_FROM = 40  # ... that is, when an even spread already predicts this many requests


def estimate_window(loader: Loader, sensor_id: int, start: datetime, end: datetime,
                    params: dict) -> Estimate:
    """The estimate of one window not answered from memory (``Loader.estimate``)."""
    gate_client(loader.client)
    now = loader.clock()
    open_from = floor_hour(now - SETTLE)
    past = [h for h in hours_between(start, end) if h <= floor_hour(now)]
    settled = [h for h in past if h < open_from]
    fkey = filters_key(params)
    covered: set[datetime] = set()
    if loader.store is not None and settled:
        covered = loader.store.covered(loader.source_id, sensor_id, fkey, settled)
    recheck = len(segments_of(due_hours(loader, sensor_id, fkey, covered, now)))
    missing = [h for h in past if h not in covered]
    segments = segments_of(missing)
    if all(h >= open_from for h in missing):  # nothing, or just the open hours
        return Estimate(requests=recheck + len(segments), missing_hours=len(missing),
                        rows=0 if not missing else None)
    # One count per segment; a scattered cache is counted as one span, less the
    # rows cached inside it (read from the cache files).
    scattered = len(segments) > MAX_COUNTS
    spans = [(segments[0][0], segments[-1][1])] if scattered else segments
    gate = Gate(limit=len(spans) + 2)  # two retries, then give up
    fetch = Fetcher(loader, sensor_id, params, Accumulator(), lambda: None, gate)
    try:
        totals = [fetch.count(a, b, learn_page=loader._granted_page is None)
                  for a, b in spans]
        if scattered:
            a, b = spans[0]
            inside = {h for h in covered if a <= h < b}
            days = sorted({h.date() for h in inside})
            have = loader.store.hourly_rows(loader.source_id, sensor_id, fkey, days) \
                if loader.store is not None and days else {}
            cached_rows = sum(n for h, n in have.items() if h in inside)
            units = [(missing, max(0, totals[0] - cached_rows))]
        else:
            units = [(hours_between(a, b), t) for (a, b), t in zip(spans, totals,
                                                                  strict=True)]
        page = loader._granted_page or loader.per_page
        shape = daily_shape(loader, sensor_id, fkey)
        sampleable = [h for h in missing if h < open_from]
        if shape is None and len(sampleable) >= 24:  # shorter ranges: see below
            flat = expected_rows_by_hour(units, None)
            even = [[flat[h] for h in hours_between(a, b)] for a, b in segments]
            if predict_walk(even, page, loader.max_concurrency) >= SAMPLE_FROM:
                gate.limit = gate.used + SAMPLE_HOURS + 2
                shape = sample_shape(loader, fetch, sensor_id, fkey, sampleable)
    except (E.AuthenticationError, E.ForbiddenError, E.NotFoundError,
            E.InvalidRequestError, E.RateLimitedError):
        # Final answers (a 429 reaches us only once it is a quota or a long pause):
        # a load would get the same, so say it now rather than guess a cost.
        raise
    except (E.FluxError, Stop) as exc:
        log.info("estimate for sensor %s fell back to a default (%s)", sensor_id,
                 exc.__class__.__name__)
        # Cautious: one request per missing hour (a page of rows an hour) and one
        # per segment, where most sensors need far fewer.
        return Estimate(requests=recheck + len(missing) + len(segments),
                        missing_hours=len(missing), rows=None, spent=gate.used,
                        exact=False)
    expected = expected_rows_by_hour(units, shape)
    rows = [[expected[h] for h in hours_between(a, b)] for a, b in segments]
    failed = loader._hint_failed_at
    planned = loader.planning and (failed is None or now - failed >= HINT_RETRY)
    requests = (predict_planned if planned else predict_walk)(rows, page, loader.max_concurrency)
    total = sum(map(sum, rows))
    if shape is None and not planned:
        # A small load and no profile of this sensor yet: an even spread is the
        # cheapest case (busy hours cost a request each however few rows they
        # have), two requests per page of rows about the dearest. Take the middle.
        dearest = 2 * math.ceil(total / page) + len(segments)
        requests = (requests + max(requests, dearest) + 1) // 2
    return Estimate(requests=recheck + requests, missing_hours=len(missing),
                    rows=round(total), spent=gate.used)

def daily_shape(loader: Loader, sensor_id: int, fkey: str) -> list[float] | None:
    """This sensor's rows per UTC hour of a working day: remembered, or from its cache."""
    key = (loader.source_id, sensor_id, fkey)
    with loader._estimates_lock:
        shape = loader._shapes.get(key)
    if shape is None and loader.store is not None:
        # Whole days only: a partly cached day lacks the hours a cancelled load
        # had not reached, and those tend to be the busy ones.
        rows = loader.store.hourly_rows(loader.source_id, sensor_id, fkey)
        per_day: dict = {}
        for h in rows:
            per_day[h.date()] = per_day.get(h.date(), 0) + 1
        shape = daily_profile({h: n for h, n in rows.items() if per_day[h.date()] == 24})
        if shape is not None:
            with loader._estimates_lock:
                loader._shapes[key] = shape
    return shape

def sample_shape(loader: Loader, fetch: Fetcher, sensor_id: int, fkey: str,
                 hours: list[datetime]) -> list[float] | None:
    """Count a few single hours spread over the day to learn the daily profile."""
    counts = {h: fetch.count(h, h + HOUR) for h in sample_hours(hours, SAMPLE_HOURS)}
    shape = daily_profile(counts, need_every_hour=False)
    if shape is not None:
        with loader._estimates_lock:
            loader._shapes[(loader.source_id, sensor_id, fkey)] = shape
    return shape


# ------------------------------------------------------------------ the daily profile
def expected_rows_by_hour(units: list[tuple[list[datetime], int]], shape: list[float] | None
                          ) -> dict[datetime, float]:
    """Each unit's counted rows spread over its hours along the daily profile.

    ``shape`` holds a working day's rows per UTC hour (``daily_profile``): working
    days are expected to look like it, and the weekend gets the rest of the
    total, along the same shape. Scaling the whole span instead would dilute the
    busy hours with the quiet weekend, and busy hours are what costs requests.
    When the rest does not fit (negative, or a weekend busier than the week),
    or without a profile, the total is simply spread in proportion.
    """
    out: dict[datetime, float] = {}
    for hours, total in units:
        weights = [shape[h.hour] if shape else 1.0 for h in hours]
        if sum(weights) <= 0:
            weights = [1.0] * len(hours)
        working = sum(w for h, w in zip(hours, weights, strict=True) if h.weekday() < 5)
        rest_weight = sum(weights) - working
        rest = total - working
        if shape and working and rest_weight and 0 <= rest <= rest_weight:
            scale_working, scale_rest = 1.0, rest / rest_weight
        else:
            scale_working = scale_rest = total / sum(weights)
        out.update({h: w * (scale_working if h.weekday() < 5 else scale_rest)
                    for h, w in zip(hours, weights, strict=True)})
    return out


def daily_profile(rows: Mapping[datetime, int], need_every_hour: bool = True
                  ) -> list[float] | None:
    """Mean rows per UTC hour of a working day (Monday to Friday), or None.

    With ``need_every_hour`` every hour of the day must be known; otherwise a
    missing one takes its nearest known neighbour's value, and rows with no
    working day at all are profiled as they are.
    """
    working = {h: n for h, n in rows.items() if h.weekday() < 5}
    if need_every_hour and not working:
        return None
    by_hod: dict[int, list[int]] = {}
    for h, n in (working or rows).items():
        by_hod.setdefault(h.hour, []).append(n)
    if not by_hod or (need_every_hour and len(by_hod) < 24):
        return None
    means = {hod: sum(v) / len(v) for hod, v in by_hod.items()}

    def nearest(hod: int) -> float:
        return means[min(means, key=lambda k: (min((k - hod) % 24, (hod - k) % 24), k))]

    shape = [nearest(hod) for hod in range(24)]
    return shape if any(shape) else None


def sample_hours(hours: list[datetime], k: int) -> list[datetime]:
    """``k`` of ``hours`` spread over the range and over the hours of the day.

    On working days (Monday to Friday) when the range has some: busy hours set
    the cost (each costs a whole request), and the weekend gets the rest of the
    counted rows anyway (``expected_rows_by_hour``).
    """
    picks: list[datetime] = []
    for j in range(k):
        base = hours[j * len(hours) // k]
        target = (2 + j * 24 // k) % 24  # 02:00, 06:00, 10:00... UTC
        same_hour = [h for h in hours if h.hour == target] or [base]
        working = [h for h in same_hour if h.weekday() < 5] or same_hour
        pick = min(working, key=lambda h: abs(h - base))
        if pick not in picks:
            picks.append(pick)
    return picks
