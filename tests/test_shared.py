"""Shared state on a real Redis (Debian's redis-server, started by the fixture):
the rate limiter, the per-day load locks and the request counters, across
processes; the store's file lock across processes; FLUX_REDIS_URL handling."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flux_dashboard import errors as E
from flux_dashboard.config import load_settings
from flux_dashboard.shared import (
    LocalLocks,
    LockWaitCancelled,
    RedisLocks,
    RedisMeter,
    RedisRateLimiter,
    SharedStateError,
    connect,
    redis_host,
)
from flux_dashboard.store import Store

ROOT = Path(__file__).resolve().parents[1]

LIMITER_CHILD = """
import json, sys, time
from flux_dashboard.shared import RedisRateLimiter
url, n, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lim = RedisRateLimiter(url, "api|http://x|fp", 600)
while time.monotonic() < go:
    time.sleep(0.005)
stamps = []
for _ in range(n):
    lim.acquire()
    stamps.append(time.monotonic())
print(json.dumps(stamps))
"""


def _children(script: str, argvs: list[list[str]], timeout: float = 120) -> list[str]:
    """Run ``script`` once per argv, at once. Their start barriers and time stamps use
    ``time.monotonic()``: on Linux one clock for every process, never set back."""
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in argvs]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


# ------------------------------------------------------------------ rate limiter
def test_two_processes_share_one_evenly_spaced_schedule(redis_url):
    # 600/min = one slot every 0.1 s. Two processes start together; with a limiter
    # each (no sharing) their requests would go out in pairs, 0 s apart.
    go = time.monotonic() + 2.0
    outs = _children(LIMITER_CHILD, [[redis_url, "10", str(go)], [redis_url, "10", str(go)]])
    stamps = sorted(t for out in outs for t in json.loads(out))
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(stamps) == 20
    # Unshared, about half of the gaps would be ~0 (pairs) and the span ~0.9 s.
    # (A process waking late on a busy machine may shorten one gap, not remove it.)
    assert sum(g < 0.03 for g in gaps) <= 2, gaps
    assert stamps[-1] - stamps[0] >= 19 * 0.1 * 0.95
    # Any 1-second window holds at most 10 + 1 of the 20 (+ 1 more: a process stamping
    # late on a busy machine moves one stamp next to the following one). Unshared, one
    # window would hold all 20.
    assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 12


def test_a_retry_after_seen_by_one_process_pauses_every_process(redis_url):
    a = RedisRateLimiter(redis_url, "api|k1", 600)
    b = RedisRateLimiter(redis_url, "api|k1", 600)  # another process's limiter, same key
    other_key = RedisRateLimiter(redis_url, "api|k2", 600)
    assert b.reserve() < 0.05
    a.pause(2.0)
    assert 1.8 <= b.reserve() <= 2.2
    assert other_key.reserve() < 0.05  # another API key has its own budget


def test_background_uses_its_share_and_lets_interactive_requests_go_first(redis_url):
    bg = RedisRateLimiter(redis_url, "api|k", 600, background=True, share=0.5)
    fg = RedisRateLimiter(redis_url, "api|k", 600)
    # Alone, the background books one slot per 0.2 s: half of the 0.1 s slots.
    t0 = time.monotonic()
    for _ in range(6):
        bg.acquire()
    assert time.monotonic() - t0 >= 5 * 0.2 * 0.9
    # Ten interactive slots queued (1 s ahead): the background waits for the queue
    # to drain instead of taking a place in it.
    time.sleep(0.3)
    waits = [fg.reserve() for _ in range(10)]
    assert waits[-1] >= 0.8
    t0 = time.monotonic()
    bg_wait = bg.reserve()
    assert time.monotonic() - t0 + bg_wait >= 0.85
    # ... and the next interactive request is not queued behind it by more than a slot.
    assert fg.reserve() - (waits[-1] - (time.monotonic() - t0)) < 0.35


def test_share_outside_0_1_is_refused(redis_url):
    with pytest.raises(E.ConfigError):
        RedisRateLimiter(redis_url, "api|k", 100, background=True, share=0)


# ------------------------------------------------------------------ load locks
def test_a_lock_left_by_a_crashed_holder_is_taken_over_after_its_ttl(redis_url):
    locks = RedisLocks(redis_url, ttl_s=1.0)
    # What a killed process leaves behind: its lock, with its time-to-live running.
    connect(redis_url).set("flux:lock:s:54:all:2026-03-01", "dead-holder", px=1000)
    t0 = time.monotonic()
    with locks.hold(["s:54:all:2026-03-01"]):
        waited = time.monotonic() - t0
    assert 0.5 <= waited <= 3.0


def test_a_live_holder_keeps_its_locks_beyond_the_ttl_and_a_waiter_can_cancel(redis_url):
    # A TTL long enough for the heartbeat thread to be scheduled on a busy machine (at
    # 0.6 s it once missed its renewal with both cores taken), short enough to outlive.
    locks = RedisLocks(redis_url, ttl_s=1.5)
    got: list[str] = []
    cancel = threading.Event()

    def waiter() -> None:
        try:
            with locks.hold(["d2", "d1"], cancel):
                got.append("acquired")
        except LockWaitCancelled:
            got.append("cancelled")

    with locks.hold(["d1", "d2"]):
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(3.5)  # > 2 TTLs: only the heartbeat keeps the locks
        assert got == []
        cancel.set()
        t.join(5)
    assert got == ["cancelled"]
    with locks.hold(["d1", "d2"]):  # released on exit
        pass
    assert connect(redis_url).keys("flux:lock:*") == []


def test_local_locks_order_and_cancel():
    locks = LocalLocks()
    cancel = threading.Event()
    out = []
    with locks.hold(["b", "a"]):
        t = threading.Thread(target=lambda: _try(locks, ["a"], cancel, out))
        t.start()
        time.sleep(0.5)
        cancel.set()
        t.join(5)
    assert out == ["cancelled"]


def _try(locks, names, cancel, out):
    try:
        with locks.hold(names, cancel):
            out.append("acquired")
    except LockWaitCancelled:
        out.append("cancelled")


LOADER_CHILD = """
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from flux_dashboard.client import Client
from flux_dashboard.config import Secret, Settings
from flux_dashboard.loader import Loader
from flux_dashboard.shared import RedisLocks, RedisRateLimiter
from flux_dashboard.store import Store
api, redis_url, cache, go = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
NOW = datetime.fromisoformat(sys.argv[5])
settings = Settings(api_url=api, api_key=Secret("shared-key"), rate_limit_per_min=6000)
lim = RedisRateLimiter(redis_url, settings.source_id, 6000)
loader = Loader(Client(settings, limiter=lim), Store(cache), clock=lambda: NOW,
                locks=RedisLocks(redis_url), max_concurrency=4)
