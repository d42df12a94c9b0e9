"""The request side of the API contract: parameters, errors, sorted results and pages.

This module owns what every paginated endpoint shares: parsing and validating
query parameters into the 422 bodies the API is believed to send
(``{"errors": [{"field", "rule", "message"}]}``), the simulated HTTP error and
timeout, the sorted result of a query (``Query``: stable order, ties in the
canonical order in both directions), and cutting a page out of it with either
meta shape, the silent ``max_per_page`` cap and, in unstable-ties mode, a fresh
random order inside every tie group on every request.
"""

from __future__ import annotations

import ipaddress
import math
import random
import re
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from flux_dashboard.simulator.config import SimulatorConfig

API_PREFIX = "/api/v1"


class SimulatedTimeout(Exception):
    """Raised by handle() for a "timeout" fault: the transport/server drops the request."""


class HttpError(Exception):
    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def invalid(errors: list[dict]) -> HttpError:
    return HttpError(422, {"errors": errors})


def err(field_: str, rule: str, message: str) -> dict:
    return {"field": field_, "rule": rule, "message": message}


# --------------------------------------------------------------------------- parameters


def parse_dt(value: str) -> datetime:
    v = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        v += "T00:00:00"
    dt = datetime.fromisoformat(v.replace("z", "Z"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_bool(params: dict, name: str, errors: list) -> bool:
    v = params.get(name)
    if v is None or v == "":
        return False
    low = v.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    errors.append(err(name, "boolean", f"The {name} field must be a boolean"))
    return False


def parse_int(params: dict, name: str, default: int, errors: list, lo: int = 1,
              hi: int | None = None) -> int:
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v.strip())
    except ValueError:
        errors.append(err(name, "number", f"The {name} field must be an integer"))
        return default
    if n < lo or (hi is not None and n > hi):
        errors.append(err(name, "range", f"The {name} field must be between {lo} and "
                                         f"{hi if hi is not None else 'infinity'}"))
        return default
    return n


def parse_window(params: dict, errors: list) -> tuple[datetime, datetime] | None:
    out = []
    for name in ("from", "to"):
        v = params.get(name)
        if not v:
            errors.append(err(name, "required", f"The {name} field is required"))
            continue
        try:
            out.append(parse_dt(v))
        except ValueError:
            errors.append(err(name, "date", f"The {name} field must be an ISO 8601 date"))
    if len(out) == 2 and out[0] > out[1]:
        errors.append(err("to", "afterOrEqual", "The to field must be after the from field"))
    return (out[0], out[1]) if len(out) == 2 else None


def parse_sort(params: dict, allowed: tuple[str, ...], default: str, errors: list
               ) -> tuple[str, bool]:
    sort_by = params.get("sort_by") or default
    if sort_by not in allowed:
        errors.append(err("sort_by", "enum", "The sort_by field must be one of: "
                                             + ", ".join(allowed)))
    return sort_by, parse_bool(params, "sort_desc", errors)


def parse_ip(params: dict, name: str, errors: list) -> str | None:
    try:
        return str(ipaddress.ip_address(params[name].strip()))
    except ValueError:
        errors.append(err(name, "ip", f"The {name} field must be an IP address"))
        return None


# --------------------------------------------------------------------------- results


@dataclass
class Query:
    """A sorted query result: ``order`` maps sort positions to ``items`` indices.

    On the packed path ``order`` holds ``(key << shift) | index`` and ``mask``
    extracts the index; unpacking only the requested page saves a pass over the
    whole month. ``starts`` are the tie-group boundaries (unstable-ties mode).
    """

    items: list
    order: Sequence[int]
    hours: list[int] | None = None  # flux queries: the hour of each item
    mask: int | None = None
    shift: int = 0
    starts: list[int] | None = None

    def index(self, pos: int) -> int:
        return self.order[pos] if self.mask is None else self.order[pos] & self.mask

    def tie_starts(self) -> list[int]:
        if self.starts is None:
            order, shift = self.order, self.shift
            self.starts = [0] + [i for i in range(1, len(order))
                                 if order[i] >> shift != order[i - 1] >> shift]
            self.starts.append(len(order))
        return self.starts


def sorted_query(items: list, keys: list, desc: bool, hours: list[int] | None = None,
                 few_keys: bool = True) -> Query:
    """Order items by keys (stable: ties keep the canonical order, in both directions)."""
    n = len(items)
    distinct = set(keys) if few_keys else ()
    if few_keys and len(distinct) <= 4096:
        # Few distinct keys (hour, address, dir, port...): a bucket sort is linear.
        buckets: dict = {}
        for i, k in enumerate(keys):
            b = buckets.get(k)
            if b is None:
                buckets[k] = [i]
            else:
                b.append(i)
        order: list[int] = []
        starts = []
        for k in sorted(distinct, reverse=desc):
            starts.append(len(order))
            order.extend(buckets[k])
        starts.append(n)
        return Query(items, array("q", order), hours, starts=starts)
    # Packing (key, index) into one int lets list.sort compare ints with no key
    # function, markedly faster than sorted(range(n), key=...) on a dense month.
    shift = max(1, n.bit_length())
    if desc:
        packed = [(-k << shift) | i for i, k in enumerate(keys)]
    else:
        packed = [(k << shift) | i for i, k in enumerate(keys)]
    packed.sort()
    # An int64 array holds a dense month's order in 9 MB instead of ~40 MB of ints.
    return Query(items, array("q", packed), hours, mask=(1 << shift) - 1, shift=shift)


def page_of(q: Query, page: int, per_page: int, config: SimulatorConfig,
            tie_rng: random.Random) -> tuple[dict, list[int]]:
    """The meta and the item indices of one page; 422 past the last page."""
    per_page = min(per_page, max(1, config.max_per_page))
    total = len(q.order)
    last = max(1, math.ceil(total / per_page))
    if page > last:
        raise invalid([err("page", "range", f"The page must be between 1 and {last}")])
    lo, hi = (page - 1) * per_page, min(total, page * per_page)
    if not config.unstable_ties:
        idx = list(q.order[lo:hi]) if q.mask is None else [v & q.mask for v in q.order[lo:hi]]
    else:
        idx = _unstable_slice(q, lo, hi, tie_rng)
    meta = {"total": total, "per_page": per_page, "current_page": page, "last_page": last,
            "first_page": 1}
    if config.meta_urls:
        # Lucid's paginator without a base URL: relative and carrying only the page.
        meta.update({
            "first_page_url": "/?page=1", "last_page_url": f"/?page={last}",
            "next_page_url": f"/?page={page + 1}" if page < last else None,
            "previous_page_url": f"/?page={page - 1}" if page > 1 else None,
        })
    return meta, idx


def _unstable_slice(q: Query, lo: int, hi: int, rng: random.Random) -> list[int]:
    """Positions [lo, hi) of an order where every tie group gets a fresh permutation.

    Only the tie groups that overlap the page are drawn: a k-sample of a group
    is exactly the k positions of a uniform permutation, so huge groups (sort
    by dir: half the month) cost O(page), not O(group).
    """
    starts = q.tie_starts()
    out: list[int] = []
    pos = lo
    while pos < hi:
        g = bisect_right(starts, pos) - 1
        g0, g1 = starts[g], starts[g + 1]
        end = min(hi, g1)
        if g1 - g0 == 1:
            out.append(q.index(pos))
        else:
            out.extend(q.index(i) for i in rng.sample(range(g0, g1), end - pos))
        pos = end
    return out
