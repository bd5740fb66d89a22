"""The work of each step of a job, as plain functions of its :class:`JobContext`.

Tasks in ``tasks/`` call one of these each. A single job is :func:`transcode`; a
per-rendition ladder is :func:`prepare_rungs`, :func:`encode_rung` per rung, then
:func:`package_rungs`; a chunked job is :func:`chunk_plan`, :func:`split`, :func:`encode_chunk`
per chunk beside :func:`encode_audio` and :func:`previews`, then :func:`assemble`.
Testable without a broker.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import StorageUnavailable
from mediaapp.media import (
    captions,
    chunking,
    chunkplan,
    cmaf,
    command,
    hardware,
    hdr,
    mp4,
    packaging,
    pertitle,
    phases,
    quality,
    renditions,
    retarget,
    space,
)
from mediaapp.media.chunking import Rendition, SourceChunk
from mediaapp.media.context import JobContext
from mediaapp.media.inputs import display_size, inspect, target_height, target_size
from mediaapp.media.mp4 import (
    can_remux,
    encode_audio_files,
    encode_mp4,
    encode_previews,
    web_video_options,
)
from mediaapp.media.outputs import (
    OutputEntry,
    Work,
    atomic_output,
    clear_partials,
    load_manifest,
    verify_video,
    write_manifest,
)
from mediaapp.settings import Settings
from mediaapp.storage import chunks as chunk_store
from mediaapp.storage import publish as publication
from mediaapp.storage import remote_outputs

log = logging.getLogger(__name__)

ProgressCallback = command.ProgressCallback
#: What the manifest keeps of each chunk.
_CHUNK_FIELDS = (
    *("index", "frames", "start_s", "duration_s"),
    *("reused", "encode_s", "hostname", "pid"),
)
#: Profile kinds whose video can be encoded in chunks.
CHUNKABLE = ("mp4", "hls", "dash")


def probe_input(name: str, settings: Settings) -> dict[str, Any]:
    """Probe ``name`` (relative to the media root) without any media-type requirement."""
    _, info = inspect(name, settings, needs_video=False)
    return info.to_dict()


def run(
    job_id: str,
    name: str,
    profile: str,
    settings: Settings,
    on_progress: ProgressCallback | None = None,
    strategy: str = "single",
    subtitles: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole job in this process, no broker: the media layer used as a library."""
    with phases.collecting(), hardware.choosing():
        ctx = JobContext.open(job_id, name, profile, settings, subtitles)
        return transcode(ctx, on_progress, strategy)


def finished(ctx: JobContext) -> dict[str, Any] | None:
    """The job's manifest if it is already complete on disk (a redelivered message)."""
    if remote_outputs(ctx.settings):
        done = publication.load_published(ctx.job_id, ctx.settings)
    else:
        done = load_manifest(ctx.job_id, ctx.settings)
    if done is None or (done.get("profile"), done.get("input")) != (ctx.profile.name, ctx.name):
        return None
    log.info("job %s already complete, returning its manifest", ctx.job_id)
    return done


