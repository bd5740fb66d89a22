"""Chunked parallel encoding: split the video at keyframes, encode chunks on any worker,
encode the audio once, concatenate, and prove the joins are seamless.

How a chunked job runs (tasks in ``tasks/video.py``, steps as plain functions here)::

    video.transcode   probe, cost model (plan), split: -c copy -f segment at source keyframes
      ├─ video.chunk (n)  each chunk → every rendition of the profile (decode once, split)
      ├─ video.audio      the audio track, once, from the whole source (never per chunk)
      └─ video.previews   poster, sprite, WebVTT (mp4 profiles)
    video.assemble    concat demuxer (-c copy) + the audio → mp4, HLS or DASH; verify

Chunks are cached by content: the SHA-256 of the source chunk (the split is bit-exact, so
the same input always gives the same chunks) plus everything that shapes the encode. A
chunk encoded before a crash, or by an earlier submission of the same file, is reused by
whichever worker meets it next, as long as the cache directory is shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import NotMedia
from mediaapp.media import command, hdr
from mediaapp.media.outputs import atomic_output, sha256
from mediaapp.media.probe import ProbeResult, exact_video_s, timing
from mediaapp.media.profiles import Profile
from mediaapp.media.renditions import aligned_audio, audio_channels
from mediaapp.settings import Settings
from mediaapp.storage import chunks as chunk_store

#: Where a job keeps its source chunks, encoded chunks and audio track while it runs.
WORK_DIR = ".chunks"


@dataclass(frozen=True)
class SourceChunk:
    """One piece of the source video, cut at a keyframe, stored as ``name`` in the work dir."""

    index: int
    name: str
    frames: int
    start_s: float  # where it starts in the source's presentation timeline
    duration_s: float
    sha256: str
    #: Every frame one frame after the last: the encode must then keep the frame count.
    regular: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (task arguments)."""
        return asdict(self)


@dataclass(frozen=True)
class Rendition:
    """One video output a chunk is encoded into (the mp4, or one rung of a ladder)."""

    name: str
    height: int
    options: dict[str, Any] = field(default_factory=dict)
    width: int = -2  # -2: from the height (scale's even-width rule)
    colour: str = "sdr"  # what it does with the source's colour (mediaapp.media.hdr.mode)
    source: hdr.Colour | None = None  # as probed, when hdr.picture reads it (reads_source)


def work_dir(out_dir: Path) -> Path:
    """A job's chunk working directory (hidden beside its outputs, removed when done)."""
    return out_dir / WORK_DIR


def split(
    src: Path, work: Path, chunk_s: float, limits: command.Limits = command.DEFAULT_LIMITS
) -> list[SourceChunk]:
    """Cut the first video stream into chunks at keyframes, without re-encoding.

    Bit-exact output (no muxer ids or dates), so the same input gives the same chunk bytes,
    which is what makes chunks reusable by content hash.
    """
    shutil.rmtree(work / "src", ignore_errors=True)
    (work / "src").mkdir(parents=True)
    stream = command.input_file(src)["v:0"].output(
        command.output_target(work / "src" / "c%05d.mkv"),
        c="copy",
        f="segment",
        segment_time=f"{chunk_s:.3f}",
        segment_format="matroska",
        reset_timestamps=1,
        map_metadata=-1,
        fflags="+bitexact",
        segment_format_options="fflags=+bitexact",
    )
    command.run(stream, limits=limits)

    # Where each chunk starts comes from the source's own timestamps (exact), not from the
    # chunks' (Matroska keeps milliseconds: summed over hundreds of chunks that would drift).
    source = timing(src).video_pts
    chunks, first = [], 0
    for index, path in enumerate(sorted((work / "src").glob("c*.mkv"))):
        t = timing(path)
        if t.frames == 0:  # a trailing empty segment: nothing to encode
            path.unlink()
            continue
        if first + t.frames > len(source):
            raise NotMedia(f"{src.name}: the chunks hold more frames than the source")
        chunks.append(SourceChunk(
            index=index, name=f"src/{path.name}", frames=t.frames,
            start_s=round(source[first] - source[0], 6), duration_s=round(t.video_s, 6),
            sha256=sha256(path), regular=not t.irregular()))  # fmt: skip
        first += t.frames
    if not chunks:
        raise NotMedia(f"{src.name}: the split found no video frames")
    return chunks


