"""Cold start: ``mediaapp demo`` (the README's main command) from nothing, against its ffmpeg.

    python -m bench coldstart [--reps 3] [--quick]

Each run is the real command in a fresh data directory on the embedded broker (no server),
so the worker and the audit consumer boot, run one job and stop, exactly as a user sees it.
Baseline, in the same run: the job's own ffmpeg command lines run directly. Cold start is the
demo's wall time minus that; the demo's own phase timings say where it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import write_result
from bench.overhead import run_direct

MEDIAAPP = str(Path(sys.executable).parent / "mediaapp")


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON unless --quick."""
    parser = argparse.ArgumentParser(prog="python -m bench coldstart")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke mode: one run")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAAPP_")}
    walls, directs, runs = [], [], []
    for _ in range(reps):
        home = Path(tempfile.mkdtemp(prefix="mediaapp-cold-"))
        figures = home / "figures.json"
        started = time.perf_counter()
        subprocess.run([MEDIAAPP, "demo", "--figures", str(figures)], check=True, cwd=home,
                       env={**env, "XDG_DATA_HOME": str(home)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        walls.append(time.perf_counter() - started)
        run = json.loads(figures.read_text())
        directs.append(run_direct(run["commands"], home))
        runs.append(run)
    wall, direct = statistics.median(walls), statistics.median(directs)
    phases = {k: round(statistics.median(r["phases_s"][k] for r in runs), 3)
              for k in runs[0]["phases_s"]}  # fmt: skip
    row = {"demo_wall_s": round(wall, 3), "ffmpeg_direct_s": round(direct, 3),
           "cold_start_s": round(wall - direct, 3), "ratio": round(wall / direct, 3),
           "phases_s": phases, "reps": reps}  # fmt: skip
    print(f"cold start: `mediaapp demo` on the embedded broker, median of {reps}")
    print(f"  demo wall time {wall:7.3f} s   its ffmpeg run directly {direct:6.3f} s   "
          f"cold start {wall - direct:6.3f} s   {wall / direct:.3f}x")  # fmt: skip
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    write_result("coldstart", row, args.quick)
    return 0