while time.monotonic() < go:
    time.sleep(0.005)
r = loader.load(54, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC))
print(json.dumps({"requests": r.flux_requests, "rows": r.frame.height,
                  "cached": r.cached_hours, "fetched": r.fetched_hours}))
"""


def test_two_processes_loading_the_same_days_fetch_them_once(redis_url, tmp_path):
    from flux_dashboard.schema import to_frame
    from flux_dashboard.simulator import Simulator, SimulatorConfig

    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    sim = Simulator(SimulatorConfig(now=lambda: now, rate_limit_per_min=None,
                                    unstable_ties=True))
    truth = to_frame(sim.rows(54, datetime(2026, 3, 2, tzinfo=UTC),
                              datetime(2026, 3, 4, tzinfo=UTC))).height
    with sim.serve() as server:
        go = time.monotonic() + 3.0
        argv = [server.url, redis_url, str(tmp_path / "cache"), str(go),
                now.isoformat()]
        outs = [json.loads(o) for o in _children(LOADER_CHILD, [argv, argv])]
        # Data requests: rows (/flux) and the planner's hourly counts (/flux-hour-sensor).
        fluxed = sum(1 for path, _ in sim.requests if "/flux" in path)
    assert [o["rows"] for o in outs] == [truth, truth]
    first, second = sorted(outs, key=lambda o: -o["requests"])
    assert first["requests"] > 0 and first["fetched"] == 48
    # The other waited for the day locks, then read all 48 hours from the cache.
    assert second == {"requests": 0, "rows": truth, "cached": 48, "fetched": 0}
    assert fluxed == first["requests"]


# ------------------------------------------------------------------ counters
def test_request_counters_add_up_across_meters(redis_url):
    day = datetime(2026, 11, 26, 10, tzinfo=UTC)
    a = RedisMeter(redis_url, clock=lambda: day)
    b = RedisMeter(redis_url, clock=lambda: day)  # another replica
    a.add("alice@corp.example", 30)
    u = b.add("bob@corp.example", 12)
    assert (u.user_today, u.today, u.month) == (12, 42, 42)
    assert a.usage("alice@corp.example").user_today == 30
    later = RedisMeter(redis_url, clock=lambda: datetime(2026, 11, 27, 1, tzinfo=UTC))
    assert later.usage("alice@corp.example").user_today == 0
    assert (later.usage().today, later.usage().month) == (0, 42)
    nxt = RedisMeter(redis_url, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC))
    assert nxt.usage().month == 0


BOOK_CHILD = """
import json, sys, time
from datetime import datetime, timezone
from flux_dashboard.budget import Budgets
from flux_dashboard.errors import BudgetExceededError
from flux_dashboard.shared import RedisMeter
url, who, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
meter = RedisMeter(url, clock=lambda: datetime(2026, 11, 30, 12, tzinfo=timezone.utc))
while time.monotonic() < go:
    time.sleep(0.001)
