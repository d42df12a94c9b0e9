"""The load test's report: percentiles per action, the targets checked, the data kept.

This module owns ``report``: from the baseline and load ``Phase``s, the Markdown
table of p50/p95/max per action type with their load/baseline ratios, the
server's RSS and CPU, errors, lost clicks and late starts, and the verdict on
each target (p95 <= ``TARGET_P95_S`` per action type, peak RSS <=
``TARGET_RSS_MB``, zero errors, zero tracebacks), with the same in a dict for
``results.json``.
"""

from __future__ import annotations

import math
import os
from datetime import date

from benchmarks.load_test.metrics import Phase
from benchmarks.load_test.scenario import ACTIONS, NO_RUN_MS, TARGET_P95_S, TARGET_RSS_MB


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return math.nan
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def stats(phase: Phase, action: str | None) -> dict:
    xs = [s.seconds for s in phase.samples
          if s.seconds is not None and (action is None or s.action == action)
          and (action is not None or s.action != "open")]
    failed = sum(1 for s in phase.samples if s.seconds is None
                 and (action is None or s.action == action))
    return {"n": len(xs), "failed": failed, "p50": percentile(xs, 0.5),
            "p95": percentile(xs, 0.95), "max": max(xs) if xs else math.nan}


def _f(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2f}"


def _ratio(a: float, b: float) -> str:
    return "–" if math.isnan(a) or math.isnan(b) or b <= 0 else f"{a / b:.1f}×"


