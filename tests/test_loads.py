"""The registry of running loads (``flux_dashboard.loads``), without Streamlit: sessions
are plain ids, a load is a ``run`` function the test holds on an event, and the clock
of kept results is a list the test moves by hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest

from flux_dashboard import errors as E
from flux_dashboard.loader import LoadResult, Progress
from flux_dashboard.loads import KEEP_INCOMPLETE_S, Load, Registry

KEY = ("src", 54, "Mon", "Tue", ())
OTHER = ("src", 54, "Wed", "Thu", ())
T0 = datetime(2026, 11, 24, tzinfo=UTC)
WAIT = 5.0  # seconds a test waits at most for a worker that should already be done


def result(requests: int) -> LoadResult:
    return LoadResult(frame=pl.DataFrame({"n": [1]}), start=T0, end=T0,
                      flux_requests=requests)


def progress(done: int) -> Progress:
    return Progress(requests_done=done, requests_planned=10, rows=0, hours_done=0,
                    hours_total=24, rate_limit_per_min=60)


class Held:
    """A load's work that reports 3 requests, then waits for ``release()`` or its
    cancel: a result of 7 requests, or ``LoadCancelledError`` with a partial frame."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.runs: list[tuple] = []
        self.settled: list[tuple[int, BaseException | None]] = []

    def run(self, load: Load) -> LoadResult:
        self.runs.append(load.key)
        load.report(progress(3))
        while not self.go.wait(0.01):
            if load.cancel.is_set():
                raise E.LoadCancelledError("cancelled", hours=[T0],
                                           partial=pl.DataFrame({"n": [1]}))
        return result(7)

    def settle(self, load: Load) -> None:
        self.settled.append((load.spent, load.error))

    def release(self) -> None:
        self.go.set()


@pytest.fixture
def held() -> Iterator[Held]:
    h = Held()
    yield h
    h.release()  # no worker outlives its test


# ---------------------------------------------------------------- one load per window

def test_two_sessions_waiting_on_one_load_share_it_and_its_result(held):
    reg = Registry()
    assert reg.current(KEY) is None  # session A finds nothing: starts the load
    load, started = reg.start(KEY, held.run, held.settle)
    assert started
    assert reg.current(KEY) is load  # session B joins it
    reg.attach(load, "A")
    reg.attach(load, "B")
    held.release()
    assert load.join(WAIT)
    assert held.runs == [KEY]  # loaded once for both
    assert load.result is not None and load.result.flux_requests == 7 and load.error is None
    assert held.settled == [(7, None)]  # settled once, with the result's count
    assert load.finished_at is not None


def test_a_second_start_of_the_same_window_joins_the_first(held):
    reg = Registry()
    first, started = reg.start(KEY, held.run, held.settle)
    again, started_again = reg.start(KEY, held.run, held.settle)
    assert started and not started_again and again is first
    held.release()
    assert first.join(WAIT)
    assert held.runs == [KEY] and len(held.settled) == 1


# ---------------------------------------------------------------- cancel

def test_a_cancel_by_one_session_keeps_the_load_running_for_the_other(held):
    reg = Registry(grace_s=60)
    load, _ = reg.start(KEY, held.run, held.settle)
    reg.attach(load, "A")
    reg.attach(load, "B")
    assert reg.request_cancel(load, "A") is False
    reg.detach(load, "A")  # A's run ends; B still waits: no grace timer either
    assert not load.cancel.is_set() and load.running
    held.release()
    assert load.join(WAIT) and load.result is not None and load.error is None


def test_the_last_waiter_cancelling_stops_the_load(held):
    reg = Registry(grace_s=60)
    load, _ = reg.start(KEY, held.run, held.settle)
    reg.attach(load, "A")
    reg.attach(load, "B")
    reg.detach(load, "B")
    # A's own run is still attached when its Cancel callback runs: it counts as alone.
    assert reg.request_cancel(load, "A") is True and load.cancel.is_set()
    assert load.join(WAIT)
    assert isinstance(load.error, E.LoadCancelledError) and load.result is None
    assert held.settled == [(3, load.error)]  # what it spent: its last progress


def test_a_session_attached_twice_waits_until_both_runs_detach(held):
    reg = Registry(grace_s=60)
    load, _ = reg.start(KEY, held.run, held.settle)
    reg.attach(load, "A")
    reg.attach(load, "A")  # a rerun attached before the interrupted run detached
    reg.detach(load, "A")
    assert load.waiters == {"A": 1}
    reg.detach(load, "A")
    assert load.waiters == {}


