"""HTTP client for the Serenicity Control API.

* One ``RateLimiter`` per data source per process (the API limits per key),
  shared by every caller and thread: requests are spaced evenly at the
  sustained rate, never bursting, because the server's window is unknown.
* Retries with exponential backoff and full jitter on 429 (honouring
  ``Retry-After``), 5xx, timeouts, connection errors and malformed or truncated
  JSON. Never on 400/401/403/404/422: asking again cannot help and costs quota.
  The policy is a pair of pure functions (``should_retry``, ``backoff_delay``)
  and the client takes ``sleep``/``clock`` so tests never wait.
* ``httpx`` errors are translated here, once, into ``flux_dashboard.errors``;
  nothing above this module sees httpx. No message contains the API key.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from flux_dashboard import clock
from flux_dashboard import errors as E
from flux_dashboard.config import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRIES = 5
MAX_RETRY_AFTER_S = 120.0  # beyond this a 429 is a quota, not a pause: report it


# --------------------------------------------------------------------------- retry policy
def should_retry(*, status: int | None = None, error: str | None = None) -> bool:
    """Whether a failed attempt is worth repeating.

    ``status`` is the HTTP status; ``error`` one of "timeout", "connection",
    "malformed" for failures that produced no usable response.
    """
    if error is not None:
        return error in ("timeout", "connection", "malformed")
    return status in RETRYABLE_STATUS


def backoff_delay(attempt: int, *, retry_after: float | None = None, base: float = 0.5,
                  cap: float = 30.0, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    Full jitter over an exponential ceiling (``base * 2**(attempt-1)``, capped),
    so concurrent workers that failed together do not retry together. A
    server's ``Retry-After`` is a floor: we never come back earlier.
    """
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    delay = rand() * ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # HTTP-date form
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - clock.wall().timestamp())  # the server's real time
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- rate limiter
def stopped_wait(stop: threading.Event | None, sleep: Callable[[float], None],
                 seconds: float) -> None:
    """Wait ``seconds``, or until ``stop`` is set: then ``LoadCancelledError`` (no
    request is made after a stop, however long the wait it was in)."""
    if stop is None:
        sleep(seconds)
        return
    if stop.wait(seconds) or stop.is_set():
        raise E.LoadCancelledError("Stopped while waiting to send a request to the API.",
                                   hours=[])


