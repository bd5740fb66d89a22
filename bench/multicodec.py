"""Multi-codec ladder: the pipeline against the same encodes run by hand.

    python -m bench multicodec [--reps 3] [--seconds 4] [--quick] [--broker URL --backend URL]

The ladder has the ``hls-multi`` shape, scaled down (SVT-AV1 is slow on two cores): H.264 at
every rung, HEVC at the top two, AV1 at the top one, CMAF (fMP4) segments with the audio as
a rendition of its own, from a 640x360 clip of 4 s (``--quick``: 320x180 2 s). Measured
alternately in one run, median of ``--reps``:

* hand-written single ffmpeg (baseline): one decode, ``split``, every encode with the
  pipeline's settings, the HLS muxer writing fMP4, no master playlist, no MPD, no check;
* pipeline, single process: ``steps.run`` (probe, encode, master playlist and MPD, verify);
* with ``--broker``: the job on two real Celery workers, each codec's variants a step of its
  own (per codec, in parallel), against its baseline: the hand-written command of each codec
  (the same split per codec), two at a time, slowest first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import cpu_s, write_result
from bench.overhead import make_clip

PROFILE = "multi-bench"


def _profile(top: int, middle: int, low: int) -> str:
    return f"""[{PROFILE}]
kind = "hls"
segment_s = 4
preset = "veryfast"
rungs = [
  {{ height = {top}, video_kbps = 800, codecs = ["h264", "hevc", "av1"] }},
  {{ height = {middle}, video_kbps = 400, codecs = ["h264", "hevc"] }},
  {{ height = {low}, video_kbps = 150 }},
]
"""


def _encoder(codec: str, kbps: int, gop: int) -> list[str]:
    """What one would type for each codec: the pipeline's settings, spelled out."""
    rate = ["-b:v", f"{kbps}k", "-g", str(gop), "-force_key_frames", "expr:gte(t,n_forced*4)"]
    if codec == "av1":
        return ["-c:v", "libsvtav1", "-preset", "10", *rate, "-pix_fmt", "yuv420p",
                "-svtav1-params", "irefresh-type=2:scd=0"]  # fmt: skip
    x26 = ["-preset", "veryfast", *rate, "-maxrate", f"{round(kbps * 1.07)}k", "-bufsize",
           f"{2 * kbps}k", "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0"]  # fmt: skip
    if codec == "h264":
        return ["-c:v", "libx264", *x26]
    return ["-c:v", "libx265", *x26, "-pix_fmt", "yuv420p10le", "-profile:v", "main10",
            "-tag:v", "hvc1", "-forced-idr", "1",
            "-x265-params", "log-level=error:open-gop=0:scenecut=0"]  # fmt: skip


