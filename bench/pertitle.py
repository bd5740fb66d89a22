"""Per-title ladders against the fixed ladder, on two easy sources and a hard one.

    python -m bench pertitle [--reps 2] [--seconds 30] [--quick]

Sources (1280x720, no audio, a keyframe every 2 s): *easy*, slides (a new still picture every
2 s, exact copies in between: synthetic, noiseless); *easy-camera*, the same slides seen by a
camera (light temporal sensor noise, as any real static scene has); *hard*, moving pictures
under strong temporal noise. Per source, alternately in one run:

* fixed: the shipped ``hls`` ladder with quality measured (a copy: ``measure = true``, one
  frame in 5 over the whole duration, ``sample = 0``, as ``hls-pertitle`` scores);
* per-title: the shipped ``hls-pertitle``, the trial cache emptied first (the search's whole
  cost), and again with the cache warm (a resubmission: no trial encode);
* easy sources, *matched*: ``hls-pertitle`` with each rung's target set to the VMAF the fixed
  ladder measured on that rung (headroom 0, margin 0, the whole CRF range 0..51, 8 trials):
  the bytes per-title spends for the fixed ladder's quality. A rung per-title dropped (it
  added nothing) is shown beside the kept rung below it, the one a player gets at that
  bandwidth (the kept rung above if none is below), but never counts as equal: that rung's
  VMAF is scored at its own, smaller size and hides the upscaling its viewers see. The
  issue's target (``TARGET``: at most 0.80x the bytes at VMAF not below the fixed ladder's
  on any rung) is judged on each easy source.
  On the noiseless one the fixed ladder spends a fraction of its bit rate (x264's ABR has
  nothing to spend on exact copies) and sits at the VMAF ceiling, which per-title only
  reaches at CRF 0-2: the 20 % is out of reach there whatever the search does.

Figures: total bytes of the video rungs, each rung's VMAF, median job time and CPU seconds
(this process and its ffmpeg children: on a shared machine the wall clock says how busy the
neighbours were). ``--quick`` (480x270, 4 s, 1 rep) checks the benchmark works, not how well.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import write_result
from bench.quality import cpu_s, measured_copy

#: The sources, as lavfi graphs (``{size}`` filled in): tests/media_sources.py has the same.
SOURCES = {
    "easy": "testsrc2=size={size}:rate=0.5,fps=30",
    "easy-camera": "testsrc2=size={size}:rate=0.5,fps=30,noise=alls=3:allf=t",
    "hard": "testsrc2=size={size}:rate=30,noise=alls=12:allf=t+u",
}
#: The sources per-title is matched against the fixed ladder's VMAF on (the issue's target).
EASY = ("easy", "easy-camera")
#: The issue's target on an easy source: at most this share of the fixed ladder's bytes.
TARGET = 0.80
#: Why the target cannot be met on a source, in the results beside its verdict.
NOTES = {
    "easy": "noiseless synthetic slides: the fixed ladder spends ~15 % of its bit rate and sits "
    "at the VMAF ceiling (~97.4), which x264 only reaches at CRF 0-2: 20 % fewer bytes at that "
    "VMAF is out of reach whatever the search does; easy-camera is the realistic easy case",
}


def make_source(path: Path, graph: str, size: str, seconds: float) -> None:
    """``graph`` as an upload would be: H.264 CRF 16, a keyframe every 2 s, no audio."""
    from mediaapp.media import command

    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi",
                 "-i", graph.format(size=size), "-t", str(seconds), "-c:v", "libx264",
                 "-preset", "ultrafast", "-crf", "16", "-g", "60", "-pix_fmt", "yuv420p",
                 "-f", "mp4", "-y", str(path)])  # fmt: skip


def matched_copy(profile: Any, name: str, vmaf: dict[int, float]) -> str:
    """TOML of per-title ``profile`` with each rung's target the fixed ladder's VMAF there."""
    rungs = ", ".join(
        f"{{ height = {r.height}, video_kbps = {r.video_kbps}, "
        f"target_vmaf = {vmaf.get(r.height, vmaf[min(vmaf)])} }}"  # smaller source: its size
        for r in profile.rungs
    )
    pt = profile.pertitle
    return (f"[{name}]\nkind = \"hls\"\nsegment_s = {profile.segment_s}\nrungs = [{rungs}]\n"
            f"pertitle = {{ samples = {pt.samples}, sample_s = {pt.sample_s}, "
            f"max_trials = 8, margin = 0.0, headroom = 0.0, crf_min = 0 }}\n"
            "quality = { measure = true, sample = 0 }\n")  # fmt: skip


def per_rung(fixed: dict[int, float], pertitle: dict[int, float]) -> dict[int, dict[str, Any]]:
    """Each fixed rung's VMAF beside per-title's on the rung that serves its bandwidth: the
    same rung, or if per-title dropped it the kept rung below (above, if none is below).
    A smaller rung never counts as not below: its VMAF is scored at its own size, and a
    viewer of the dropped rung's size sees its picture upscaled, which that figure hides."""
    rows = {}
    for short, vmaf in fixed.items():
        below = [s for s in pertitle if s <= short]
        served = max(below) if below else min(pertitle)
        rows[short] = {"fixed": vmaf, "pertitle": pertitle[served], "served_by": served,
                       "not_below": served >= short and pertitle[served] >= vmaf}  # fmt: skip
    return rows