class RateLimiter:
    """Evenly spaced slots: at most ``per_minute`` requests a minute, no bursts."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stop: threading.Event | None = None) -> None:
        self.interval = 60.0 / per_minute
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._stop = stop  # set: a wait for a slot ends at once (the process is stopping)
        self._lock = threading.Lock()
        self._next = 0.0

    def reserve(self) -> float:
        """Book the next slot; return how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            stopped_wait(self._stop, self._sleep, wait)

    def pause(self, seconds: float) -> None:
        """Push every future slot back (the server told us to slow down)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


_limiters: dict[tuple[str, int], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(source_id: str, per_minute: int) -> RateLimiter:
    """The process-wide limiter of one data source (one API key)."""
    with _limiters_lock:
        key = (source_id, per_minute)
        if key not in _limiters:
            _limiters[key] = RateLimiter(per_minute)
        return _limiters[key]


# --------------------------------------------------------------------------- client
@dataclass(frozen=True)
class PageMeta:
    total: int
    per_page: int
    current_page: int
    last_page: int
    first_page: int = 1


@dataclass(frozen=True)
class FluxPage:
    meta: PageMeta
    rows: list[dict]


def _parse_meta(meta: Any) -> PageMeta:
    if not isinstance(meta, dict):
        raise E.SchemaError("The API answer has no pagination 'meta' object.", column="meta")
    values = {}
    for name in ("total", "per_page", "current_page", "last_page", "first_page"):
        raw = meta.get(name, 1 if name == "first_page" else None)
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise E.SchemaError(f"The API's pagination field meta.{name} is {raw!r}, "
                                "not a number.", column=f"meta.{name}", value=raw) from None
    if values["per_page"] < 1 or values["total"] < 0:
        raise E.SchemaError(f"The API's pagination meta is inconsistent: {values}.")
    return PageMeta(**values)


class _Retryable(Exception):
    def __init__(self, kind: str, status: int | None = None, retry_after: float | None = None,
                 detail: str = "") -> None:
        super().__init__(kind)
        self.kind, self.status, self.retry_after, self.detail = kind, status, retry_after, detail


class Client:
    """Serenicity Control API client (thread-safe; share one per data source)."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None,
                 limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random, max_retries: int = MAX_RETRIES,
                 on_wait: Callable[[str, float], None] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop  # set: retries and waits end at once (the process is stopping)
        self._key = settings.api_key.reveal() if settings.api_key else None
        self._sleep = sleep
        self._rand = rand
        self.max_retries = max_retries
        self.on_wait = on_wait
        self.limiter = limiter or shared_limiter(settings.source_id, settings.rate_limit_per_min)
        self._http = httpx.Client(
            base_url=settings.api_url + "/",
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=settings.max_concurrency + 2,
                                max_keepalive_connections=settings.max_concurrency),
            headers={"Accept": "application/json", "User-Agent": "flux-dashboard"},
            follow_redirects=False,
        )
        self._count_lock = threading.Lock()
        self.request_count = 0
        self.flux_request_count = 0

    def __repr__(self) -> str:
        return f"Client({self.settings.host!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- endpoints
    def sensors(self) -> list[dict]:
        data = self._get_json("sensors", {}, what="the sensor list")
        if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
            raise E.SchemaError("GET /sensors did not return a list of sensor objects.")
        return data

    def sensor(self, sensor_id: int) -> dict:
        data = self._get_json(f"sensors/{int(sensor_id)}", {}, what=f"sensor {sensor_id}")
        if not isinstance(data, dict) or "id" not in data:
            raise E.SchemaError(f"GET /sensors/{sensor_id} did not return a sensor object.")
        return data

    def flux_page(self, sensor_id: int, params: dict[str, Any]) -> FluxPage:
        data = self._get_json(f"sensors/{int(sensor_id)}/flux", params,
                              what=f"flows of sensor {sensor_id}", flux=True)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise E.SchemaError("The flux answer has no 'data' list.")
        return FluxPage(_parse_meta(data.get("meta")), data["data"])

    def hour_counts(self, sensor_id: int, params: dict[str, Any]) -> FluxPage:
        """One page of ``/flux-hour-sensor``: the sensor's statistics per UTC hour (its
        ``count`` is the rows of that hour)."""
        return self.hourly_page(sensor_id, "flux-hour-sensor", params)

    def hourly_page(self, sensor_id: int, endpoint: str, params: dict[str, Any]) -> FluxPage:
        """One page of ``/flux-hour-sensor`` or ``/flux-hour-ip0`` (per local IP).
        Counted with the flux requests: it is data, metered and rate-limited like them.
        The items are as the API sent them."""
        if endpoint not in ("flux-hour-sensor", "flux-hour-ip0"):
            raise ValueError(f"not an hourly statistics endpoint: {endpoint!r}")
        data = self._get_json(f"sensors/{int(sensor_id)}/{endpoint}", params,
                              what=f"hourly totals of sensor {sensor_id}", flux=True)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise E.SchemaError("The hourly statistics answer has no 'data' list.")
        return FluxPage(_parse_meta(data.get("meta")), data["data"])

    # -- plumbing
    def _get_json(self, path: str, params: dict[str, Any], *, what: str,
                  flux: bool = False) -> Any:
        params = {k: _param(v) for k, v in params.items() if v is not None}
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(path, params, what=what, flux=flux)
            except _Retryable as r:
                if r.status == 429 and (r.retry_after or 0) > MAX_RETRY_AFTER_S:
                    raise self._rate_limited(r) from None
                if attempt > self.max_retries:
                    raise self._give_up(r, what, attempt) from None
                delay = backoff_delay(attempt, retry_after=r.retry_after, rand=self._rand)
                if r.status == 429:
                    self.limiter.pause(delay)
                log.info("retrying %s in %.1fs after %s (attempt %d)", what, delay,
                         r.detail or r.kind, attempt)
                if self.on_wait:
                    self.on_wait(r.detail or r.kind, delay)
                backoff = getattr(self.limiter, "backoff", None)  # a load's gate: its cancel
                if backoff is not None:
                    backoff(delay, self.stop, self._sleep)
                else:
                    stopped_wait(self.stop, self._sleep, delay)

    def _attempt(self, path: str, params: dict[str, str], *, what: str, flux: bool) -> Any:
        self.limiter.acquire()
        with self._count_lock:
            self.request_count += 1
            self.flux_request_count += flux
        headers = {"Authorization": f"Api-Key {self._key}"}
        # Failures are raised outside the except blocks so that the httpx
        # exception (whose text may quote the request) is not even kept as
        # __context__ of what we raise.
        failure: _Retryable | None = None
        try:
            resp = self._http.get(path, params=params, headers=headers)
        except httpx.TimeoutException:
            failure = _Retryable("timeout", detail="timeout")
        except (httpx.TransportError, httpx.DecodingError) as exc:
            failure = _Retryable("connection", detail=exc.__class__.__name__)
        if failure is not None:
            raise failure
        status = resp.status_code
        if status in RETRYABLE_STATUS:
            raise _Retryable("status", status, parse_retry_after(resp.headers.get("Retry-After")),
                             detail=f"HTTP {status}")
        if status >= 400:
            raise self._client_error(resp, what, params)
        try:
            return json.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            failure = _Retryable("malformed", status, detail="malformed JSON")
        raise failure

    def _body(self, resp: httpx.Response) -> str:
        try:
            text = resp.text
        except Exception:
            text = ""
        return E.redact(text, self._key)

    def _client_error(self, resp: httpx.Response, what: str, params: dict) -> E.ApiError:
        status, body = resp.status_code, self._body(resp)
        if status == 401:
            return E.AuthenticationError(
                "The Serenicity API refused the API key (HTTP 401). Check SERENICITY_API_KEY "
                "or .streamlit/secrets.toml; a key is created on your profile page in "
                "Serenicity Control.", status=status, body=body)
        if status == 403:
            return E.ForbiddenError(
                f"This API key may not read {what} (HTTP 403). Choose another sensor or ask "
                "the account owner for access.", status=status, body=body)
        if status == 404:
            return E.NotFoundError(
                f"The API does not know {what} (HTTP 404). Check the sensor id; "
                "'python -m flux_dashboard sensors' lists the sensors this key can read.",
                status=status, body=body)
        field_errors: list[dict] = []
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
                field_errors = [e for e in payload["errors"] if isinstance(e, dict)]
        except ValueError:
            pass
        detail = "; ".join(
            f"{e.get('field', '?')}: {e.get('message', e.get('rule', 'invalid'))}"
            for e in field_errors[:3]
        )
        return E.InvalidRequestError(
            f"The API refused the request for {what} (HTTP {status})"
            + (f": {detail}" if detail else "")
            + ". Check the dates and filters.",
            status=status, body=body, field_errors=field_errors)

    def _rate_limited(self, r: _Retryable) -> E.RateLimitedError:
        wait = r.retry_after or 0
        return E.RateLimitedError(
            "The Serenicity API's monthly request quota or rate limit is exhausted: it asks "
            f"to wait {_human_wait(wait)}. Try again later; cached data stays available.",
            retry_after=wait)

    def _give_up(self, r: _Retryable, what: str, attempts: int) -> E.FluxError:
        host = self.settings.host
        tries = f"after {attempts} tries"
        if r.kind == "timeout":
            return E.ApiTimeoutError(f"The Serenicity API at {host} did not answer in time "
                                     f"({tries}). Try again in a few minutes.")
        if r.kind == "connection":
            return E.ApiConnectionError(
                f"Could not reach the Serenicity API at {host} ({tries}). Check the network "
                "connection and SERENICITY_API_URL.")
        if r.kind == "malformed":
            return E.SchemaError(f"The API kept returning malformed or truncated JSON for {what} "
                                 f"({tries}). Try again later.")
        if r.status == 429:
            return E.RateLimitedError(
                f"The Serenicity API kept answering 'too many requests' ({tries}). Lower "
                "FLUX_RATE_LIMIT or try again later.", retry_after=r.retry_after)
        return E.ServerError(f"The Serenicity API had a server error (HTTP {r.status}) for {what} "
                             f"{tries}. Try again in a few minutes.", status=r.status)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _human_wait(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
