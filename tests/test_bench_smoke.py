"""``make bench`` still runs: ``python -m benchmarks.bench --quick`` in a subprocess (~1 min).

Checks the Markdown tables come out, the loader's rows match the ground truth
under the hazards (while the naive page-through visibly does not) and the
summary lands in ``results.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.bench import TARGET_S  # the page-render target (1 s)

ROOT = Path(__file__).resolve().parents[1]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _int(cell: str) -> int:
    return int(cell.replace(",", ""))


def _seconds(cell: str) -> float:
    """'0.42 s' or '420 ms' as seconds."""
    value, unit = cell.split()
    return float(value) / (1000 if unit == "ms" else 1)


def test_quick_bench_prints_the_tables(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)  # five parts, a busy machine
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout

    header = "| Window | Method | Flux requests | Wall |"
    assert header in text
    lines = text.splitlines()
    # Columns: window, method, requests, wall, ratio, at limit, rows, missing, doubled, outside
    rows = [_cells(ln) for ln in lines if ln.startswith("| ")]
    loader_rows = [r for r in rows if len(r) == 10 and "loader" in r[1]]
    naive_rows = [r for r in rows if len(r) == 10 and r[1].startswith("naive")]
    assert len(loader_rows) == 6 and len(naive_rows) == 2  # 2 windows × (cold, warm, fresh)
    for row in loader_rows:
        assert (_int(row[7]), _int(row[8]), _int(row[9])) == (0, 0, 0), row
    for row in loader_rows:
        if "cold" not in row[1]:
            assert _int(row[2]) == 0, f"a warm revisit made flux requests: {row}"
    for row in naive_rows:  # the hazards are on: offset paging loses and doubles rows
        assert _int(row[7]) > 0 and _int(row[8]) > 0, row
    assert "within the budget" in text

    # Page render: name, page switch, ratio, filter change, ratio, verdict (under 1 s).
    page_rows = [_cells(ln) for ln in lines if ln.startswith("| ") and ln.rstrip().endswith(
        ("| PASS |", "| FAIL |"))]
    assert [r[0] for r in page_rows] == ["Overview", "Devices", "Protocols & ports",
                                         "Toxic flows", "Remote hosts", "Threat hunting"]
    for r in page_rows:
        switch, change = _seconds(r[1]), _seconds(r[3])
        assert switch > 0 and change > 0, r
        # The verdict agrees with the figures. Whether every page meets the target is
        # for `make bench` to say: a timed assertion here fails on a busy machine.
        assert r[5] == ("PASS" if max(switch, change) < TARGET_S else "FAIL"), r

    # Findings: the inbox on both databases (5,000 findings in a quick run), detection.
    assert "### Findings (issue 21)" in text
    assert any(ln.startswith("| sqlite | ") for ln in lines)
    assert any(ln.startswith("| postgresql | ") for ln in lines)
    assert "- Detection over " in text

    # The first view of a cold range and the fleet's cost (issue 23).
    assert "### First view and the fleet (issue 23)" in text
    first = next(_cells(ln) for ln in lines if ln.startswith("| First Overview charts"))
    assert _int(first[1]) >= 1 and _seconds(first[2].split(" (")[0]) > 0
    assert "- The Sensors page: a cold month of the demo's 12 sensors cost 12 requests " \
        "(target ≤ 2 each), warm 0." in text

    saved = (out / "results.md").read_text()
    assert header in saved and "| Threat hunting |" in saved
    assert saved.strip() in text
