"""Per-title ladders: for each rung with a ``target_vmaf``, the highest CRF whose encode of a
few short samples of the source scores at least the target, found in a few trial encodes;
then rungs that add nothing are dropped, the ladder is encoded at the chosen CRFs (capped at
the rung's ``video_kbps``) and scored, and the manifest's ``pertitle`` says what was tried.

Samples are chunks of the keyframe split (:func:`mediaapp.media.chunking.split`), the first
``sample_s`` of each of ``samples`` chunks spread over the source. A chunk is named by the
SHA-256 of its bytes, so a trial's result is cached in the chunk cache folder by (chunk hash,
sample length, rung, CRF, encoder options, ffmpeg) and a resubmission encodes nothing.

A search round encodes one sample into every open rung at its next CRF (one ffmpeg: decode
once, ``split``) and scores them in one libvmaf run. What to try next is a pure function of
the trials so far (:mod:`~mediaapp.media.crfsearch`), so the search runs the same in one
process (:func:`search`) and as rounds of parallel tasks, one per sample (``jobs/job.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import StorageCorrupt
from mediaapp.media import chunking, command, hdr, phases, quality, renditions
from mediaapp.media.context import JobContext
from mediaapp.media.crfsearch import next_crf
from mediaapp.media.outputs import OutputEntry, Work, atomic_output
from mediaapp.media.probe import timing
from mediaapp.media.profiles import Profile, Rung
from mediaapp.settings import Settings
from mediaapp.storage import chunks as chunk_store
from mediaapp.storage.base import file_sha256

#: Where a job keeps the source chunks its samples come from, while it searches.
WORK_DIR = ".pertitle"
#: Manifest entries of a ladder's rungs (what the full-encode figures are read from).
RUNG_KINDS = ("hls-rendition", "dash-representation")


def wanted(profile: Profile) -> bool:
    """True when the profile is a ladder with at least one rung given a VMAF target."""
    return profile.kind in ("hls", "dash") and any(r.target_vmaf for r in profile.rungs)


def work_dir(out_dir: Path) -> Path:
    """A job's search directory (hidden beside its outputs, removed when the search ends)."""
    return out_dir / WORK_DIR


def _source_rung(profile: Profile, planned: renditions.PlannedRung) -> Rung:
    """The profile's rung a planned rung comes from (the lowest one for a small source)."""
    return next((r for r in profile.rungs if r.height == planned.short), profile.rungs[-1])


def searched(ctx: JobContext) -> list[tuple[renditions.PlannedRung, float]]:
    """The planned rungs that have a target, with it."""
    found = []
    for planned in renditions.plan_rungs(ctx.source, ctx.profile):
        target = _source_rung(ctx.profile, planned).target_vmaf
        if target:
            found.append((planned, target))
    return found


def pick_samples(ctx: JobContext) -> list[dict[str, Any]]:
    """Split the source at keyframes into about ``samples`` chunks and pick ``samples`` of them
    spread evenly (the centre of each equal part); fewer when the keyframes are too sparse."""
    pt = ctx.profile.pertitle
    chunk_s = max(pt.sample_s, ctx.source.duration_s / pt.samples)
    wd = work_dir(ctx.out_dir)
    chunks = chunking.split(ctx.src, wd, chunk_s, ctx.limits)
    count = min(pt.samples, len(chunks))
    picks = sorted({math.floor((i + 0.5) * len(chunks) / count) for i in range(count)})
    chosen = [chunks[i].to_dict() for i in picks]
    chunk_store.put_sources(wd, chosen, ctx.settings)  # for trial tasks on other hosts
    return chosen


def new_state(samples: list[dict[str, Any]], *, tasks: bool = False) -> dict[str, Any]:
    """The search's JSON state: its samples, per rung the trials so far by CRF, and whether
    the trials run as tasks (one a sample, in parallel) or in this process."""
    return {"samples": samples, "trials": {}, "encodes": 0, "trial_s": 0.0, "rounds": 0,
            "tasks": tasks}  # fmt: skip


def _trials(state: dict[str, Any], name: str) -> dict[int, float]:
    return {int(c): t["vmaf"] for c, t in state["trials"].get(name, {}).items()}


def next_probes(ctx: JobContext, state: dict[str, Any]) -> dict[str, int]:
    """The CRF each open rung tries next (rungs whose search is over are left out)."""
    probes = {}
    for planned, target in searched(ctx):
        done = _trials(state, planned.name)
        crf = next_crf(done, target + ctx.profile.pertitle.headroom, ctx.profile.pertitle)
        if crf is not None and crf not in done:
            probes[planned.name] = crf
    return probes


