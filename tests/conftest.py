"""Fixtures shared by the suites: real services, and the AppTest runs several suites read.

The AppTest suites share one cache directory, so the app's process-wide
resources (the service, the sensor list, the loader's memory) built by one suite
are reused by the next: every suite runs the app under ``kit.apptest.hermetic``
with the same pinned clock and this directory. Page runs that several suites
read (every page on the default range, masked, on FIXED_DAY) are made once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.kit.apptest import (
    HUNTING,
    OVERVIEW,
    PAGES,
    RECORDER,
    TOXIC,
    Downloads,
    hermetic,
    new_app,
    run_page,
)
from tests.kit.clock import days_link
from tests.kit.demo import FIXED_DAY, INCIDENT_DAY
from tests.kit.services import PostgresServer, RedisServer

# Pages of the shared runs opened on a link rather than the default range: the toxic and
# hunting pages open INCIDENT_DAY, whose beacon makes toxic OUT flows and storylines (an
# ordinary day may have none).
PAGE_LINKS = {TOXIC: days_link(INCIDENT_DAY), HUNTING: days_link(INCIDENT_DAY)}


# ------------------------------------------------------------------ order
# `make test` hands whole files to two workers (pytest-xdist --dist loadfile) in the order
# they are collected. The longest files go first: one that starts last is the run's tail
# (test_loader.py, collected mid-way, ran alone for its last four minutes). Measured with
# --durations=0 on 2026-12-07; the order of the others is left as collected.
LONGEST_FIRST = ("tests/test_soak.py", "tests/browser/test_controls.py", "tests/test_loader.py",
                 "tests/browser/test_browser.py", "tests/browser/test_downloads.py",
                 "tests/browser/test_signin.py", "tests/test_app_hosting_attacks.py",
                 "tests/test_hosting_app.py", "tests/test_notify.py",
                 "tests/test_app_fleet.py", "tests/test_app_links.py")


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (rank(item), order[id(item)]))


# ------------------------------------------------------------------ real services
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied before each test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster on a free loopback port for the whole session."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty findings database: an SQLite file, then a real PostgreSQL one
    (every test that takes it runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'findings.sqlite3'}"
    return request.getfixturevalue("postgres_server").database()


# ------------------------------------------------------------------ AppTest
@pytest.fixture(scope="session")
def app_cache(tmp_path_factory) -> Path:
    """The cache directory every AppTest suite's app reads and writes."""
    return tmp_path_factory.mktemp("app-cache")


@pytest.fixture(scope="session")
def recorder() -> Iterator[Downloads]:
    """``kit.apptest.download`` works on every AppTest run of the session."""
    with RECORDER.recording() as rec:
        yield rec


@pytest.fixture
def captured_downloads(recorder: Downloads) -> dict:
    """File name -> the build callable of each deferred download this test's runs made."""
    recorder.built.clear()
    return recorder.built


@pytest.fixture(scope="session")
def truth():
    """The demo's world in a separate simulator at the pinned clock: the expected rows."""
    from tests.kit.demo import _truth

    return _truth()


@pytest.fixture(scope="session")
def rows_of():
    """API rows of [start, end) for a sensor, straight from the ground truth."""
    from tests.kit.demo import rows

    return rows


@pytest.fixture(scope="session")
def day_rows() -> list[dict]:
    from tests.kit.demo import day_rows

    return day_rows(FIXED_DAY)


@pytest.fixture(scope="session")
def week_before_rows(rows_of) -> list[dict]:
    from tests.kit.clock import local_days

    start, _ = local_days(FIXED_DAY)
    return rows_of(start - timedelta(days=7), start)


@pytest.fixture(scope="module")
def app_env(app_cache: Path, recorder: Downloads) -> Iterator[None]:
    """The AppTest environment for a whole module (``pytestmark`` of AppTest suites)."""
    with hermetic(app_cache):
        yield


@pytest.fixture(scope="session")
def page_runs(app_cache: Path, recorder: Downloads) -> dict[str, AppTest]:
    """One demo-mode AppTest per page on the default range (the toxic page: PAGE_LINKS)."""
    with hermetic(app_cache):
        return {page: run_page(page, PAGE_LINKS.get(page)) for page in PAGES}


@pytest.fixture(scope="session")
def masked_runs(app_cache: Path, page_runs: dict[str, AppTest],
                recorder: Downloads) -> dict[str, AppTest]:
    """Every page opened from a ?mask=true link (first run: nothing may leak even then)."""
    runs = {}
    with hermetic(app_cache):
        for page in PAGES:
            at = new_app({"mask": "true", **PAGE_LINKS.get(page, {})})
            at.run()
            if page != OVERVIEW:
                at.switch_page(page).run()
            runs[page] = at
    return runs


@pytest.fixture(scope="session")
def fixed_runs(app_cache: Path, recorder: Downloads) -> dict[str, AppTest]:
    """Overview, toxic and hunting pages opened from a link to FIXED_DAY."""
    with hermetic(app_cache):
        return {page: run_page(page, days_link(FIXED_DAY)) for page in (OVERVIEW, TOXIC,
                                                                         HUNTING)}
