"""The work of each step of a job, as plain functions testable without a broker.

Tasks in ``tasks/`` call one of these each; chunked and per-rendition jobs run several.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from datetime import UTC, datetime
from typing import Any

import ffmpeg

from mediaapp.media import chunking, chunkplan, command, packaging, renditions, space
from mediaapp.media.chunking import Rendition, SourceChunk
from mediaapp.media.chunkplan import ChunkPlan
from mediaapp.media.inputs import display_size, inspect, safe_stem, target_height
from mediaapp.media.mp4 import (
    can_remux,
    encode_audio_files,
    encode_mp4,
    encode_previews,
    web_video_options,
)
from mediaapp.media.outputs import (
    Work,
    atomic_output,
    clear_partials,
    describe_output,
    job_dir,
    load_manifest,
    verify_video,
    write_manifest,
)
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile, get_profile
from mediaapp.settings import Settings

log = logging.getLogger(__name__)


def transcode(
    job_id: str,
    name: str,
    profile_name: str,
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
    strategy: str = "single",
    probed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`_transcode` with a free-space check first; a full disk is OutOfSpace (space.py)."""
    args = (job_id, name, profile_name, settings, on_progress, strategy, probed)
    if load_manifest(job_id, settings) is not None:  # done already: nothing to write
        return _transcode(*args)
    with space.job_space(job_id, get_profile(profile_name), settings, probed):
        return _transcode(*args)