def trial_key(
    chunk_sha: str,
    sample_s: float,
    rung: renditions.PlannedRung,
    options: dict[str, Any],
    fps: float,
    ffmpeg_version: str,
    subsample: int,
) -> str:
    """Content address of one trial's result: the sample's bytes and everything that shapes
    its encode and its score."""
    shape = {"chunk": chunk_sha, "sample_s": sample_s, "size": [rung.width, rung.height],
             "options": options, "fps": fps, "ffmpeg": ffmpeg_version, "model": quality.MODEL,
             "subsample": subsample}  # fmt: skip
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(settings: Settings, key: str) -> Path:
    """Where a trial's result lives: beside the encoded chunks, shared by every worker."""
    return chunking.cache_dir(settings) / "trials" / key[:2] / f"{key}.json"


def trial_outputs(chunk: Path, rungs: list[renditions.PlannedRung], targets: list[Path],
                  ctx: JobContext, sample_s: float) -> list[Any]:  # fmt: skip
    """The first ``sample_s`` of ``chunk`` encoded into every rung at its CRF (decode once),
    with the ladder's own encoder options: a trial predicts the full encode."""
    info, profile = ctx.source, ctx.profile
    mode = renditions.colour_mode(info, profile)
    video = command.input_file(chunk, t=f"{sample_s:.3f}").video
    video = video.filter("fps", renditions.frame_rate(info))
    branches = video.filter_multi_output("split", len(rungs)) if len(rungs) > 1 else None
    outputs = []
    for i, (rung, target) in enumerate(zip(rungs, targets, strict=True)):
        picture = hdr.picture(branches.stream(i) if branches else video, rung.width, rung.height,
                              mode, info.colour)  # fmt: skip
        options = renditions.video_options(rung, info, profile)
        if ctx.settings.ffmpeg_threads:
            options["threads"] = ctx.settings.ffmpeg_threads
        outputs.append(ffmpeg.output(picture, command.output_target(target), an=None,
                                     map_metadata=-1, f="mp4", **options))  # fmt: skip
    return outputs


def _cached(
    ctx: JobContext, sample: dict[str, Any], probes: dict[str, int]
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[renditions.PlannedRung, Path]]]:
    """A sample's cached results by rung, and the trials still to run (rung, cache path)."""
    pt, fps = ctx.profile.pertitle, renditions.frame_rate(ctx.source)
    planned = {r.name: r for r in renditions.plan_rungs(ctx.source, ctx.profile)}
    version = command.ffmpeg_version(ctx.limits)
    sample_s = min(pt.sample_s, sample["duration_s"])
    results, todo = {}, {}
    for name, crf in probes.items():
        rung = dataclasses.replace(planned[name], crf=crf)
        options = renditions.video_options(rung, ctx.source, ctx.profile)
        if renditions.colour_mode(ctx.source, ctx.profile) == hdr.TONEMAP:  # not the trials
            options["reference"] = "tonemapped"  # once scored against the PQ source (100)
        key = trial_key(sample["sha256"], sample_s, rung, options, fps, version, pt.subsample)
        path = cache_path(ctx.settings, key)
        if path.is_file() or chunk_store.fetch_trial(key, path, ctx.settings):
            results[name] = json.loads(path.read_text()) | {"cached": True}
        else:
            todo[name] = (rung, path)
    return results, todo


def _sample_chunk(wd: Path, sample: dict[str, Any], settings: Settings) -> None:
    """The sample's chunk as the split made it (fetched, on another host): trial results are
    cached by its SHA-256, so one torn or removed since is :class:`StorageCorrupt`, never
    scored (against itself) into the cache under the intact chunk's hash."""
    chunk_store.fetch_source(wd, sample["name"], sample["sha256"], settings)
    path = wd / sample["name"]
    if not path.is_file() or file_sha256(path) != sample["sha256"]:
        raise StorageCorrupt(f"sample chunk {sample['name']}: missing, or SHA-256 differs")


