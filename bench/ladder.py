"""HLS ladder: our single-process and per-rendition strategies against a hand-written command.

    python -m bench ladder [--reps 3] [--quick]

Baseline: the best single ffmpeg command for the same ladder written by hand (decode once,
``split``, same encoder settings). Measured alternately in one run, median of ``--reps``:

* pipeline, single: ``steps.run(..., strategy="single")`` (probe, encode, verify);
* pipeline, per-rendition, one worker: each rung's own ffmpeg, one after the other;
* per-rendition, two workers: the rung commands two at a time (what two workers do);
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import cpu_s, write_result
from bench.overhead import make_clip
from mediaapp.media import steps


def hand_written(
    binary: str, src: Path, out: Path, fps: float, audio: bool, rungs: list[tuple[int, int]]
) -> list[str]:
    """The same ladder as one would write it by hand: one decode, split, one encode a rung,
    with the pipeline's encoder settings (no B-frames, square pixels, the AAC priming trimmed,
    no mux delay: the player fixes of issue 11), so the ratio compares like with like."""
    gop = str(round(fps * 4))
    graph = f"[0:v]fps={fps},split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs)))
    graph += ";" + ";".join(
        f"[s{i}]scale=-2:{h},setsar=1,format=yuv420p[v{i}]" for i, (h, _) in enumerate(rungs)
    )
    if audio:
        graph += f";[0:a]atrim=start_sample=1024,asplit={len(rungs)}"
        graph += "".join(f"[a{i}]" for i in range(len(rungs)))
    args = [
        binary,
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        "-filter_complex",
        graph,
    ]
    for i, (h, kbps) in enumerate(rungs):
        d = out / f"{i}_{h}p"
        d.mkdir(parents=True, exist_ok=True)
        args += ["-map", f"[v{i}]"] + (
            ["-map", f"[a{i}]", "-c:a", "aac", "-b:a", "128k"] if audio else []
        )
        args += ["-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k",
                 "-maxrate", f"{round(kbps * 1.07)}k", "-bufsize", f"{2 * kbps}k", "-g", gop,
                 "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-muxdelay", "0",
                 "-muxpreload", "0", "-f", "hls", "-hls_time", "4",
                 "-hls_playlist_type", "vod", "-hls_segment_filename", str(d / "seg_%03d.ts"),
                 str(d / "index.m3u8")]  # fmt: skip
    return args


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON and Markdown under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench ladder")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 720p 2 s, 1 rep")
    args = parser.parse_args(argv)
    size, seconds, reps = ("1920x1080", 10, args.reps) if not args.quick else ("1280x720", 2, 1)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-ladder-"))
    media = work / "media"
    media.mkdir()
    os.environ.update(MEDIAAPP_MEDIA_ROOT=str(media), MEDIAAPP_DATA_DIR=str(work / "data"))
    from mediaapp.media import command, renditions
    from mediaapp.media.probe import probe
    from mediaapp.media.profiles import get_profile
    from mediaapp.settings import get_settings

    clip = media / "renditions.mp4"
    make_clip(clip, size, seconds)
    settings, profile, info = get_settings(), get_profile("hls"), probe(clip)
    binary = command.ffmpeg_binary()
    times: dict[str, list[float]] = {"direct": [], "single": [], "per_rendition": [], "two": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}

    def timed(key: str, fn: object) -> None:
        used, started = cpu_s(), time.perf_counter()
        fn()  # type: ignore[operator]
        times[key].append(time.perf_counter() - started)
        cpu[key].append(cpu_s() - used)

    def two_workers() -> None:
        out = work / "two"
        shutil.rmtree(out, ignore_errors=True)
        streams = [renditions.hls_rung_stream(clip, out, info, profile, r)
                   for r in renditions.plan_rungs(info, profile)]  # fmt: skip
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(command.run, streams))

    for rep in range(reps):
        direct_out = work / "direct"
        shutil.rmtree(direct_out, ignore_errors=True)
        planned = [(r.height, r.video_kbps) for r in renditions.plan_rungs(info, profile)]
        cmd = hand_written(
            binary, clip, direct_out, renditions.frame_rate(info), info.audio is not None, planned
        )
        timed("direct", lambda c=cmd: subprocess.run(c, check=True))
        timed("single", lambda r=rep: steps.run(f"s{r}", clip.name, "hls", settings))
        timed("per_rendition", lambda r=rep: steps.run(
            f"p{r}", clip.name, "hls", settings, strategy="per_rendition"))  # fmt: skip
        timed("two", two_workers)
    base, cpu_base = statistics.median(times["direct"]), statistics.median(cpu["direct"])
    labels = {
        "direct": "hand-written single ffmpeg (baseline)",
        "single": "pipeline, single process (split)",
        "per_rendition": "pipeline, per rendition, 1 worker",
        "two": "per rendition, 2 workers in parallel",
    }
    rows = [{"strategy": labels[k], "median_s": round(statistics.median(v), 3),
             "ratio": round(statistics.median(v) / base, 3),
             "cpu_s": round(statistics.median(cpu[k]), 3),
             "cpu_ratio": round(statistics.median(cpu[k]) / cpu_base, 3)}
            for k, v in times.items()]  # fmt: skip
    heights = "/".join(str(r.height) for r in renditions.plan_rungs(info, profile))
    print(f"HLS ladder {heights} from a {size} {seconds} s clip, median of {reps}")
    for row in rows:
        print(
            f"  {row['strategy']:<40} {row['median_s']:>7.3f} s  {row['ratio']:>6.3f}x"
            f"   CPU {row['cpu_s']:>7.3f} s  {row['cpu_ratio']:>6.3f}x"
        )
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    write_result("ladder", rows, args.quick)
    shutil.rmtree(work, ignore_errors=True)
    return 0