def transcode(
    ctx: JobContext,
    on_progress: ProgressCallback | None = None,
    strategy: str = "single",
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the job's profile in this process; return the verified manifest. A full disk,
    seen before (the estimate) or during the encode, is OutOfSpace (see space.py).
    ``search``: a per-title search's state when its trials ran as tasks (else it runs here)."""
    if (done := finished(ctx)) is not None:
        return done
    with (
        space.job_space(ctx.job_id, ctx.profile, ctx.settings, ctx.source.to_dict()),
        phases.collecting(),
    ):
        return _transcode(ctx, on_progress, strategy, search)


def _transcode(
    ctx: JobContext,
    on_progress: ProgressCallback | None,
    strategy: str,
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    kind = ctx.profile.kind
    clear_partials(ctx.out_dir)
    work = Work(ctx.limits)
    extra: dict[str, Any] = {}
    if pertitle.wanted(ctx.profile):  # the CRF of each rung first, then the ladder at them
        ctx, extra["pertitle"] = pertitle.planned(ctx, work, search)
    if kind == "mp4":
        encode_mp4(work, ctx, on_progress)
        captions.publish_web(work, ctx)
    if kind in ("mp4", "thumbs"):
        encode_previews(work, ctx)
    if kind == "audio":
        encode_audio_files(work, ctx, on_progress)
    if kind in ("hls", "dash"):
        packaging.encode_ladder(work, ctx, on_progress, strategy)
        if "pertitle" in extra:  # a rung below its target: once more, lower (retarget.py)
            ctx = retarget.once(work, ctx, extra["pertitle"], on_progress, strategy)
    strategy = strategy if kind in ("hls", "dash") else "single"
    return publish(ctx, work, started, strategy, **extra)


def publish(
    ctx: JobContext, work: Work, started: float, strategy: str, **extra: Any
) -> dict[str, Any]:
    """Score the video renditions (when the profile measures quality), then write the job's
    manifest, last of its files (the commit marker); return it."""
    with phases.phase("quality"):
        quality.score_outputs(work, ctx)
    if "pertitle" in extra:  # each rung's full encode against its target
        extra["pertitle"] = pertitle.finish(extra["pertitle"], work.outputs)
    elapsed = time.monotonic() - started
    manifest = {
        "job_id": ctx.job_id,
        "task": "video.transcode",
        "profile": ctx.profile.name,
        "kind": ctx.profile.kind,
        "input": ctx.name,
        "source": ctx.source.to_dict(),
        "outputs": [o.to_dict() for o in work.outputs],
        "ffmpeg_version": command.ffmpeg_version(ctx.limits),
        "commands": work.commands,
        "encode_s": round(work.encode_s, 3),
        "elapsed_s": round(elapsed, 3),
        # Where the step's time went until now (probe, ffmpeg, verify, hash, other): phases.py.
        "phases_s": phases.snapshot(),
        "created_at": datetime.now(UTC).isoformat(),
        "strategy": strategy,
        **({"captions": work.captions} if work.captions else {}),
        **hardware.recorded(),  # encoders per rendition; fallback from a hardware fault
        **extra,
    }
    if remote_outputs(ctx.settings):  # outputs uploaded under the job's prefix, manifest last
        return publication.publish_job(manifest, ctx.out_dir, ctx.settings)
    write_manifest(publication.annotate_local(manifest), ctx.settings)
    return manifest


def thumbnail(ctx: JobContext) -> dict[str, Any]:
    """One poster JPEG (the ``video.thumbnail`` job); the result is its manifest entry."""
    work = Work(ctx.limits)
    entry = mp4.thumbnail(work, ctx)
    return {**entry.to_dict(), "command": work.commands[0]}


# Per-rendition ladders: one task per rung, then packaging.


def prepare_rungs(ctx: JobContext) -> list[int]:
    """Clear what an earlier attempt left; the rung indexes to encode, one task each."""
    clear_partials(ctx.out_dir)
    shutil.rmtree(packaging.stage_dir(ctx.out_dir, ctx.profile.kind), ignore_errors=True)
    return [r.index for r in renditions.plan_rungs(ctx.source, ctx.profile)]


def encode_rung(
    ctx: JobContext, index: int, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Encode one rung of a per-rendition ladder job."""
    work = Work(ctx.limits)
    rung = packaging.encode_rung(work, ctx, index, on_progress)
    return work.report(rung=rung.name)


def package_rungs(ctx: JobContext, rungs: list[dict[str, Any]],
                  package: Callable[[Work, JobContext], Any] = packaging.package_hls,
                  strategy: str = "per_rendition") -> dict[str, Any]:  # fmt: skip
    """Package the parts other steps encoded (HLS rungs; a multi-codec job's variants), publish
    the manifest; a redelivered packaging step returns the one it already published."""
    if (done := finished(ctx)) is not None:
        return done
    started, work = time.monotonic(), Work(ctx.limits)
    for part in rungs:
        work.absorb(part)
    package(work, ctx)
    return publish(ctx, work, started, strategy)


# Chunked parallel encoding (see mediaapp/media/chunking.py for the picture).


def video_outputs(ctx: JobContext, codec: str | None = None) -> list[Rendition]:
    """The video outputs a chunk is encoded into: the mp4, or every rung of the ladder (of a
    multi-codec ladder, every variant, or ``codec``'s)."""
    info, profile = ctx.source, ctx.profile
    hdr_source = info.colour if hdr.reads_source(info.colour) else None
    if profile.cmaf:
        return [Rendition(v.name, v.rung.height, cmaf.video_options(v, info, profile),
                          v.rung.width, v.colour_mode(info), hdr_source)
                for v in cmaf.plan_variants(info, profile, codec)]  # fmt: skip
    mode = hdr.mode(info.colour, profile.codec)
    if profile.kind == "mp4":
        width, height = target_size(info, profile.height)
        options = web_video_options(profile, ctx.settings) | hdr.encoder_options(mode, info.colour)
        return [Rendition("video", height, options, width, mode, hdr_source)]
    return [Rendition(r.name, r.height, renditions.video_options(r, info, profile), r.width,
                      mode, hdr_source) for r in renditions.plan_rungs(info, profile)]  # fmt: skip


def _segment_s(ctx: JobContext) -> int | None:
    return ctx.profile.segment_s if ctx.profile.kind in ("hls", "dash") else None


def chunk_plan(ctx: JobContext, workers: int) -> chunkplan.ChunkPlan:
    """The cost model's verdict for this job (see :func:`mediaapp.media.chunkplan.plan`)."""
    info, profile = ctx.source, ctx.profile
    chunkable = profile.kind in CHUNKABLE and info.video is not None
    outputs = video_outputs(ctx) if chunkable else []
    width, height = display_size(info) if chunkable else (0, 1)
    verdict = chunkplan.plan(
        info,
        workers,
        ctx.settings,
        output_pixels=sum(round(r.height * width / height) * r.height for r in outputs),
        segment_s=_segment_s(ctx),
    )
    if not chunkable:
        why = "no video" if info.video is None else f"{profile.kind} profile"
        return dataclasses.replace(verdict, chunked=False, reason=why)
    if profile.kind == "mp4" and can_remux(ctx.src, info, profile):
        return dataclasses.replace(verdict, chunked=False, reason="remux, nothing to encode")
    return verdict


def split(ctx: JobContext, chunk_s: float) -> list[dict[str, Any]]:
    """Cut the job's source video into keyframe-aligned chunks in its work directory."""
    clear_partials(ctx.out_dir)
    work_dir = chunking.work_dir(ctx.out_dir)
    chunks = [c.to_dict() for c in chunking.split(ctx.src, work_dir, chunk_s, ctx.limits)]
    chunk_store.put_sources(work_dir, chunks, ctx.settings)  # for workers on other hosts
    return chunks


def encode_chunk(
    ctx: JobContext,
    chunk: dict[str, Any],
    on_progress: ProgressCallback | None = None,
    codec: str | None = None,
) -> dict[str, Any]:
    """Encode (or reuse) one chunk of a chunked job into every rendition (of ``codec``)."""
    chunk_store.fetch_source(
        chunking.work_dir(ctx.out_dir), chunk["name"], chunk["sha256"], ctx.settings
    )
    part = chunking.encode_chunk(
        chunking.work_dir(ctx.out_dir),
        SourceChunk(**chunk),
        video_outputs(ctx, codec),
        renditions.frame_rate(ctx.source),
        _segment_s(ctx),
        ctx.settings,
        on_progress,
    )
    return {**part, **hardware.recorded(), **({"codec": codec} if codec else {})}


def encode_audio(ctx: JobContext, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Encode a chunked job's audio track, once, from the whole source."""
    if ctx.source.audio is None:
        return {"part": "audio", "command": None, "encode_s": 0.0}
    work_dir = chunking.work_dir(ctx.out_dir)
    part = chunking.encode_audio(
        ctx.src, work_dir, ctx.source, ctx.profile, on_progress, ctx.limits
    )
    chunk_store.put_audio(ctx.job_id, work_dir / "audio.m4a", ctx.settings)
    return part


def previews(ctx: JobContext) -> dict[str, Any]:
    """Poster, sprite sheet and WebVTT of a chunked mp4 job (a task beside the chunks)."""
    work = Work(ctx.limits)
    encode_previews(work, ctx)
    chunk_store.put_outputs(ctx.job_id, ctx.out_dir, ctx.settings)  # for assemble, any host
    return work.report(part="previews")


def assemble(ctx: JobContext, parts: list[dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
    """Join the encoded chunks, add the audio, package, verify every join; the manifest."""
    if (done := finished(ctx)) is not None:
        return done
    started = time.monotonic()
    info, profile, out_dir = ctx.source, ctx.profile, ctx.out_dir
    wd = chunking.work_dir(out_dir)
    encoded = [p for p in parts if p["part"] == "chunk"]  # one per chunk (and codec)
    chunks = sorted({c["index"]: c for c in encoded}.values(), key=lambda c: c["index"])
    work = Work(ctx.limits)
    for part in parts:
        work.absorb(part)
    frame_s = 1 / renditions.frame_rate(info)
    audio = wd / "audio.m4a" if info.audio is not None else None
    _gather(ctx, encoded, audio)
    joins: dict[str, dict[str, Any]] = {}
    if profile.kind == "mp4":  # the chunks straight into the final file, audio muxed in
        final = out_dir / f"{ctx.stem}.{profile.name}.mp4"
        with atomic_output(final) as tmp:
            streams = [chunking.joined_video(wd, "video", chunks).video]
            if audio is not None:
                streams.append(command.input_file(audio).audio)
            joined_out = ffmpeg.output(
                *streams, command.output_target(tmp), c="copy", f="mp4",
                movflags="+faststart", map_metadata=-1,
            )  # fmt: skip
            work.run(joined_out)
        joins["video"] = chunking.verify_joins(final, chunks, info, frame_s=frame_s)
        entry = OutputEntry.of_media(final, "video", ctx.settings.output_root, joins=joins["video"])
        verify_video(entry, info, target_height(info, profile.height))
        mp4.verify_colour(entry, info, profile)
        work.outputs.insert(0, entry)
        captions.publish_web(work, ctx)
    else:  # each rung joined and checked, then packaged (HLS or DASH) by copy
        joined = {}
        for r in video_outputs(ctx):
            path = wd / f"joined.{r.name}.mp4"
            concat = chunking.joined_video(wd, r.name, chunks)
            work.run(concat.output(command.output_target(path), c="copy", f="mp4"))
            joins[r.name] = chunking.verify_joins(path, chunks, info, frame_s=frame_s)
            joined[r.name] = path
        if audio is not None:
            chunking.verify_audio(audio, info, frame_s=frame_s)
        packaging.encode_ladder(work, ctx, None, "chunked", joined=joined, audio=audio)
    chunking_record = {
        "plan": plan,
        "joins": joins,
        "chunks": [{k: c[k] for k in _CHUNK_FIELDS} for c in chunks],
    }
    manifest = publish(ctx, work, started, "chunked", chunking=chunking_record)
    shutil.rmtree(wd, ignore_errors=True)
    chunk_store.finish_job(ctx.job_id, ctx.settings)
    return manifest


def _gather(ctx: JobContext, chunks: list[dict[str, Any]], audio: Path | None) -> None:
    """Fetch what other hosts encoded (chunks, audio) from the shared chunk cache."""
    if not chunk_store.remote(ctx.settings):
        return  # the cache folder is shared as it is
    wd = chunking.work_dir(ctx.out_dir)
    for c in chunks:
        names = [r.name for r in video_outputs(ctx, c.get("codec"))]
        missing = {
            r: p for r in names if not (p := wd / chunking.encoded_name(c["index"], r)).is_file()
        }
        if missing and not chunk_store.fetch_encoded(c["key"], missing, ctx.settings):
            raise StorageUnavailable(f"chunk {c['index']}: not in the chunk cache any more")
    if audio is not None:
        chunk_store.fetch_audio(ctx.job_id, audio, ctx.settings)
    chunk_store.fetch_outputs(ctx.job_id, ctx.out_dir, ctx.settings)  # previews