def run_trials(
    ctx: JobContext, samples: list[dict[str, Any]], probes: dict[str, int], work: Work
) -> list[dict[str, dict[str, Any]]]:
    """Encode each sample into each probed rung at its CRF (one ffmpeg for all) and score
    them (one more), or take the results from the cache; per sample, by rung name: crf, VMAF
    mean, bytes, seconds, and whether it was cached."""
    pt, settings = ctx.profile.pertitle, ctx.settings
    wd, fps = work_dir(ctx.out_dir), renditions.frame_rate(ctx.source)
    found = [_cached(ctx, s, probes) for s in samples]
    if not any(todo for _, todo in found):
        return [results for results, _ in found]
    with tempfile.TemporaryDirectory(prefix="trial-", dir=wd) as tmp:
        encodes, scoring, pending = [], [], []
        for i, (sample, (_, todo)) in enumerate(zip(samples, found, strict=True)):
            if not todo:
                continue
            _sample_chunk(wd, sample, settings)
            outs = [Path(tmp) / f"{i}.{name}.mp4" for name in todo]
            rungs = [rung for rung, _ in todo.values()]
            sample_s = min(pt.sample_s, sample["duration_s"])
            encodes += trial_outputs(wd / sample["name"], rungs, outs, ctx, sample_s)
            mode = renditions.colour_mode(ctx.source, ctx.profile)  # the reference alike
            targets = [quality.Target((out,), rung.width, rung.height, colour=mode,
                                      source=ctx.source.colour)
                       for out, rung in zip(outs, rungs, strict=True)]  # fmt: skip
            logs = [o.with_suffix(".json") for o in outs]
            # VMAF only (a trial needs no PSNR nor SSIM: a quarter of libvmaf's time), one
            # thread each (a pool costs more than it saves on a few frames).
            reference = wd / sample["name"]
            scoring.append(quality.score_stream(reference, fps, targets, logs, pt.subsample,
                                                1, extra=False))  # fmt: skip
            pending += [(i, name, rung, path, out, log) for (name, (rung, path)), out, log
                        in zip(todo.items(), outs, logs, strict=True)]  # fmt: skip
        started = time.monotonic()
        work.run(ffmpeg.merge_outputs(*encodes))
        work.run(ffmpeg.merge_outputs(*scoring))
        each = round((time.monotonic() - started) / len(pending), 3)
        for i, name, rung, path, out, log in pending:
            vmaf = quality.vmaf_mean(json.loads(log.read_text()))
            # One frame spans no time between frames: it lasts a frame (not 0 s, 33 Gbit/s).
            seconds = timing(out).video_s or 1 / fps
            result = {"crf": rung.crf, "vmaf": vmaf, "bytes": out.stat().st_size,
                      "seconds": round(seconds, 6), "trial_s": each}  # fmt: skip
            with atomic_output(path) as part:
                part.write_text(json.dumps(result))
            chunk_store.put_trial(path.stem, path, settings)  # for every host's next search
            found[i][0][name] = result | {"cached": False}
    return [results for results, _ in found]


def trial(ctx: JobContext, sample: dict[str, Any], probes: dict[str, int]) -> dict[str, Any]:
    """One sample's trials of one round (a task of its own on workers): results and costs."""
    work = Work(ctx.limits)
    results = run_trials(ctx, [sample], probes, work)[0]
    return work.report(part="trial", sha256=sample["sha256"], results=results)


