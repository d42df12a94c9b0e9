"""The cost model: how many requests fetching given rows per hour takes.

It mirrors what ``segments`` and ``fetch`` do, so that ``estimate`` can price
a load before it runs, and ``segments`` can cut planned windows of least cost.
Keyset windows waste only the partial last hour, so evenly spread rows cost
about rows / (0.9 × page) requests plus one per chunk; but a window holds whole
hours only, so an hour of more than 0.45 page costs a request of its own
however few rows it has (a sensor whose working hours hold half a page to a
page each costs up to about 2 × rows / page). Dense hours cost two per hour up
to two pages of rows; overall the walk stays within 2 × ceil(rows / page) + 10.
Planned sumFlux windows bring a cold load near ceil(rows / page): a window of
≤ 1 page costs one request, a bigger one ceil((rows + OVERLAP) / page).
"""

from __future__ import annotations

import math

FILL = 0.9  # keyset windows aim at this share of a page
# Planned windows: windows of whole hours aim at this many pages of rows...
WINDOW_PAGES = 3
# ... less this many rows, so that the last ascending page and page 1 descending overlap
# and a run of rows tied on sumFlux at their junction is seen whole in one of them.
OVERLAP = 30
PLAN_FROM = 2  # plan a segment's rest when it holds more than this many pages of rows

def window_cost(rows: float, page: int) -> int:
    """Requests of a sumFlux window of ``rows`` (``Fetcher.window``), ties aside."""
    if rows <= page:
        return 1
    # Ascending pages but the last, then page 1 descending: OVERLAP rows of them shared.
    return math.ceil((rows + OVERLAP) / page)


def plan_windows(rows: list[float], page: int) -> list[tuple[int, int, int]]:
    """Cut hours with these expected rows into windows (i, j, cost) of least total cost.

    A window holds whole hours, at most ``WINDOW_PAGES`` pages of rows less
    ``OVERLAP`` (or one hour, however big). Dynamic programming over the cut points.
    """
    n = len(rows)
    limit = WINDOW_PAGES * page - OVERLAP
    best = [0] + [math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        total = 0.0
        for i in range(j - 1, -1, -1):
            total += rows[i]
            if i < j - 1 and total > limit:
                break
            cost = best[i] + window_cost(total, page)
            if cost < best[j]:
                best[j], back[j] = cost, i
    out = []
    j = n
    while j > 0:
        i = back[j]
        out.append((i, j, window_cost(sum(rows[i:j]), page)))
        j = i
    return out[::-1]


# ------------------------------------------------------------------ the keyset walk
def hour_cost(rows: float, page: int) -> int:
    """Requests for one hour fetched alone (``Fetcher.hour``): one page, or the key split."""
    if rows <= page:
        return 1
    pages = math.ceil(rows / page)
    # Ascending pages and page 1 descending, plus the straddling key groups fetched on
    # their own (about one per page boundary beyond the first two pages).
    return pages + max(0, pages - 2)


def page_cut(rows: list[float], page: int) -> int:
    """Index of the hour holding the last row of a full first page (hours before it are whole)."""
    total = 0.0
    for i, r in enumerate(rows):
        total += r
        if total >= page:
            return i
    return len(rows)


def walk_cost(rows: list[float], page: int, rho: float) -> int:
    """Requests ``Fetcher.chunk`` makes over these rows per hour, from density ``rho``."""
    requests, i = 0, 0
    while i < len(rows):
        n = max(1, min(len(rows) - i, math.floor(FILL * page / max(rho, 1.0))))
        if n == 1:
            rho = max(rows[i], 1.0)
            requests += hour_cost(rows[i], page)
            i += 1
            continue
        window = rows[i:i + n]
        requests += 1
        rho = max(sum(window) / n, 1.0)
        if sum(window) <= page:
            i += n
            continue
        cut = page_cut(window, page)
        if cut == 0:  # the first hour alone fills the page
            requests += hour_cost(window[0], page)
            i += 1
        else:
            i += cut
    return requests


def predict_walk(segments: list[list[float]], page: int, concurrency: int) -> int:
    """Requests ``segments.fetch_segments`` makes over segments given as expected rows per hour."""
    requests = 0
    plans: list[tuple[list[float], float, float]] = []
    for rows in segments:
        requests += 1  # the head
        total = sum(rows)
        if not rows or total <= page:
            continue
        cut = page_cut(rows, page)
        plans.append((rows[cut:], max(0.0, total - sum(rows[:cut])), total / len(rows)))
    remaining = sum(rest for _, rest, _ in plans)
    for rows, rest, rho in plans:
        share = rest / remaining if remaining else 1
        want = max(1, round(max(1, concurrency) * share))
        want = min(want, math.ceil(rest / (4 * page)) or 1)
        n = max(1, min(want, len(rows)))
        i = 0
        for k in range(n):
            size = len(rows) // n + (1 if k < len(rows) % n else 0)
            requests += walk_cost(rows[i:i + size], page, rho)
            i += size
    return requests


def predict_planned(segments: list[list[float]], page: int, concurrency: int) -> int:
    """Requests ``segments.fetch_segments`` makes with planned windows.

    Each segment's head walks its first page; a rest of more than ``PLAN_FROM``
    pages goes in planned windows (one count of the hours for the whole load),
    a smaller one takes the keyset walk.
    """
    requests, hinted = 0, False
    for rows in segments:
        total = sum(rows)
        cut = page_cut(rows, page) if rows and total > page else len(rows)
        rest = rows[cut:]
        if sum(rest) > PLAN_FROM * page and len(rest) >= 2:
            hinted = True
            requests += 1 + sum(c for _, _, c in plan_windows(rest, page))
        else:
            requests += predict_walk([rows], page, concurrency)
    return requests + hinted