def _hls(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return ["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", str(folder / "seg_%03d.m4s"), "-muxdelay", "0",
            "-muxpreload", "0", str(folder / "index.m3u8")]  # fmt: skip


def hand_written(
    binary: str, src: Path, out: Path, fps: float, gop: int, variants: list[Any], audio: bool
) -> list[str]:
    """One command: decode once, split into ``variants`` (and the audio rendition)."""
    n = len(variants)
    graph = f"[0:v]fps={fps}" + (f",split={n}" + "".join(f"[s{i}]" for i in range(n)) if n > 1
                                 else "[s0]")  # fmt: skip
    for i, v in enumerate(variants):
        pix = "yuv420p10le" if v.codec == "hevc" else "yuv420p"
        graph += f";[s{i}]scale={v.rung.width}:{v.rung.height},setsar=1,format={pix}[v{i}]"
    if audio:
        graph += ";[0:a]atrim=start_sample=1024[a]"
    args = [binary, "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
            "-filter_complex", graph]  # fmt: skip
    for i, v in enumerate(variants):
        args += ["-map", f"[v{i}]", "-an", *_encoder(v.codec, v.video_kbps, gop)]
        args += _hls(out / v.name)
    if audio:
        args += ["-map", "[a]", "-c:a", "aac", "-b:a", "128k", "-ac", "2", *_hls(out / "audio")]
    return args


def _workers(env: dict[str, str], logs: Path, k: int = 2) -> list[subprocess.Popen[bytes]]:
    from mediaapp.ops.demo import worker_argv

    procs = []
    for i in range(k):
        log = open(logs / f"worker-{i}.log", "ab")  # noqa: SIM115 - owned by the child
        procs.append(subprocess.Popen(worker_argv(level="warning", name=f"multi{i}"), env=env,
                                      stdout=log, stderr=log, start_new_session=True))  # fmt: skip
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def main(argv: list[str]) -> int:
    """Measure and print the table; write the figures under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench multicodec")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, help="clip length (640x360)")
    parser.add_argument("--quick", action="store_true", help="smoke: 320x180 2 s, 1 rep")
    parser.add_argument("--broker", default="", help="also run the job on two real workers")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    size, seconds, reps = ("640x360", args.seconds, args.reps)
    if args.quick:
        size, seconds, reps = "320x180", 2, 1
    heights = (360, 240, 144) if not args.quick else (180, 144, 108)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-multicodec-"))
    media, profiles = work / "media", work / "profiles"
    media.mkdir()
    profiles.mkdir()
    (profiles / "bench.toml").write_text(_profile(*heights))
    env = {**os.environ, "MEDIAAPP_MEDIA_ROOT": str(media), "MEDIAAPP_DATA_DIR": str(work / "data"),
           "MEDIAAPP_PROFILES_DIR": str(profiles), "MEDIAAPP_CHUNKING": "never"}  # fmt: skip
    if args.broker:
        env |= {"MEDIAAPP_BROKER_URL": args.broker, "MEDIAAPP_RESULT_BACKEND": args.backend}
    os.environ.update(env)
    from mediaapp.media import cmaf, command, renditions, steps
    from mediaapp.media.probe import probe
    from mediaapp.media.profiles import get_profile
    from mediaapp.settings import get_settings

    clip = media / f"multi-{size}-{seconds}s.mp4"
    make_clip(clip, size, seconds)
    settings, info = get_settings(), probe(clip)
    profile = get_profile(PROFILE, settings.profiles_dir)
    variants = cmaf.plan_variants(info, profile)
    binary, fps = command.ffmpeg_binary(), renditions.frame_rate(info)
    gop = renditions.gop_frames(info, profile)
    times: dict[str, list[float]] = {"direct": [], "single": []}
    cpu: dict[str, list[float]] = {}

    def timed(key: str, fn: Any) -> None:
        """Wall time, and the CPU time of this process and its children (ffmpeg): the
        figure that other work on the machine hardly moves (the workers' is theirs)."""
        used = cpu_s()
        started = time.perf_counter()
        fn()
        times.setdefault(key, []).append(time.perf_counter() - started)
        cpu.setdefault(key, []).append(cpu_s() - used)

    def by_hand(out: Path) -> None:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(hand_written(binary, clip, out, fps, gop, variants, True), check=True)

    def by_hand_per_codec(out: Path) -> None:
        shutil.rmtree(out, ignore_errors=True)
        cmds = [hand_written(binary, clip, out, fps, gop, [v for v in variants if v.codec == c],
                             c == "h264") for c in reversed(profile.codecs)]  # fmt: skip
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: subprocess.run(c, check=True), cmds))

    procs, app = [], None
    if args.broker:
        from mediaapp.jobs.app import create_app
        from mediaapp.settings import Settings

        app = create_app(Settings.from_env(env))
        procs = _workers(env, work)
    try:
        if app is not None:
            from bench.scaling import _ready
            from mediaapp.jobs.client import submit

            _ready(app, 2)
            submit(clip.name, profile=PROFILE, app=app).wait(timeout=600)  # warm both up

            def on_workers() -> None:
                job = submit(clip.name, profile=PROFILE, app=app)
                manifest = job.wait(timeout=600, interval=0.05)
                assert manifest["strategy"] == "per_codec", manifest["strategy"]

        for rep in range(reps):
            timed("direct", lambda: by_hand(work / "direct"))
            timed("single", lambda r=rep: steps.run(f"s{r}", clip.name, PROFILE, settings))
            if app is not None:
                timed("hand_two", lambda: by_hand_per_codec(work / "per-codec"))
                timed("workers", on_workers)
    finally:
        if procs:
            _stop(procs)
    rows = _table(times, cpu)
    shape = ", ".join(f"{v.codec} {v.rung.height}p" for v in variants)
    print(f"multi-codec ladder ({shape}) from a {size} {seconds} s clip, median of {reps}")
    for row in rows:
        print(f"  {row['strategy']:<60} {row['median_s']:>7.3f} s  {row['ratio']:>6.3f}x"
              + (f"   CPU {row['cpu_s']:>7.3f} s  {row['cpu_ratio']:>6.3f}x" if row["cpu_s"]
                 else ""))  # fmt: skip
    load = os.getloadavg()[0]
    print(f"  (load average {load:.1f} on {os.cpu_count()} cores)")
    write_result("multicodec", {"clip": f"{size} {seconds}s", "variants": shape, "reps": reps,
                                "load": round(load, 1), "rows": rows,
                                "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()}},
                 args.quick)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _table(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One row per way, each against its own baseline (hand-written, same parallelism)."""
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items() if k != "workers"}
    rows = [
        {"strategy": "hand-written single ffmpeg (baseline)", "median_s": med["direct"],
         "baseline": "direct", "target": None},
        {"strategy": "pipeline, single process (decode once, split)", "median_s": med["single"],
         "baseline": "direct", "target": 1.05},
    ]  # fmt: skip
    if "workers" in med:
        rows += [
            {"strategy": "hand-written, a command per codec, 2 at a time (baseline)",
             "median_s": med["hand_two"], "baseline": "hand_two", "target": None},
            {"strategy": "pipeline, a step per codec on 2 workers", "median_s": med["workers"],
             "baseline": "hand_two", "target": 1.05},
        ]  # fmt: skip
    for row, key in zip(rows, ("direct", "single", "hand_two", "workers"), strict=False):
        row["ratio"] = round(row["median_s"] / med[row["baseline"]], 3)
        row["median_s"] = round(row["median_s"], 3)
        row["cpu_s"] = round(cpu_med[key], 3) if key in cpu_med else None
        row["cpu_ratio"] = (round(cpu_med[key] / cpu_med[row["baseline"]], 3)
                            if key in cpu_med else None)  # fmt: skip
        row["met"] = None if row["target"] is None else row["ratio"] <= row["target"]
    return rows