out = []
for _ in range(5):
    try:
        out.append(meter.reserve(who, 10, Budgets(global_daily=50)).requests)
    except BudgetExceededError:
        out.append(0)
print(json.dumps(out))
"""


def test_bookings_on_redis_never_pass_a_budget_together(redis_url):
    """Two processes book 10 requests five times each, at once, against the team's budget
    of 50: five bookings pass in all (one script checks and books atomically)."""
    go = time.monotonic() + 2.0
    outs = _children(BOOK_CHILD, [[redis_url, "alice", str(go)], [redis_url, "bob", str(go)]])
    booked = [n for out in outs for n in json.loads(out)]
    assert sorted(booked).count(10) == 5 and booked.count(0) == 5, booked


def test_a_redis_booking_is_settled_with_what_was_spent(redis_url):
    from flux_dashboard.budget import Budgets, Usage

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    meter = RedisMeter(redis_url, clock=lambda: now)
    first = meter.reserve("bob", 42, Budgets(user_daily=50))
    with pytest.raises(E.BudgetExceededError, match="daily request budget is spent"):
        meter.reserve("bob", 42, Budgets(user_daily=50))
    assert meter.usage("bob") == Usage(0, 0, 0)
    assert meter.settle(first, 30) == Usage(30, 30, 30)
    meter.reserve("bob", 20, Budgets(user_daily=50))


# ------------------------------------------------------------------ errors and settings
def test_unreachable_redis_is_a_plain_error_without_the_password():
    from tests.kit.procs import free_port

    port = free_port()  # nothing listens there
    url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    with pytest.raises(SharedStateError) as info:
        RedisRateLimiter(url, "api|k", 100).reserve()
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "s3cret" not in msg and "Traceback" not in msg
    with pytest.raises(SharedStateError):
        RedisMeter(url).add("alice", 1)


def test_redis_url_setting():
    s = load_settings(env={"FLUX_REDIS_URL": "redis://:s3cret-pw@127.0.0.1:6390/1"},
                      secrets={})
    assert s.redis_url == "redis://:s3cret-pw@127.0.0.1:6390/1"
    assert "s3cret" not in repr(s)
    assert redis_host(s.redis_url) == "127.0.0.1:6390"
    with pytest.raises(E.ConfigError, match="FLUX_REDIS_URL must start"):
        load_settings(env={"FLUX_REDIS_URL": "http://127.0.0.1:6379"}, secrets={})
    assert load_settings(env={}, secrets={}).redis_url is None


# ------------------------------------------------------------------ store across processes
STORE_CHILD = """
import sys
from datetime import UTC, datetime, timedelta
import polars as pl
from flux_dashboard.schema import empty_frame
from flux_dashboard.store import Store
root, hour0, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = Store(root)
day = datetime(2026, 3, 1, tzinfo=UTC)
for i in range(rounds):
    h = day + timedelta(hours=hour0 + (i % 12) * 2)
    store.write("src", 54, "all", {h}, empty_frame(), checked_at=day)
