"""Measured quality: what scoring every rendition (VMAF, PSNR, SSIM) adds to a job's time.

    python -m bench quality [--reps 3] [--quick] [--profiles hls,web] [--sample N]

For each profile, the same job on the same source with and without ``quality.measure`` (a
copy of the shipped profile with ``quality = { measure = true }``: libvmaf on the default
sample of frames in windows after source keyframes; ``--sample 0`` scores the whole
duration, one frame in 5, as before the windows),
alternately in one run; median of ``--reps``. The ratio is the median of each rep's
measured / plain (the two jobs of a rep run back to back, so a neighbour's load that comes
and goes between reps cancels); the ratio of the medians is kept beside it. The CPU seconds of
each job (this process and its ffmpeg children) are recorded too: on a shared machine they
say what scoring costs when the wall clock mostly says how busy the neighbours were.
``--quick`` is the smoke mode (320x240, 2 s, 1 rep): it checks the benchmark works, not how
fast.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import write_result
from bench.overhead import make_clip

#: The profile fields a measured copy repeats (the rest keep their defaults in both).
_COPIED = ("kind", "height", "preset", "crf", "maxrate_kbps", "audio_bitrate_kbps", "segment_s")


def measured_copy(profile: Any, name: str, subsample: int, sample: int | None = None) -> str:
    """TOML of ``profile`` under ``name`` with quality measured: the only difference."""
    lines = [f"[{name}]"]
    for key in _COPIED:
        value = getattr(profile, key)
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    rungs = ", ".join(f"{{ height = {r.height}, video_kbps = {r.video_kbps} }}"
                      for r in profile.rungs)  # fmt: skip
    if rungs:
        lines.append(f"rungs = [{rungs}]")
    extra = "" if sample is None else f", sample = {sample}"
    lines.append(f"quality = {{ measure = true, subsample = {subsample}{extra} }}")
    return "\n".join(lines) + "\n"


def cpu_s() -> float:
    """CPU seconds used so far by this process and its waited-for children (ffmpeg)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def paired_ratio(measured: list[float], plain: list[float]) -> float:
    """Median of each rep's measured / plain."""
    return statistics.median(m / p for m, p in zip(measured, plain, strict=True))