def report(base: Phase, load: Phase, args,
           days: tuple[date, date]) -> tuple[list[str], list[str], dict]:
    actions = ["open", *(a for a, _ in ACTIONS)]
    rows = [
        f"| action | n ({base.sessions} / {load.sessions}) | p50 {base.sessions} s | "
        f"p95 {base.sessions} s | p50 {load.sessions} s | p95 {load.sessions} s | "
        f"max {load.sessions} s | p50 ratio | p95 ratio |",
        "|---|---|---|---|---|---|---|---|---|"]
    table = {}
    for action in [*actions, None]:
        b, ld = stats(base, action), stats(load, action)
        table[action or "all actions"] = {"baseline": b, "load": ld}
        name = action or "**all but open**"
        fails = f" (+{ld['failed']} failed)" if ld["failed"] else ""
        rows.append(f"| {name} | {b['n']} / {ld['n']}{fails} | {_f(b['p50'])} | {_f(b['p95'])} "
                    f"| {_f(ld['p50'])} | {_f(ld['p95'])} | {_f(ld['max'])} | "
                    f"{_ratio(ld['p50'], b['p50'])} | {_ratio(ld['p95'], b['p95'])} |")
    peak_base, peak_load = base.peak_rss_mb(), load.peak_rss_mb()
    peak = max(peak_base, peak_load)
    over_time = _rss_over_time(load.rss, args.minutes * 60)

    verdicts = []
    # The target is on what analysts do in a session: page switches and filter
    # changes; opening the link (full page load) is reported, not checked.
    checked = [(k, table[k]["load"]["p95"]) for k, _ in ACTIONS
               if not math.isnan(table[k]["load"]["p95"])]
    worst_name, worst = max(checked, key=lambda kv: kv[1], default=("–", math.nan))
    errors = len(load.errors) + len(base.errors)
    tracebacks = load.tracebacks + base.tracebacks
    checks = [
        (f"p95 ≤ {TARGET_P95_S:.0f} s for every action type, {load.sessions} sessions",
         not math.isnan(worst) and worst <= TARGET_P95_S,
         f"worst p95 {_f(worst)} s ({worst_name})"),
        (f"peak RSS ≤ {TARGET_RSS_MB / 1024:.1f} GB", not math.isnan(peak)
         and peak <= TARGET_RSS_MB, f"peak {peak:,.0f} MB"),
        ("zero errors", errors == 0, f"{errors} (baseline {len(base.errors)}, load "
         f"{len(load.errors)}; exception boxes {base.exception_boxes + load.exception_boxes})"),
        ("zero tracebacks in the server log", tracebacks == 0,
         f"{tracebacks} (baseline {base.tracebacks}, load {load.tracebacks})"),
    ]
    for name, ok, got in checks:
        verdicts.append(f"- {'PASS' if ok else 'FAIL'} {name}: {got}")
    lines = [
        f"### Concurrent sessions: {load.sessions} vs {base.sessions} "
        f"(sensors 54 dense + 77, {days[0]} → {days[1]}, {args.minutes:g} min each)", "",
        *rows, "",
        ("- Driver: one websocket per session speaking Streamlit's protocol "
         "(`benchmarks/load_test/ws_session.py`): time to settled = the rerun request sent → the "
         "`script_finished` of the run it caused, with the page's title among its "
         "elements; the server runs the script and sends every element as for a "
         "browser, the browser's own rendering (on the analyst's computer) is not on "
         "the server's cores. " if args.driver == "ws" else
         "- Driver: Playwright pages in one Debian Chromium on the server's machine: "
         "time to settled = input event → script state back to `notRunning` with the "
         "heading shown, page clock; the browsers' rendering shares the server's "
         "cores. ") +
        f"Think time {args.think_min:g}–{args.think_max:g} s "
        f"between actions; seed {args.seed}; sessions alternate between sensors 54 and 77. "
        "`open` = opening the session's link (the first run, then the session's start "
        "page), reported but not checked against the p95 target.",
        f"- Server RSS (process and children, every second): after the warm-up "
        f"{base.rss_warm_mb:,.0f} / {load.rss_warm_mb:,.0f} MB; peak {peak_base:,.0f} MB "
        f"with {base.sessions}, {peak_load:,.0f} MB with {load.sessions} sessions. Over "
        f"the {load.sessions}-session run (max per {over_time[0]} s): {over_time[1]}.",
        *(f"- CPU during the {ph.sessions}-session run ({ph.cpu['wall']:.0f} s, "
          f"{os.cpu_count()} cores = {os.cpu_count() * ph.cpu['wall']:.0f} CPU-s): server "
          f"{ph.cpu['server']:.0f} s "
          f"({ph.cpu['server'] / ph.cpu['wall']:.2f} cores), browser "
          f"{ph.cpu['browser']:.0f} s, load driver {ph.cpu['driver']:.0f} s."
          for ph in (base, load) if ph.cpu.get("wall")),
        f"- Errors: baseline {len(base.errors)}, load {len(load.errors)}; tracebacks in the "
        f"server log: baseline {base.tracebacks}, load {load.tracebacks}. Lost clicks (a click "
        f"that started no run in {NO_RUN_MS / 1000:.0f} s, "
        f"clicked again): baseline {base.lost_clicks}, load {load.lost_clicks}; runs that "
        f"started more than {NO_RUN_MS / 1000:.0f} s after their click (waited for, counted "
        f"in the times): baseline {base.late_starts}, load {load.late_starts}.",
        f"- Each phase: a fresh server on the same disk cache, a warm-up session opening "
        f"each sensor's month and every page (not measured: {'; '.join(load.warm)}), then "
        f"the sessions. A failed action is followed by reopening the link.",
        *verdicts]
    data = {"days": [d.isoformat() for d in days], "sessions": load.sessions,
            "driver": args.driver,
            "baseline_sessions": base.sessions, "minutes": args.minutes,
            "think_s": [args.think_min, args.think_max], "seed": args.seed,
            "table": table, "rss_warm_mb": {"baseline": base.rss_warm_mb,
                                            "load": load.rss_warm_mb},
            "peak_rss_baseline_mb": peak_base, "peak_rss_load_mb": peak_load,
            "rss_series": {ph.name: [(round(t, 1), round(mb)) for t, mb in ph.rss]
                           for ph in (base, load)},
            "errors": {"baseline": base.errors, "load": load.errors},
            "tracebacks": {"baseline": base.tracebacks, "load": load.tracebacks},
            "lost_clicks": {"baseline": base.lost_clicks, "load": load.lost_clicks},
            "late_starts": {"baseline": base.late_starts, "load": load.late_starts},
            "cpu_s": {"baseline": base.cpu, "load": load.cpu},
            "samples": {ph.name: [s.__dict__ for s in ph.samples] for ph in (base, load)},
            "verdicts": [{"target": n, "pass": ok, "got": g} for n, ok, g in checks]}
    failed = [n for n, ok, _ in checks if not ok]
    return lines, failed, data


def _rss_over_time(samples: list[tuple[float, float]], seconds: float) -> tuple[int, str]:
    if not samples:
        return 0, "no samples"
    step = max(10, int(seconds / 12) // 10 * 10)
    buckets: dict[int, float] = {}
    for t, mb in samples:
        k = int(t // step)
        buckets[k] = max(buckets.get(k, 0.0), mb)
    return step, ", ".join(f"{mb:,.0f}" for _, mb in sorted(buckets.items())) + " MB"
