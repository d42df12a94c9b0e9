"""Loading: the threaded load with its progress bar, preparation, lookbacks, coverage.

Owns every call into the loader made on behalf of a page: the main window
(``load_main``: admitted by the spending gate, loaded in a worker thread of
``loads.Registry`` while the script thread draws its progress and Cancel button),
extra windows such as a baseline (``lookback``, which says what it fetches, and
``load_window``, its Streamlit-free twin for download callables), and the
preparation of loaded frames (countries, then masking) shared by all sessions.
The registry of running loads itself (sharing, waiters, cancel, results kept or
forgotten) is ``flux_dashboard.loads``, which draws nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st
from cachetools import TTLCache
from streamlit.runtime.scriptrunner import get_script_run_ctx

from flux_dashboard import errors as E
from flux_dashboard import spending
from flux_dashboard.config import Settings, memory_budget
from flux_dashboard.escaping import escape_markdown as text
from flux_dashboard.filters import Filters
from flux_dashboard.geo import enrich
from flux_dashboard.hours import ceil_hour, floor_hour
from flux_dashboard.loader import Loader, LoadResult, Progress
from flux_dashboard.loads import Load, Registry
from flux_dashboard.masking import Masker
from flux_dashboard.schema import compact
from flux_dashboard.store import filters_key
from flux_dashboard.ui.state import (
    Keyed,
    View,
    data_key,
    loader_for,
    masker,
    memo,
    settings,
)

log = logging.getLogger(__name__)

# The loads running in this server process, shared by all its sessions.
_loads = Registry()


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def cancel_load(key: tuple) -> None:
    """Callback of the Cancel button: this session stops waiting for the load, which
    stops only when no other session waits for it (another user's view is never left
    incomplete by someone else's click). What it completed is cached, so loading again
    resumes from there."""
    st.session_state["_flux_cancelled"] = key
    entry = _loads.find(key)
    log.info("cancel requested for %s", key[1:])
    if entry is not None:
        _loads.request_cancel(entry, _session_id())


def _resume(key: tuple) -> None:
    st.session_state.pop("_flux_cancelled", None)
    st.session_state["_flux_resume"] = key


def _cancelled_panel(key: tuple) -> None:
    st.info("Load cancelled. The hours it completed are cached; resuming fetches only "
            "the rest.", icon=":material/pause_circle:")
    st.button(":material/play_arrow: Resume the load", key="resume_load",
              on_click=_resume, args=(key,))


def _confirm(key: tuple) -> None:
    st.session_state.setdefault("_flux_confirmed", set()).add(key)


def _confirm_panel(cfg: Settings, host: Any, usage: Any, estimate: Any, key: tuple,
                   what: str = "This range", button: str = "confirm_load") -> None:
    """The question a costly load asks first, with its cost in time and budget."""
    from flux_dashboard.ui.auth import budgets

    minutes = estimate.requests / max(1, cfg.rate_limit_per_min)
    with st.container(border=True):
        st.warning(
            f"{text(what)} needs about {estimate.requests:,} API requests "
            f"({estimate.missing_hours:,} hours are not cached yet): about "
            f"{minutes:,.0f} min at {cfg.rate_limit_per_min:,} requests/min, "
            f"{budgets(host).share_of_today(usage, estimate.requests)}.",
            icon=":material/request_quote:")
        c1, c2 = st.columns(2)
        c1.button(f":material/download: Load ({estimate.requests:,} requests)",
                  key=button, type="primary", on_click=_confirm, args=(key,))
        c2.caption("Or choose a shorter range in the sidebar: cached hours cost nothing.")


@dataclass(frozen=True)
class _Window:
    """The window a page loads: sensor, range and server-side filters, and its key in
    the registry of running loads."""

    source_id: str
    sensor_id: int
    start: datetime
    end: datetime
    server: dict

    @property
    def key(self) -> tuple:
        return (self.source_id, int(self.sensor_id), self.start, self.end,
                tuple(sorted(self.server.items())))


def load_main(session: Any, cfg: Settings, sensor_id: int, start: datetime, end: datetime,
              filters: Filters, refresh: bool | str,
              first_view: Callable[[int], Callable[[], None] | None] | None = None
              ) -> tuple[LoadResult, str, bool] | None:
    """Load in a worker thread while this (script) thread draws the progress bar.

    ``refresh``: False, ``"open"`` (the hour still being written) or ``"range"``.
    The load is admitted by ``spending.begin`` (memory, estimate, confirmation,
    booking against the budgets, audit) and settled when its thread ends; it can
    be cancelled, and what it completed is cached, so loading again resumes where
    it stopped. Returns (result, note about missing hours, offline): offline when
    the window was not (fully) loaded on purpose (cancelled, budget spent), so the
    page's other loads must not fetch either. ``first_view(planned requests)``: what
    to draw above the progress bar while a long load runs (``ui.firstview``), or None.
    """
    loader = loader_for(session.grant)
    w = _Window(cfg.source_id, sensor_id, start, end,
                _server_filters(loader, filters, sensor_id, start, end))
    refresh, asked_key, confirmed = _refresh_asked(w.key, refresh)
    retry = bool(refresh) or st.session_state.pop("_flux_resume", None) == w.key
    entry = _loads.current(w.key, retry=retry)
    if retry:
        st.session_state.pop("_flux_cancelled", None)
    if st.session_state.get("_flux_cancelled") == w.key:
        # Cancelled by this user (for everyone only if nobody else waited): show what
        # is cached, offer to resume.
        _cancelled_panel(w.key)
        return _cached_only(loader, session, w.sensor_id, w.start, w.end, w.server,
                            "Showing the cached hours of this range only.")
    shown = None
    if entry is None:
        booking, instead = _admit(session, cfg, loader, w, refresh, asked_key, confirmed)
        if booking is None:
            return instead
        planned = booking.estimate.requests if booking.estimate is not None else 0
        draw = first_view(planned) if first_view is not None and planned else None
        if draw is not None:
            # Before the flows start: their requests would hold the rate limiter's slots.
            shown = st.empty()
            with shown.container(key="first_view"):
                draw()
        entry = _start(loader, booking, w, refresh)
    _wait(entry)
    if shown is not None:
        shown.empty()
    return _outcome(entry, cfg, w)


def _server_filters(loader: Loader, filters: Filters, sensor_id: int, start: datetime,
                    end: datetime) -> dict:
    """A toxic-only view of a range we do not hold yet: ask the API for toxic rows
    only (a handful of requests instead of hundreds). Otherwise filter locally."""
    if filters.toxic_only and loader.cached_coverage(sensor_id, start, end) < 1.0:
        return {"only_toxic": True}
    return {}


def _refresh_asked(key: tuple, refresh: bool | str) -> tuple[bool | str, tuple, bool]:
    """(refresh, the key its confirmation is asked under, whether it was confirmed).

    A whole-range refresh asks on its own (it costs a cold load), and is carried to
    the run of its confirmation.
    """
    ok = st.session_state.get("_flux_confirmed", set())
    if refresh == "range":
        st.session_state["_flux_refresh_range"] = key
    elif st.session_state.get("_flux_refresh_range") == key and ("range", *key) in ok:
        refresh = "range"
    asked_key = ("range", *key) if refresh == "range" else key
    return refresh, asked_key, asked_key in ok


def _admit(session: Any, cfg: Settings, loader: Loader, w: _Window, refresh: bool | str,
           asked_key: tuple, confirmed: bool
           ) -> tuple[spending.Booking | None, tuple[LoadResult, str, bool] | None]:
    """The spending gate's admission of the load: (its booking, None), or (None, what
    the page shows instead) after drawing the question or the refusal."""
    from flux_dashboard.ui.auth import meter, spender

    try:
        booking = spending.begin(spender(session), loader, w.sensor_id, w.start, w.end,
                                 server=w.server, purpose="page", confirmed=confirmed,
                                 refresh=refresh)
    except spending.NeedsConfirmation as exc:
        what = "Refreshing the whole range" if refresh == "range" else "This range"
        _confirm_panel(cfg, session.hosting, meter().usage(session.user), exc.estimate,
                       asked_key, what=what)
        return None, None
    except E.BudgetExceededError as exc:  # audited by the gate
        st.error(text(exc), icon=":material/money_off:")
        return None, _cached_only(loader, session, w.sensor_id, w.start, w.end, w.server,
                                  "Request budget spent: showing the cached hours only.")
    except E.MemoryLimitError as exc:
        st.error(text(exc), icon=":material/memory:")
        return None, None
    except E.FluxError as exc:
        st.error(text(exc), icon=":material/cloud_off:")
        return None, None
    if refresh == "range":
        st.session_state.pop("_flux_refresh_range", None)
        # The next refresh of the range asks again.
        st.session_state.get("_flux_confirmed", set()).discard(asked_key)
    return booking, None


def _start(loader: Loader, booking: spending.Booking, w: _Window, refresh: bool | str
           ) -> Load:
    """The admitted load, started in a worker thread; or the same window's load another
    session started meanwhile (this booking is then closed unspent)."""
    def run(load: Load) -> LoadResult:
        return loader.load(w.sensor_id, w.start, w.end, server_filters=w.server,
                           progress=load.report, refresh=refresh, cancel=load.cancel,
                           max_requests=booking.allowance)

    def settle(load: Load) -> None:
        # In the worker, not in the script run: a click or a closed tab may interrupt
        # that run, and the requests must be settled and audited all the same.
        try:
            booking.finish(load.spent, load.error)
        except E.FluxError as exc:  # shared state down: the load is not lost for it
            log.warning("load not settled: %s", exc)

    entry, started = _loads.start(w.key, run, settle)
    if not started:
        booking.finish(0)
    return entry


def _wait(entry: Load) -> None:
    """Draw the shared load's progress until it ends (with a Cancel button)."""
    # Detached also when the run is interrupted (a click, a closed tab).
    with _loads.waiting(entry, _session_id()):
        if entry.join(0.15):
            return
        holder = st.empty()
        with holder.container():
            bar = st.progress(0.0, text="Connecting to the sensor…")
            st.button(":material/cancel: Cancel the load", key="cancel_load",
                      on_click=cancel_load, args=(entry.key,),
                      help="Stop fetching; the hours already loaded stay cached and a "
                           "later load resumes from there")
            while entry.running:
                p: Progress | None = entry.progress
                # Drawn on every turn, even unchanged: a Streamlit call is where the
                # script notices a stop (a server shutting down, a rerun). Without it,
                # a load that never reports (an API that does not answer) held SIGTERM
                # up until its retries ran out.
                if p is not None:
                    bar.progress(p.fraction, text=progress_text(p))
                else:
                    bar.progress(0.0, text="Connecting to the sensor…")
                entry.join(0.25)
        holder.empty()


