"""Client: retry policy, Retry-After, no retry on 4xx, rate limiter, key never shown."""

from __future__ import annotations

import json

import httpx
import pytest

from flux_dashboard import errors as E
from flux_dashboard.client import (
    Client,
    RateLimiter,
    backoff_delay,
    parse_retry_after,
    shared_limiter,
    should_retry,
)
from flux_dashboard.config import Secret, Settings

KEY = "sk-test-0123456789abcdef-SECRET"
META = {"total": 1, "per_page": 100, "current_page": 1, "last_page": 1, "first_page": 1}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def make_client(responses, *, max_retries=5, rate=6000):
    """A client whose transport replays ``responses`` (callables or Responses) in order."""
    calls: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if not queue:
            raise AssertionError(f"unexpected request {request.url}")
        item = queue.pop(0)
        return item(request) if callable(item) else item

    clock = FakeClock()
    settings = Settings(api_url="https://api.example.test/api/v1", api_key=Secret(KEY),
                        rate_limit_per_min=rate)
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    client = Client(settings, transport=httpx.MockTransport(handler), limiter=limiter,
                    sleep=clock.sleep, rand=lambda: 1.0, max_retries=max_retries)
    return client, calls, clock


def ok_page(rows=()):
    return httpx.Response(200, json={"meta": META, "data": list(rows)})


# -- pure policy
@pytest.mark.parametrize("status,expected", [
    (429, True), (500, True), (502, True), (503, True), (504, True),
    (400, False), (401, False), (403, False), (404, False), (422, False), (200, False),
])
def test_should_retry_status(status, expected):
    assert should_retry(status=status) is expected


@pytest.mark.parametrize("error,expected", [
    ("timeout", True), ("connection", True), ("malformed", True), ("other", False)])
def test_should_retry_errors(error, expected):
    assert should_retry(error=error) is expected


