"""Loading: the threaded load with its progress bar, preparation, lookbacks, coverage.

Owns every call into the loader made on behalf of a page: the main window
(loaded in a worker thread while the script thread draws progress), extra
windows such as a baseline (``lookback``, which says what it fetches, and
``load_window``, its Streamlit-free twin for download callables), and the
preparation of loaded frames (countries, then masking) shared by all sessions.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import polars as pl
import streamlit as st

from flux_dashboard import errors as E
from flux_dashboard.config import Settings
from flux_dashboard.filters import Filters
from flux_dashboard.geo import with_country
from flux_dashboard.loader import Loader, LoadResult, Progress, ceil_hour, floor_hour
from flux_dashboard.masking import Masker
from flux_dashboard.ui.state import Keyed, View, data_key, loader_for, masker, memo
from flux_dashboard.ui.text import text

log = logging.getLogger(__name__)


def load_main(session: Any, cfg: Settings, sensor_id: int, start: datetime, end: datetime,
              filters: Filters, refresh: bool | str) -> tuple[LoadResult, str] | None:
    """Load in a worker thread while this (script) thread draws the progress bar.

    ``refresh``: False, ``"open"`` (the hour still being written) or ``"range"``.
    """
    loader = loader_for(session.grant)
    server: dict = {}
    # A toxic-only view of a range we do not hold yet: ask the API for toxic rows
    # only (a handful of requests instead of hundreds). Otherwise filter locally.
    if filters.toxic_only and loader.cached_coverage(sensor_id, start, end) < 1.0:
        server = {"only_toxic": True}
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = loader.load(sensor_id, start, end, server_filters=server,
                                        progress=lambda p: box.__setitem__("progress", p),
                                        refresh=refresh)
        except BaseException as exc:  # handed to the script thread below
            box["error"] = exc

    worker = threading.Thread(target=work, name="flux-load", daemon=True)
    worker.start()
    worker.join(0.15)
    if worker.is_alive():
        holder = st.empty()
        with holder.container():
            bar = st.progress(0.0, text="Connecting to the sensor…")
            while worker.is_alive():
                p: Progress | None = box.get("progress")
                if p is not None:
                    bar.progress(p.fraction, text=progress_text(p))
                worker.join(0.25)
        holder.empty()
    err = box.get("error")
    last: Progress | None = box.get("progress")
    spent = box["result"].flux_requests if "result" in box else \
        (last.requests_done if last is not None else 0)
    count_requests(session, spent)
    if isinstance(err, E.IncompleteDataError) and err.partial is not None:
        hours = err.hours
        note = (f"{len(hours)} hour(s) could not be loaded completely and are left out "
                f"(first: {hours[0]:%Y-%m-%d %H:00} UTC). {err}") if hours else str(err)
        partial = LoadResult(frame=err.partial, start=floor_hour(start), end=ceil_hour(end),
                             server_filters=server, loaded_at=datetime.now(UTC))
        return partial, note
    if err is not None:
        if isinstance(err, E.FluxError):
            st.error(text(err), icon=":material/cloud_off:")
        else:  # a bug: say so plainly, keep the traceback in the server log only
            log.error("load failed", exc_info=err)
            st.error("Something went wrong while loading the flows. Try again; if it "
                     "persists, the server log has the details.", icon=":material/bug_report:")
        return None
    return box["result"], ""


def count_requests(session: Any, requests: int) -> None:
    """Add a load's API requests to the meter (per user, per day, per month)."""
    if requests > 0:
        from flux_dashboard.ui.auth import meter

        meter().add(session.user, requests)


def progress_text(p: Progress) -> str:
    left = p.seconds_left
    eta = f" · about {left:.0f} s left at {p.rate_limit_per_min:,} requests/min" if left >= 1 \
        else ""
    return (f"Loading flows: {p.requests_done}/{p.requests_planned} requests · "
            f"{p.rows:,} rows · {p.hours_done}/{p.hours_total} hours{eta}")


def prepare(cfg: Settings, sensor_id: int, result: LoadResult, masked: bool,
            mask: Masker | None = None) -> pl.DataFrame:
    """Countries looked up on the real IPs, then masking: one copy per load, shared."""
    def build() -> pl.DataFrame:
        df = with_country(result.frame, "ip1")
        if masked:
            df = (mask or masker(cfg)).mask_frame(df)
        return df

    return memo(("prepared", data_key(cfg, sensor_id, result, masked)), build)


def _filtered(view: View, result: LoadResult, mask: Masker | None = None) -> Keyed:
    dkey = data_key(view.settings, view.sensor["id"], result, view.masked)
    base = prepare(view.settings, view.sensor["id"], result, view.masked, mask)
    key = ("filtered", dkey, view.filters)
    return Keyed(key, memo(key, lambda: view.filters.apply(base, view.tz, view.hno_hours)))


def load_window(view: View, loader: Loader, mask: Masker | None, start: datetime,
                end: datetime) -> Keyed:
    """Another window's flows, prepared and filtered like the view (no Streamlit calls).

    For download callables, which run outside the script run. Raises FluxError;
    an incomplete window raises too (an evidence pack is never silently partial).
    """
    result = loader.load(view.sensor["id"], start, end,
                         server_filters=dict(view.result.server_filters))
    count_requests(view.session, result.flux_requests)
    return _filtered(view, result, mask)


def lookback(view: View, start: datetime, end: datetime, why: str) -> Keyed | None:
    """Flows of another window (e.g. a baseline) through the same loader and cache.

    Says what it fetches and why; returns None after a visible warning on error.
    """
    loader = loader_for(view.session.grant)
    server = dict(view.result.server_filters)
    cached = loader.cached_coverage(view.sensor["id"], start, end, server)
    span = f"{view.local(start):%a %d %b %H:%M} → {view.local(end):%a %d %b %H:%M}"
    note = "from the cache" if cached >= 1.0 else "fetching what is not cached yet"
    st.caption(f":material/history: {text(why)}: flows of {span} ({note}).")
    try:
        with st.spinner(f"Loading {why.lower()}…"):
            result = loader.load(view.sensor["id"], start, end, server_filters=server)
    except E.IncompleteDataError as exc:
        # A comparison against part of a baseline would call known things new: none.
        st.warning(f"Could not load {text(why.lower())} completely, so the comparison is "
                   f"not shown: {text(exc)}", icon=":material/warning:")
        return None
    except E.FluxError as exc:
        st.warning(f"Could not load {text(why.lower())}: {text(exc)}",
                   icon=":material/warning:")
        return None
    count_requests(view.session, result.flux_requests)
    return _filtered(view, result)


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
