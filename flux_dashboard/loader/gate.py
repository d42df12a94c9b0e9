"""Cancel and allowance: every attempt of a load, retries included, passes its gate.

The gate is taken in the thread that makes the attempt (the client's rate
limiter is wrapped for that): a set ``cancel`` event or a spent
``max_requests`` refuses it, also while waiting for a rate-limit slot.
Requests already sent complete and their hours are kept; the loader then
raises ``LoadCancelledError`` or ``BudgetExceededError`` with the hours not
loaded and the partial frame. Worst case after a cancel: one request in flight
per worker (``max_concurrency``), none started after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flux_dashboard import errors as E
from flux_dashboard.client import Client, stopped_wait

# Errors a load stops on at once: a retry or another window would get the same.
FATAL = (E.AuthenticationError, E.ForbiddenError, E.NotFoundError, E.InvalidRequestError,
         E.RateLimitedError)


class Stop(Exception):
    """A load's cancel event is set, or its request allowance is spent."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "request allowance spent")
        self.cancelled = cancelled


class Gate:
    """Admits the flux requests of one load: its cancel event and its allowance.

    Taken before every attempt (retries included) by ``GatedLimiter`` in the
    requesting thread, so ``used`` is exactly what this load sent, whatever
    other loads share the client.
    """

    def __init__(self, cancel: threading.Event | None = None, limit: int | None = None) -> None:
        self.cancel = cancel
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.cancel is not None and self.cancel.is_set():
                raise Stop(cancelled=True)
            if self.limit is not None and self.used >= self.limit:
                raise Stop(cancelled=False)
            self.used += 1

    def refund(self) -> None:
        with self._lock:
            self.used -= 1


_current = threading.local()  # .gate: the gate of the flux request this thread is making


@contextmanager
def gated(gate: Gate) -> Iterator[None]:
    """The requests this thread makes in the block pass ``gate`` (``GatedLimiter``)."""
    _current.gate = gate
    try:
        yield
    finally:
        _current.gate = None


class GatedLimiter:
    """The client's rate limiter with the calling thread's load gate in front of it.

    The client calls ``limiter.acquire()`` right before each attempt, retries
    included, in the thread that asked: the one place where a load can refuse
    an attempt it has no allowance for, or stop waiting for a slot once it is
    cancelled. Requests made outside a load (no gate) pass straight through.
    """

    def __init__(self, inner) -> None:
        self._inner = inner

    def acquire(self) -> None:
        gate: Gate | None = getattr(_current, "gate", None)
        if gate is None:
            self._inner.acquire()
            return
        gate.take()
        if gate.cancel is None:
            self._inner.acquire()
            return
        wait = self._inner.reserve()
        if wait > 0 and gate.cancel.wait(wait):  # cancelled while waiting for the slot
            gate.refund()
            raise Stop(cancelled=True)

    def backoff(self, seconds: float, stop: threading.Event | None, sleep) -> None:
        """The client's wait before a retry: a cancelled load stops waiting at once
        (``Stop``), a stopping process too (``LoadCancelledError``)."""
        gate: Gate | None = getattr(_current, "gate", None)
        cancel = gate.cancel if gate is not None else None
        if cancel is None or sleep is not time.sleep:  # no load, or a test's own clock
            stopped_wait(stop, sleep, seconds)
            if cancel is not None and cancel.is_set():
                raise Stop(cancelled=True)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if stop is not None and stop.is_set():
                stopped_wait(stop, sleep, 0)  # raises LoadCancelledError
            if cancel.wait(min(left, 0.2)):
                raise Stop(cancelled=True)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


_gating = threading.Lock()


def gate_client(client: Client) -> None:
    with _gating:
        if not isinstance(client.limiter, GatedLimiter):
            client.limiter = GatedLimiter(client.limiter)