def whole_figures(
    name: str, times: dict[str, list[float]], cpu: dict[str, list[float]],
    phases: dict[str, list[float]], scores: dict[str, list[dict[str, Any]]], plain: float,
    plain_cpu: float,
) -> dict[str, Any]:  # fmt: skip
    """The whole duration scored (``sample = 0``) against the same plain job: before windows."""
    wall, used = statistics.median(times[f"{name}-whole"]), statistics.median(cpu[f"{name}-whole"])
    q = scores[f"{name}-whole"]
    paired = paired_ratio(times[f"{name}-whole"], times[name])
    figures = {"median_s": round(wall, 3), "ratio": round(paired, 3),
               "ratio_of_medians": round(wall / plain, 3),
               "cpu_s": round(used, 2), "cpu_ratio": round(used / plain_cpu, 3),
               "quality_phase_median_s": round(statistics.median(phases[f"{name}-whole"]), 3),
               "frames_scored": q[0]["frames_scored"],
               "vmaf_means": [x["vmaf_mean"] for x in q]}  # fmt: skip
    print(f"  {name:<5} whole duration (sample = 0): {wall:7.3f} s, ratio {paired:.3f}x "
          f"(CPU {used:.1f} s, {used / plain_cpu:.3f}x), quality phase "
          f"{figures['quality_phase_median_s']:.2f} s, {figures['frames_scored']} frames  "
          f"VMAF {figures['vmaf_means']}")  # fmt: skip
    return figures


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench quality")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profiles", default="hls,web")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 320x240 2 s, 1 rep")
    parser.add_argument("--sample", type=int, default=None, help="quality.sample (0: whole)")
    parser.add_argument("--whole", action="store_true",
                        help="also the whole duration scored (sample = 0), as before")  # fmt: skip
    args = parser.parse_args(argv)
    size, seconds, reps = ("1920x1080", 10, args.reps) if not args.quick else ("320x240", 2, 1)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-quality-"))
    media, profiles_dir = work / "media", work / "profiles"
    media.mkdir()
    profiles_dir.mkdir()
    os.environ.update(MEDIAAPP_MEDIA_ROOT=str(media), MEDIAAPP_DATA_DIR=str(work / "data"),
                      MEDIAAPP_PROFILES_DIR=str(profiles_dir))  # fmt: skip
    from mediaapp.media import steps
    from mediaapp.media.profiles import get_profile
    from mediaapp.settings import get_settings

    names = args.profiles.split(",")
    copies = [measured_copy(get_profile(n), f"{n}-measured", 5, args.sample) for n in names]
    if args.whole:
        copies += [measured_copy(get_profile(n), f"{n}-whole", 5, 0) for n in names]
    (profiles_dir / "measured.toml").write_text("\n".join(copies))
    variants = ("", "-measured", "-whole") if args.whole else ("", "-measured")
    clip = media / "quality.mp4"
    # A keyframe a second in the smoke clip: with x264's default (250) its 60 frames have one,
    # and a source with one keyframe is scored whole, not sampled (quality.score_outputs).
    make_clip(clip, size, seconds, gop=30 if args.quick else None)
    settings = get_settings()
    times: dict[str, list[float]] = {f"{n}{s}": [] for n in names for s in variants}
    cpu: dict[str, list[float]] = {key: [] for key in times}
    phases: dict[str, list[float]] = {key: [] for key in times}
    scores: dict[str, list[dict[str, Any]]] = {}
    for rep in range(reps):
        for name in names:  # alternately, the order swapped every rep
            for profile in [name + v for v in variants][:: 1 if rep % 2 == 0 else -1]:
                started, used = time.perf_counter(), cpu_s()
                manifest = steps.run(f"{profile}-{rep}", clip.name, profile, settings)
                times[profile].append(time.perf_counter() - started)
                cpu[profile].append(cpu_s() - used)
                scores[profile] = [o["quality"] for o in manifest["outputs"] if "quality" in o]
                phases[profile].append(manifest["phases_s"].get("quality", 0.0))
    rows = []
    print(f"quality.measure on/off, {size} {seconds} s testsrc2 clip, median of {reps}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    for name in names:
        plain = statistics.median(times[name])
        measured = statistics.median(times[f"{name}-measured"])
        plain_cpu = statistics.median(cpu[name])
        measured_cpu = statistics.median(cpu[f"{name}-measured"])
        paired = paired_ratio(times[f"{name}-measured"], times[name])
        measured_q = scores[f"{name}-measured"]
        vmaf = [q["vmaf_mean"] for q in measured_q]
        quality_s = statistics.median(phases[f"{name}-measured"])
        sampled = {"frames_scored": measured_q[0]["frames_scored"],
                   "frames_total": measured_q[0]["frames_total"],
                   "windows": measured_q[0]["windows"]}  # fmt: skip
        assert vmaf and not scores[name], "the measured copy must score, the plain one not"
        rows.append({"profile": name, "clip": f"{size} {seconds} s",
                     "plain_median_s": round(plain, 3), "measured_median_s": round(measured, 3),
                     "ratio": round(paired, 3), "ratio_of_medians": round(measured / plain, 3),
                     "renditions": len(vmaf),
                     "plain_cpu_s": round(plain_cpu, 2), "measured_cpu_s": round(measured_cpu, 2),
                     "cpu_ratio": round(measured_cpu / plain_cpu, 3),
                     "vmaf_means": vmaf, "reps": reps,
                     "quality_phase_median_s": round(quality_s, 3),
                     "load_average": round(os.getloadavg()[0], 1), **sampled})  # fmt: skip
        print(f"  {name:<5} plain {plain:7.3f} s  measured {measured:7.3f} s  "
              f"ratio {paired:.3f}x (of medians {measured / plain:.3f}x)  "
              f"(CPU {plain_cpu:.1f} s / {measured_cpu:.1f} s, "
              f"{measured_cpu / plain_cpu:.3f}x)  quality phase {quality_s:.2f} s, "
              f"{sampled['frames_scored']} of {sampled['frames_total']} frames in "
              f"{len(sampled['windows']) or 'all'} windows  VMAF {vmaf}")  # fmt: skip
        if args.whole:
            rows[-1]["whole"] = whole_figures(name, times, cpu, phases, scores, plain, plain_cpu)
    write_result("quality", rows, args.quick)
    shutil.rmtree(work, ignore_errors=True)
    return 0
