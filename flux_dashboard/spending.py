"""The one gate every API request of a user goes through, whichever page or button spends it.

The main load of a page, its look-backs (the Overview's comparison, the hunting
baseline, the profile's look-back) and the windows an evidence pack loads all
pass here, in the same order:

1. **memory**: a window larger than the loader may keep is refused up front,
   from the disk cache's metadata, with the number of days that would fit;
2. **estimate**: what the load will cost (the loader counts missing hours; its
   own count requests are metered);
3. **confirmation**: a load costing more than ``FLUX_CONFIRM_REQUESTS`` asks
   first (``NeedsConfirmation``); a build with nobody to ask refuses instead;
4. **booking**: the estimate is reserved against the budgets and the quota in
   one atomic step (``budget.Meter.reserve``), so two tabs cannot both pass a
   budget only one fits, and the load may spend at most what it booked;
5. **audit**: ``load_started`` with its purpose and estimate (a window the loader
   holds in memory costs nothing and is not audited); in hosted mode an audit
   trail that cannot be written refuses the load; a refusal by a budget is
   audited too (``budget_refused``);
6. **settle**: what the load really spent replaces the booking, and
   ``load_finished`` or ``load_cancelled`` is audited with that count.

The embedded demo (no API, nothing to pay) skips the estimate, the question and
the budgets; its loads are still audited. Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flux_dashboard import errors as E
from flux_dashboard.budget import Budgets, Reservation
from flux_dashboard.loader import Estimate, LoadResult, Progress
from flux_dashboard.schema import COMPACT_ROW_BYTES

# Booked above the estimate, when the budgets allow it: an estimate is a count made
# before the load, and the load stops at what it booked.
MARGIN = 0.25
MARGIN_MIN = 5


class NeedsConfirmation(E.FluxError):
    """The load costs more than the confirmation threshold; nothing was spent."""

    def __init__(self, estimate: Estimate, threshold: int) -> None:
        super().__init__(f"This needs about {estimate.requests:,} API requests, more than "
                         f"the {threshold:,} that load without asking: confirm it on the "
                         "page first.")
        self.estimate = estimate
        self.threshold = threshold


@dataclass(frozen=True)
class Spender:
    """Who spends, against what, and where it is recorded."""

    user: str
    meter: Any  # budget.Meter or shared.RedisMeter
    budgets: Budgets
    confirm_over: int  # requests a load may cost without asking (0: never ask)
    metered: bool  # False: the embedded demo, no API behind it
    rate_per_min: int
    # (event, *, required=True, **fields): raises AuditUnavailableError to refuse a
    # required event it cannot write
    audit: Callable[..., None]
    memory_limit: int | None = None  # bytes one window may take in memory


@dataclass
class Booking:
    """One load's admission: what it may spend, and how it is closed (``finish``)."""

    spender: Spender
    estimate: Estimate | None
    reservation: Reservation | None
    fields: dict = field(default_factory=dict)
    done: bool = False

    @property
    def allowance(self) -> int | None:
        """``max_requests`` for the loader (None: not metered)."""
        return self.reservation.requests if self.reservation is not None else None

    def finish(self, spent: int, error: BaseException | None = None) -> None:
        """Settle the booking with what the load spent, and audit its end (once)."""
        if self.done:
            return
        self.done = True
        sp = self.spender
        try:
            if self.reservation is not None:
                sp.meter.settle(self.reservation, spent)
            elif spent > 0:
                sp.meter.add(sp.user, spent)
        finally:
            event = "load_cancelled" if isinstance(error, E.LoadCancelledError) else \
                "load_finished"
            try:
                sp.audit(event, requests=spent, ok=error is None, **self.fields)
            except E.AuditUnavailableError:
                pass  # the load was audited when it started; its data is already spent


def too_big(loader: Any, limit: int | None, sensor_id: int, start: datetime, end: datetime,
            server: dict) -> str | None:
    """Why this window must not be loaded into memory, or None.

    A window is held whole in the loader's memory (its share of ``FLUX_MEMORY_MB``);
    one larger than that could not be kept, so every click would read it from disk
    again, with one more full copy each time. Judged from the disk cache's metadata
    before anything is read (no estimate without cached hours).
    """
    rows = loader.expected_rows(sensor_id, start, end, server)
    if limit is None or rows is None or rows * COMPACT_ROW_BYTES <= limit:
        return None
    days = max((end - start).total_seconds() / 86400, 1 / 24)
    fit = int(days * limit / (rows * COMPACT_ROW_BYTES))
    narrower = (f"choose at most {fit} days" if fit >= 1 else "choose a shorter range "
                "(less than a day)")
    return (f"This range holds about {rows / 1e6:,.1f} million flows, about "
            f"{rows * COMPACT_ROW_BYTES / 2**20:,.0f} MB in memory: more than this server "
            f"keeps for one range ({limit / 2**20:,.0f} MB). To see it, {narrower}, or ask "
            "an administrator to raise FLUX_MEMORY_MB.")