def output_start(chunk: SourceChunk, fps: float) -> float:
    """Where the chunk's output begins in the source: the tick of the job's ``fps`` grid its
    first frame rounds to (as fps rounds: half up), or its own start when on the grid (every
    chunk of a constant-rate source is; a variable-rate one may start between two ticks)."""
    tick = math.floor(chunk.start_s * fps + 0.5)
    return chunk.start_s if abs(chunk.start_s * fps - tick) < 1e-3 else tick / fps


def keyframe_times(chunk: SourceChunk, segment_s: int | None, fps: float) -> list[float]:
    """Times (relative to the chunk's :func:`output_start`) where a ladder needs keyframes:
    every ``segment_s`` of the source's timeline, so segments line up across chunks and rungs."""
    if not segment_s:
        return []
    start = output_start(chunk, fps)
    times, k = [], math.ceil(round(start / segment_s, 6))
    while k * segment_s < chunk.start_s + chunk.duration_s - 1e-6:
        times.append(round(k * segment_s - start, 6))
        k += 1
    return times


def forced_keyframes(times: list[float], fps: float) -> str:
    """``force_key_frames`` for keyframe ``times``: each a quarter frame early.

    ffmpeg forces the first frame at or after a time; a chunk's relative times carry the
    rounding of its start (8.333333 s), so 12 s - 8.333333 s lands a hair after frame 110 and
    the keyframe on frame 111, one frame late. The first frame within a quarter frame is it.
    """
    return ",".join(f"{max(0.0, t - 0.25 / fps):.6f}" for t in times)


