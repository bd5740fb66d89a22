"""Soak: jobs running while dependencies fail for real, then an account of every job.

    python -m bench soak [--jobs 30] [--uploads 6] [--workers 2] [--kill-every 3] [--quick]

Faults: a random worker SIGKILLed every ``--kill-every`` seconds (once it finished a
transcode) and restarted; the audit log's disk (a 2 MiB tmpfs, when run as root) filled,
300 plain events published, and freed 9.5 s later; then the result backend (a Redis of the
soak's own, append-only file on) killed and restarted 6 s later (the fault clock starts when
the first job finished); each upload event published twice with the same event id.
Prints jobs, faults injected, completed, lost, duplicate effects (a job dispatched twice,
accepted twice or with two outputs), audit records missing (task copies, job.finished, raw
upload events, the 300 events) and torn audit lines, and exits non-zero unless lost,
duplicate effects, missing records and torn lines are all 0.
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
from collections import Counter
from pathlib import Path
from typing import Any

from bench.faults import (
    OwnRedis,
    SmallDisk,
    count,
    publish_burst,
    publish_upload_twice,
    torn_lines,
)
from bench.overhead import make_clip

RESULTS = Path(__file__).resolve().parent / "results"
#: Seconds a worker is up before it may be killed (starting one takes a few seconds here).
MIN_UPTIME_S = 6.0


def _start_worker(env: dict[str, str], logs: Path, i: int) -> subprocess.Popen[bytes]:
    from mediaapp.ops.demo import worker_argv

    cmd = worker_argv(level="info", name=f"soak{i}")
    log = open(logs / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)


def _finished(logs: Path, i: int) -> int:
    """Transcodes worker ``i`` finished, over all its lives (its log is appended to)."""
    path = logs / f"worker-{i}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(
        1 for line in text.splitlines() if "video.transcode[" in line and "succeeded" in line
    )


def _kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--uploads", type=int, default=6, help="upload events, each sent twice")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--max-kills", type=int, default=None, help="stop killing after this")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 6 jobs, 2 uploads")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="", help="default: a Redis of the soak's own")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.uploads, args.kill_every, args.max_kills = 6, 2, 3.0, 3
    return args


def _states(jobs: dict[str, Any]) -> dict[str, str]:
    states = {}
    for job_id, job in jobs.items():
        try:
            states[job_id] = job.status()
        except Exception:  # the backend is being restarted: ask again later
            states[job_id] = "UNKNOWN"
    return states


def _audit_drained(broker: str) -> bool:
    from kombu import Connection

    try:
        with Connection(broker) as conn:
            _, messages, _ = conn.default_channel.queue_declare("audit_queue", passive=True)
            return int(messages) == 0
    except Exception:
        return False


def main(argv: list[str]) -> int:
    """Run the soak and print the figures; exit 1 if anything was lost, doubled or unaudited."""
    args = _parse(argv)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-soak-"))
    media, data, logs, rdir = work / "media", work / "data", work / "logs", work / "redis"
    for d in (media, logs, rdir):
        d.mkdir()
    redis = OwnRedis(rdir) if not args.backend else None
    if redis is not None:
        redis.start()
    disk = SmallDisk(work / "auditfs")
    audit_log = (disk.path if disk.mounted else data) / "audit.jsonl"
    env = {
        **os.environ,
        "MEDIAAPP_MEDIA_ROOT": str(media),
        "MEDIAAPP_DATA_DIR": str(data),
        "MEDIAAPP_BROKER_URL": args.broker,
        "MEDIAAPP_RESULT_BACKEND": redis.url if redis else args.backend,
        "MEDIAAPP_AUDIT_LOG": str(audit_log),
    }
    os.environ.update(env)
    make_clip(media / "soak.mp4", "640x360", 6)
    try:
        return _run(args, env, work, media, data, logs, redis, disk, audit_log)
    finally:
        if redis is not None:
            redis.stop()
        disk.unmount()


def _run(
    args: argparse.Namespace,
    env: dict[str, str],
    work: Path,
    media: Path,
    data: Path,
    logs: Path,
    redis: OwnRedis | None,
    disk: SmallDisk,
    audit_log: Path,
) -> int:
    from mediaapp.jobs.client import Job, submit
    from mediaapp.jobs.job import job_id_for_event
    from mediaapp.media.probe import probe
    from mediaapp.ops.audit import read_log

    audit = subprocess.Popen(
        [sys.executable, "-m", "mediaapp", "audit"], env=env, stdout=subprocess.DEVNULL,
        stderr=open(logs / "audit.log", "ab"), start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    workers = [_start_worker(env, logs, i) for i in range(args.workers)]
    born = [time.monotonic()] * len(workers)
    finished = [0] * len(workers)
    # Other benchmarks imported with ``python -m bench`` built the app from the environment
    # before it was set here: build the soak's own.
    from mediaapp.jobs.app import create_app
    from mediaapp.settings import get_settings

    get_settings.cache_clear()
    app = create_app()
    jobs: dict[str, Job] = {
        j.id: j for j in (submit("soak.mp4", app=app) for _ in range(args.jobs))
    }
    uploads: dict[str, list[str]] = {}
    for _ in range(args.uploads):
        event_id, message_ids = publish_upload_twice(args.broker, "soak.mp4")
        job_id = job_id_for_event(event_id, None)
        uploads[job_id] = message_ids
        jobs[job_id] = Job(job_id, app=app, name="soak.mp4")
    faults: Counter[str] = Counter(upload_sent_twice=args.uploads)
    started = time.monotonic()
    # (seconds after the first job finished, fault, action): audit disk full 9.5 s, then
    # Redis down 6 s.
    burst: list[str] = []

    def fill_audit_disk() -> None:  # and send audit traffic while it is full
        if disk.mounted:
            disk.fill(0)
        burst.extend(publish_burst(args.broker, 300))

    schedule = [(0.5, "audit_disk_full", fill_audit_disk),
                (10.0, "", disk.free),
                (11.0, "redis_restart", lambda: redis.stop() if redis else None),
                (17.0, "", lambda: redis.start() if redis else None)]  # fmt: skip
    if not disk.mounted:
        schedule[0] = (0.5, "", lambda: None)
    if redis is None:
        schedule[2] = (11.0, "", lambda: None)
    deadline = started + 180 + 10 * len(jobs)
    next_kill = started + args.kill_every
    done: set[str] = set()
    base = 0.0
    while (len(done) < len(jobs) or schedule) and time.monotonic() < deadline:
        # The fault clock starts with the first finished job: workers are up, work is flowing.
        base = base or (time.monotonic() if done else 0.0)
        now = time.monotonic() - base if base else -1.0
        while schedule and schedule[0][0] <= now:
            _, fault, action = schedule.pop(0)
            action()
            print(f"  t+{now:.1f}s {fault or 'recovered'} ({len(done)}/{len(jobs)} jobs done)")
            if fault:
                faults[fault] += 1
        states = _states({k: v for k, v in jobs.items() if k not in done})
        done |= {k for k, s in states.items() if s in ("SUCCESS", "FAILURE")}
        # Kill a worker only once it finished a task in this life: on a loaded machine a worker
        # takes seconds to start, and killing it before it did anything would only make the
        # same message die with its worker again and again (dead-lettered as PoisonMessage).
        grown = [
            i
            for i, t in enumerate(born)
            if time.monotonic() - t > MIN_UPTIME_S and _finished(logs, i) > finished[i]
        ]
        kills_left = args.max_kills is None or faults["worker_sigkill"] < args.max_kills
        if len(done) < len(jobs) and time.monotonic() >= next_kill and grown and kills_left:
            i = random.choice(grown)  # noqa: S311 - chaos, not crypto
            _kill(workers[i])
            faults["worker_sigkill"] += 1
            finished[i] = _finished(logs, i)
            workers[i], born[i] = _start_worker(env, logs, i), time.monotonic()
            next_kill = time.monotonic() + args.kill_every
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    drain_until = time.monotonic() + 60
    while not _audit_drained(args.broker) and time.monotonic() < drain_until:
        time.sleep(0.5)
    time.sleep(1)
    for w in workers:
        _kill(w, signal.SIGTERM)
    _kill(audit, signal.SIGTERM)

    records = list(read_log(audit_log))
    final = _states(jobs)
    succeeded = {k for k, s in final.items() if s == "SUCCESS"}
    firsts = [r for r in records if not r.get("duplicate")]
    duplicate_effects = 0
    missing = 0
    for job_id in jobs:
        out_dir = data / "outputs" / job_id
        videos = list(out_dir.glob("*.web.mp4")) if out_dir.is_dir() else []
        if len(videos) > 1 or (videos and abs(probe(videos[0]).duration_s - 6.0) > 0.1):
            duplicate_effects += 1
        # A retry republishes the message (retries > 0); a second first dispatch is a bug.
        if count(firsts, kind="task", name="video.transcode", task_id=job_id, retries=0) > 1:
            duplicate_effects += 1  # dispatched twice
        if count(records, name="upload.accepted", job_id=job_id) > 1:
            duplicate_effects += 1
        expected = [
            dict(kind="task", task_id=job_id),
            dict(name="job.finished", job_id=job_id),
        ]
        missing += sum(1 for m in expected if not count(records, **m))  # fmt: skip
    seen_ids = {r.get("message_id") for r in records}
    missing += sum(1 for ids in uploads.values() for mid in ids if mid not in seen_ids)
    missing += sum(1 for mid in burst if mid not in seen_ids)
    figures: dict[str, Any] = {
        "jobs": len(jobs),
        "faults": dict(faults),
        "completed": len(succeeded),
        "lost": len(jobs) - len(succeeded),
        "duplicate_effects": duplicate_effects,
        "audit_records_missing": missing,
        "torn_lines": torn_lines(audit_log),
        "upload_copies_refused": count(records, name="upload.duplicate"),
        "audit_write_failures": (logs / "audit.log").read_text(errors="replace").count("ENOSPC"),
        "redeliveries": sum(1 for r in records if r["name"] == "task.started"
                            and (r.get("body") or {}).get("redelivered")),
        "elapsed_s": round(elapsed, 1),
        "work_dir": str(work),
    }  # fmt: skip
    compact = {k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v
               for k, v in figures.items()}  # fmt: skip
    print("  ".join(f"{k}={v}" for k, v in compact.items()))  # one line, no spaces in values
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    bad = ("lost", "duplicate_effects", "audit_records_missing", "torn_lines")
    return 0 if all(figures[k] == 0 for k in bad) else 1
