"""Pipeline overhead: one ``web`` job through broker and worker vs the same ffmpeg run directly.

The job runs in a real ``celery -A mediaapp worker -Q video_queue -c 1`` process; the baseline
runs the exact command lines the job's manifest recorded (transcode + poster), in this process,
alternating with the pipeline runs so machine noise hits both alike. Figures: median wall time
of each and their ratio. ``--quick`` is the CI smoke mode (small clip, one repetition).
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
from pathlib import Path

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


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON and Markdown under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench overhead")
    parser.add_argument("--quick", action="store_true", help="smoke mode: small clip, 1 rep")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    size, seconds, reps = ("1920x1080", 10, args.reps) if not args.quick else ("320x240", 2, 1)

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
    clip = media / f"bench-{size}-{seconds}s.mp4"
    make_clip(clip, size, seconds)

    from mediaapp.jobs.client import submit
    from mediaapp.ops.demo import worker_argv

    worker = subprocess.Popen(
        worker_argv(level="warning", name="bench"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        submit(clip.name).wait(timeout=600)  # warm-up: worker boot, imports, page cache
        pipeline_s: list[float] = []
        direct_s: list[float] = []
        commands: list[str] = []
        for _ in range(reps):
            started = time.perf_counter()
            manifest = submit(clip.name).wait(timeout=600, interval=0.02)
            pipeline_s.append(time.perf_counter() - started)
            commands = manifest["commands"]
            direct_s.append(run_direct(commands, work))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    p, d = statistics.median(pipeline_s), statistics.median(direct_s)
    row = {
        "benchmark": "pipeline overhead (web, submit → manifest)",
        "clip": f"{size} {seconds}s",
        "reps": reps,
        "broker": args.broker.split("@")[-1],
        "pipeline_median_s": round(p, 3),
        "direct_ffmpeg_median_s": round(d, 3),
        "ratio": round(p / d, 3),
        "target": "<= 1.05",
    }
    print(f"{'benchmark':<44} {'pipeline s':>10} {'ffmpeg s':>9} {'ratio':>6}")
    print(
        f"{row['benchmark']:<44} {p:>10.3f} {d:>9.3f} {p / d:>6.3f}x   ({size} {seconds}s, "
        f"median of {reps})"
    )
    write_result("overhead", row, args.quick)
    return 0
