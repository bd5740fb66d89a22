"""Dispatch throughput with the complete audit, three ways in one run, and plain Celery.

    python -m bench dispatch [--tasks 2000] [--quick]

Every way runs a ``prefork -c 2`` worker on RabbitMQ; each task INCRs a Redis counter, and the
clock stops once every task ran *and* its audit log holds every record (parsed and checked
afterwards: each task id with each of its records, nothing lost, no duplicate):

* **ours**: ``media.ping`` through ``media_exchange``, ``mediaapp audit`` on the ``#`` queue,
  the defaults: 3 records a task (the message, ``task.started``, ``task.succeeded``: a short
  task's events are written by the worker's main process, many tasks' to a message, its ack
  held until they are confirmed; a short task sends none of Celery's task events for Flower);
  the client pipelines its confirms and, like ``media.ping``, stores no result.
* **floor**: the same app, worker and consumer with ``MEDIAAPP_LIFECYCLE_EVENTS=0`` and
  ``MEDIAAPP_TASK_EVENTS=0``: the ``#`` mirror alone, 1 record a task.
* **stock**: plain Celery (bench/plain_app.py) with ``-E`` and sent events, a ``celery.events``
  receiver (bench/stock_audit.py) writing the same fsynced JSONL: 4 records a task
  (task-sent, -received, -started, -succeeded).
* **plain**: plain Celery, no audit, no events (the ceiling; comparison only; not with --quick).

The steps taken since the first measurement, each undone alone beside ours (not with --quick):
``ours-pool`` (a short task's events from the pool process, one message a task:
``MEDIAAPP_EVENT_BATCH_S=0``), ``ours-flower`` (pings with Celery's task events for Flower,
``task-sent`` included), ``ours-2msg`` (``task.started`` and ``task.succeeded`` as two
messages from the pool process, bench/variants.py) and ``ours-result`` (``media.ping``'s
result stored, the client subscribed to it).

Each way first runs 4 warm-up tasks (a loaded machine takes seconds to boot a worker).

Two rounds by default (the second in reverse order, so a drifting machine load hits every
way alike); the figures are their means. Broker traffic per task comes from the management
API (this vhost's ``message_stats`` publish and deliver_get before and after, read once its
5 s statistics interval has passed); --quick skips it. CPU per task (bench/cputime.py: the
way's processes, the client, RabbitMQ and Redis, from /proc) gives ``ours_over_<way>_cpu``,
which a machine loaded by other work moves far less than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from kombu import Connection, Queue

from bench import LineTail, cputime, write_result
from mediaapp.defaults import RABBITMQ_MANAGEMENT_PORT

CELERY = str(Path(sys.executable).parent / "celery")
#: Records each task leaves in its way's log, by record name.
OURS = ("media.ping", "task.started", "task.succeeded")
EXPECTED = {
    "ours": OURS,
    "ours-2msg": OURS,
    "ours-result": OURS,
    "ours-pool": OURS,
    "ours-flower": OURS,
    "floor": ("media.ping",),
    "stock": ("task-sent", "task-received", "task-started", "task-succeeded"),
    "plain": (),
}
WARM = 4  # warm-up tasks before the clock starts (their records are not checked)
STATS_S = 6.0  # RabbitMQ's management statistics are refreshed every 5 s


def _wait_count(r: redis.Redis, key: str, n: int, timeout: float = 600) -> None:
    started = time.perf_counter()
    while int(r.get(key) or 0) < n:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{key}: {r.get(key)} of {n}")
        time.sleep(0.01)


def _wait_lines(log: Path, n: int, timeout: float = 120) -> None:
    """Until ``log`` has ``n`` lines, counting only what was appended (cheap for the CPU)."""
    deadline, tail = time.perf_counter() + timeout, LineTail(log)
    while tail.poll() < n and time.perf_counter() < deadline:
        time.sleep(0.02)


def _vhost_stats(broker: str) -> dict[str, int] | None:
    """publish and deliver_get of the broker URL's vhost, or None without the management API."""
    c = Connection(broker)
    vhost = quote(c.virtual_host or "/", safe="")
    req = urllib.request.Request(
        f"http://{c.hostname}:{RABBITMQ_MANAGEMENT_PORT}/api/vhosts/{vhost}"
    )
    auth = base64.b64encode(f"{c.userid}:{c.password}".encode()).decode()
    req.add_header("Authorization", f"Basic {auth}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - http:// built here
            stats = json.load(resp).get("message_stats", {})
    except OSError:
        return None
    return {k: int(stats.get(k, 0)) for k in ("publish", "deliver_get")}


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Signal all at once, then wait: the work is done, nothing is lost by not waiting apart."""
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def _check(way: str, log: Path, ids: list[str]) -> dict[str, int]:
    """Records, duplicates, and records missing (a task id without one of its records)."""
    lines = [json.loads(line) for line in log.read_bytes().splitlines()] if log.exists() else []
    have = Counter((r.get("task_id"), r.get("name")) for r in lines if not r.get("duplicate"))
    missing = sum(1 for i in ids for name in EXPECTED[way] if not have[(i, name)])
    duplicates = sum(1 for r in lines if r.get("duplicate"))
    expected = (len(ids) + WARM) * len(EXPECTED[way])
    return {"records": len(lines), "expected": expected, "duplicates": duplicates,
            "missing": missing}  # fmt: skip


def _role(cmd: list[str]) -> str:
    """A way's process by what it is: the worker (main and pool) or the audit reader."""
    return "worker" if "worker" in cmd else "audit"


def run_way(
    way: str,
    n: int,
    procs: list[tuple[list[str], dict[str, str]]],
    send: Callable[[int], list[str]],
    counter: str,
    log: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start the processes, send ``n`` tasks, wait for the work and the audit; figures."""
    r = redis.Redis.from_url(args.backend)
    per_task = len(EXPECTED[way])
    started_procs = [_start(cmd, env) for cmd, env in procs]
    try:
        ready = log.with_suffix(".ready")  # the stock receiver's queue exists only once it runs
        while way == "stock" and not ready.exists():
            time.sleep(0.05)
        # Warm-up: every process booted and hot before the clock starts (a loaded machine
        # takes seconds to boot a worker); then the statistics settle past the boot traffic.
        send(WARM)
        _wait_count(r, counter, WARM)
        _wait_lines(log, WARM * per_task)
        if not args.quick:
            time.sleep(STATS_S)
        before = None if args.quick else _vhost_stats(args.broker)
        roles = {_role(cmd): proc.pid for (cmd, _), proc in zip(procs, started_procs, strict=True)}
        cpu_before, started = cputime.snapshot(roles), time.perf_counter()
        ids = send(n)
        _wait_count(r, counter, WARM + n)
        _wait_lines(log, (WARM + n) * per_task)
        elapsed = time.perf_counter() - started
        cpu = cputime.used(cpu_before, cputime.snapshot(roles))
        if before is not None:
            time.sleep(STATS_S)
        after = None if before is None else _vhost_stats(args.broker)
    finally:
        _stop(started_procs)
    cpu_ms = {k: round(v * 1000 / n, 3) for k, v in cpu.items()}
    row: dict[str, Any] = {"way": way, "tasks_s": round(n / elapsed, 1), "cpu_ms": cpu_ms,
                           "cpu_ms_per_task": round(sum(cpu_ms.values()), 3)}  # fmt: skip
    if before and after:
        row.update({f"{k}_per_task": round((after[k] - before[k]) / n, 2) for k in before})
    if EXPECTED[way]:
        row.update(_check(way, log, ids))
    return row


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One way's reps: mean tasks/s and traffic, every rep's rate, audit figures summed."""
    row = {**runs[-1], "tasks_s": round(sum(r["tasks_s"] for r in runs) / len(runs), 1),
           "tasks_s_reps": [r["tasks_s"] for r in runs]}  # fmt: skip
    for key in ("publish_per_task", "deliver_get_per_task", "cpu_ms_per_task"):
        if all(key in r for r in runs):
            row[key] = round(sum(r[key] for r in runs) / len(runs), 3)
    row["cpu_ms"] = {k: round(sum(r["cpu_ms"].get(k, 0) for r in runs) / len(runs), 3)
                     for k in runs[-1]["cpu_ms"]}  # fmt: skip
    for key in ("records", "expected", "duplicates", "missing"):
        if key in row:
            row[key] = sum(r[key] for r in runs)
    return row


def main(argv: list[str]) -> int:
    """Measure the four ways, print tasks/s, ratios and broker traffic, write results."""
    parser = argparse.ArgumentParser(prog="python -m bench dispatch")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=2, help="rounds of all ways (not --quick)")
    smoke = "smoke mode: 100 tasks, no broker statistics, no plain run"
    parser.add_argument("--quick", action="store_true", help=smoke)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--ways", help="comma-separated subset of floor,ours,stock,plain")
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.tasks
    work = Path(tempfile.mkdtemp(prefix="mediaapp-dispatch-"))
    run_id = str(int(time.time() * 1000))
    env = {
        **os.environ,
        "MEDIAAPP_BROKER_URL": args.broker,
        "MEDIAAPP_RESULT_BACKEND": args.backend,
        "MEDIAAPP_DATA_DIR": str(work),
        "BENCH_BROKER": args.broker,
        "BENCH_REDIS": args.backend,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    os.environ.update(env)
    from bench.plain_app import app as plain
    from mediaapp.jobs import routing

    SHORT_TASKS = routing.SHORT_TASKS
    from mediaapp.jobs.app import app
    from mediaapp.jobs.confirms import confirmed_batch

    def send_plain(k: int) -> list[str]:
        with plain.producer_or_acquire() as producer:
            return [plain.send_task("plain.ping", producer=producer).id for _ in range(k)]

    def send_ours(k: int, stored: bool = False) -> list[str]:
        # ignore_result as media.ping declares it (a by-name send does not know the task's
        # default, and would subscribe to a result that never comes).
        with confirmed_batch(app) as producer:
            return [app.send_task("media.ping", producer=producer, ignore_result=not stored).id
                    for _ in range(k)]  # fmt: skip

    with app.connection_for_write() as conn:  # each run's records only: nothing left over
        routing.declare_topology(conn)
        for queue in (routing.AUDIT_QUEUE, routing.DEFAULT_QUEUE, Queue("plain_queue")):
            queue(conn.default_channel).declare()
            queue(conn.default_channel).purge()

    def measure(way: str, rep: int) -> dict[str, Any]:
        counter = f"bench:{way}:{run_id}:{rep}"
        log = work / f"{way}-{rep}.jsonl"
        e = {**env, "MEDIAAPP_PING_COUNTER": counter, "BENCH_COUNTER": counter,
             "MEDIAAPP_AUDIT_LOG": str(log)}  # fmt: skip
        if way == "floor" or way.startswith("ours"):
            if way == "floor":
                e.update(MEDIAAPP_LIFECYCLE_EVENTS="0", MEDIAAPP_TASK_EVENTS="0")
            if way == "ours-pool":
                e.update(MEDIAAPP_EVENT_BATCH_S="0")
            variant = {"ours-2msg": "2msg", "ours-flower": "flower"}.get(way, "")
            e.update(BENCH_VARIANT=variant)
            # The client's own Celery event: ``task-sent`` (never for routing.SHORT_TASKS).
            app.conf.task_send_sent_event = way != "floor"
            routing.SHORT_TASKS = frozenset() if way == "ours-flower" else SHORT_TASKS
            worker_app = "bench.variants" if variant else "mediaapp"
            procs = [([sys.executable, "-m", "mediaapp", "audit"], e),
                     ([CELERY, "-A", worker_app, "worker", "-Q", "default_queue", "-c", "2",
                       "-l", "warning"], e)]  # fmt: skip
            stored = way == "ours-result"
            return run_way(way, n, procs, lambda k: send_ours(k, stored), counter, log, args)
        plain.conf.task_send_sent_event = way == "stock"
        worker = [CELERY, "-A", "bench.plain_app", "worker", "-Q", "plain_queue", "-c", "2",
                  "-l", "warning", *(["-E"] if way == "stock" else [])]  # fmt: skip
        procs = [([sys.executable, "-m", "bench.stock_audit", str(log)], e)] * (way == "stock")
        return run_way(way, n, [*procs, (worker, e)], send_plain, counter, log, args)

    steps = () if args.quick else ("ours-pool", "ours-flower", "ours-2msg", "ours-result", "plain")
    ways = ("floor", "ours", "stock", *steps)
    if args.ways:
        ways = tuple(w for w in ways if w in args.ways.split(","))
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for rep in range(1 if args.quick else args.reps):  # every other rep in reverse order,
        for way in ways if rep % 2 == 0 else ways[::-1]:  # so a drifting load hits all alike
            runs[way].append(measure(way, rep))
    rows = {way: _combine(rs) for way, rs in runs.items()}
    ours = rows["ours"]["tasks_s"] if "ours" in rows else 0.0
    print(f"dispatch: {n} trivial tasks, prefork -c 2, done when the audit log is complete "
          f"(mean of {len(runs['ours'])})")  # fmt: skip
    labels = {"ours": "ours (mirror + lifecycle + Celery events)",
              "ours-2msg": "  ours, started + succeeded in 2 messages",
              "ours-result": "  ours, media.ping's result stored",
              "ours-pool": "  ours, events from the pool process, a message a task",
              "ours-flower": "  ours, with Celery's task events (Flower's)",
              "floor": "mirror-only floor (no lifecycle events)",
              "stock": "stock Celery (-E, sent events, Receiver)",
              "plain": "plain Celery (no audit, no events)"}  # fmt: skip
    for way, r in rows.items():
        traffic = (f"  {r['publish_per_task']:.2f} publishes, {r['deliver_get_per_task']:.2f} "
                   "deliveries a task" if "publish_per_task" in r else "")  # fmt: skip
        audit = (f"  audit {r['records']}/{r['expected']}, {r['missing']} missing, "
                 f"{r['duplicates']} duplicates" if "records" in r else "")  # fmt: skip
        cpu = f"  {r['cpu_ms_per_task']:.2f} ms CPU a task"
        print(f"  {labels[way]:<44} {r['tasks_s']:7.0f} tasks/s  ours/this "
              f"{ours / r['tasks_s']:.3f}{cpu}{traffic}{audit}")  # fmt: skip
    data: dict[str, Any] = {"tasks": n, "ways": rows}
    for way in ("floor", "stock", "plain"):
        if way in rows and ours:
            data[f"ours_over_{way}"] = round(ours / rows[way]["tasks_s"], 3)
            # By CPU: the way's CPU per task over ours (>1 = ours cheaper), steady under load.
            cpu_ratio = rows[way]["cpu_ms_per_task"] / rows["ours"]["cpu_ms_per_task"]
            data[f"ours_over_{way}_cpu"] = round(cpu_ratio, 3)
    if args.ways:  # a partial run: its figures are not the suite's
        print(json.dumps(data["ways"]))
    else:
        write_result("dispatch", data, args.quick)
    complete = all(
        r["missing"] == 0 and not r["duplicates"] for r in rows.values() if "records" in r
    )
    return 0 if complete else 1
