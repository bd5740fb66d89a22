"""Dispatch throughput: trivial routed tasks per second through ``media_exchange`` with the
complete audit on, against plain Celery with the same worker options and no audit.

    python -m bench dispatch [--tasks 2000] [--quick]

Both runs use ``prefork -c 2`` workers on RabbitMQ; each task INCRs a Redis counter and the
clock stops when the counter reaches N. For mediaapp the audit consumer runs too and the
figure counts only when the audit log holds every message and its events (3 records a task:
the message, task.started, task.succeeded). Both clients submit in one go: plain Celery without
publisher confirms, mediaapp with its confirms pipelined (``confirmed_batch``: publish all,
wait once).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench import write_result

CELERY = str(Path(sys.executable).parent / "celery")


def _wait_count(r: redis.Redis, key: str, n: int, timeout: float = 600) -> float:
    started = time.perf_counter()
    while int(r.get(key) or 0) < n:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{key}: {r.get(key)} of {n}")
        time.sleep(0.01)
    return time.perf_counter()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def main(argv: list[str]) -> int:
    """Measure both, print tasks/s and the ratio, write results unless --quick."""
    parser = argparse.ArgumentParser(prog="python -m bench dispatch")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 200 tasks")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.tasks
    work = Path(tempfile.mkdtemp(prefix="mediaapp-dispatch-"))
    run_id = str(int(time.time() * 1000))
    env = {
        **os.environ,
        "MEDIAAPP_BROKER_URL": args.broker,
        "MEDIAAPP_RESULT_BACKEND": args.backend,
        "MEDIAAPP_DATA_DIR": str(work),
        "BENCH_BROKER": args.broker,
        "BENCH_REDIS": args.backend,
        "MEDIAAPP_PING_COUNTER": f"bench:media:{run_id}",
        "BENCH_COUNTER": f"bench:plain:{run_id}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    os.environ.update(env)
    r = redis.Redis.from_url(args.backend)
    rates: dict[str, float] = {}

    # Plain Celery: same worker options, no audit queue, no events.
    from bench.plain_app import app as plain

    worker = subprocess.Popen([CELERY, "-A", "bench.plain_app", "worker", "-Q", "plain_queue", "-c",
                               "2", "-l", "warning"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(4)
    started = time.perf_counter()
    with plain.producer_or_acquire() as producer:
        for _ in range(n):
            plain.send_task("plain.ping", producer=producer)
    rates["plain"] = n / (_wait_count(r, f"bench:plain:{run_id}", n) - started)
    _stop(worker)

    # mediaapp: routed through media_exchange, audit consumer on, lifecycle events on.
    from mediaapp.jobs import routing
    from mediaapp.jobs.app import app
    from mediaapp.jobs.confirms import confirmed_batch
    from mediaapp.ops.audit import read_log

    with app.connection_for_write() as conn:  # this run's records only: nothing left over
        routing.declare_topology(conn)
        for queue in (routing.AUDIT_QUEUE, routing.DEFAULT_QUEUE):
            queue(conn.default_channel).purge()
    audit = subprocess.Popen([sys.executable, "-m", "mediaapp", "audit"], env=env,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    worker = subprocess.Popen([CELERY, "-A", "mediaapp", "worker", "-Q", "default_queue", "-c", "2",
                               "-l", "warning"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(4)
    started = time.perf_counter()
    with confirmed_batch(app) as producer:
        for _ in range(n):
            app.send_task("media.ping", producer=producer)
    done = _wait_count(r, f"bench:media:{run_id}", n)
    log = work / "audit.jsonl"
    expected = 3 * n
    while len(list(read_log(log))) < expected and time.perf_counter() - done < 120:
        time.sleep(0.05)
    audited = time.perf_counter()
    lines = list(read_log(log))
    records = len(lines)
    duplicates = sum(1 for line in lines if line.get("duplicate"))
    rates["mediaapp"] = n / (audited - started)
    _stop(worker)
    _stop(audit)
    ratio = rates["mediaapp"] / rates["plain"]
    print(f"dispatch: {n} trivial tasks, prefork -c 2")
    print(f"  plain Celery (no audit, no events)       {rates['plain']:8.0f} tasks/s  1.000x")
    print(f"  mediaapp (routed, complete audit)        {rates['mediaapp']:8.0f} tasks/s  "
          f"{ratio:.3f}x   audit {records}/{expected}, {duplicates} duplicates")  # fmt: skip
    row = {"tasks": n, "plain_tasks_s": round(rates["plain"]), "ratio": round(ratio, 3),
           "mediaapp_tasks_s": round(rates["mediaapp"]), "audit_records": records,
           "audit_expected": expected, "duplicates": duplicates}  # fmt: skip
    write_result("dispatch", row, args.quick)
    return 0 if records == expected and not duplicates else 1