"""


def test_two_processes_writing_one_day_file_keep_each_others_hours(tmp_path):
    # Process A writes the even hours, B the odd ones, of the same day file, many
    # times each: every read-merge-write must see the other's hours.
    _children(STORE_CHILD, [[str(tmp_path), "0", "60"], [str(tmp_path), "1", "60"]])
    hours = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in range(24)]
    assert Store(tmp_path).covered("src", 54, "all", hours) == set(hours)


def test_the_deployment_wiring_uses_redis_when_configured(redis_url, tmp_path):
    from flux_dashboard.budget import Meter
    from flux_dashboard.service import build_service, request_meter

    env = {"SERENICITY_API_URL": "http://127.0.0.1:9/api/v1", "SERENICITY_API_KEY": "k-123",
           "FLUX_CACHE_DIR": str(tmp_path), "FLUX_REDIS_URL": redis_url}
    cfg = load_settings(env=env, secrets={})
    svc = build_service(cfg)
    worker = build_service(cfg, background=True, share=0.25)
    try:
        assert isinstance(svc.client.limiter, RedisRateLimiter)
        assert not svc.client.limiter.background
        assert worker.client.limiter.background and worker.client.limiter.share == 0.25
        assert isinstance(svc.loader.locks, RedisLocks)
        meter = request_meter(cfg)
        assert isinstance(meter, RedisMeter)
        meter.add("alice@corp.example", 5)
        assert request_meter(cfg).usage().today == 5
    finally:
        svc.close()
        worker.close()
    plain = load_settings(env={k: v for k, v in env.items() if k != "FLUX_REDIS_URL"},
                          secrets={})
    local = build_service(plain)
    try:
        assert isinstance(local.loader.locks, LocalLocks)
        assert isinstance(request_meter(plain), Meter)
    finally:
        local.close()


def test_the_workers_request_tally_survives_a_redis_restart(tmp_path):
    """Found by the soak: the sync worker exited when Redis restarted under it (booking
    its cycle's requests in the quota meter raised). Now the requests are kept and
    booked with the next cycle's: none lost, and the worker goes on."""
    from flux_dashboard.shared import RedisMeter
    from flux_dashboard.sync import RequestTally, SensorStatus
    from tests.kit.services import RedisServer

    def states(n: int) -> list[SensorStatus]:
        return [SensorStatus(sensor=54, days=1, synced_to=None, coverage=1.0,
                             last_success=None, requests=n)]

    redis = RedisServer(tmp_path)
    try:
        meter = RedisMeter(redis.url, clock=lambda: datetime(2026, 3, 10, 12, tzinfo=UTC))
        tally = RequestTally(meter)
        tally(states(2))
        assert meter.usage().today == 2
        redis.stop()
        tally(states(5))  # Redis down: no exception, the 5 are kept
        assert tally.pending == 5
        redis.restart()  # empty again (no persistence)
        tally(states(3))
        assert tally.pending == 0
        assert meter.usage().today == 8  # the 5 kept and the 3 of this cycle
    finally:
        redis.stop()
