"""The registry of running loads: one load per window, shared by every session asking for it.

A page's main load runs in a worker thread while the script run draws its
progress (``ui.loading``). This module owns everything about those loads that is
not drawing, and imports no Streamlit:

- **one load per window**: ``Registry.start`` runs ``run(load)`` in a worker
  thread and publishes it under the window's key; a session that asks for the
  same window while it runs (or while its incomplete outcome is kept) joins it
  (``Registry.current``) instead of loading again;
- **waiters**: each session (browser tab) waiting for a load is counted with
  its number of script runs attached (``attach``/``detach``, or ``waiting``);
- **cancel**: ``request_cancel(load, session)`` stops that session's wait, and
  stops the load only when no other session waits for it, so nobody's view is
  left incomplete by someone else's click. A load nobody waits for during
  ``DETACH_GRACE_S`` (a closed tab) is cancelled: a run interrupted by a click
  re-attaches within milliseconds;
- **progress and settlement**: the worker keeps the loader's last ``Progress``
  and, when the load ends, calls ``settle(load)`` (the spending gate's
  ``Booking.finish``) in the worker itself, so a closed tab cannot skip it;
- **results kept or forgotten**: a finished load leaves the registry at the next
  look-up: a complete one at once (the loader's memory cache serves its window
  again), an incomplete one (cancelled, budget spent, failed hours) after
  ``KEEP_INCOMPLETE_S``, so reruns show it instead of spending requests again,
  or at once when its window is asked for again on purpose (a resume, a
  refresh). Its partial result is built once and shared (``keep_partial``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flux_dashboard.loader import LoadResult, Progress

log = logging.getLogger(__name__)

# A run interrupted by a rerun re-attaches within milliseconds; a closed tab never
# does. A load nobody has waited for during this long is cancelled.
DETACH_GRACE_S = 8.0
# An incomplete outcome (a cancel, a spent budget, failed hours) is kept this long, so
# reruns show it instead of retrying (and spending requests) on every click.
KEEP_INCOMPLETE_S = 120.0


@dataclass(eq=False)
class Load:
    """One load of one window in a worker thread, shared by every session waiting for it.

    The worker sets ``progress`` as the loader reports it, then ``result`` or
    ``error``, then ``finished_at``; ``partial`` is the frame of an incomplete
    outcome, built once (``Registry.keep_partial``).
    """

    key: tuple
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    # Sessions (tabs) waiting for it, each with its number of script runs attached.
    waiters: Counter = field(default_factory=Counter)
    progress: Progress | None = None
    result: LoadResult | None = None
    error: BaseException | None = None
    finished_at: float | None = None
    partial: LoadResult | None = None

    def report(self, progress: Progress) -> None:
        """The loader's progress callback."""
        self.progress = progress

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the worker; True when it has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    @property
    def spent(self) -> int:
        """API requests the load spent: its result's count, else the last progress's."""
        if self.result is not None:
            return self.result.flux_requests
        return self.progress.requests_done if self.progress is not None else 0


class Registry:
    """The loads running in this process, by window key (one lock guards them all)."""

    def __init__(self, *, grace_s: float = DETACH_GRACE_S,
                 keep_incomplete_s: float = KEEP_INCOMPLETE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.keep_incomplete_s = keep_incomplete_s
        self._clock = clock
        self._loads: dict[tuple, Load] = {}
        self._lock = threading.Lock()

    # -- finding and starting loads

    def find(self, key: tuple) -> Load | None:
        """The load of ``key`` in the registry, as it is (a Cancel button's look-up)."""
        with self._lock:
            return self._loads.get(key)

    def current(self, key: tuple, *, retry: bool = False) -> Load | None:
        """The load a session asking for ``key`` joins, or None: start one.

        Forgets finished loads first (see the module's doc); ``retry``: the window
        is asked for again on purpose, so its own finished load is forgotten too.
        """
        now = self._clock()
        with self._lock:
            for k, load in list(self._loads.items()):
                if load.finished_at is not None and (
                        load.partial is None or now - load.finished_at > self.keep_incomplete_s
                        or (retry and k == key)):
                    del self._loads[k]
            return self._loads.get(key)

    def start(self, key: tuple, run: Callable[[Load], LoadResult],
              settle: Callable[[Load], None]) -> tuple[Load, bool]:
        """Run ``run(load)`` in a worker thread, then ``settle(load)`` there, whatever
        happened (its result or error is on the load by then).

        Returns (the load, True), or (the load of ``key`` another session started
        meanwhile, False): then nothing was started, and the caller joins that one.
        """
        load = Load(key)

        def work() -> None:
            try:
                load.result = run(load)
            except BaseException as exc:  # handed to the waiting script runs
                load.error = exc
            finally:
                try:
                    settle(load)
                finally:
                    with self._lock:
                        load.finished_at = self._clock()

        load.thread = threading.Thread(target=work, name="flux-load", daemon=True)
        # Published with its thread already started: another session that finds the
        # load joins that thread at once ("cannot join thread before it is started"
        # was seen when it was published first).
        with self._lock:
            if key in self._loads:
                return self._loads[key], False
            self._loads[key] = load
            load.thread.start()
        return load, True

    def keep_partial(self, load: Load, build: Callable[[], LoadResult]) -> LoadResult:
        """The incomplete outcome's result, built by the first session to ask, so
        that reruns and other sessions share one copy."""
        with self._lock:
            if load.partial is None:
                load.partial = build()
            return load.partial

    # -- waiting and cancelling

    def attach(self, load: Load, session: str) -> None:
        with self._lock:
            load.waiters[session] += 1

    def detach(self, load: Load, session: str) -> None:
        """One script run of ``session`` stops waiting; when nobody waits for a load
        still running, it is cancelled after the grace period unless a run
        re-attaches meanwhile."""
        with self._lock:
            load.waiters[session] -= 1
            if load.waiters[session] <= 0:
                del load.waiters[session]
            alone = not load.waiters and load.finished_at is None
        if alone:
            timer = threading.Timer(self.grace_s, self._cancel_if_abandoned, (load,))
            timer.daemon = True
            timer.start()

    @contextmanager
    def waiting(self, load: Load, session: str) -> Iterator[Load]:
        """Attached for the block, detached however it ends (an interrupted run too)."""
        self.attach(load, session)
        try:
            yield load
        finally:
            self.detach(load, session)

    def request_cancel(self, load: Load, session: str) -> bool:
        """Cancel the load if no other session waits for it (the canceller's own run may
        not have detached yet when its callback runs); True when it was cancelled."""
        with self._lock:
            alone = not [s for s in load.waiters if s != session]
        if alone:
            load.cancel.set()
        return alone

    def _cancel_if_abandoned(self, load: Load) -> None:
        with self._lock:
            if not load.waiters and load.finished_at is None:
                load.cancel.set()
                log.info("load %s cancelled: nobody is waiting for it", load.key[1:])
