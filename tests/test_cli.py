"""CLI end to end: a real subprocess against the simulator served over real HTTP."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import cli
from flux_dashboard.schema import NATURAL_KEY, to_frame
from flux_dashboard.simulator import Simulator, SimulatorConfig
from tests.kit.procs import is_ours, scrubbed_env

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
KEY = "cli-test-key-0123456789"


@pytest.fixture(scope="module")
def server():
    sim = Simulator(SimulatorConfig(now=lambda: NOW, api_key=KEY, rate_limit_per_min=None,
                                    unstable_ties=True, inclusive_to=True))
    srv = sim.serve(port=0)
    yield sim, srv
    srv.shutdown()


def run(args, *, url, key=KEY, cwd=None, timeout=120):
    env = scrubbed_env({"SERENICITY_API_URL": url, "FLUX_RATE_LIMIT": "60000"})
    if key is not None:
        env["SERENICITY_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "flux_dashboard", *args], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_export_exact_rows_within_budget_then_warm(server, tmp_path):
    sim, srv = server
    start, end = "2026-03-02T00:00Z", "2026-03-06T06:00Z"
    out = tmp_path / "flows.parquet"
    sim.reset_counters()
    r = run(["export", "--sensor", "54", "--from", start, "--to", end, "--out", str(out),
             "--cache-dir", str(tmp_path / "cache")], url=srv.url)
    assert r.returncode == 0, r.stderr
    assert "rows written" in r.stderr and "requests" in r.stderr  # progress on stderr
    assert r.stdout == ""
    got = pl.read_parquet(out)
    want = to_frame(sim.rows(54, datetime(2026, 3, 2, tzinfo=UTC),
                             datetime(2026, 3, 6, 6, tzinfo=UTC)))
    assert_frame_equal(got.sort(NATURAL_KEY, nulls_last=True),
                       want.sort(NATURAL_KEY, nulls_last=True))
    cold = sim.flux_request_count()
    assert 0 < cold <= 2 * math.ceil(want.height / 1000) + 10

    sim.reset_counters()
    out_csv = tmp_path / "again.csv"
    r = run(["export", "--sensor", "54", "--from", start, "--to", end, "--out", str(out_csv),
             "--cache-dir", str(tmp_path / "cache")], url=srv.url)
    assert r.returncode == 0, r.stderr
    assert sim.flux_request_count() == 0  # warm revisit: nothing asked
    assert pl.read_csv(out_csv).height == want.height


def test_export_with_filters(server, tmp_path):
    sim, srv = server
    out = tmp_path / "toxic.csv"
    r = run(["export", "--sensor", "54", "--from", "2026-03-01", "--to", "2026-03-08",
             "--only-toxic", "--only-out", "--out", str(out), "-q",
             "--cache-dir", str(tmp_path / "c")], url=srv.url)
    assert r.returncode == 0, r.stderr
    got = pl.read_csv(out)
    want = to_frame(sim.rows(54, datetime(2026, 3, 1, tzinfo=UTC),
                             datetime(2026, 3, 8, tzinfo=UTC))).filter(
        pl.col("toxic") & (pl.col("dir") == "OUT"))
    assert got.height == want.height > 0
    assert set(got["dir"]) == {"OUT"}


def test_sensors_lists(server):
    sim, srv = server
    r = run(["sensors"], url=srv.url)
    assert r.returncode == 0, r.stderr
    ids = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert "54" in ids and "77" in ids
    assert "127.0.0.1" in r.stderr  # says which source it read


def one_line_error(r):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert KEY not in r.stderr + r.stdout
    return lines[-1]


def test_bad_key(server, tmp_path):
    _, srv = server
    r = run(["export", "--sensor", "54", "--from", "2026-03-01", "--to", "2026-03-02",
             "--out", str(tmp_path / "x.csv")], url=srv.url, key="wrong-" + KEY)
    line = one_line_error(r)
    assert "API key" in line and ("wrong-" + KEY) not in r.stderr


def test_unknown_sensor(server, tmp_path):
    sim, srv = server
    sim.reset_counters()
    line = one_line_error(run(["export", "--sensor", "12345", "--from", "2026-03-01", "--to",
                               "2026-03-02", "--out", str(tmp_path / "x.csv"),
                               "--cache-dir", str(tmp_path / "cache")], url=srv.url))
    assert "12345" in line and "does not know" in line
    # The sensor was asked about, its flows never were.
    assert [path for path, _ in sim.requests] == ["/sensors/12345"]
    assert sim.flux_request_count() == 0
    assert not (tmp_path / "x.csv").exists()


OK_DATES = ["--from", "2026-03-01", "--to", "2026-03-02"]


@pytest.mark.parametrize("args,fragment", [
    (["--from", "yesterday-ish", "--to", "2026-03-02"], "is not an ISO date"),
    (["--from", "2026-03-05", "--to", "2026-03-02"], "--to must be after --from"),
    (["--from", "2026-03-02", "--to", "2026-03-02"], "--to must be after --from"),
    # Extreme dates: near datetime's limits the hour arithmetic overflowed (traceback),
    # and year 1 went out as a flux request the API refused.
    (["--from", "0001-01-01T00:00+01:00", "--to", "2026-03-02"], "outside the supported dates"),
    (["--from", "2026-03-01", "--to", "9999-12-31T23:30Z"], "outside the supported dates"),
    (["--from", "0001-01-01", "--to", "2026-03-02"], "outside the supported dates"),
    (["--from", "1969-12-31T23:00Z", "--to", "2026-03-02"], "outside the supported dates"),
    ([*OK_DATES, "--out-suffix", ".txt"], "--out must end in .parquet or .csv"),
    ([*OK_DATES, "--out-suffix", ""], "--out must end in .parquet or .csv"),
    ([*OK_DATES, "--port", "70000"], "Port"),
    ([*OK_DATES, "--port", "http"], "Port"),
    ([*OK_DATES, "--ip1", "1.1.1"], "Remote IP"),
    ([*OK_DATES, "--ip1", "192.168.1.300"], "Remote IP"),
    ([*OK_DATES, "--mac", "00:11:22"], "MAC"),
])
def test_bad_input_is_refused_before_any_request(server, tmp_path, args, fragment):
    sim, srv = server
    args = list(args)
    suffix = ".csv"
    if "--out-suffix" in args:
        i = args.index("--out-suffix")
        suffix = args[i + 1]
        del args[i:i + 2]
    out = tmp_path / f"x{suffix}"
    sim.reset_counters()
    # A fresh cache: a run that wrongly loaded first could not hide it behind cached hours.
    r = run(["export", "--sensor", "54", *args, "--out", str(out),
             "--cache-dir", str(tmp_path / "cache")], url=srv.url)
    assert r.returncode == 2, r.stderr
    assert fragment in one_line_error(r)
    assert sim.requests == [] and sim.flux_request_count() == 0  # nothing asked, no quota
    assert not out.exists()


def test_unreachable_api(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(["sensors"], url=f"http://127.0.0.1:{port}/api/v1")
    line = one_line_error(r)
    assert "Could not reach" in line and f"127.0.0.1:{port}" in line


def test_demo_mode_without_configuration(tmp_path):
    env = scrubbed_env({"FLUX_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)})
    # Run from an empty folder: no secrets.toml, no configuration at all.
    r = subprocess.run([sys.executable, "-m", "flux_dashboard", "sensors"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Demo sensor, simulated data" in r.stderr and "54" in r.stdout


# -- in process, through the simulator's transport with a fault injected in its answers
def rewriting_transport(sim, rewrite):
    """The simulator's transport, with ``rewrite(body)`` applied to every flux answer."""
    inner = sim.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        resp = inner.handle_request(request)
        if not request.url.path.endswith("/flux") or resp.status_code != 200:
            return resp
        body = json.loads(resp.read())
        rewrite(body)
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def run_here(args, transport, monkeypatch, capsys, cwd):
    for name in [n for n in os.environ if is_ours(n)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SERENICITY_API_URL", "http://sim.test/api/v1")
    monkeypatch.setenv("SERENICITY_API_KEY", KEY)
    monkeypatch.setenv("FLUX_RATE_LIMIT", "60000")
    monkeypatch.chdir(cwd)  # no secrets.toml from the repository
    code = cli.main(args, transport=transport)
    return code, capsys.readouterr()


RISKY_NAMES = ('=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1)")


def poison_names(body):
    # Device names and NetBIOS names are user-entered: anything can be in them.
    for i, row in enumerate(body["data"]):
        if row.get("custom_ip0"):
            row["custom_ip0"]["name"] = RISKY_NAMES[int(row["ip0"].rsplit(".", 1)[1]) % 4]
        row["last_netbios"] = "\tTAB-PC" if i % 2 else "\rCR-PC"


def test_csv_export_neutralises_formula_cells(tmp_path, monkeypatch, capsys):
    sim = Simulator(SimulatorConfig(now=lambda: NOW, api_key=KEY, rate_limit_per_min=None))
    transport = rewriting_transport(sim, poison_names)
    common = ["export", "--sensor", "54", "--from", "2026-03-02", "--to", "2026-03-03", "-q",
              "--cache-dir", str(tmp_path / "cache")]
    code, _ = run_here([*common, "--out", str(tmp_path / "f.csv")], transport, monkeypatch,
                       capsys, tmp_path)
    assert code == 0
    got = pl.read_csv(tmp_path / "f.csv", infer_schema=False)  # every cell as written
    assert got.height == sim.count_rows(54, datetime(2026, 3, 2, tzinfo=UTC),
                                        datetime(2026, 3, 3, tzinfo=UTC)) > 0
    for name in got.columns:
        risky = got.filter(pl.col(name).str.contains(r"^[=+\-@\t\r]"))
        assert risky.height == 0, (name, risky[name].head(3).to_list())
    names = set(got["custom_name"].drop_nulls())
    assert {"'" + n for n in RISKY_NAMES} <= names
    assert {"'\tTAB-PC", "'\rCR-PC"} <= set(got["netbios"])
    # Parquet keeps the data as it is: the apostrophe is for spreadsheets only.
    code, _ = run_here([*common, "--out", str(tmp_path / "f.parquet")], transport, monkeypatch,
                       capsys, tmp_path)
    assert code == 0
    raw = pl.read_parquet(tmp_path / "f.parquet")
    assert set(RISKY_NAMES) <= set(raw["custom_name"].drop_nulls())


def test_incomplete_load_exits_3_writes_nothing_then_resumes(tmp_path, monkeypatch, capsys):
    sim = Simulator(SimulatorConfig(now=lambda: NOW, api_key=KEY, rate_limit_per_min=None))
    answers = itertools.count(1)

    def short_pages(body):
        # After the first answer, every full page comes back with half its rows.
        meta = body["meta"]
        if next(answers) > 1 and meta["total"] > meta["per_page"]:
            body["data"] = body["data"][: len(body["data"]) // 2]

    out = tmp_path / "week.parquet"
    args = ["export", "--sensor", "54", "--from", "2026-03-03", "--to", "2026-03-10",
            "--out", str(out), "-q", "--cache-dir", str(tmp_path / "cache")]
    code, streams = run_here(args, rewriting_transport(sim, short_pages), monkeypatch, capsys,
                             tmp_path)
    assert code == cli.EXIT_INCOMPLETE == 3
    lines = [ln for ln in streams.err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: Could not load ")
    assert "hours between" in lines[-1] and "load again to fetch only what is missing" in lines[-1]
    assert "full page" in lines[-1]  # says what went wrong
    assert KEY not in streams.err + streams.out and streams.out == ""
    assert not out.exists()  # no partial export passed off as complete
    first = sim.flux_request_count()

    assert first > 1

    # Loading again fetches only what is missing: the hours completed above come from disk.
    args.remove("-q")
    code, streams = run_here(args, sim.transport(), monkeypatch, capsys, tmp_path)
    assert code == 0, streams.err
    want = to_frame(sim.rows(54, datetime(2026, 3, 3, tzinfo=UTC),
                             datetime(2026, 3, 10, tzinfo=UTC)))
    assert_frame_equal(pl.read_parquet(out).sort(NATURAL_KEY, nulls_last=True),
                       want.sort(NATURAL_KEY, nulls_last=True))
    cached = int(re.search(r"(\d+) hours from cache", streams.err).group(1))
    assert 0 < cached < 7 * 24


def test_db_upgrade_and_status_on_both_databases(database_url, tmp_path, monkeypatch, capsys):
    """`db upgrade` applies the migrations (again: nothing); `db status` says where the
    database is, its revision and the findings per status, never its password."""
    from datetime import UTC, datetime

    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore
    from tests.test_triage_store import found

    def run(*args: str, url: str):
        for name in [n for n in os.environ if is_ours(n)]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("FLUX_DATABASE_URL", url)
        monkeypatch.setenv("FLUX_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.chdir(tmp_path)  # no secrets.toml from the repository
        return cli.main(list(args)), capsys.readouterr()

    url = database_url.replace("flux@", "flux:not-a-secret@")  # PostgreSQL trusts any
    code, out = run("db", "upgrade", url=url)
    assert code == 0 and f"revision: {db.HEAD} (latest: {db.HEAD})" in out.out
    FindingsStore(db.connect(url)).upsert(found(), datetime(2026, 11, 25, tzinfo=UTC))
    code, out = run("db", "status", url=url)
    assert code == 0 and "findings: 2" in out.out and "  new: 2" in out.out
    assert "not-a-secret" not in out.out + out.err
    code, out = run("db", "status", url="postgresql+psycopg://u:pw@127.0.0.1:1/x")
    assert code != 0 and "127.0.0.1:1" in out.err and ":pw@" not in out.err
