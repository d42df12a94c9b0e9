"""The UI's own state: derived-cache keys, forced masking, the evidence pack on click.

AppTest runs in demo mode (embedded simulator) under the kit's environment
(``tests/kit/apptest.py``). Download buttons with a callable hand it to
Streamlit's media manager, which AppTest discards after each run;
``captured_downloads`` records each callable at registration so a test can
"click" it and open what it produces.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.loader import LoadResult
from tests.kit.apptest import run_page
from tests.kit.procs import ROOT

pytestmark = pytest.mark.usefixtures("app_env")


def run(page: str | None = None, **query: str) -> AppTest:
    return run_page(page, query)


# ------------------------------------------------------------------ cache keys
def test_data_keys_of_successive_loads_never_repeat():
    """Old keys used id(frame): a freed frame's address is reused by the next one."""
    from flux_dashboard.config import load_settings
    from flux_dashboard.ui.state import data_key

    cfg = load_settings(secrets={})
    start = datetime(2026, 11, 1, tzinfo=UTC)
    keys = []
    for i in range(50):
        result = LoadResult(frame=pl.DataFrame({"x": [i]}), start=start,
                            end=start + timedelta(hours=1), loaded_at=start)
        keys.append(data_key(cfg, 54, result, False))
        del result
    assert len(set(keys)) == len(keys)


def test_compute_keys_frames_by_what_produced_them():
    from flux_dashboard.ui.state import Keyed, View

    def total(df: pl.DataFrame) -> int:
        return int(df["x"].sum())

    view = View.__new__(View)  # only the fields compute() reads
    view.data_key, view.filters, view.frame = ("test", object()), None, pl.DataFrame({"x": [0]})
    a = Keyed(("device", "a"), pl.DataFrame({"x": [1, 2]}))
    b = Keyed(("device", "b"), pl.DataFrame({"x": [10, 20]}))
    assert view.compute(total, frame=a) == 3
    assert view.compute(total, frame=b) == 30
    assert view.compute(total, frame=a) == 3
    with pytest.raises(TypeError, match="Keyed"):
        view.compute(total, frame=pl.DataFrame({"x": [5]}))
    with pytest.raises(TypeError, match="Keyed"):
        view.compute(total, pl.DataFrame({"x": [5]}))



def test_compute_never_serves_a_freed_frames_result_for_the_next():
    """One device after another, each sub-frame freed before the next is made: a key
    built from id(frame) would meet a reused address and return the previous result."""
    from flux_dashboard.ui.state import Keyed, View

    def total(df: pl.DataFrame) -> int:
        return int(df["x"].sum())

    view = View.__new__(View)  # only the fields compute() reads
    view.data_key, view.filters, view.frame = ("test", object()), None, pl.DataFrame({"x": [0]})
    for i in range(50):
        one = Keyed(("device", f"10.0.0.{i}"), pl.DataFrame({"x": [i, 1000]}))
        assert view.compute(total, frame=one) == i + 1000, i
        del one


# ------------------------------------------------------------------ masking decided once
def test_forced_masking_overrules_the_link_and_the_switch(monkeypatch):
    monkeypatch.setenv("FLUX_FORCE_MASK", "1")
    at = run("pages/2_devices.py", mask="false")
    toggle = at.sidebar.toggle(key="mask")
    assert toggle.value is True and toggle.disabled
    assert "masked" in at.caption[0].value
    table = at.dataframe[0].value
    assert not table["ip0"].str.startswith("192.168.").any()
    assert table["ip0"].str.match(r"24[0-3]\.").all()


def test_masking_switch_changes_the_page_when_not_forced():
    plain = run("pages/2_devices.py")
    masked = run("pages/2_devices.py", mask="true")
    real = set(plain.dataframe[0].value["ip0"])
    shown = set(masked.dataframe[0].value["ip0"])
    assert any(ip.startswith("192.168.") for ip in real)
    assert len(shown) == len(real) and not shown & real


# ------------------------------------------------------------------ evidence pack on click
def _open(captured: dict, suffix: str) -> zipfile.ZipFile:
    names = [n for n in captured if n.endswith(suffix)]
    assert len(names) == 1, list(captured)
    return zipfile.ZipFile(io.BytesIO(captured[names[0]]()))


