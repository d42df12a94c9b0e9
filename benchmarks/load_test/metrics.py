"""What the load test measures: each phase's samples and the server's RSS and CPU.

This module owns ``Sample`` (one action's time, or its failure), ``Phase``
(one run of N sessions: samples, errors, lost clicks, late starts, CPU and RSS
series), and the readings of the server's process tree from ``/proc``:
``tree_rss_mb`` (VmRSS of the process and its descendants), ``cpu_snapshot``
(server, Chromium and this driver's CPU seconds) and ``RssSampler``, a thread
that samples the RSS every second, labelled with the phase it is in.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    session: int
    action: str
    seconds: float | None  # None: failed
    error: str = ""


@dataclass
class Phase:
    name: str
    sessions: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exception_boxes: int = 0
    lost_clicks: int = 0  # clicks that started no run and left the control unchanged
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the sessions
    late_starts: int = 0  # runs that started more than NO_RUN_MS after the click
    tracebacks: int = 0
    wall_s: float = 0.0
    diag_dir: Path | None = None  # screenshots of failed actions
    warm: list[str] = field(default_factory=list)  # warm-up notes
    rss_warm_mb: float = math.nan  # after the warm-up
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB)

    def peak_rss_mb(self) -> float:
        return max((mb for _, mb in self.rss), default=math.nan)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    out += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """RSS of the process and all its descendants, MB."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kb(p)
        todo += _children(p)
    return total / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_s(pid: int) -> float:
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            total += _cpu_s(p)
            todo += _children(p)
    return total


def chromium_cpu_s() -> float:
    """CPU seconds of every Chromium process on the machine (the browser driver's)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if not fh.read().startswith(("chromium", "chrome")):
                        continue
            except OSError:
                continue
            total += _cpu_s(int(entry))
    return total


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"server": tree_cpu_s(server_pid), "browser": chromium_cpu_s(),
            "driver": me.ru_utime + me.ru_stime, "wall": time.monotonic()}


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, str, float]] = []  # (t, phase, MB)
        self.phase = "start"
        self.t0 = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - self.t0, self.phase, tree_rss_mb(self.pid)))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
