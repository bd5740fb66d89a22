"""Soak: N short jobs while a random worker is SIGKILLed every few seconds and restarted.

    python -m bench soak [--jobs 30] [--workers 2] [--kill-every 3] [--quick]

Prints: jobs, kills, redeliveries, lost (jobs that never succeeded), duplicates (jobs with
more than one output or an invalid one) and audit gaps (jobs whose story is incomplete in
the audit log). Runs on RabbitMQ + Redis, workers started as ``celery -A mediaapp worker``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.overhead import make_clip

RESULTS = Path(__file__).resolve().parent / "results"


def _start_worker(env: dict[str, str], logs: Path, i: int) -> subprocess.Popen[bytes]:
    from mediaapp.ops.demo import worker_argv

    cmd = worker_argv(level="warning", name=f"soak{i}")
    log = open(logs / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)


def _kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait()


def main(argv: list[str]) -> int:
    """Run the soak and print the figures; exit 1 if anything was lost or duplicated."""
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 6 jobs, kill every 1.5 s")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.kill_every = 6, 1.5

    work = Path(tempfile.mkdtemp(prefix="mediaapp-soak-"))
    media, data, logs = work / "media", work / "data", work / "logs"
    for d in (media, logs):
        d.mkdir()
    audit_log = data / "audit.jsonl"
    env = {
        **os.environ,
        "MEDIAAPP_MEDIA_ROOT": str(media),
        "MEDIAAPP_DATA_DIR": str(data),
        "MEDIAAPP_BROKER_URL": args.broker,
        "MEDIAAPP_RESULT_BACKEND": args.backend,
    }
    os.environ.update(env)
    make_clip(media / "soak.mp4", "640x360", 6)

    from mediaapp.jobs.client import submit
    from mediaapp.media.probe import probe
    from mediaapp.ops.audit import read_log

    audit = subprocess.Popen(
        [sys.executable, "-m", "mediaapp", "audit"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(logs / "audit.log", "ab"),  # noqa: SIM115
        start_new_session=True,
    )
    workers = [_start_worker(env, logs, i) for i in range(args.workers)]
    jobs = [submit("soak.mp4") for _ in range(args.jobs)]
    kills, started = 0, time.monotonic()
    pending = {j.id: j for j in jobs}
    deadline = started + 120 + 10 * args.jobs
    next_kill = started + args.kill_every
    while pending and time.monotonic() < deadline:
        for job_id, job in list(pending.items()):
            if job.status() in ("SUCCESS", "FAILURE"):
                del pending[job_id]
        if pending and time.monotonic() >= next_kill:
            i = random.randrange(len(workers))  # noqa: S311 - chaos, not crypto
            _kill(workers[i])
            kills += 1
            workers[i] = _start_worker(env, logs, i)
            next_kill = time.monotonic() + args.kill_every
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    time.sleep(2)  # let the audit consumer write the last events
    for w in workers:
        _kill(w, signal.SIGTERM)
    _kill(audit, signal.SIGTERM)

    records = list(read_log(audit_log))
    succeeded = {j.id for j in jobs if j.status() == "SUCCESS"}
    duplicates = 0
    for job in jobs:
        out_dir = data / "outputs" / job.id
        videos = list(out_dir.glob("*.web.mp4")) if out_dir.is_dir() else []
        if len(videos) > 1 or (videos and abs(probe(videos[0]).duration_s - 6.0) > 0.1):
            duplicates += 1
    finished = {r["job_id"] for r in records if r["name"] == "job.finished"}
    copies = {r["task_id"] for r in records if r["kind"] == "task"}
    redeliveries = sum(
        1 for r in records if r["name"] == "task.started" and r.get("body", {}).get("redelivered")
    )
    figures: dict[str, Any] = {
        "jobs": args.jobs,
        "workers": args.workers,
        "kills": kills,
        "redeliveries": redeliveries,
        "completed": len(succeeded),
        "lost": args.jobs - len(succeeded),
        "duplicates": duplicates,
        "audit_gaps": len({j.id for j in jobs} - (finished & copies)),
        "elapsed_s": round(elapsed, 1),
    }
    print("  ".join(f"{k}={v}" for k, v in figures.items()))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    ok = figures["lost"] == 0 and figures["duplicates"] == 0 and figures["audit_gaps"] == 0
    return 0 if ok else 1