def test_evidence_pack_of_sensor_and_device_builds_with_a_digest(captured_downloads):
    at = run("pages/2_devices.py")
    device = at.selectbox(key="drill").value
    sensor_pack = [n for n in captured_downloads if n.endswith(".zip") and n.count("-") == 2]
    device_pack = [n for n in captured_downloads if n.endswith(".zip") and n.count("-") == 3]
    assert sensor_pack and device_pack
    for name in (sensor_pack[0], device_pack[0]):
        z = zipfile.ZipFile(io.BytesIO(captured_downloads[name]()))
        assert {"flows.csv", "toxic_flows.csv", "storylines.csv", "digest.txt",
                "report.html"} <= set(z.namelist())
        digest = z.read("digest.txt").decode()
        assert digest.startswith("What changed on ") and " vs " in digest
        # the last day of the range against the same weekday a week before
        day, prev = digest.splitlines()[0].removeprefix("What changed on ").split(" vs ")
        d1 = datetime.strptime(day.split(" ", 1)[1], "%Y-%m-%d")
        d0 = datetime.strptime(prev.split(" ", 1)[1], "%Y-%m-%d")
        assert d1 - d0 == timedelta(days=7)
        flows = pl.read_csv(z.read("flows.csv"))
        assert flows.height > 0
        if name == device_pack[0]:
            assert flows["ip0"].unique().to_list() == [device]
        html = z.read("report.html").decode()
        assert "<script src=" not in html and "http://" not in html.split("<body")[0]


def test_masked_evidence_pack_holds_no_original_identifier(captured_downloads):
    run("pages/2_devices.py")
    plain = {n: f for n, f in captured_downloads.items() if n.endswith(".zip")}
    flows = pl.read_csv(zipfile.ZipFile(io.BytesIO(
        next(f for n, f in plain.items() if n.count("-") == 2)())).read("flows.csv"),
        infer_schema=False)
    originals = set()
    for col in ("ip0", "ip1", "device_name", "mac_address", "vendor", "netbios"):
        if col in flows.columns:
            originals |= {v for v in flows[col].drop_nulls().to_list() if len(v) >= 4}
    assert len(originals) > 20
    captured_downloads.clear()
    run("pages/2_devices.py", mask="true")
    packs = [f for n, f in captured_downloads.items() if n.endswith(".zip")]
    assert len(packs) == 2
    for name in captured_downloads:
        assert "192_168" not in name and "192.168" not in name
    for build in packs:
        z = zipfile.ZipFile(io.BytesIO(build()))
        for member in z.namelist():
            body = z.read(member).decode(errors="replace")
            leaked = [o for o in originals if o in body]
            assert not leaked, (member, leaked[:5])


# ------------------------------------------------------------------ the derived cache
def test_concurrent_identical_computations_run_once():
    import threading
    import time as _time

    from flux_dashboard.ui.state import memo

    calls = []

    def slow() -> int:
        calls.append(1)
        _time.sleep(0.3)
        return 42

    key = ("test-single-flight", object())
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(memo(key, slow)))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 5 and len(calls) == 1


def test_derived_cache_is_bounded_by_bytes(monkeypatch):
    from cachetools import TTLCache

    from flux_dashboard.ui import state

    small = TTLCache(maxsize=3 * 2**20, ttl=900, getsizeof=state._size)
    monkeypatch.setattr(state, "_derived", small)
    frame = pl.DataFrame({"x": range(100_000)})  # ~0.8 MB
    assert 0.7 * 2**20 < state._size(frame) < 1.0 * 2**20
    for i in range(10):
        state.memo(("frame", i), lambda: frame.clone())
    assert len(small) == 3 and small.currsize <= small.maxsize
    assert ("frame", 9) in small and ("frame", 0) not in small
    huge = pl.DataFrame({"x": range(1_000_000)})  # larger than the whole budget
    assert state.memo(("huge",), lambda: huge).height == 1_000_000  # served, not kept
    assert ("huge",) not in small


def test_bound_keys_are_every_widget_bound_to_the_link() -> None:
    """``BOUND_KEYS`` (what a page switch leaves to Streamlit) is exactly the set of
    keys the code binds with ``bind="query-params"``: a key missing from it makes the
    profile jump raise on any link holding that widget's value."""
    import ast

    from flux_dashboard.ui.sidebar import BOUND_KEYS

    root = ROOT
    bound = set()
    for path in [*root.glob("flux_dashboard/**/*.py"), *root.glob("pages/*.py"), root / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                kw = {k.arg: k.value for k in node.keywords}
                if isinstance(kw.get("bind"), ast.Constant) and kw["bind"].value == "query-params":
                    bound.add(kw["key"].value)
    assert bound == BOUND_KEYS