def _outcome(entry: Load, cfg: Settings, w: _Window) -> tuple[LoadResult, str, bool] | None:
    """What the page shows of the ended load: its result, the part it completed (with
    a note), or nothing after an error message."""
    err = entry.error
    if isinstance(err, E.IncompleteDataError) and err.partial is not None:
        hours = err.hours
        if isinstance(err, E.LoadCancelledError):
            _cancelled_panel(w.key)
            note = (f"Showing the cached hours of this range only: {len(hours)} hour(s) "
                    "are not loaded yet and are left out.")
        else:
            note = (f"{len(hours)} hour(s) could not be loaded completely and are left out "
                    f"(first: {hours[0]:%Y-%m-%d %H:00} UTC). {err}") if hours else str(err)
        partial = _loads.keep_partial(entry, lambda: LoadResult(
            frame=err.partial, start=floor_hour(w.start), end=ceil_hour(w.end),
            server_filters=w.server, loaded_at=cfg.now()))
        offline = isinstance(err, E.LoadCancelledError | E.BudgetExceededError)
        return partial, note, offline
    if err is not None:
        if isinstance(err, E.FluxError):
            st.error(text(err), icon=":material/cloud_off:")
        else:  # a bug: say so plainly, keep the traceback in the server log only
            log.error("load failed", exc_info=err)
            st.error("Something went wrong while loading the flows. Try again; if it "
                     "persists, the server log has the details.", icon=":material/bug_report:")
        return None
    return entry.result, "", False