def begin(spender: Spender, loader: Any, sensor_id: int, start: datetime, end: datetime, *,
          server: dict | None = None, purpose: str, confirmed: bool = False,
          refresh: bool | str = False) -> Booking:
    """Admit one load (steps 1 to 5 of the module's doc); the caller loads with
    ``booking.allowance`` and then calls ``booking.finish``.

    Raises ``MemoryLimitError`` (too big), ``NeedsConfirmation``,
    ``BudgetExceededError`` (a budget or the quota) or ``AuditUnavailableError``,
    each with a plain message; nothing is spent or booked then.
    """
    server = dict(server or {})
    refusal = too_big(loader, spender.memory_limit, sensor_id, start, end, server)
    if refusal:
        raise E.MemoryLimitError(refusal)
    fields = {"sensor": int(sensor_id), "range": [start, end], "purpose": purpose}
    estimate = reservation = None
    works = bool(refresh) or not loader.holds(sensor_id, start, end, server)
    if spender.metered and works:
        try:  # a spent budget refuses before the estimate spends its own requests
            spender.meter.settle(spender.meter.reserve(spender.user, 1, spender.budgets), 0)
        except E.BudgetExceededError:
            spender.audit("budget_refused", required=False, **fields)
            raise
        # A whole-range refresh fetches every hour again: priced as such.
        estimate = (loader.refetch_estimate if refresh == "range" else loader.estimate)(
            sensor_id, start, end, server_filters=server)
        if estimate.spent:
            spender.meter.add(spender.user, estimate.spent)
        # Refreshing the open hour costs a request or two: never asked.
        if 0 < spender.confirm_over < estimate.requests and not confirmed \
                and refresh != "open":
            raise NeedsConfirmation(estimate, spender.confirm_over)
        try:
            reservation = _reserve(spender, estimate.requests)
        except E.BudgetExceededError:
            spender.audit("budget_refused", required=False, requests=estimate.requests,
                          **fields)
            raise
    booking = Booking(spender, estimate, reservation, fields, done=not works)
    if works:
        try:
            spender.audit("load_started", estimated=estimate.requests if estimate else 0,
                          estimate_requests=estimate.spent if estimate else 0, **fields)
        except BaseException:
            booking.done = True
            if reservation is not None:
                spender.meter.settle(reservation, 0)
            raise
    return booking


def _reserve(spender: Spender, requests: int) -> Reservation:
    """Book the estimate with a margin when the budgets allow it, else the estimate."""
    ttl = Reservation.ttl_s(requests, spender.rate_per_min)
    padded = math.ceil(requests * (1 + MARGIN)) + MARGIN_MIN
    try:
        return spender.meter.reserve(spender.user, padded, spender.budgets, ttl)
    except E.BudgetExceededError:
        return spender.meter.reserve(spender.user, requests, spender.budgets, ttl)


def load(spender: Spender, loader: Any, sensor_id: int, start: datetime, end: datetime, *,
         server: dict | None = None, purpose: str, confirmed: bool = False,
         offline: bool = False) -> LoadResult:
    """Admit, load and settle one window in the calling thread (look-backs, packs).

    ``offline``: the page's main load was stopped on purpose (cancelled, budget
    spent): only cached hours, no request (IncompleteDataError for the rest).
    """
    server = dict(server or {})
    if offline:
        return loader.load(sensor_id, start, end, server_filters=server, max_requests=0)
    booking = begin(spender, loader, sensor_id, start, end, server=server, purpose=purpose,
                    confirmed=confirmed)
    last: list[Progress] = []
    try:
        result = loader.load(sensor_id, start, end, server_filters=server,
                             max_requests=booking.allowance, progress=last.append)
    except BaseException as exc:
        booking.finish(last[-1].requests_done if last else 0, exc)
        raise
    booking.finish(result.flux_requests)
    return result
