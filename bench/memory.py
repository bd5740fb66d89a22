"""Memory: peak RSS of a worker across a 4K ``hls`` job, of its ffmpeg, and of the audit
consumer draining a backlog.

    python -m bench memory [--quick]

* **Worker**: ``celery -A mediaapp worker -Q video_queue -c 1`` (main process + pool child,
  their ffmpeg/ffprobe excluded) across one ``hls`` job of a 60 s 3840x2160 clip (testsrc2,
  x264 ultrafast, 30 fps, a keyframe a second; ``MEDIAAPP_CHUNKING=never``, so one process
  runs the whole ladder), sampled every 0.1 s: the peak of main + child PSS (the memory the
  worker costs: pages the child shares with the main process after the fork counted once),
  of their summed RSS (shared pages counted twice: an upper bound), and each one's kernel
  high-water mark (``VmHWM``). Met: PSS sum and every process's own peak RSS ≤ 150 MB.
* **ffmpeg**: the highest high-water mark (``VmHWM``) of any ffmpeg the job ran.
* **Audit consumer**: ``mediaapp audit`` started on a backlog of 100,000 small messages on
  ``audit_queue`` (published to ``media_exchange``, routing key ``bench.memory``); its RSS
  when 10 % and when all of the backlog is in the log. Flat: the growth between the two stays
  under ``FLAT_MB``.

There is no side-by-side baseline here: the targets are absolute (150 MB, 100 MB).
``--quick``: a 5 s 640x360 clip and 5,000 messages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import LineTail, results_dir, write_result
from bench.overhead import make_clip

WORKER_MB, AUDIT_MB, FLAT_MB = 150, 100, 10


def _status(pid: int) -> dict[str, Any]:
    """Name, VmRSS and VmHWM (MB) of a process; empty once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    mb = {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM") if k in fields}
    return {"name": fields.get("Name", "").strip(), **mb}


def _pss(pid: int) -> float:
    """Proportional set size (MB): shared pages divided among their sharers."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in text.splitlines()
                 if line.startswith("Pss:")), 0.0)  # fmt: skip


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


class Sampler(threading.Thread):
    """Samples a worker's process tree every 0.1 s until stopped."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.stop = root, threading.Event()
        self.worker_peak = self.worker_pss = 0.0
        self.hwm: dict[int, tuple[str, float]] = {}

    def run(self) -> None:
        while not self.stop.wait(0.1):
            total = pss = 0.0
            for pid in _descendants(self.root):
                s = _status(pid)
                if not s:
                    continue
                self.hwm[pid] = (s["name"], max(s.get("VmHWM", 0), self.hwm.get(pid, ("", 0))[1]))
                if not s["name"].startswith(("ffmpeg", "ffprobe")):
                    total += s.get("VmRSS", 0)
                    pss += _pss(pid)
            self.worker_peak = max(self.worker_peak, total)
            self.worker_pss = max(self.worker_pss, pss)


def worker_job(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One hls job of a 4K clip (640x360 with --quick) on a -c 1 worker, sampled."""
    size, seconds = ("640x360", 5) if args.quick else ("3840x2160", 60)
    media, data = work / "media", work / "data"
    media.mkdir()
    env = {**os.environ, "MEDIAAPP_MEDIA_ROOT": str(media), "MEDIAAPP_DATA_DIR": str(data),
           "MEDIAAPP_BROKER_URL": args.broker, "MEDIAAPP_RESULT_BACKEND": args.backend,
           "MEDIAAPP_CHUNKING": "never"}  # fmt: skip
    os.environ.update(env)  # before mediaapp reads its settings
    from mediaapp.jobs.client import submit
    from mediaapp.ops.demo import worker_argv

    clip = media / f"bench-{size}-{seconds}s.mp4"
    make_clip(clip, size, seconds, preset="ultrafast", gop=30)
    worker = subprocess.Popen(worker_argv(level="warning", name="memory"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    sampler = Sampler(worker.pid)
    try:
        deadline = time.monotonic() + 120
        while len(_descendants(worker.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # booted once the pool child is forked
        time.sleep(2)
        idle = sum(_status(p).get("VmRSS", 0) for p in _descendants(worker.pid))
        sampler.start()
        started = time.perf_counter()
        submit(clip.name, "hls").wait(timeout=1800)
        elapsed = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    ffmpeg = [mb for name, mb in sampler.hwm.values() if name.startswith("ffmpeg")]
    procs = {pid: v for pid, v in sampler.hwm.items() if not v[0].startswith(("ffmpeg", "ffprobe"))}
    return {"clip": f"{size} {seconds}s hls", "job_s": round(elapsed, 1),
            "worker_idle_mb": round(idle, 1), "worker_peak_mb": round(sampler.worker_peak, 1),
            "worker_hwm_mb": {("main" if pid == worker.pid else f"child {pid}"): round(mb, 1)
                              for pid, (_, mb) in procs.items()},
            "ffmpeg_peak_mb": round(max(ffmpeg, default=0), 1), "ffmpeg_processes": len(ffmpeg),
            "worker_pss_peak_mb": round(sampler.worker_pss, 1),
            "worker_met": sampler.worker_pss <= WORKER_MB
                          and max(mb for _, mb in procs.values()) <= WORKER_MB}  # fmt: skip


def audit_backlog(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Publish the backlog, then start ``mediaapp audit`` on it and sample its RSS."""
    from kombu import Connection

    from mediaapp.jobs import routing

    n = 5000 if args.quick else 100_000
    with Connection(args.broker) as conn:
        routing.declare_topology(conn)
        routing.AUDIT_QUEUE(conn.default_channel).purge()
        producer = conn.Producer(serializer="json")
        for i in range(n):
            producer.publish({"n": i, "event": "bench.memory"}, exchange=routing.MEDIA_EXCHANGE,
                             routing_key="bench.memory", message_id=uuid.uuid4().hex)  # fmt: skip
    log = work / "audit.jsonl"
    env = {**os.environ, "MEDIAAPP_BROKER_URL": args.broker, "MEDIAAPP_AUDIT_LOG": str(log)}
    proc = subprocess.Popen([sys.executable, "-m", "mediaapp", "audit"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    lines, at_tenth, rss, tail = 0, 0.0, 0.0, LineTail(log)
    started = time.perf_counter()
    deadline = started + 600
    try:
        while lines < n and time.perf_counter() < deadline:
            time.sleep(0.05)
            rss = _status(proc.pid).get("VmRSS", rss)
            lines = tail.poll()
            if not at_tenth and lines >= n // 10:
                at_tenth = rss
        elapsed = time.perf_counter() - started
        peak = _status(proc.pid).get("VmHWM", 0.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    growth = rss - at_tenth
    return {"messages": n, "drained": lines, "drain_s": round(elapsed, 1),
            "rss_at_tenth_mb": round(at_tenth, 1), "rss_at_end_mb": round(rss, 1),
            "peak_mb": round(peak, 1), "growth_mb": round(growth, 1),
            "met": lines == n and peak <= AUDIT_MB and growth <= FLAT_MB}  # fmt: skip


def main(argv: list[str]) -> int:
    """Measure the three, print them against their targets, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 5 s 640x360, 5,000")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", default="worker,audit", help="worker, audit or both")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-memory-"))
    result: dict[str, Any] = {"targets_mb": {"worker": WORKER_MB, "audit": AUDIT_MB,
                                             "audit_flat": FLAT_MB}}  # fmt: skip
    if "worker" in args.only:
        w = result["worker"] = worker_job(args, work)
        print(f"memory: {w['clip']} job ({w['job_s']} s), worker -c 1")
        print(f"  worker main + pool child, peak PSS  {w['worker_pss_peak_mb']:7.1f} MB"
              f"  target ≤ {WORKER_MB}; RSS: sum {w['worker_peak_mb']} MB (idle "
              f"{w['worker_idle_mb']}), each's high-water {w['worker_hwm_mb']}")  # fmt: skip
        print(f"  ffmpeg, peak RSS                    {w['ffmpeg_peak_mb']:7.1f} MB"
              f"  ({w['ffmpeg_processes']} ffmpeg processes seen)")  # fmt: skip
    if "audit" in args.only:
        a = result["audit"] = audit_backlog(args, work)
        print(f"  audit consumer, {a['drained']}/{a['messages']} drained in {a['drain_s']} s: "
              f"RSS {a['rss_at_tenth_mb']} MB at 10 %, {a['rss_at_end_mb']} MB at 100 %, "
              f"peak {a['peak_mb']} MB  target ≤ {AUDIT_MB}, growth ≤ {FLAT_MB}")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)  # a 4K clip and its ladder
    previous = results_dir(args.quick) / "memory.json"
    if previous.exists():  # --only one part: the other keeps its last figures
        result = {**json.loads(previous.read_text()), **result}
    write_result("memory", result, args.quick)
    return 0