def test_a_load_nobody_waits_for_is_cancelled_after_the_grace_period(held):
    reg = Registry(grace_s=0.05)
    load, _ = reg.start(KEY, held.run, held.settle)
    with reg.waiting(load, "A"):
        assert load.waiters == {"A": 1}
    assert load.waiters == {}  # the tab closed
    assert load.cancel.wait(WAIT)
    assert load.join(WAIT) and isinstance(load.error, E.LoadCancelledError)


def test_a_run_that_reattaches_within_the_grace_period_keeps_the_load(held):
    reg = Registry(grace_s=0.2)
    load, _ = reg.start(KEY, held.run, held.settle)
    reg.attach(load, "A")
    reg.detach(load, "A")
    reg.attach(load, "A")  # the rerun of a click, milliseconds later
    assert not load.cancel.wait(0.6)  # three grace periods: the timer found a waiter
    held.release()
    assert load.join(WAIT) and load.result is not None


def test_waiting_detaches_when_the_run_is_interrupted(held):
    reg = Registry(grace_s=60)
    load, _ = reg.start(KEY, held.run, held.settle)
    with pytest.raises(KeyboardInterrupt), reg.waiting(load, "A"):
        raise KeyboardInterrupt  # Streamlit stops a run by raising inside it
    assert load.waiters == {}


# ---------------------------------------------------------------- results kept or forgotten

def finished(reg: Registry, key: tuple, error: BaseException | None) -> Load:
    """A load of ``key`` that ends at once, with ``error`` or a result."""
    def run(load: Load) -> LoadResult:
        if error is not None:
            raise error
        return result(1)

    load, _ = reg.start(key, run, lambda load: None)
    assert load.join(WAIT)
    return load


def test_a_complete_load_is_forgotten_at_once():
    reg = Registry()
    finished(reg, KEY, None)
    assert reg.find(KEY) is not None
    assert reg.current(KEY) is None  # the loader's memory cache serves it again


def test_an_incomplete_load_is_kept_then_forgotten():
    now = [1000.0]
    reg = Registry(clock=lambda: now[0])
    cut = E.LoadCancelledError("cancelled", hours=[T0], partial=pl.DataFrame({"n": [1]}))
    load = finished(reg, KEY, cut)
    assert load.finished_at == 1000.0
    builds = []

    def build() -> LoadResult:
        builds.append(1)
        return result(0)

    partial = reg.keep_partial(load, build)
    assert reg.keep_partial(load, build) is partial and builds == [1]  # built once
    now[0] += KEEP_INCOMPLETE_S  # reruns within the period get the same outcome
    assert reg.current(KEY) is load
    now[0] += 1  # past it: forgotten, the next run loads again
    assert reg.current(KEY) is None and reg.find(KEY) is None


def test_an_incomplete_load_is_forgotten_when_its_window_is_asked_again():
    reg = Registry()
    cut = E.LoadCancelledError("cancelled", hours=[T0], partial=pl.DataFrame({"n": [1]}))
    load = finished(reg, KEY, cut)
    reg.keep_partial(load, lambda: result(0))
    assert reg.current(KEY) is load
    assert reg.current(KEY, retry=True) is None  # Resume or Refresh: load again


def test_forgetting_leaves_running_loads_and_kept_outcomes_of_other_windows(held):
    reg = Registry()
    running, _ = reg.start(OTHER, held.run, held.settle)
    cut = E.LoadCancelledError("cancelled", hours=[T0], partial=pl.DataFrame({"n": [1]}))
    kept = finished(reg, KEY, cut)
    reg.keep_partial(kept, lambda: result(0))
    assert reg.current(OTHER, retry=True) is running  # running: never forgotten
    assert reg.current(KEY) is kept  # retry was about OTHER only


# ---------------------------------------------------------------- errors

def test_an_error_reaches_the_waiters_and_is_settled_with_the_progress_spent():
    reg = Registry()
    settled = []
    boom = E.ApiConnectionError("the API is unreachable")

    def run(load: Load) -> LoadResult:
        load.report(progress(4))
        raise boom

    load, _ = reg.start(KEY, run, lambda load: settled.append((load.spent, load.error)))
    assert load.join(WAIT)
    assert load.error is boom and load.result is None
    assert settled == [(4, boom)]
    assert reg.current(KEY) is None  # no partial outcome: nothing to keep


def test_a_load_ends_even_when_settling_it_fails(monkeypatch):
    reg = Registry()
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))

    def settle(load: Load) -> None:
        raise RuntimeError("meter down")

    load, _ = reg.start(KEY, lambda load: result(2), settle)
    assert load.join(WAIT)
    assert load.finished_at is not None and load.result is not None
    assert [str(e) for e in raised] == ["meter down"]  # not swallowed: the server log has it
    assert reg.current(KEY) is None
