"""CPU time of the processes a benchmark way runs (and of the broker and Redis beside them),
read from /proc: on a machine whose load swings, CPU per task compares ways where wall-clock
rates cannot (a round's rate moved 2-3x under other work; its CPU per task far less)."""

from __future__ import annotations

import os
import subprocess

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Shared services, found by process name: their CPU includes other clients' traffic too.
SERVICES = {"broker": "beam.smp", "redis": "redis-server"}


def cpu_s(pid: int) -> float:
    """utime + stime of one process in seconds; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a prefork worker's pool children)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def snapshot(roles: dict[str, int]) -> dict[str, dict[int, float]]:
    """Per role (a name → the root pid of a process tree), each process's CPU seconds so far;
    plus this process as ``client`` and the shared services."""
    snap = {role: {p: cpu_s(p) for p in (pid, *descendants(pid))} for role, pid in roles.items()}
    snap["client"] = {os.getpid(): cpu_s(os.getpid())}
    for role, name in SERVICES.items():
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
        snap[role] = {int(p): cpu_s(int(p)) for p in pids.split()}
    return snap


def used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each role used between two snapshots (processes alive at the second)."""
    return {role: round(sum(s - before.get(role, {}).get(p, 0.0) for p, s in pids.items()), 3)
            for role, pids in after.items()}  # fmt: skip
