"""How busy the machine was while something was timed: other processes' CPU use, CPU steal, load average.

torch on a 2-core machine slows by an order of magnitude when another process shares the cores (an RTF of 1.36
against 0.03 was measured that way), so every timed generation records what else ran. `LoadMonitor` wraps the
timed call; on Linux it reads `/proc/stat` (all CPU time, and steal: time a hypervisor gave to other guests),
this process's own CPU time (`os.times`, threads and waited-for children included) and, per process, the CPU
time of every other process in `/proc/<pid>/stat`. Busy time that is not ours is other processes' load.

A timing is **contended** when, averaged over the timed interval, other processes used more than
`OTHERS_CORES_LIMIT` cores or steal exceeded `STEAL_LIMIT` of the machine's CPU time, beyond the clock's
granularity: CPU times advance in ticks (10 ms), so two ticks per CPU are forgiven. A 50 ms generation on 2 cores
is therefore flagged only when others used more than about 1.05 cores; from about 1 s on the limits apply as
stated. Where /proc is not readable (macOS, Windows), contention is unknown (None) and such timings never gate.
Other processes on the same GPU are not seen here (only their CPU time is): a GPU runner should be exclusive.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OTHERS_CORES_LIMIT = 0.25  # cores of CPU time used by other processes, on average over the timed interval
STEAL_LIMIT = 0.05  # fraction of all CPU time stolen by the hypervisor
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def _cpu_totals() -> tuple[float, float] | None:
    """(busy, steal) seconds of all CPUs since boot from /proc/stat; None where it is not readable."""
    try:
        fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in fields]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK, steal / _TICK


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _processes() -> dict[int, tuple[str, float]]:
    """pid -> (command name, CPU seconds) of every readable process but this one."""
    out: dict[int, tuple[str, float]] = {}
    me = os.getpid()
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return out
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = raw[raw.find("(") + 1 : raw.rfind(")")], raw[raw.rfind(")") + 2 :].split()
        try:
            out[int(entry.name)] = (name, (int(rest[11]) + int(rest[12])) / _TICK)  # utime, stime
        except (IndexError, ValueError):
            continue
    return out


@dataclass
class LoadReport:
    """What else used the machine during one timed interval."""

    wall_s: float
    load1: float | None  # 1-minute load average at the end (lags: recorded for context only)
    others_cores: float | None  # CPU time of other processes / wall time (None: unknown)
    steal_fraction: float | None  # stolen CPU time / all CPU time of the interval
    competitors: list[str] = field(default_factory=list)  # "name (pid): cores" of the busiest other processes
    contended: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.contended is None:
            return "machine load unknown (no /proc)"
        parts = [f"others {self.others_cores:.2f} cores", f"steal {100 * (self.steal_fraction or 0):.1f} %"]
        if self.load1 is not None:
            parts.append(f"load1 {self.load1:.2f}")
        if self.competitors:
            parts.append("busiest: " + ", ".join(self.competitors))
        return ("CONTENDED: " if self.contended else "") + "; ".join(parts)


class LoadMonitor:
    """Context manager: `with LoadMonitor() as m: work()`, then `m.report` (a `LoadReport`)."""

    def __init__(self, top: int = 3):
        self.top = top
        self.report: LoadReport | None = None

    def __enter__(self) -> LoadMonitor:
        self._procs = _processes()
        self._cpu = _cpu_totals()
        self._own = _own_cpu()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self._start, 1e-9)
        own, cpu, procs = _own_cpu() - self._own, _cpu_totals(), _processes()
        try:
            load1: float | None = os.getloadavg()[0]
        except (AttributeError, OSError):
            load1 = None
        if cpu is None or self._cpu is None:
            self.report = LoadReport(wall, load1, None, None)
            return
        busy, steal = cpu[0] - self._cpu[0], cpu[1] - self._cpu[1]
        others = max(busy - steal - own, 0.0) / wall
        capacity = wall * (os.cpu_count() or 1)
        steal_fraction = max(steal, 0.0) / capacity
        deltas = sorted(
            ((t - self._procs[pid][1], name, pid) for pid, (name, t) in procs.items() if pid in self._procs),
            reverse=True,
        )
        competitors = [f"{name} ({pid}): {d / wall:.2f}" for d, name, pid in deltas[: self.top] if d / wall >= 0.05]
        slack = 2 * (os.cpu_count() or 1) / _TICK  # seconds of CPU time the tick granularity can misplace
        contended = (others * wall - slack) / wall > OTHERS_CORES_LIMIT or (steal - slack) / capacity > STEAL_LIMIT
        self.report = LoadReport(wall, load1, others, steal_fraction, competitors, contended)