# Cached-only windows (a spent budget, a cancelled load, a window being loaded by
# another session): the loader never keeps them in memory, so every rerun would
# read the cache again into a new frame, with a new token, hence new prepared
# copies in the derived cache. One result per window and cache coverage instead,
# bounded by bytes (FLUX_MEMORY_MB's "partial" share), kept two minutes.
_PARTIAL: TTLCache = TTLCache(maxsize=memory_budget("partial"), ttl=120,
                              getsizeof=lambda v: max(1, v[0].frame.estimated_size()))
_PARTIAL_LOCK = threading.Lock()


def _cached_only(loader: Any, session: Any, sensor_id: int, start: datetime, end: datetime,
                 server: dict, note: str) -> tuple[LoadResult, str, bool] | None:
    """The cached hours of the window, without a single request."""
    key = (loader.source_id, int(sensor_id), filters_key(server), start, end)
    try:
        coverage = loader.cached_coverage(sensor_id, start, end, server)  # metadata only
    except E.FluxError:
        coverage = None
    with _PARTIAL_LOCK:
        hit = _PARTIAL.get(key)
    if hit is not None and coverage is not None and hit[1] == coverage:
        result, missing = hit[0], hit[2]
    else:
        try:
            result, missing = loader.load(sensor_id, start, end, server_filters=server,
                                          max_requests=0), 0
        except E.IncompleteDataError as exc:
            if exc.partial is None:
                return None
            result = LoadResult(frame=exc.partial, start=floor_hour(start),
                                end=ceil_hour(end), server_filters=server,
                                loaded_at=settings().now())
            missing = len(exc.hours)
        except E.FluxError as exc:
            st.error(text(exc), icon=":material/cloud_off:")
            return None
        if coverage is not None:
            with _PARTIAL_LOCK:
                try:
                    _PARTIAL[key] = (result, coverage, missing)
                except ValueError:  # larger than its share: serve it, don't keep it
                    pass
    return result, (f"{note} {missing} hour(s) are not cached and are left out."
                    if missing else note), True