def figures(manifest: dict[str, Any]) -> dict[str, Any]:
    """Total bytes and each rung's VMAF (by short side) of a ladder job's manifest."""
    rungs = [o for o in manifest["outputs"] if o["kind"] == "hls-rendition"]
    vmaf = {min(o["width"], o["height"]): o["quality"]["vmaf_mean"] for o in rungs}
    out = {"bytes": sum(o["size"] for o in rungs), "vmaf": vmaf}
    if "pertitle" in manifest:
        record = manifest["pertitle"]
        keys = ("short", "target_vmaf", "crf", "full_vmaf", "sample_vmaf", "dropped")
        out["rungs"] = [{k: r.get(k) for k in keys} | {"trials": len(r["trials"]),
                        "tried": [[t["crf"], t["vmaf"], t["kbps"]] for t in r["trials"]]}
                        for r in record["rungs"]]  # fmt: skip
        out["trial_encodes"], out["rounds"] = record["trial_encodes"], record["rounds"]
    return out


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON under bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench pertitle")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 480x270 4 s, 1 rep")
    args = parser.parse_args(argv)
    size, seconds, reps = ("1280x720", args.seconds, args.reps)
    if args.quick:
        size, seconds, reps = "480x270", 4.0, 1
    work = Path(tempfile.mkdtemp(prefix="mediaapp-pertitle-"))
    media, profiles_dir, data = work / "media", work / "profiles", work / "data"
    media.mkdir()
    profiles_dir.mkdir()
    os.environ.update(MEDIAAPP_MEDIA_ROOT=str(media), MEDIAAPP_DATA_DIR=str(data),
                      MEDIAAPP_PROFILES_DIR=str(profiles_dir))  # fmt: skip
    from mediaapp.media import profiles, steps
    from mediaapp.media.chunking import cache_dir
    from mediaapp.settings import get_settings

    (profiles_dir / "fixed.toml").write_text(
        measured_copy(profiles.get_profile("hls"), "hls-fixed", 5, sample=0)
    )
    settings = get_settings()
    shipped = profiles.get_profile("hls-pertitle")
    rows: dict[str, Any] = {"clip": f"{size} {seconds:g} s", "reps": reps, "sources": {}}
    for source, graph in SOURCES.items():
        name = f"{source}.mp4"
        make_source(media / name, graph, size, seconds)
        times: dict[str, list[float]] = {"fixed": [], "pertitle": [], "resubmitted": []}
        cpu: dict[str, list[float]] = {k: [] for k in times}
        last: dict[str, dict[str, Any]] = {}

        def job(kind: str, profile: str, rep: int, times: Any = times, cpu: Any = cpu,
                last: Any = last, name: str = name) -> None:  # fmt: skip
            started, used = time.perf_counter(), cpu_s()
            manifest = steps.run(f"{name[:-4]}-{kind}-{rep}", name, profile, settings)
            times[kind].append(time.perf_counter() - started)
            cpu[kind].append(cpu_s() - used)
            last[kind] = figures(manifest)

        for rep in range(reps):  # alternately, the order swapped every rep
            order = ["fixed", "pertitle"] if rep % 2 == 0 else ["pertitle", "fixed"]
            for kind in order:
                if kind == "pertitle":
                    shutil.rmtree(cache_dir(settings) / "trials", ignore_errors=True)
                    job(kind, "hls-pertitle", rep)
                    job("resubmitted", "hls-pertitle", rep)
                else:
                    job(kind, "hls-fixed", rep)
        result: dict[str, Any] = {k: {"median_s": round(statistics.median(v), 3),
                                      "cpu_s": round(statistics.median(cpu[k]), 2), **last[k]}
                                  for k, v in times.items()}  # fmt: skip
        fixed = result["fixed"]
        for kind in ("pertitle", "resubmitted"):
            result[kind]["time_ratio"] = round(result[kind]["median_s"] / fixed["median_s"], 3)
            result[kind]["cpu_ratio"] = round(result[kind]["cpu_s"] / fixed["cpu_s"], 3)
        result["pertitle"]["bytes_ratio"] = round(result["pertitle"]["bytes"] / fixed["bytes"], 3)
        kept = [r for r in result["pertitle"]["rungs"] if not r["dropped"]]
        result["pertitle"]["all_targets_met"] = all(
            r["full_vmaf"] >= r["target_vmaf"] for r in kept
        )
        if source in EASY:  # per-title asked for the fixed ladder's quality, rung by rung
            (profiles_dir / "matched.toml").write_text(
                matched_copy(shipped, "hls-matched", fixed["vmaf"])
            )
            profiles.load_profiles.cache_clear()
            shutil.rmtree(cache_dir(settings) / "trials", ignore_errors=True)
            matched = figures(steps.run(f"{source}-matched", name, "hls-matched", settings))
            matched["bytes_ratio"] = round(matched["bytes"] / fixed["bytes"], 3)
            matched["per_rung"] = per_rung(fixed["vmaf"], matched["vmaf"])
            matched["vmaf_not_below_fixed"] = all(
                r["not_below"] for r in matched["per_rung"].values()
            )
            met = matched["bytes_ratio"] <= TARGET and matched["vmaf_not_below_fixed"]
            matched["target"] = {
                "bytes_ratio_max": TARGET,
                "vmaf_not_below_fixed": True,
                "met": met,
            } | ({"note": NOTES[source]} if source in NOTES else {})
            result["matched"] = matched
        rows["sources"][source] = result
        print(f"{source}: fixed {fixed['median_s']:.2f} s {fixed['bytes']} B VMAF {fixed['vmaf']}")
        for kind in ("pertitle", "resubmitted", "matched"):
            if kind in result:
                r = result[kind]
                cost = (
                    f"{r['median_s']:7.2f} s ({r['time_ratio']}x, CPU {r['cpu_ratio']}x)"
                    if "median_s" in r
                    else "(one run, bytes at the fixed ladder's VMAF)"
                )
                print(f"  {kind:<11} {cost}  {r['bytes']} B ({r['bytes'] / fixed['bytes']:.3f}x)"
                      f"  VMAF {r['vmaf']}")  # fmt: skip
        if "matched" in result:
            m = result["matched"]
            print(f"  target (<= {TARGET}x bytes at VMAF >= fixed per rung): "
                  f"{'met' if m['target']['met'] else 'NOT met'} ({m['bytes_ratio']}x, VMAF "
                  f"{'not below' if m['vmaf_not_below_fixed'] else 'BELOW'} fixed)"
                  + (f"; {NOTES[source]}" if source in NOTES else ""))  # fmt: skip
        else:
            met = result["pertitle"]["all_targets_met"]
            print(f"  target (no rung below its target): {'met' if met else 'NOT met'}")
    write_result("pertitle", rows, args.quick)
    shutil.rmtree(work, ignore_errors=True)
    return 0
