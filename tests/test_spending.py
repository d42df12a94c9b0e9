"""The spending gate (spending.py): memory, estimate, confirmation, booking, audit, settle.

A real loader reads the simulator through the real client; the meter is the file
meter; the audit is a list the gate appends to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flux_dashboard import errors as E
from flux_dashboard import spending
from flux_dashboard.budget import Budgets, Meter
from flux_dashboard.client import Client, RateLimiter
from flux_dashboard.config import Secret, Settings
from flux_dashboard.loader import Loader
from flux_dashboard.simulator import Simulator, SimulatorConfig
from flux_dashboard.store import Store

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
DAY = (datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
BASELINE = (DAY[0] - timedelta(days=7), DAY[0])


def make(tmp_path):
    sim = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None))
    settings = Settings(api_url="http://sim.test/api/v1", api_key=Secret("k-123456"),
                        rate_limit_per_min=60_000)
    client = Client(settings, transport=sim.transport(), sleep=lambda s: None,
                    limiter=RateLimiter(60_000, sleep=lambda s: None))
    return sim, Loader(client, Store(tmp_path / "cache"), clock=lambda: NOW)


def spender(tmp_path, events: list, **kw) -> spending.Spender:
    opts = {"user": "bob", "meter": Meter(tmp_path / "meter.json", clock=lambda: NOW),
            "budgets": Budgets(), "confirm_over": 0, "metered": True, "rate_per_min": 100,
            "audit": lambda event, **f: events.append((event, f)), **kw}
    return spending.Spender(**opts)


def fetches(sim) -> int:
    """Flux requests that fetch rows (an estimate counts hours with per_page=1 ones)."""
    return sum(1 for path, q in sim.requests
               if path.endswith("/flux") and q.get("per_page") != "1")


def sent(sim) -> int:
    return sim.flux_request_count() + sim.stats_request_count()


def test_a_load_is_booked_audited_and_settled_with_what_it_spent(tmp_path):
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events, budgets=Budgets(user_daily=10_000))
    result = spending.load(sp, loader, 54, *DAY, purpose="Baseline")
    assert fetches(sim) > 0
    (started, s), (finished, f) = events
    assert (started, finished) == ("load_started", "load_finished")
    assert s["purpose"] == f["purpose"] == "Baseline" and s["estimated"] > 0
    assert f["requests"] == result.flux_requests and f["ok"] is True
    # Every request made is metered: the estimate's counts and the load's own.
    assert sp.meter.usage("bob").user_today == sent(sim) > result.flux_requests
    events.clear()
    spending.load(sp, loader, 54, *DAY, purpose="Baseline")  # held in memory: free
    assert events == []


def test_a_costly_load_asks_first_and_spends_nothing(tmp_path):
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events, confirm_over=5)
    with pytest.raises(spending.NeedsConfirmation) as asked:
        spending.load(sp, loader, 54, *BASELINE, purpose="Baseline")
    # Only the estimate's requests (its head page and hourly counts): metered, no load.
    assert asked.value.estimate.requests > 5 and events == []
    assert sp.meter.usage("bob").user_today == sent(sim) == asked.value.estimate.spent
    spending.load(sp, loader, 54, *BASELINE, purpose="Baseline", confirmed=True)
    assert fetches(sim) > 5


def test_a_spent_budget_refuses_before_the_estimate_spends(tmp_path):
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events, budgets=Budgets(user_daily=3))
    sp.meter.add("bob", 3)
    with pytest.raises(E.BudgetExceededError, match="daily request budget"):
        spending.load(sp, loader, 54, *BASELINE, purpose="Baseline")
    assert sim.requests == [] and [e for e, _ in events] == ["budget_refused"]


def test_a_budget_too_small_for_the_load_refuses_before_any_flux_request(tmp_path):
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events, budgets=Budgets(user_daily=3))
    loader.estimate(54, *BASELINE)  # made and kept now: the gate reuses it
    before = sent(sim)
    with pytest.raises(E.BudgetExceededError, match="daily request budget"):
        spending.load(sp, loader, 54, *BASELINE, purpose="Baseline")
    assert sent(sim) == before
    assert [e for e, _ in events] == ["budget_refused"]


def test_a_window_larger_than_memory_is_refused_before_it_is_read(tmp_path):
    """Suspected, and proven: look-backs skipped the memory guard (a 28-day baseline on a
    dense sensor could be read whole). Every load goes through it now."""
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events)
    spending.load(sp, loader, 54, *BASELINE, purpose="Baseline")  # cached now
    before = len(sim.requests)
    small = spender(tmp_path, events, memory_limit=2_000_000)  # a few days' flows
    with pytest.raises(E.MemoryLimitError, match="choose at most"):
        spending.load(small, loader, 54, *BASELINE, purpose="Baseline")
    assert len(sim.requests) == before


def test_an_audit_trail_that_cannot_be_written_refuses_the_load(tmp_path):
    sim, loader = make(tmp_path)

    def audit(event, **fields):
        raise E.AuditUnavailableError("the audit trail cannot be written")

    sp = spender(tmp_path, [], audit=audit, budgets=Budgets(user_daily=10_000))
    loader.estimate(54, *DAY)
    before = sent(sim)
    with pytest.raises(E.AuditUnavailableError):
        spending.load(sp, loader, 54, *DAY, purpose="page")
    assert sent(sim) == before
    sp2 = spender(tmp_path, [], budgets=Budgets(user_daily=10_000))
    spending.load(sp2, loader, 54, *DAY, purpose="page")  # nothing left booked


def test_the_embedded_demo_is_not_metered_but_audited(tmp_path):
    sim, loader = make(tmp_path)
    events: list = []
    sp = spender(tmp_path, events, metered=False, confirm_over=1,
                 budgets=Budgets(user_daily=1))
    spending.load(sp, loader, 54, *BASELINE, purpose="Baseline")
    assert fetches(sim) > 1 and [e for e, _ in events] == ["load_started", "load_finished"]