def progress_text(p: Progress) -> str:
    left = p.seconds_left
    eta = f" · about {left:.0f} s left at {p.rate_limit_per_min:,} requests/min" if left >= 1 \
        else ""
    return (f"Loading flows: {p.requests_done}/{p.requests_planned} requests · "
            f"{p.rows:,} rows · {p.hours_done}/{p.hours_total} hours{eta}")


def prepare(cfg: Settings, sensor_id: int, result: LoadResult, masked: bool,
            mask: Masker | None = None) -> pl.DataFrame:
    """Countries and owners looked up on the real IPs (once per distinct IP), then
    masking: one frame per load, shared by every session. Its flow columns are the
    loaded frame's own (``geo.enrich`` adds columns without copying them); a
    masked frame is compacted again after masking."""
    def build() -> pl.DataFrame:
        df = enrich(result.frame, "ip1")
        if masked:
            df = compact((mask or masker(cfg)).mask_frame(df))
        return df

    return memo(("prepared", data_key(cfg, sensor_id, result, masked)), build)


def _filtered(view: View, result: LoadResult, mask: Masker | None = None) -> Keyed:
    dkey = data_key(view.settings, view.sensor["id"], result, view.masked)
    base = prepare(view.settings, view.sensor["id"], result, view.masked, mask)
    key = ("filtered", dkey, view.filters)
    return Keyed(key, memo(key, lambda: view.filters.apply(base, view.tz, view.hno_hours)))


