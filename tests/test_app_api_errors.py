"""API errors, against the simulator served over real HTTP by this process: a bad key,
a forbidden sensor, an unreachable API, server errors after bounded retries, an
exhausted quota, and a digest whose comparison day cannot be loaded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.client import MAX_RETRIES
from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.apptest import (
    MAIN,
    OVERVIEW,
    SMALL,
    as_int,
    flux_requests,
    metrics,
    new_app,
    run_page,
    said,
    texts,
    use_real_key,
)
from tests.kit.clock import PINNED, days_link, local_days, pinned_clock
from tests.kit.demo import (
    FIXED_DAY,
    digest_bullets,
)
from tests.kit.procs import free_port

pytestmark = pytest.mark.usefixtures("app_env")


@pytest.fixture
def api_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Point the app at an API URL: a simulator served over real HTTP by this process
    (or, with None, a port where nothing listens). Retries wait 0 s, no client-side
    rate limit, a private cache."""
    from flux_dashboard import client

    monkeypatch.setattr(client, "backoff_delay", lambda *a, **k: 0.0)
    servers = []

    def use(sim: Simulator | None, *, key: str | None = None) -> str:
        if sim is None:
            url = f"http://127.0.0.1:{free_port()}/api/v1"
        else:
            servers.append(sim.serve(port=0))
            url = servers[-1].url
        monkeypatch.setenv("SERENICITY_API_URL", url)
        if key is not None:
            use_real_key(monkeypatch, key)
        monkeypatch.setenv("FLUX_RATE_LIMIT", "60000")
        # A real key and no sign-in: the app refuses unless anonymous access is explicit.
        monkeypatch.setenv("FLUX_ALLOW_ANONYMOUS", "1")
        monkeypatch.setenv("FLUX_CACHE_DIR", str(tmp_path / "cache"))
        return url

    yield use
    for server in servers:
        server.shutdown()


def _nothing_rendered(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.metric and not at.title and not at.get("plotly_chart") and not at.dataframe


def test_api_mode_renders_from_the_simulator_over_http(api_mode) -> None:
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None))
    url = api_mode(sim)
    at = run_page(OVERVIEW, days_link(FIXED_DAY))
    assert not at.error
    # only the banner that says anonymous access is on
    assert all("anonymous" in w.lower() for w in said(at.warning)), said(at.warning)
    assert any(url.split("/")[2] in md for md in said(at.sidebar.markdown))
    assert as_int(metrics(at)["Flows"]) == sim.count_rows(MAIN, *local_days(FIXED_DAY))
    assert flux_requests(sim)


def test_api_bad_key_is_shown_and_nothing_is_fetched(api_mode) -> None:
    sim = Simulator(SimulatorConfig(api_key="the-right-key", rate_limit_per_min=None,
                                    now=pinned_clock))
    api_mode(sim, key="a-wrong-key-4242")
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("refused the API key (HTTP 401)" in e for e in said(at.error)), [
        e for e in said(at.error)]
    assert sim.requests and flux_requests(sim) == []
    assert not [t for _, t in texts(at) if "a-wrong-key-4242" in t]


def test_api_forbidden_sensor_is_shown_without_retry(api_mode) -> None:
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None,
                                    forbidden_sensors=()))
    listed = sim.sensors()
    # The key still lists sensor 54 but may no longer read its flows.
    sim.config.forbidden_sensors = (MAIN,)
    sim.sensors = lambda: listed
    api_mode(sim)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("may not read flows of sensor 54 (HTTP 403)" in e for e in said(at.error)), [
        e for e in said(at.error)]
    assert len(flux_requests(sim)) == 1  # a 403 is final: no retry

    # the other sensor still works
    at.sidebar.selectbox(key="sensor_id").set_value(SMALL).run()
    assert not at.exception and not at.error
    assert metrics(at)


def test_api_unreachable_is_shown(api_mode) -> None:
    url = api_mode(None)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    host = url.split("/")[2]
    assert any(f"Could not reach the Serenicity API at {host}" in e
               for e in said(at.error)), said(at.error)


def test_api_server_errors_are_shown_after_bounded_retries(api_mode) -> None:
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None, fault_rate=1.0,
                                    fault_kinds=("503",)))
    api_mode(sim)
    at = new_app()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = said([*at.error, *at.warning])
    assert any("server error (HTTP 503)" in s for s in shown), shown
    # the cost estimate's count (one try and two retries, then a conservative guess),
    # then one request for the range, retried MAX_RETRIES times, then given up
    assert len(flux_requests(sim)) == 3 + MAX_RETRIES + 1
    # no numbers that look like a real, empty day
    assert not at.metric


@pytest.mark.parametrize("quota", [0, 1])
def test_api_quota_exhausted_is_shown(api_mode, quota: int) -> None:
    # quota 0: even the sensor list is refused; quota 1: the sensor list passes, flows don't.
    sim = Simulator(SimulatorConfig(now=pinned_clock, rate_limit_per_min=None, monthly_quota=quota))
    api_mode(sim)
    at = new_app()
    at.run()
    _nothing_rendered(at)
    assert any("monthly request quota" in e for e in said(at.error)), said(at.error)
    assert len(flux_requests(sim)) == quota  # a quota is final: no retry


class _OldFluxFails(Simulator):
    """Answers every flux request for data older than ``cutoff`` with ``status``."""

    def __init__(self, cutoff: datetime, status: int) -> None:
        super().__init__(SimulatorConfig(rate_limit_per_min=None, now=pinned_clock))
        self.cutoff, self.status = cutoff, status

    def handle(self, method, path, params, headers):
        start = params.get("from")
        if path.rstrip("/").endswith("/flux") and start and datetime.fromisoformat(
                start.replace("Z", "+00:00")) < self.cutoff:
            self.requests.append((path, dict(params)))
            extra = {"retry-after": "864000"} if self.status == 429 else {}
            body = json.dumps({"message": "Unavailable"}).encode()
            return self.status, {"content-type": "application/json", **extra}, body
        return super().handle(method, path, params, headers)


@pytest.mark.parametrize("status", [503, 429])
def test_digest_says_so_when_its_comparison_cannot_be_loaded(api_mode, status: int) -> None:
    """The week-before lookback fails (server errors / quota): a visible warning, never a
    silent gap, and no digest that pretends the comparison day was empty."""
    sim = _OldFluxFails(PINNED - timedelta(days=3), status)
    api_mode(sim)
    at = new_app()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert metrics(at)  # the range itself loaded
    assert any("week before" in w.lower() for w in said(at.warning)), [
        w for w in said(at.warning)]
    assert not [c.value for c in at.caption if "comparison day has no flows" in c.value]
    assert digest_bullets(at) == []