def merge(state: dict[str, Any], rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Fold one round's results (one dict per sample) into the state: per rung and CRF, the
    mean VMAF over the samples and their bytes and seconds summed."""
    by_rung: dict[str, list[dict[str, Any]]] = {}
    state["rounds"] += 1
    for sample in rounds:
        for name, result in sample.items():
            by_rung.setdefault(name, []).append(result)
    for name, results in by_rung.items():
        state["trials"].setdefault(name, {})[str(results[0]["crf"])] = {
            "vmaf": round(sum(r["vmaf"] for r in results) / len(results), 3),
            "bytes": sum(r["bytes"] for r in results),
            "seconds": round(sum(r["seconds"] for r in results), 6),
            "cached": all(r["cached"] for r in results),
        }
        state["encodes"] += sum(not r["cached"] for r in results)
        state["trial_s"] = round(state["trial_s"] + sum(
            r.get("trial_s", 0.0) for r in results if not r["cached"]), 3)  # fmt: skip
    return state


def search(ctx: JobContext, work: Work) -> dict[str, Any]:
    """The whole search in this process, round after round; the manifest's record."""
    state = new_state(pick_samples(ctx))
    try:
        while probes := next_probes(ctx, state):
            merge(state, run_trials(ctx, state["samples"], probes, work))
    finally:
        shutil.rmtree(work_dir(ctx.out_dir), ignore_errors=True)
    return decide(ctx, state)


def conclude(ctx: JobContext, state: dict[str, Any]) -> dict[str, Any]:
    """The record of a search whose trials ran as tasks; its sample chunks removed."""
    shutil.rmtree(work_dir(ctx.out_dir), ignore_errors=True)
    return decide(ctx, state)


def _kbps(trial_: dict[str, Any]) -> int:
    return round(trial_["bytes"] * 8 / max(trial_["seconds"], 1e-6) / 1000)


def decide(ctx: JobContext, state: dict[str, Any]) -> dict[str, Any]:
    """Each rung's CRF (the highest tried that met the target on the samples, else the lowest
    tried), then the rungs that add nothing dropped; the manifest's ``pertitle`` record."""
    pt = ctx.profile.pertitle
    rungs = []
    for planned, target in searched(ctx):
        tried = state["trials"].get(planned.name, {})
        meeting = [int(c) for c, t in tried.items() if t["vmaf"] >= target + pt.headroom]
        crf = max(meeting) if meeting else min(int(c) for c in tried)
        chosen = tried[str(crf)]
        rungs.append({
            "rung": planned.name, "width": planned.width, "height": planned.height,
            "short": planned.short, "target_vmaf": target, "cap_kbps": planned.video_kbps,
            "crf": crf, "sample_vmaf": chosen["vmaf"], "sample_kbps": _kbps(chosen),
            "reached_on_samples": bool(meeting), "dropped": None,
            "trials": [{"crf": int(c), "vmaf": t["vmaf"], "kbps": _kbps(t), "cached": t["cached"]}
                       for c, t in tried.items()],
        })  # fmt: skip
    drop(rungs, pt.margin)
    samples = [
        {k: s[k] for k in ("index", "start_s", "sha256")}
        | {"duration_s": min(pt.sample_s, s["duration_s"])}
        for s in state["samples"]
    ]
    return {"model": quality.MODEL, "samples": samples, "max_trials": pt.max_trials,
            "margin": pt.margin, "tolerance": pt.tolerance, "headroom": pt.headroom,
            "rounds": state["rounds"],
            "trial_tasks": state["tasks"], "trial_encodes": state["encodes"],
            "trial_s": state["trial_s"], "rungs": rungs}  # fmt: skip


def drop(rungs: list[dict[str, Any]], margin: float) -> None:
    """Mark the rungs that add nothing (``rungs`` highest first): from the top, a rung whose
    bit rate is above the kept rung above it; then from the bottom, a rung whose VMAF is
    within ``margin`` of the kept rung below it at a higher bit rate. One rung always stays."""
    above = None
    for r in rungs:
        if above is not None and r["sample_kbps"] > above["sample_kbps"]:
            r["dropped"] = (f"{r['sample_kbps']} kbit/s, more than {above['rung']} above it "
                            f"({above['sample_kbps']} kbit/s)")  # fmt: skip
        else:
            above = r
    below = None
    for r in reversed(rungs):
        if r["dropped"]:
            continue
        if (below is not None and r["sample_vmaf"] < below["sample_vmaf"] + margin
                and r["sample_kbps"] > below["sample_kbps"]):  # fmt: skip
            r["dropped"] = (f"VMAF {r['sample_vmaf']:.2f} within {margin} of {below['rung']}'s "
                            f"{below['sample_vmaf']:.2f} at more bits ({r['sample_kbps']} > "
                            f"{below['sample_kbps']} kbit/s)")  # fmt: skip
        else:
            below = r


def planned(ctx: JobContext, work: Work,
            state: dict[str, Any] | None) -> tuple[JobContext, dict[str, Any]]:  # fmt: skip
    """The search's record (run here, or concluded from the ``state`` its trial tasks left)
    and the job at the CRFs it chose."""
    with phases.phase("search"):
        record = search(ctx, work) if state is None else conclude(ctx, state)
    return resolved(ctx, record), record


def resolved(ctx: JobContext, record: dict[str, Any]) -> JobContext:
    """The job with its profile's rungs at their chosen CRFs, dropped rungs left out, and
    quality measured (the full encode is scored against its target)."""
    chosen = {r["short"]: r for r in record["rungs"]}
    planned = renditions.plan_rungs(ctx.source, ctx.profile)
    by_rung = {_source_rung(ctx.profile, p).height: chosen.get(p.short) for p in planned}
    rungs = []
    for rung in ctx.profile.rungs:
        decision = by_rung.get(rung.height)
        if decision is not None and decision["dropped"]:
            continue
        rungs.append(dataclasses.replace(rung, crf=decision["crf"]) if decision else rung)
    measure = dataclasses.replace(ctx.profile.quality, measure=True)
    profile = dataclasses.replace(ctx.profile, rungs=tuple(rungs), quality=measure)
    return dataclasses.replace(ctx, profile=profile)


def finish(record: dict[str, Any], outputs: list[OutputEntry]) -> dict[str, Any]:
    """The record with each kept rung's full encode: its VMAF, bytes, bit rate, and whether
    it met the target within the tolerance."""
    entries = {(o.width, o.height): o for o in outputs if o.kind in RUNG_KINDS}
    for r in record["rungs"]:
        entry = entries.get((r["width"], r["height"]))
        if r["dropped"] or entry is None:
            continue
        vmaf = entry.extra.get("quality", {}).get("vmaf_mean")
        met = vmaf is not None and vmaf >= r["target_vmaf"] - record["tolerance"]
        r |= {"full_vmaf": vmaf, "bytes": entry.size, "bit_rate": entry.bit_rate, "met": met}
    return record