def _transcode(
    job_id: str,
    name: str,
    profile_name: str,
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
    strategy: str = "single",
    probed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a profile on ``name`` (relative to the media root); return the verified manifest.

    ``probed``: the result of the job's probe step, which already decoded the first frames.

    A job whose complete manifest already exists is not encoded again: a redelivered
    message finds the finished work and returns it.
    """
    profile = get_profile(profile_name)
    done = load_manifest(job_id, settings)
    if done is not None and done.get("profile") == profile.name and done.get("input") == name:
        log.info("job %s already complete, returning its manifest", job_id)
        return done
    started = time.monotonic()
    src, info = inspect(name, settings, needs_video=profile.kind != "audio", probed=probed)
    out_dir = job_dir(job_id, settings)
    clear_partials(out_dir)
    work = Work()
    stem = safe_stem(name)
    if profile.kind == "mp4":
        encode_mp4(
            work, src, info, profile, out_dir / f"{stem}.{profile.name}.mp4", settings, on_progress
        )
    if profile.kind in ("mp4", "thumbs"):
        encode_previews(work, src, info, profile, out_dir, stem, settings)
    if profile.kind == "audio":
        encode_audio_files(work, src, info, profile, out_dir, stem, settings, on_progress)
    if profile.kind in ("hls", "dash"):
        packaging.encode_ladder(work, src, info, profile, out_dir, settings, on_progress, strategy)
    manifest = _manifest(job_id, name, profile, info, work, started)
    manifest["strategy"] = strategy if profile.kind in ("hls", "dash") else "single"
    write_manifest(manifest, settings)
    return manifest


def _manifest(
    job_id: str, name: str, profile: Profile, info: ProbeResult, work: Work, started: float
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "task": "video.transcode",
        "profile": profile.name,
        "kind": profile.kind,
        "input": name,
        "source": info.to_dict(),
        "outputs": work.outputs,
        "ffmpeg_version": command.ffmpeg_version(),
        "commands": work.commands,
        "encode_s": round(work.encode_s, 3),
        "elapsed_s": round(time.monotonic() - started, 3),
        "created_at": datetime.now(UTC).isoformat(),
    }


def plan_renditions(job_id: str, name: str, profile_name: str, settings: Settings) -> list[int]:
    """Validate the input of a per-rendition ladder job; return the rung indexes to encode."""

    profile = get_profile(profile_name)
    _, info = inspect(name, settings)
    out_dir = job_dir(job_id, settings)
    clear_partials(out_dir)
    shutil.rmtree(packaging.stage_dir(out_dir, profile.kind), ignore_errors=True)
    return [r.index for r in renditions.plan_rungs(info, profile)]


def encode_rendition(
    job_id: str,
    name: str,
    profile_name: str,
    index: int,
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode one rung of a per-rendition ladder job (one Celery task per rung)."""

    profile = get_profile(profile_name)
    src, info = inspect(name, settings)
    work = Work()
    rung = packaging.encode_rung(
        work, src, info, profile, job_dir(job_id, settings), index, on_progress
    )
    return {"rung": rung.name, "commands": work.commands, "encode_s": round(work.encode_s, 3)}


def package_renditions(
    job_id: str, name: str, profile_name: str, rungs: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """Package the encoded rungs (master playlist, verification) and write the manifest."""

    done = load_manifest(job_id, settings)
    if done is not None:
        return done
    started = time.monotonic()
    profile = get_profile(profile_name)
    _, info = inspect(name, settings)
    work = Work()
    work.commands = [c for r in rungs for c in r["commands"]]
    work.encode_s = sum(r["encode_s"] for r in rungs)
    packaging.package_hls(work, info, profile, job_dir(job_id, settings), settings)
    manifest = _manifest(job_id, name, profile, info, work, started)
    manifest["strategy"] = "per_rendition"
    write_manifest(manifest, settings)
    return manifest


def probe_input(name: str, settings: Settings) -> dict[str, Any]:
    """Probe ``name`` (relative to the media root) without any media-type requirement."""
    _, info = inspect(name, settings, needs_video=False)
    return info.to_dict()


#: What the manifest keeps of each chunk.
_CHUNK_FIELDS = (
    *("index", "frames", "start_s", "duration_s"),
    *("reused", "encode_s", "hostname", "pid"),
)


#: Profile kinds whose video can be encoded in chunks.
CHUNKABLE = ("mp4", "hls", "dash")


def video_outputs(info: ProbeResult, profile: Profile, settings: Settings) -> list[Rendition]:
    """The video outputs a chunk is encoded into: the mp4, or every rung of the ladder."""

    if profile.kind == "mp4":
        height = target_height(info, profile.height)
        return [Rendition("video", height, web_video_options(profile, settings))]
    return [
        Rendition(r.name, r.height, renditions.video_options(r, info, profile))
        for r in renditions.plan_rungs(info, profile)
    ]


def _segment_s(profile: Profile) -> int | None:
    return profile.segment_s if profile.kind in ("hls", "dash") else None


def chunk_plan(
    name: str,
    profile_name: str,
    settings: Settings,
    workers: int,
    probed: dict[str, Any] | None = None,
) -> ChunkPlan:
    """The cost model's verdict for this job (see :func:`mediaapp.chunking.plan`);
    ``probed``: the job's probe-step result, used instead of probing again."""
    profile = get_profile(profile_name)
    src, info = inspect(
        name, settings, needs_video=profile.kind != "audio", decode_s=0, probed=probed
    )
    chunkable = profile.kind in CHUNKABLE and info.video is not None
    outputs = video_outputs(info, profile, settings) if chunkable else []
    width, height = display_size(info) if chunkable else (0, 1)
    verdict = chunkplan.plan(
        info,
        workers,
        settings,
        output_pixels=sum(round(r.height * width / height) * r.height for r in outputs),
        segment_s=_segment_s(profile),
    )
    if not chunkable:
        why = "no video" if info.video is None else f"{profile.kind} profile"
        return dataclasses.replace(verdict, chunked=False, reason=why)
    if profile.kind == "mp4" and can_remux(src, info, profile):
        return dataclasses.replace(verdict, chunked=False, reason="remux, nothing to encode")
    return verdict


def split_job(job_id: str, name: str, chunk_s: float, settings: Settings) -> list[dict[str, Any]]:
    """Cut the job's source video into keyframe-aligned chunks in its work directory."""
    src, _ = inspect(name, settings, decode_s=0)
    out_dir = job_dir(job_id, settings)
    clear_partials(out_dir)
    return [c.to_dict() for c in chunking.split(src, chunking.work_dir(out_dir), chunk_s)]


def encode_job_chunk(
    job_id: str,
    name: str,
    profile_name: str,
    chunk: dict[str, Any],
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode (or reuse) one chunk of a chunked job into every rendition."""

    profile = get_profile(profile_name)
    _, info = inspect(name, settings, decode_s=0)
    return chunking.encode_chunk(
        chunking.work_dir(job_dir(job_id, settings)),
        SourceChunk(**chunk),
        video_outputs(info, profile, settings),
        renditions.frame_rate(info),
        _segment_s(profile),
        settings,
        on_progress,
    )


def encode_job_audio(
    job_id: str,
    name: str,
    profile_name: str,
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode a chunked job's audio track, once, from the whole source."""
    profile = get_profile(profile_name)
    src, info = inspect(name, settings, decode_s=0)
    if info.audio is None:
        return {"part": "audio", "command": None, "encode_s": 0.0}
    work = chunking.work_dir(job_dir(job_id, settings))
    return chunking.encode_audio(src, work, info, profile, on_progress)


def job_previews(job_id: str, name: str, profile_name: str, settings: Settings) -> dict[str, Any]:
    """Poster, sprite sheet and WebVTT of a chunked mp4 job (a task beside the chunks)."""
    profile = get_profile(profile_name)
    src, info = inspect(name, settings, decode_s=0)
    work = Work()
    encode_previews(work, src, info, profile, job_dir(job_id, settings), safe_stem(name), settings)
    return {"part": "previews", "outputs": work.outputs, "commands": work.commands,
            "encode_s": round(work.encode_s, 3)}  # fmt: skip


def assemble_chunked(
    job_id: str,
    name: str,
    profile_name: str,
    parts: list[dict[str, Any]],
    plan: dict[str, Any],
    settings: Settings,
) -> dict[str, Any]:
    """Join the encoded chunks, add the audio, package, verify every join; the manifest."""

    done = load_manifest(job_id, settings)
    if done is not None:
        return done
    started = time.monotonic()
    profile = get_profile(profile_name)
    src, info = inspect(name, settings, decode_s=0)
    out_dir = job_dir(job_id, settings)
    wd = chunking.work_dir(out_dir)
    chunks = sorted((p for p in parts if p["part"] == "chunk"), key=lambda c: c["index"])
    work = Work()
    for part in parts:
        work.commands += [c for c in (part.get("command"), *part.get("commands", ())) if c]
        work.encode_s += part.get("encode_s") or 0.0
    frame_s = 1 / renditions.frame_rate(info)
    audio = wd / "audio.m4a" if info.audio is not None else None
    joins: dict[str, dict[str, Any]] = {}
    if profile.kind == "mp4":  # the chunks straight into the final file, audio muxed in
        final = out_dir / f"{safe_stem(name)}.{profile.name}.mp4"
        with atomic_output(final) as tmp:
            streams = [chunking.joined_video(wd, "video", chunks).video]
            if audio is not None:
                streams.append(command.input_file(audio).audio)
            joined_out = ffmpeg.output(
                *streams, command.output_target(tmp), c="copy", f="mp4",
                movflags="+faststart", map_metadata=-1,
            )  # fmt: skip
            work.run(joined_out)
        entry = describe_output(final, "video", settings)
        verify_video(entry, info, target_height(info, profile.height))
        entry["joins"] = joins["video"] = chunking.verify_joins(final, chunks, info,
                                                                frame_s=frame_s)  # fmt: skip
        work.outputs.append(entry)
        for part in parts:
            work.outputs += part.get("outputs", [])
    else:  # each rung joined and checked, then packaged (HLS or DASH) by copy
        joined = {}
        for r in video_outputs(info, profile, settings):
            path = wd / f"joined.{r.name}.mp4"
            concat = chunking.joined_video(wd, r.name, chunks)
            work.run(concat.output(command.output_target(path), c="copy", f="mp4"))
            joins[r.name] = chunking.verify_joins(path, chunks, info, frame_s=frame_s)
            joined[r.name] = path
        if audio is not None:
            chunking.verify_audio(audio, info, frame_s=frame_s)
        packaging.encode_ladder(work, src, info, profile, out_dir, settings, None, "chunked",
                                joined=joined, audio=audio)  # fmt: skip
    manifest = _manifest(job_id, name, profile, info, work, started)
    manifest["strategy"] = "chunked"
    manifest["chunking"] = {
        "plan": plan,
        "joins": joins,
        "chunks": [{k: c[k] for k in _CHUNK_FIELDS} for c in chunks],
    }
    write_manifest(manifest, settings)
    shutil.rmtree(wd, ignore_errors=True)
    return manifest
