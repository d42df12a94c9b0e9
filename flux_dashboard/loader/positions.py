"""What offset pages prove whole, although the order of tied rows is unstable.

A page is the slice of positions ``[(page - 1) p, page p)`` of the sorted
order, or its mirror from the end when descending. Rows that tie on the sort
key come back in any order, but the positions a key value occupies are the
same on every request: a value whose run lies inside one slice, with a
different value (or the end) on either side, has all its rows in that slice.
``complete_groups`` applies this to a dense hour split on a second key,
``resolve_sums`` to a window sorted by sumFlux (ties there are rare: most rows
have their own volume).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import polars as pl

from flux_dashboard import errors as E
from flux_dashboard.schema import NATURAL_KEY, empty_frame


def complete_groups(pages: list[tuple[pl.DataFrame, bool]], key: str, total: int, p: int
                     ) -> tuple[pl.DataFrame, list]:
    """Split the rows of offset pages into complete key groups and straddling keys.

    Ascending pages are consecutive slices [0, p), [p, 2p), ...; the last entry
    is page 1 descending, the slice [total - p, total). A key's rows are
    complete in a slice when the key does not continue past either edge of that
    slice; its position range is the same on every request even when the
    order of its rows is not.
    """
    asc = [f for f, tail in pages if not tail]
    tail = next(f for f, t in pages if t)
    slices: list[tuple[pl.DataFrame, bool, bool]] = []  # frame, open_left, open_right
    for i, f in enumerate(asc):
        slices.append((f, i > 0, True))
    slices.append((tail, False, True))  # descending: its inner edge is its last row
    complete: dict = {}
    seen: set = set()
    for f, open_left, open_right in slices:
        if not f.height:
            continue
        col = f.get_column(key)
        edge_first, edge_last = col[0], col[-1]
        for value, grp in f.group_by(key, maintain_order=True):
            v = value[0]
            seen.add(v)
            # A key on an open edge may continue in the next slice: not proven complete.
            if v in complete or (open_left and v == edge_first) or (open_right and v == edge_last):
                continue
            complete[v] = grp
    straddlers = [v for v in seen if v not in complete]
    frame = pl.concat(list(complete.values())) if complete else empty_frame()
    if None in straddlers:
        raise E.IncompleteDataError(
            f"Rows with no {key} span several pages and cannot be isolated with a filter.",
            hours=[])
    return frame, straddlers


def resolve_sums(got: Mapping[tuple[bool, int], pl.DataFrame], total: int, p: int
                  ) -> tuple[pl.DataFrame | None, list[tuple[bool, int]]]:
    """Rows of a window from offset pages sorted by sumFlux, or the pages still needed.

    ``got`` maps (descending, page) to a page's rows. A page is the slice of
    positions ``[(page - 1) p, page p)`` of the ascending order, or its mirror
    from the end when descending. Rows tied on sumFlux come back in any order,
    but the positions a value occupies are the same on every request: a value
    whose run lies inside one slice, with a different value (or the end) on
    either side, has all its rows in that slice. Returns (frame, []) when the
    distinct rows add up to ``total``; else (None, pages that hold a run no
    slice holds whole); (None, []) when no page can (a run longer than a page,
    or pages whose values are not sorted as sumFlux = in + out).
    """
    union = pl.concat(list(got.values()))
    union = union.unique(subset=list(NATURAL_KEY), keep="first", maintain_order=True)
    if union.height == total:
        return union, []
    slices: list[tuple[int, pl.DataFrame]] = []
    value_at: dict[int, int] = {}
    for (desc, page), f in got.items():
        if desc:
            f = f.reverse()
            offset = total - (page - 1) * p - f.height
        else:
            offset = (page - 1) * p
        sums = (f.get_column("in_bytes") + f.get_column("out_bytes")).to_list()
        if None in sums or any(x > y for x, y in itertools.pairwise(sums)):
            return None, []  # not sorted as we read sumFlux: cannot reason on positions
        for i, v in enumerate(sums):
            if value_at.setdefault(offset + i, v) != v:
                return None, []  # a position changed value between requests
        slices.append((offset, f.with_columns(pl.Series("_sum", sums))))
    whole: dict[int, pl.DataFrame] = {}
    for offset, f in slices:
        for (v,), grp in f.group_by("_sum", maintain_order=True):
            if v in whole:
                continue
            first = offset + f.get_column("_sum").search_sorted(v, "left")
            end = first + grp.height
            if ((first == 0 or value_at.get(first - 1, v) != v)
                    and (end == total or value_at.get(end, v) != v)):
                whole[v] = grp.drop("_sum")
    if sum(g.height for g in whole.values()) == total:
        return pl.concat(list(whole.values())), []
    need: set[tuple[bool, int]] = set()
    for v in sorted(set(value_at.values()) - set(whole)):
        where = [pos for pos, x in value_at.items() if x == v]
        s, e = min(where), max(where) + 1
        if (s > 0 and value_at.get(s - 1) is None) or (e < total and value_at.get(e) is None):
            return None, []  # the run's ends are not seen: its length is unknown
        page = next(((d, k) for d, k in covering_pages(s, e, total, p) if (d, k) not in got),
                    None)
        if page is None:
            return None, []
        need.add(page)
    return None, sorted(need)


def covering_pages(s: int, e: int, total: int, p: int) -> list[tuple[bool, int]]:
    """Pages (descending, page) whose slice holds positions [s, e) whole."""
    out = []
    k = s // p + 1
    if e <= k * p:
        out.append((False, k))
    i = (total - e) // p + 1  # descending page i holds [total - i p, total - (i - 1) p)
    if total - i * p <= s:
        out.append((True, i))
    return out
