"""Pipeline overhead: one ``web`` job through broker and worker vs the same ffmpeg run directly.

    python -m bench overhead [--reps 5] [--quick]

Two clips: 2 s 640x360 (where a job's fixed cost shows) and 10 s 1920x1080. The job runs in a
real ``celery -A mediaapp worker -Q video_queue -c 1`` process and the client waits as a user's
does (``Job.wait()``, woken by the backend's publish); the baseline runs the exact command
lines the job's manifest recorded, in this process, alternating with the pipeline runs so
machine noise hits both alike. Figures: median wall time of each, their ratio, and where the
pipeline's time went (medians): submit → the step starts (publish, queue, the worker's
dispatch), the step's phases from the manifest (probe, ffmpeg, verify, hash, other), and
manifest → client (manifest write, result store, delivery). ``--quick``: the CI smoke mode.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import write_result


def make_clip(
    path: Path, size: str, seconds: int, preset: str = "veryfast", gop: int | None = None
) -> None:
    """A test-pattern clip with audio, made by the project's own ffmpeg (a keyframe every
    ``gop`` frames when given, as cameras and uploads usually have)."""
    from mediaapp.media import command

    command.run(
        [
            command.ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=30:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            *(["-g", str(gop)] if gop else []),
            "-c:a",
            "aac",
            "-shortest",
            "-y",
            str(path),
        ]
    )


def run_direct(commands: list[str], scratch: Path) -> float:
    """Run the manifest's ffmpeg commands with outputs redirected into ``scratch``."""
    started = time.perf_counter()
    for i, cmd in enumerate(commands):
        args = shlex.split(cmd)
        # The output is the argument before the trailing -y; keep its extension.
        out = Path(args[-2].removeprefix("file:"))
        args[-2] = f"file:{scratch / f'direct-{i}{out.suffix}'}"
        subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - started


#: (size, seconds, target ratio) of each case; --quick runs the first at 320x240, once.
CASES = (("640x360", 2, 1.15), ("1920x1080", 10, 1.03))


def run_case(
    media: Path, work: Path, size: str, seconds: int, reps: int, target: float
) -> dict[str, Any]:
    """One clip: ``reps`` jobs alternating with the direct ffmpeg runs; medians and phases."""
    from mediaapp.jobs.client import submit

    clip = media / f"bench-{size}-{seconds}s.mp4"
    make_clip(clip, size, seconds)
    submit(clip.name).wait(timeout=600)  # warm-up: worker boot, imports, page cache
    pipeline_s: list[float] = []
    direct_s: list[float] = []
    parts: dict[str, list[float]] = {}
    commands: list[str] = []
    for _ in range(reps):
        submitted, started = time.time(), time.perf_counter()
        manifest = submit(clip.name).wait(timeout=600)
        pipeline_s.append(time.perf_counter() - started)
        received = time.time()
        done = datetime.fromisoformat(manifest["created_at"]).timestamp()
        step_s = sum(manifest.get("phases_s", {}).values()) or manifest["elapsed_s"]
        split = {"until step": done - step_s - submitted, **manifest.get("phases_s", {}),
                 "manifest → client": received - done}  # fmt: skip
        for name, value in split.items():
            parts.setdefault(name, []).append(value)
        commands = manifest["commands"]
        direct_s.append(run_direct(commands, work))
    p, d = statistics.median(pipeline_s), statistics.median(direct_s)
    return {
        "benchmark": "pipeline overhead (web, submit → manifest)",
        "clip": f"{size} {seconds}s",
        "reps": reps,
        "pipeline_median_s": round(p, 3),
        "direct_ffmpeg_median_s": round(d, 3),
        "ratio": round(p / d, 3),
        "target": f"<= {target}",
        "met": p / d <= target,
        "phases_median_s": {k: round(statistics.median(v), 4) for k, v in parts.items()},
    }


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench overhead")
    parser.add_argument("--quick", action="store_true", help="smoke mode: small clip, 1 rep")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    cases = [("320x240", 2, 1.15)] if args.quick else list(CASES)
    reps = 1 if args.quick else args.reps

    work = Path(tempfile.mkdtemp(prefix="mediaapp-bench-"))
    media, data = work / "media", work / "data"
    media.mkdir()
    env = {
        **os.environ,
        "MEDIAAPP_MEDIA_ROOT": str(media),
        "MEDIAAPP_DATA_DIR": str(data),
        "MEDIAAPP_BROKER_URL": args.broker,
        "MEDIAAPP_RESULT_BACKEND": args.backend,
    }
    os.environ.update(env)  # before mediaapp reads its settings
    from mediaapp.ops.demo import worker_argv

    worker = subprocess.Popen(
        worker_argv(level="warning", name="bench"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        rows = [run_case(media, work, size, sec, reps, target) for size, sec, target in cases]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    print(f"{'clip':<16} {'pipeline s':>10} {'ffmpeg s':>9} {'ratio':>7} {'target':>7}")
    for r in rows:
        print(f"{r['clip']:<16} {r['pipeline_median_s']:>10.3f} "
              f"{r['direct_ffmpeg_median_s']:>9.3f} {r['ratio']:>6.3f}x {r['target']:>7}  "
              f"(median of {r['reps']})")  # fmt: skip
        print("   where it went: " + ", ".join(
            f"{k} {v * 1000:.0f} ms" for k, v in r["phases_median_s"].items()))  # fmt: skip
    write_result("overhead", {"broker": args.broker.split("@")[-1], "cases": rows}, args.quick)
    return 0
