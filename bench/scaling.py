"""Chunked scaling: one long job over k workers against one worker.

    python -m bench scaling [--workers 1,2] [--seconds 60] [--size 1920x1080] [--reps 2] [--quick]

Every worker is ``celery -A mediaapp worker -Q video_queue -c 1`` pinned to a core of its
own (CPU affinity, inherited by its ffmpeg processes), with one thread for each ffmpeg's
decoder, filters and encoder (``MEDIAAPP_FFMPEG_THREADS=1``), so k workers use k cores: on a
machine with at least k cores the comparison is fair (this one has 2: run
``--workers 1,2,4,8,16`` on a bigger one).
For each run the figure is submit → verified manifest of a ``web`` job, chunked by the cost
model for k workers (``MEDIAAPP_CHUNKING=always``), with a fresh chunk cache. Baselines, in
the same run: the job not chunked at all on one worker, and chunked on one worker. Runs
alternate (1, 2, ..., 1, 2, ...) so machine noise hits every k alike; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import write_result
from bench.overhead import make_clip


def _workers(k: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    """k workers, worker i pinned to core i (mod the cores there are): its pool child and
    every ffmpeg it runs inherit the pin, so one worker really is one core. (ffmpeg 7's CLI
    runs demuxer, decoder, filters and encoder in threads of their own, so ``-threads 1``
    alone still lets one ffmpeg spread over every core, and one worker would have them all.)"""
    from mediaapp.ops.demo import worker_argv

    cores = sorted(os.sched_getaffinity(0))
    procs = []
    for i in range(k):
        log = open(logs / f"worker-{k}-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        core = {cores[i % len(cores)]}

        def pin(c: set[int] = core) -> None:
            os.sched_setaffinity(0, c)

        procs.append(subprocess.Popen(worker_argv(level="warning", name=f"scale{i}"), env=env,
                                      stdout=log, stderr=log, start_new_session=True,
                                      preexec_fn=pin))  # fmt: skip
    return procs


def _ready(app: object, k: int, timeout: float = 60) -> None:
    """Wait until k workers answer a ping (boot time is not what this measures)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []  # type: ignore[attr-defined]
        if len(replies) >= k:
            return
    raise TimeoutError(f"{k} workers did not come up")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def run_once(k: int, chunking: str, clip: str, base_env: dict[str, str], work: Path) -> dict:
    """Start k fresh workers, time one job from submit to manifest, stop them."""
    from mediaapp.jobs.app import create_app
    from mediaapp.jobs.client import submit
    from mediaapp.settings import Settings

    data = Path(tempfile.mkdtemp(prefix=f"k{k}-", dir=work))  # fresh chunk cache every run
    env = {**base_env, "MEDIAAPP_DATA_DIR": str(data), "MEDIAAPP_CHUNKING": chunking}
    app = create_app(Settings.from_env(env))
    procs = _workers(k, env, work)
    try:
        _ready(app, k)
        started = time.perf_counter()
        manifest = submit(clip, app=app).wait(timeout=3600, interval=0.05)
        elapsed = time.perf_counter() - started
    finally:
        _stop(procs)
    chunks = (manifest.get("chunking") or {}).get("chunks") or []
    return {"seconds": elapsed, "chunks": len(chunks), "strategy": manifest["strategy"],
            "processes": len({c["pid"] for c in chunks}) or 1}  # fmt: skip


def main(argv: list[str]) -> int:
    """Measure, print the table, write JSON and Markdown (unless --quick)."""
    parser = argparse.ArgumentParser(prog="python -m bench scaling")
    parser.add_argument("--workers", default="1,2", help="comma-separated k values")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke: 320x240 8 s, 1 rep")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    ks = sorted({int(k) for k in args.workers.split(",")} | {1})
    size, seconds, reps = (args.size, args.seconds, args.reps)
    chunk_s = "" if not args.quick else "2"
    if args.quick:
        size, seconds, reps = "320x240", 8, 1
    work = Path(tempfile.mkdtemp(prefix="mediaapp-scaling-"))
    media = work / "media"
    media.mkdir()
    env = {**os.environ, "MEDIAAPP_MEDIA_ROOT": str(media), "MEDIAAPP_BROKER_URL": args.broker,
           "MEDIAAPP_RESULT_BACKEND": args.backend, "MEDIAAPP_FFMPEG_THREADS": "1",
           "MEDIAAPP_CHUNK_S": chunk_s, "MEDIAAPP_DATA_DIR": str(work / "client")}  # fmt: skip
    os.environ.update(env)
    clip = f"scaling-{size}-{seconds}s.mp4"
    make_clip(media / clip, size, seconds, gop=60)  # a keyframe every 2 s

    runs: dict[str, list[dict]] = {"single": [], **{f"k{k}": [] for k in ks}}
    for _ in range(reps):
        runs["single"].append(run_once(1, "never", clip, env, work))
        for k in ks:
            runs[f"k{k}"].append(run_once(k, "always", clip, env, work))
    base = statistics.median(r["seconds"] for r in runs["single"])
    one = statistics.median(r["seconds"] for r in runs["k1"])
    rows = []
    for key, label in [("single", "1 worker, not chunked (baseline)")] + [
        (f"k{k}", f"{k} worker{'s' if k > 1 else ''}, chunked") for k in ks
    ]:
        median = statistics.median(r["seconds"] for r in runs[key])
        k = 1 if key == "single" else int(key[1:])
        rows.append({"run": label, "workers": k, "median_s": round(median, 3),
                     "speedup": round(base / median, 3), "vs_chunked_1": round(one / median, 3),
                     "efficiency": round(base / median / k, 3), "chunks": runs[key][-1]["chunks"],
                     "processes": runs[key][-1]["processes"]})  # fmt: skip
    print(f"chunked scaling: web job of a {size} {seconds} s clip, one core a worker, "
          f"median of {reps}")  # fmt: skip
    print(f"  {'run':<34} {'s':>8} {'speed-up':>9} {'vs chunked@1':>13} {'per worker':>11}")
    for r in rows:
        print(f"  {r['run']:<34} {r['median_s']:>8.2f} {r['speedup']:>8.3f}x "
              f"{r['vs_chunked_1']:>12.3f}x {r['efficiency']:>10.3f}   "
              f"({r['chunks']} chunks over {r['processes']} processes)")  # fmt: skip
    write_result("scaling", {"clip": f"{size} {seconds}s", "reps": reps, "rows": rows}, args.quick)
    return 0
