"""State shared by every process of one deployment: rate limit, load locks, counters.

Without ``FLUX_REDIS_URL`` everything lives in the process (``make run`` needs
nothing but Python): the client's ``RateLimiter``, ``LocalLocks`` and the file
``budget.Meter``. With it, the same three roles go to Redis, so two replicas
behind a load balancer, the sync worker and the CLI pull on one API key as one:

* ``RedisRateLimiter``: one schedule of evenly spaced request slots per API key
  (``per_minute`` a minute, never a burst), booked atomically by a short Lua
  script on the server's own clock (``TIME``), so hosts with skewed clocks
  agree. A ``Retry-After`` seen by any process pushes every process's next
  slot back. A *background* limiter (the sync worker) uses at most ``share``
  of the slots and books one only when no interactive request is queued, so
  analysts always go first. Why not the ``limits`` library the notes suggest:
  its moving and fixed windows admit the whole minute's budget as one burst
  (measured with limits 5.8 on redis-server 7: 100 of 100 ``hit()`` on a
  100/minute moving window accepted in 25 ms, the 101st refused), which
  the API's own window may count differently, and it has no notion of
  priority; spacing plus priority needs a reservation, which is this script's
  dozen lines.
* ``RedisLocks``: single-flight per sensor-day. A load holds the locks of the
  days it is about to fetch, taken in sorted order (no deadlock), each with a
  time-to-live renewed every ``ttl / 3`` by a heartbeat while the load runs:
  a crashed holder's lock expires after ``ttl`` and is taken over. The waiter
  then reads the cache the holder filled, and fetches only what is missing.
* ``RedisMeter``: the request counters per user per day, per day and per month
  (``INCRBY`` with an expiry), in place of the JSON file.

Redis errors become ``SharedStateError`` with a plain message that names the
host, never the URL's password. A deployment that configured Redis never falls
back to per-process state silently: that would let replicas exceed the key's
limit together.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flux_dashboard import clock as clock_mod
from flux_dashboard import errors as E
from flux_dashboard.budget import ALL, KEEP_DAYS, Budgets, Reservation, Usage
from flux_dashboard.client import stopped_wait

PREFIX = "flux:"
LOCK_TTL_S = 60.0
LOCK_POLL_S = 0.2


def redis_host(url: str) -> str:
    """host:port of a Redis URL, for messages: never its user name or password."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path or "unix socket"
        return f"{parts.hostname or '?'}:{parts.port or 6379}"
    except ValueError:
        return "an invalid address"


def validate_url(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise E.ConfigError("FLUX_REDIS_URL must start with redis://, rediss:// or unix://.")
    try:
        urlsplit(url).port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise E.ConfigError("FLUX_REDIS_URL is not a valid URL.") from None
    return url


class SharedStateError(E.FluxError):
    """Redis (the deployment's shared state) cannot be reached or refused a command."""


class LockWaitCancelled(Exception):
    """The load was cancelled while it waited for another load's day locks."""


_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def connect(url: str):
    """One ``redis.Redis`` (thread-safe, pooled) per URL per process."""
    import redis

    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=5,
                                                 socket_connect_timeout=5,
                                                 health_check_interval=30)
        return _clients[url]


@contextmanager
def _plain_errors(url: str, what: str) -> Iterator[None]:
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise SharedStateError(
            f"The shared state server (Redis at {redis_host(url)}) could not {what} "
            f"({exc.__class__.__name__}). Loads wait for it; check that it runs and that "
            "FLUX_REDIS_URL is right.") from None


def _key_id(source_id: str) -> str:
    # source_id holds the API URL and a key fingerprint: hash it again for key names.
    return hashlib.blake2b(source_id.encode(), digest_size=8).hexdigest()


# ---------------------------------------------------------------- rate limiter
# KEYS[1]: next free slot (epoch s, as a string: Lua numbers would be truncated to
# integers on the way out); KEYS[2]: the background's own next slot.
# ARGV: interval, background (0/1), background interval, max queue lead for background.
# Returns {1, wait} when a slot was booked, {0, retry_in} when the background must
# try again later (its share is spent, or interactive requests are queued).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local slot = math.max(now, nxt)
if ARGV[2] == '1' then
  local bg = tonumber(redis.call('GET', KEYS[2]) or '0')
  if bg > now then return {0, tostring(bg - now)} end
  if slot - now > tonumber(ARGV[4]) then return {0, tostring(interval)} end
  redis.call('SET', KEYS[2], tostring(slot + tonumber(ARGV[3])), 'EX', 3600)