def cache_key(
    chunk: SourceChunk,
    renditions: list[Rendition],
    fps: float,
    keys: list[float],
    ffmpeg_version: str,
    shift_s: float = 0.0,
) -> str:
    """Content address of an encoded chunk: input bytes plus everything that shapes the encode."""
    # An SDR rendition keyed as before colour modes existed: its cached chunks still hit.
    shapes = [{k: v for k, v in asdict(r).items() if v not in ("sdr", None)} for r in renditions]
    shape = {
        "chunk": chunk.sha256,
        "renditions": shapes,
        "fps": fps,
        "keyframes": forced_keyframes(keys, fps),
        "ffmpeg": ffmpeg_version,
        **({"shift_s": shift_s} if shift_s else {}),  # unshifted keys as before: still hit
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def cache_dir(settings: Settings) -> Path:
    """Encoded chunks by content hash, shared by every worker that shares the data dir."""
    return settings.data_dir / "chunk-cache"


def encoded_name(index: int, rendition: str) -> str:
    """File name of an encoded chunk in the job's work dir (a plain name: concat lists)."""
    return f"e{index:05d}.{rendition}.mp4"


def encode_chunk(
    work: Path,
    chunk: SourceChunk,
    renditions: list[Rendition],
    fps: float,
    segment_s: int | None,
    settings: Settings,
    on_progress: command.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode one chunk into every rendition (decode once), or reuse an earlier encode."""
    shift = 0.0 if output_start(chunk, fps) == chunk.start_s else chunk.start_s
    keys = keyframe_times(chunk, segment_s, fps)
    limits = command.Limits.from_settings(settings)
    key = cache_key(chunk, renditions, fps, keys, command.ffmpeg_version(limits), shift)
    cache = cache_dir(settings)
    cached = {r.name: cache / key[:2] / f"{key}.{r.name}.mp4" for r in renditions}
    reused = all(p.is_file() for p in cached.values())
    if not reused:  # another host may have encoded it (shared object-store cache)
        reused = chunk_store.fetch_encoded(key, cached, settings)
    cmd_line, elapsed = None, 0.0
    if not reused:
        _clear_stale(cached, settings.ffmpeg_timeout_s)
        # Same bytes from any worker: whichever renames last wins, and nobody sees half a file.
        with contextlib.ExitStack() as stack:
            tmp = {name: stack.enter_context(atomic_output(p)) for name, p in cached.items()}
            result = command.run(
                chunk_stream(work / chunk.name, renditions, fps, keys, tmp, settings, shift),
                duration_s=chunk.duration_s,
                on_progress=on_progress,
                limits=limits,
            )
        cmd_line, elapsed = result.cmd, result.elapsed_s
        chunk_store.put_encoded(key, cached, settings)
    frames = None
    for r in renditions:
        local = work / encoded_name(chunk.index, r.name)
        local.unlink(missing_ok=True)
        _link_or_copy(cached[r.name], local)
        count = timing(local).frames
        if count != (frames if frames is not None else count):
            raise NotMedia(f"chunk {chunk.index}: renditions hold {frames} and {count} frames")
        frames = count
    return {"part": "chunk", "index": chunk.index, "frames": frames, "source_frames": chunk.frames,
            "regular": chunk.regular, "start_s": chunk.start_s, "duration_s": chunk.duration_s,
            "sha256": chunk.sha256, "key": key, "reused": reused, "encode_s": round(elapsed, 3),
            "command": cmd_line, "hostname": os.uname().nodename, "pid": os.getpid()}  # fmt: skip


def chunk_stream(
    src: Path,
    renditions: list[Rendition],
    fps: float,
    keyframes: list[float],
    targets: dict[str, Path],
    settings: Settings,
    shift_s: float = 0.0,
) -> Any:
    """ffmpeg-python graph: decode the chunk once, constant frame rate, one output per
    rendition, video only (the audio is encoded once for the whole job). ``shift_s``: the
    chunk's start when off the output grid: fps then works on the source's timeline and picks
    the single pass's frames (on the chunk's own, frames by the joins are a frame off)."""
    video = command.input_file(src).video
    if shift_s:  # in microseconds: Matroska's milliseconds would move frames across ticks
        video = video.filter("settb", "AVTB").setpts(f"PTS+{shift_s:.6f}/TB")
    video = video.filter("fps", fps)
    video = video.setpts("PTS-STARTPTS") if shift_s else video
    branches = video.filter_multi_output("split", len(renditions)) if len(renditions) > 1 else None
    outputs = []
    for i, r in enumerate(renditions):
        branch = branches.stream(i) if branches is not None else video
        scaled = hdr.picture(branch, r.width, r.height, r.colour, r.source)
        options = dict(r.options)
        options.pop("force_key_frames", None)
        if keyframes:
            options["force_key_frames"] = forced_keyframes(keyframes, fps)
        if settings.ffmpeg_threads:
            options["threads"] = settings.ffmpeg_threads
        outputs.append(
            ffmpeg.output(
                scaled,
                command.output_target(targets[r.name]),
                an=None,
                map_metadata=-1,
                f="mp4",
                **options,
            )
        )
    return ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]


def audio_stream(src: Path, target: Path, info: ProbeResult, profile: Profile) -> Any:
    """The whole audio track in one piece (per-chunk audio drifts and leaves gaps)."""
    options: dict[str, Any] = {
        "acodec": profile.audio_codec,
        "b:a": f"{profile.audio_bitrate_kbps}k",
    }
    audio = command.input_file(src).audio
    if profile.kind in ("hls", "dash"):  # a ladder's: into MPEG-TS too, the priming would show
        options["ac"] = audio_channels(info)
        audio = aligned_audio(audio)
    return audio.output(command.output_target(target), map_metadata=-1, f="mp4", **options)


def encode_audio(
    src: Path,
    work: Path,
    info: ProbeResult,
    profile: Profile,
    on_progress: command.ProgressCallback | None = None,
    limits: command.Limits = command.DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Encode the job's audio track once into the work dir."""
    with atomic_output(work / "audio.m4a") as tmp:
        result = command.run(
            audio_stream(src, tmp, info, profile),
            duration_s=info.duration_s,
            on_progress=on_progress,
            limits=limits,
        )
    return {"part": "audio", "command": result.cmd, "encode_s": round(result.elapsed_s, 3)}


def write_concat_list(work: Path, rendition: str, chunks: list[dict[str, Any]]) -> Path:
    """The concat demuxer's list of a rendition's encoded chunks, in order, each with its
    exact duration: left to itself the demuxer offsets each chunk by its duration as muxed
    (8.333008 s for 8.333333 s), so a keyframe forced at 12 s arrives at 11.9997 s and
    the HLS segmenter, which cuts at 12 s or after, skips it."""
    path = work / f"concat.{rendition}.txt"
    lines = []
    for c in chunks:
        name = encoded_name(c["index"], rendition)
        lines += [f"file '{name}'", f"duration {exact_video_s(work / name):.6f}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def joined_video(work: Path, rendition: str, chunks: list[dict[str, Any]]) -> Any:
    """The input node of a rendition's chunks played back to back."""
    return command.concat_input(write_concat_list(work, rendition, chunks))


def verify_joins(
    path: Path, chunks: list[dict[str, Any]], info: ProbeResult, *, frame_s: float
) -> dict[str, Any]:
    """Prove a concatenated output is seamless, or raise :class:`NotMedia`.

    Same frame count as the chunks (and as the source, when the source runs at the output's
    constant rate), every frame one frame after the last (so no gap and no overlap at any
    join), and video and audio durations within one frame of the source's.
    """
    t = timing(path)
    name = path.name
    expected = sum(int(c["frames"]) for c in chunks)
    source_frames = sum(int(c["source_frames"]) for c in chunks)
    if t.frames != expected:
        raise NotMedia(f"{name}: {t.frames} frames, the chunks hold {expected}")
    source_rate = (info.video.fps if info.video else None) or 0.0
    same_rate = source_rate > 0 and abs(1 / source_rate - frame_s) < frame_s / 1000
    if same_rate and all(c.get("regular") for c in chunks) and t.frames != source_frames:
        raise NotMedia(f"{name}: {t.frames} frames, the source has {source_frames}")
    joins = list(accumulate(int(c["frames"]) for c in chunks[:-1]))
    irregular = t.irregular(frame_s)
    if irregular:
        at = irregular[0]
        where = f"the join before chunk {joins.index(at) + 1}" if at in joins else "in a chunk"
        raise NotMedia(f"{name}: timestamp gap at frame {at} ({where})")
    source_video = info.video.duration_s if info.video and info.video.duration_s else None
    if source_video and abs(t.video_s - source_video) > frame_s + 1e-3:
        raise NotMedia(f"{name}: video lasts {t.video_s:.3f} s, source {source_video:.3f} s")
    if t.audio_s is not None:
        verify_audio(path, info, frame_s=frame_s, measured_s=t.audio_s)
    return {
        "frames": t.frames,
        "source_frames": source_frames,
        "frame_s": round(t.frame_s, 6),
        "video_s": round(t.video_s, 6),
        "audio_s": None if t.audio_s is None else round(t.audio_s, 6),
        "joins": joins,
    }


def verify_audio(
    path: Path, info: ProbeResult, *, frame_s: float, measured_s: float | None = None
) -> float:
    """The audio of ``path`` lasts as long as the source's, within one video frame."""
    audio_s = timing(path).audio_s if measured_s is None else measured_s
    source = (info.audio.duration_s if info.audio else None) or info.duration_s
    if audio_s is None or abs(audio_s - source) > frame_s + 1e-3:
        raise NotMedia(f"{path.name}: audio lasts {audio_s} s, source {source:.3f} s")
    return audio_s


def _clear_stale(cached: dict[str, Path], older_than_s: float) -> None:
    """Remove what an encode of the same chunk left when its worker was killed: temporary
    files older than the ffmpeg timeout (no live encode can be that old)."""
    now = time.time()
    for path in cached.values():
        for stale in path.parent.glob(f".{path.stem}*"):
            with contextlib.suppress(FileNotFoundError):
                if now - stale.stat().st_mtime > older_than_s:
                    stale.unlink()


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy instead
        shutil.copyfile(src, dst)
