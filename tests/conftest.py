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