end
redis.call('SET', KEYS[1], tostring(slot + interval), 'EX', 3600)
return {1, tostring(slot - now)}
"""
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = now + tonumber(ARGV[1])
if until_ > nxt then redis.call('SET', KEYS[1], tostring(until_), 'EX', 3600) end
return tostring(math.max(until_, nxt) - now)
"""


class RedisRateLimiter:
    """Evenly spaced request slots for one API key, shared through Redis.

    Same interface as ``client.RateLimiter`` (``reserve``, ``acquire``,
    ``pause``). ``background=True`` books at most ``share`` of the slots and
    only when no interactive request waits (see the module docstring).
    """

    def __init__(self, url: str, source_id: str, per_minute: int, *,
                 background: bool = False, share: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep,
                 stop: threading.Event | None = None) -> None:
        if not 0 < share <= 1:
            raise E.ConfigError("The background share of the rate limit must be in (0, 1].")
        self.url = url
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self.background = background
        self.share = share
        self._sleep = sleep
        self._stop = stop  # set: the waits for a slot end at once (the process is stopping)
        kid = _key_id(source_id)
        self._keys = [f"{PREFIX}rate:{kid}:next", f"{PREFIX}rate:{kid}:background"]
        r = connect(url)
        self._reserve = r.register_script(_RESERVE)
        self._pause = r.register_script(_PAUSE)

    def reserve(self) -> float:
        """Book the next slot; return how long the caller must wait for it.

        A background limiter first waits, here, until it may book one at all.
        """
        args = [self.interval, 1 if self.background else 0, self.interval / self.share,
                self.interval]
        while True:
            with _plain_errors(self.url, "book a request slot"):
                booked, wait = self._reserve(keys=self._keys, args=args)
            if int(booked):
                return max(0.0, float(wait))
            stopped_wait(self._stop, self._sleep, min(max(float(wait), 0.01), 5.0))

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            stopped_wait(self._stop, self._sleep, wait)

    def pause(self, seconds: float) -> None:
        """Push every process's next slot at least ``seconds`` from now (a 429)."""
        with _plain_errors(self.url, "share a rate-limit pause"):
            self._pause(keys=self._keys[:1], args=[max(0.0, float(seconds))])


# ---------------------------------------------------------------- load locks
class LocalLocks:
    """Per-sensor-day locks within one process (the default: ``LOCAL_LOCKS``)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _get(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    @contextmanager
    def hold(self, names: Iterable[str], cancel: threading.Event | None = None
             ) -> Iterator[None]:
        held: list[threading.Lock] = []
        try:
            for name in sorted(set(names)):
                lock = self._get(name)
                while not lock.acquire(timeout=LOCK_POLL_S):
                    if cancel is not None and cancel.is_set():
                        raise LockWaitCancelled
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()


class RedisLocks:
    """Per-sensor-day locks across processes and hosts (Redis, with a time-to-live)."""

    def __init__(self, url: str, ttl_s: float = LOCK_TTL_S) -> None:
        self.url = url
        self.ttl_s = ttl_s

    @contextmanager
    def hold(self, names: Iterable[str], cancel: threading.Event | None = None
             ) -> Iterator[None]:
        r = connect(self.url)
        token = uuid.uuid4().hex
        held: list[str] = []
        stop = threading.Event()
        keys = [f"{PREFIX}lock:{n}" for n in sorted(set(names))]

        def renew() -> None:  # the heartbeat: a live holder keeps its locks
            while not stop.wait(self.ttl_s / 3):
                for key in list(held):
                    try:
                        r.eval(_RENEW, 1, key, token, int(self.ttl_s * 1000))
                    except Exception:  # noqa: BLE001 - next beat tries again
                        pass

        beat = threading.Thread(target=renew, name="flux-lock-heartbeat", daemon=True)
        try:
            with _plain_errors(self.url, "take a load lock"):
                for key in keys:
                    while not r.set(key, token, nx=True, px=int(self.ttl_s * 1000)):
                        if cancel is not None and cancel.wait(LOCK_POLL_S):
                            raise LockWaitCancelled
                        if cancel is None:
                            time.sleep(LOCK_POLL_S)
                    held.append(key)
                    if len(held) == 1:
                        beat.start()
            yield
        finally:
            stop.set()
            for key in reversed(held):
                try:  # only our own token: an expired lock taken over is not ours
                    r.eval(_RELEASE, 1, key, token)
                except Exception:  # noqa: BLE001 - it expires anyway
                    pass


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# ---------------------------------------------------------------- request counters
# Book a load's requests if every budget allows them on top of what is spent and
# booked. KEYS: spent (user's day, day, month), bookings (the same three, sorted sets of
# "id:n" scored by expiry). ARGV: now, until, id, n, limits (user's day, day, month;
# -1: none), seconds to keep. Returns {0 or the refused budget's number, then the
# spent + booked counts of the three}.
_BOOK = """
local function booked(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local total = 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    total = total + tonumber(string.match(m, ':(%d+)$'))
  end
  return total
end
local n = tonumber(ARGV[4])
local seen = {}
for i = 1, 3 do
  seen[i] = tonumber(redis.call('GET', KEYS[i]) or '0') + booked(KEYS[i + 3])
end
for i = 1, 3 do
  local limit = tonumber(ARGV[4 + i])
  if n > 0 and limit >= 0 and seen[i] + n > limit then
    return {i, seen[1], seen[2], seen[3]}
  end
end
for i = 4, 6 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3] .. ':' .. ARGV[4])
  redis.call('EXPIRE', KEYS[i], ARGV[8])