def test_backoff_is_exponential_capped_and_jittered():
    assert [backoff_delay(a, rand=lambda: 1.0) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(20, rand=lambda: 1.0) == 30.0  # cap
    assert backoff_delay(3, rand=lambda: 0.25) == 0.5  # full jitter: 0.25 * 2.0
    assert backoff_delay(1, retry_after=7, rand=lambda: 1.0) == 7  # Retry-After is a floor


def test_parse_retry_after():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


# -- behaviour
def test_sends_api_key_header_and_params():
    client, calls, _ = make_client([ok_page()])
    client.flux_page(54, {"from": "a", "only_toxic": True, "ip0": None})
    req = calls[0]
    assert req.headers["Authorization"] == f"Api-Key {KEY}"
    assert req.url.path == "/api/v1/sensors/54/flux"
    assert req.url.params["only_toxic"] == "true" and "ip0" not in req.url.params
    assert KEY not in str(req.url)


def test_retries_5xx_then_succeeds():
    client, calls, clock = make_client([httpx.Response(503), httpx.Response(500), ok_page()])
    page = client.flux_page(54, {})
    assert page.meta.total == 1 and len(calls) == 3
    assert clock.sleeps[:2] == [0.5, 1.0]


def test_honours_retry_after_on_429():
    client, calls, clock = make_client(
        [httpx.Response(429, headers={"Retry-After": "9"}), ok_page()])
    client.flux_page(54, {})
    assert len(calls) == 2
    assert 9.0 in clock.sleeps


def test_long_retry_after_is_reported_not_waited():
    client, calls, clock = make_client([httpx.Response(429, headers={"Retry-After": "86400"})])
    with pytest.raises(E.RateLimitedError) as info:
        client.flux_page(54, {})
    assert info.value.retry_after == 86400 and len(calls) == 1 and not clock.sleeps
    assert "quota" in str(info.value)


def test_retries_truncated_json_and_timeouts():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    body = json.dumps({"meta": META, "data": []}).encode()
    client, calls, _ = make_client([httpx.Response(200, content=body[: len(body) // 2]),
                                    timeout, ok_page()])
    assert client.flux_page(54, {}).meta.total == 1
    assert len(calls) == 3


def test_gives_up_after_max_retries_with_plain_message():
    client, calls, _ = make_client([httpx.Response(502)] * 3, max_retries=2)
    with pytest.raises(E.ServerError, match="server error .*HTTP 502"):
        client.flux_page(54, {})
    assert len(calls) == 3


def test_connection_error_is_translated():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    client, calls, _ = make_client([refuse] * 2, max_retries=1)
    with pytest.raises(E.ApiConnectionError, match="Could not reach the Serenicity API at "
                                                    "api.example.test"):
        client.sensors()


@pytest.mark.parametrize("failure,exc,fragment", [
    (httpx.ConnectError, E.ApiConnectionError, "Could not reach the Serenicity API at "),
    (httpx.ReadTimeout, E.ApiTimeoutError, "The Serenicity API at "),
])
def test_connection_errors_show_host_and_port_never_url_credentials(failure, exc, fragment):
    def fail(request):
        raise failure("boom", request=request)

    settings = Settings(api_url="https://user:s3cret-pass@[2001:db8::1]:8443/api/v1",
                        api_key=Secret(KEY))
    clock = FakeClock()
    client = Client(settings, transport=httpx.MockTransport(fail), sleep=clock.sleep,
                    limiter=RateLimiter(6000, clock=clock, sleep=clock.sleep), max_retries=1)
    with pytest.raises(exc) as info:
        client.sensors()
    message = str(info.value)
    assert fragment + "[2001:db8::1]:8443 " in message
    for text in (message, repr(info.value), repr(client)):
        assert "s3cret" not in text and "user" not in text and KEY not in text


@pytest.mark.parametrize("status,exc", [
    (400, E.InvalidRequestError), (401, E.AuthenticationError), (403, E.ForbiddenError),
    (404, E.NotFoundError), (422, E.InvalidRequestError)])
def test_no_retry_on_client_errors(status, exc):
    # The body echoes the key, as a careless server might: it must still never surface.
    body = {"errors": [{"field": "from", "rule": "required", "message": f"bad {KEY}"}]}
    client, calls, clock = make_client([httpx.Response(status, json=body)])
    with pytest.raises(exc) as info:
        client.flux_page(54, {})
    assert len(calls) == 1 and not clock.sleeps
    err = info.value
    for text in (str(err), repr(err), err.body, repr(err.__dict__)):
        assert KEY not in text


def test_key_absent_from_every_error_text():
    def echo(request):
        raise httpx.ConnectError(f"failed {request.headers['Authorization']}", request=request)

    responses = [echo, echo, httpx.Response(500, text=KEY), httpx.Response(500, text=KEY)]
    client, _, _ = make_client(responses, max_retries=1)
    for _ in range(2):
        with pytest.raises(E.FluxError) as info:
            client.sensors()
        chain, exc = [], info.value
        while exc is not None:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__
        for e in chain:
            assert KEY not in str(e) and KEY not in repr(e)
    assert KEY not in repr(client) and KEY not in repr(client.settings)


def test_hour_counts_reads_the_hourly_statistics_as_a_flux_request():
    item = {"utc_hour": "2026-03-02T10:00:00Z", "count": 812}
    client, calls, _ = make_client([
        httpx.Response(200, json={"meta": META, "data": [item]}),
        httpx.Response(200, json={"meta": META, "items": [item]}),
    ])
    page = client.hour_counts(54, {"sort_by": "utc_hour", "page": 1})
    assert page.rows == [item] and page.meta.total == META["total"]
    assert calls[0].url.path == "/api/v1/sensors/54/flux-hour-sensor"
    assert calls[0].url.params["sort_by"] == "utc_hour"
    assert client.flux_request_count == 1  # data: metered like the flows
    with pytest.raises(E.SchemaError, match="hourly statistics"):
        client.hour_counts(54, {})


def test_schema_error_on_bad_meta():
    client, _, _ = make_client([httpx.Response(200, json={"meta": {"total": "x"}, "data": []})])
    with pytest.raises(E.SchemaError, match="meta.total"):
        client.flux_page(54, {})


def test_rate_limiter_spaces_requests_evenly():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    start = clock.t
    times = []
    for _ in range(5):
        limiter.acquire()
        times.append(clock.t - start)
    assert times == pytest.approx([0.0, 0.6, 1.2, 1.8, 2.4])


def test_rate_limiter_shared_by_threads_never_bursts():
    import threading

    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 reservations at a frozen clock: slots 0, 0.6, 1.2, ... each used once.
    assert sorted(round(w, 6) for w in waits) == [round(i * 0.6, 6) for i in range(40)]


def test_one_limiter_per_key_shared_by_every_client():
    def settings(key):
        return Settings(api_url="https://api.example.test/api/v1", api_key=Secret(key),
                        rate_limit_per_min=100)

    a, b, other = Client(settings(KEY)), Client(settings(KEY)), Client(settings(KEY + "-2"))
    try:
        assert a.limiter is b.limiter is shared_limiter(settings(KEY).source_id, 100)
        assert other.limiter is not a.limiter
    finally:
        for c in (a, b, other):
            c.close()


def scripted(responses):
    """A transport that replays ``responses`` in order and fails on any request beyond them."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if not queue:
            raise AssertionError(f"unexpected request {request.url}")
        return queue.pop(0)

    return httpx.MockTransport(handler)


def test_retry_after_pauses_every_caller_of_the_key():
    """One caller sees a 429 with Retry-After: 9; another caller of the same key, asking
    while the first one waits, waits for the same pause (a frozen clock, no real sleep)."""
    clock = FakeClock()
    limiter_waits: list[float] = []
    limiter = RateLimiter(6000, clock=clock, sleep=limiter_waits.append)
    settings = Settings(api_url="https://api.example.test/api/v1", api_key=Secret(KEY),
                        rate_limit_per_min=6000)
    other_done = []

    def first_sleeps(seconds: float) -> None:
        # While the first caller sleeps off the 429, the other caller asks.
        other.flux_page(54, {})
        other_done.append(seconds)

    first = Client(settings, limiter=limiter, sleep=first_sleeps, rand=lambda: 0.0,
                   transport=scripted([httpx.Response(429, headers={"Retry-After": "9"}),
                                       ok_page()]))
    other = Client(settings, limiter=limiter, sleep=lambda s: None, rand=lambda: 0.0,
                   transport=scripted([ok_page()]))
    assert first.flux_page(54, {}).meta.total == 1
    assert other_done == [9.0]  # the first caller's own wait
    # The other caller waited the whole pause in the shared limiter, then the first
    # caller's retry took the slot after it: no one came back before Retry-After.
    assert limiter_waits == pytest.approx([9.0, 9.0 + limiter.interval])