def load_window(view: View, loader: Loader, mask: Masker | None, start: datetime,
                end: datetime, spend: spending.Spender) -> Keyed:
    """Another window's flows, prepared and filtered like the view (no Streamlit calls).

    For download callables, which run outside the script run: admitted, booked and
    audited like any load (``spend``), with nobody to ask, so a load that would need
    confirmation is refused. Raises FluxError; an incomplete window raises too (an
    evidence pack is never silently partial).
    """
    result = spending.load(spend, loader, view.sensor["id"], start, end,
                           server=dict(view.result.server_filters), purpose="evidence pack",
                           offline=view.offline)
    return _filtered(view, result, mask)


def lookback(view: View, start: datetime, end: datetime, why: str) -> Keyed | None:
    """Flows of another window (e.g. a baseline) through the same loader, cache and
    gate as the page's own load (memory, confirmation, budgets, audit), prepared
    and filtered as the page's own frame.

    Says what it fetches and why; returns None after a visible warning, or after
    asking to confirm a costly load.
    """
    result = lookback_result(view, start, end, why)
    return None if result is None else _filtered(view, result)


def lookback_result(view: View, start: datetime, end: datetime, why: str) -> LoadResult | None:
    """``lookback``'s load itself (raw, unmasked flows: for server-side work such as
    findings' detection, never shown as such)."""
    from flux_dashboard.ui.auth import meter, spender

    loader = loader_for(view.session.grant)
    server = dict(view.result.server_filters)
    cached = loader.cached_coverage(view.sensor["id"], start, end, server)
    span = f"{view.local(start):%a %d %b %H:%M} → {view.local(end):%a %d %b %H:%M}"
    note = "from the cache" if cached >= 1.0 else \
        ("cached hours only: the main load was stopped" if view.offline
         else "fetching what is not cached yet")
    st.caption(f":material/history: {text(why)}: flows of {span} ({note}).")
    key = ("lookback", view.settings.source_id, int(view.sensor["id"]), start, end,
           tuple(sorted(server.items())))
    confirmed = key in st.session_state.get("_flux_confirmed", set())
    try:
        with st.spinner(f"Loading {why.lower()}…"):
            result = spending.load(spender(view.session), loader, view.sensor["id"], start,
                                   end, server=server, purpose=why, confirmed=confirmed,
                                   offline=view.offline)
    except spending.NeedsConfirmation as exc:
        button = "confirm_" + hashlib.blake2b(repr(key).encode(), digest_size=6).hexdigest()
        _confirm_panel(view.settings, view.session.hosting, meter().usage(view.session.user),
                       exc.estimate, key, what=why, button=button)
        return None
    except E.IncompleteDataError as exc:
        # A comparison against part of a baseline would call known things new: none.
        st.warning(f"Could not load {text(why.lower())} completely, so the comparison is "
                   f"not shown: {text(exc)}", icon=":material/warning:")
        return None
    except E.FluxError as exc:
        st.warning(f"Could not load {text(why.lower())}: {text(exc)}",
                   icon=":material/warning:")
        return None
    return result


def coverage_banner(view: View) -> None:
    """Which hours are missing or still being written, and how the data was filtered."""
    r = view.result
    if view.partial_note:
        st.warning(text(view.partial_note), icon=":material/warning:")
    if r.server_filters:
        st.caption(":material/filter_alt: Loaded toxic flows only (server-side filter): "
                   "turn off “Toxic flows only” to load every flow.")
    if r.open_hours:
        first = view.local(r.open_hours[0])
        st.caption(f":material/schedule: {len(r.open_hours)} hour(s) from "
                   f"{first:%H:%M} are still being written; “Refresh” fetches them again.")