end
return {0, seen[1], seen[2], seen[3]}
"""


class RedisMeter:
    """``budget.Meter`` on Redis: counters per user per UTC day, per day, per month, and
    the bookings of running loads (``reserve``/``settle``, atomic in one script)."""

    def __init__(self, url: str, clock: Callable[[], datetime] | None = None) -> None:
        self.url = url
        self.clock = clock or clock_mod.real

    def _keys(self, user: str, day: str | None = None, month: str | None = None,
              kind: str = "") -> tuple[str, str, str]:
        now = self.clock().astimezone(UTC)
        day, month = day or now.strftime("%Y-%m-%d"), month or now.strftime("%Y-%m")
        uid = hashlib.blake2b(user.encode(), digest_size=8).hexdigest()
        return (f"{PREFIX}meter{kind}:day:{day}:{uid}", f"{PREFIX}meter{kind}:day:{day}:{ALL}",
                f"{PREFIX}meter{kind}:month:{month}")

    def reserve(self, user: str, requests: int, budgets: Budgets,
                ttl_s: float = 600.0) -> Reservation:
        """``budget.Meter.reserve`` on Redis: checked and booked in one atomic script."""
        now = self.clock().astimezone(UTC)
        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        wall = clock_mod.wall().timestamp()
        r = Reservation(uuid.uuid4().hex, user, max(0, requests), day, month, wall + ttl_s)
        limits = [-1 if b is None else b for b in
                  (budgets.user_daily, budgets.global_daily, budgets.monthly_quota)]
        keys = [*self._keys(user, day, month), *self._keys(user, day, month, ":booked")]
        keep = int(timedelta(days=KEEP_DAYS).total_seconds())
        with _plain_errors(self.url, "book the load's requests"):
            refused, *seen = connect(self.url).eval(
                _BOOK, len(keys), *keys, wall, r.until, r.id, r.requests, *limits, keep)
        if int(refused):
            usage = Usage(*(int(v) for v in seen))
            raise E.BudgetExceededError(budgets.check(usage, r.requests) or
                                        "A request budget is spent.", hours=[])
        return r

    def settle(self, reservation: Reservation, spent: int) -> Usage:
        """Drop the booking and count what the load really spent."""
        r = reservation
        spent_keys = self._keys(r.user, r.day, r.month)
        booked_keys = self._keys(r.user, r.day, r.month, ":booked")
        keep = int(timedelta(days=KEEP_DAYS).total_seconds())
        with _plain_errors(self.url, "count requests"):
            pipe = connect(self.url).pipeline()  # MULTI/EXEC: all or nothing
            for key in booked_keys:
                pipe.zrem(key, f"{r.id}:{r.requests}")
            for key in spent_keys:
                pipe.incrby(key, max(0, int(spent)))
                pipe.expire(key, keep)
            res = pipe.execute()
        return Usage(user_today=int(res[3]), today=int(res[5]), month=int(res[7]))

    def add(self, user: str, requests: int) -> Usage:
        if requests <= 0:
            return self.usage(user)
        keys = self._keys(user)
        keep = int(timedelta(days=KEEP_DAYS).total_seconds())
        with _plain_errors(self.url, "count requests"):
            pipe = connect(self.url).pipeline()
            for key in keys:
                pipe.incrby(key, int(requests))
                pipe.expire(key, keep)
            res = pipe.execute()
        return Usage(user_today=int(res[0]), today=int(res[2]), month=int(res[4]))

    def usage(self, user: str = ALL) -> Usage:
        keys = self._keys(user)
        with _plain_errors(self.url, "read the request counters"):
            values = connect(self.url).mget(keys)
        user_today, today, month = (int(v or 0) for v in values)
        return Usage(user_today=user_today if user != ALL else today, today=today, month=month)


LOCAL_LOCKS = LocalLocks()  # every Loader of the process shares them, like the file locks
