"""Many small jobs: jobs per minute of 2 s 640x360 ``web`` jobs on two workers, against the
same ffmpeg commands run two at a time by a plain script.

    python -m bench manyjobs [--jobs 200] [--quick]

Ours: one ``celery -A mediaapp worker -Q video_queue -c 2`` (two pool processes, as in
docker-compose.yml), every job submitted at once, the clock stopping at the last manifest
(each waited for as a user does, ``Job.wait()``). Baseline: the commands of a job's manifest
(encode, poster, sprite; as bench/overhead.py's ``run_direct``) for as many clips, in a
``ThreadPoolExecutor(2)`` of ``subprocess.run``. Each side runs in two halves, alternating, so
machine noise hits both alike. ``--quick``: 6 jobs, one half each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import job_workspace, write_result
from bench.overhead import run_direct

TARGET = 0.85


def _ours(clip: str, n: int) -> tuple[float, list[str]]:
    """Submit ``n`` jobs at once, wait for every manifest; seconds and the commands seen."""
    from mediaapp.jobs.client import submit

    started = time.perf_counter()
    jobs = [submit(clip) for _ in range(n)]
    manifests = [job.wait(timeout=900) for job in jobs]
    elapsed = time.perf_counter() - started
    # The same command lines but for the job's own folder and temporary names.
    commands = {tuple(re.sub(r"part-[0-9a-f]+", "part", c.replace(m["job_id"], "JOB"))
                      for c in m["commands"]) for m in manifests}  # fmt: skip
    if len(commands) != 1:  # the baseline replays one job's commands for all of them
        raise RuntimeError(f"jobs ran {len(commands)} different command lists")
    return elapsed, manifests[0]["commands"]


def _direct(commands: list[str], n: int, scratch: Path) -> float:
    """The same commands for ``n`` clips, two at a time, each into a folder of its own."""
    dirs = [scratch / f"d{i}" for i in range(n)]
    for d in dirs:
        d.mkdir(parents=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda d: run_direct(commands, d), dirs))
    elapsed = time.perf_counter() - started
    for d in dirs:
        shutil.rmtree(d)
    return elapsed


def main(argv: list[str]) -> int:
    """Measure both, print jobs/min and the ratio, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench manyjobs")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 6 jobs")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    n = 6 if args.quick else args.jobs
    halves = [n] if args.quick else [n // 2, n - n // 2]

    work, clip, env = job_workspace("manyjobs", args.broker, args.backend)
    from mediaapp.jobs.client import submit
    from mediaapp.ops.demo import worker_argv

    worker = subprocess.Popen(worker_argv(concurrency=2, level="warning", name="manyjobs"),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    ours_s = direct_s = 0.0
    try:
        submit(clip.name).wait(timeout=300)  # warm-up: worker boot, imports, page cache
        for half in halves:
            took, commands = _ours(clip.name, half)
            ours_s += took
            direct_s += _direct(commands, half, work / "direct")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    ours, direct = 60 * n / ours_s, 60 * n / direct_s
    ratio = ours / direct
    print(f"many small jobs: {n} x web 640x360 2 s, 2 at a time")
    print(f"  plain script, ThreadPoolExecutor(2)      {direct:7.1f} jobs/min  1.000x")
    print(f"  mediaapp, worker -c 2                    {ours:7.1f} jobs/min  {ratio:.3f}x"
          f"   (target ≥ {TARGET})")  # fmt: skip
    row: dict[str, Any] = {"jobs": n, "clip": "640x360 2s", "workers": "1 worker, -c 2",
                           "ours_jobs_min": round(ours, 1), "direct_jobs_min": round(direct, 1),
                           "ours_s": round(ours_s, 2), "direct_s": round(direct_s, 2),
                           "ratio": round(ratio, 3), "target": TARGET,
                           "met": ratio >= TARGET}  # fmt: skip
    write_result("manyjobs", row, args.quick)
    return 0
