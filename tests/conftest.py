"""Fixtures shared by the AppTest suites."""

from __future__ import annotations

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager


@pytest.fixture
def captured_downloads(monkeypatch: pytest.MonkeyPatch) -> dict:
    """File name -> the build callable of every download button a run registers.

    AppTest drops Streamlit's media manager after each run; recording each
    callable as it is registered lets a test "click" it and open what it builds.
    """
    got: dict = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data, mimetype, coordinates, file_name=None, *a, **kw):
        got[file_name] = data
        return original(self, data, mimetype, coordinates, file_name, *a, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return got


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real ``redis-server`` on a free loopback port for the whole session."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied before each test."""
    redis_server.flush()
    return redis_server.url
