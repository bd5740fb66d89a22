"""The dispatch benchmark's CPU accounting: per role, what each process used between two
snapshots (a process gone by the second counts nothing, one born between counts whole)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import cputime


def test_cpu_used_between_snapshots_per_role() -> None:
    before = {"worker": {1: 1.0, 2: 0.5}, "client": {9: 2.0}}
    after = {"worker": {1: 1.5, 3: 0.25}, "client": {9: 2.0}}  # 2 exited, 3 was forked
    assert cputime.used(before, after) == {"worker": 0.75, "client": 0.0}


def test_a_process_tree_and_its_cpu_are_read_from_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        snap = cputime.snapshot({"me": os.getpid()})
        assert child.pid in snap["me"] and snap["client"][os.getpid()] > 0
        assert cputime.cpu_s(-1) == 0.0  # no such process: nothing
    finally:
        child.kill()
        child.wait()
