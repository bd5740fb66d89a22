"""The real work of each task, as plain functions testable without a broker.

Tasks in ``tasks/`` only unpack arguments, call one of these, and decide on retry.
Every output is written under a temporary name and renamed into place when complete,
so nobody ever sees half a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python

from mediaapp import chunking, ffmpeg, sprites
from mediaapp.chunking import ChunkPlan, Rendition, SourceChunk
from mediaapp.errors import (
    EmptyInput,
    InputNotFound,
    InputOutsideRoot,
    InvalidInput,
    LimitExceeded,
    NotMedia,
)
from mediaapp.probe import ProbeResult, probe, validate
from mediaapp.profiles import Profile, get_profile
from mediaapp.settings import Settings

log = logging.getLogger(__name__)

#: ``scheme:`` at the start of a name: URLs and ffmpeg protocols (concat:, subfile:, http:...).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Tolerance on output duration against the source: one frame at 24 fps plus one AAC packet.
DURATION_TOLERANCE_S = 1 / 24 + 1024 / 44100


def resolve_input(name: str, settings: Settings) -> Path:
    """Map a job's input name to a regular file inside the media root, or raise a typed error."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("no input file was given")
    if "\x00" in name:
        raise InvalidInput("input name contains a NUL byte")
    if not _is_utf8(name):
        raise InvalidInput(
            f"{name.encode('utf-8', 'backslashreplace').decode()!r}: file name is not valid "
            "UTF-8; rename the file (job messages and logs are UTF-8 JSON)"
        )
    if _SCHEME.match(name) and not (settings.media_root / name).exists():
        raise InputOutsideRoot(f"{name!r}: URLs and ffmpeg protocols are not accepted as input")
    root = settings.media_root
    candidate = Path(name)
    if candidate.is_absolute():
        raise InputOutsideRoot(
            f"{name!r}: absolute paths are not accepted; name a file under {root}"
        )
    if not Path(os.path.normpath(root / candidate)).is_relative_to(root):
        raise InputOutsideRoot(f"{name!r}: '..' leads outside the media root")
    try:
        resolved = (root / candidate).resolve(strict=True)
    except FileNotFoundError:
        raise InputNotFound(f"{name!r}: no such file under the media root") from None
    except (OSError, RuntimeError) as exc:  # symlink loops, name too long, ...
        raise InvalidInput(f"{name!r}: cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):  # a symlink pointing out
        raise InputOutsideRoot(f"{name!r}: resolves outside the media root")
    if not resolved.is_file():
        raise InputNotFound(f"{name!r}: not a regular file")
    size = resolved.stat().st_size
    if size == 0:
        raise EmptyInput(f"{name!r}: the file is empty (0 bytes)")
    if size > settings.max_input_bytes:
        raise LimitExceeded(
            f"{name!r}: {size} bytes, over the limit of {settings.max_input_bytes} bytes"
        )
    return resolved


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode() smuggled undecodable bytes in as surrogates
        return False
    return True


def inspect(
    name: str,
    settings: Settings,
    *,
    needs_video: bool = True,
    decode_s: float | None = None,
    probed: dict[str, Any] | None = None,
) -> tuple[Path, ProbeResult]:
    """Resolve, probe and validate an input before any encode.

    ``decode_s=0`` decodes the first frame only (rotation): for steps after the job's probe
    step, which already decoded the first frames. ``probed``: that step's result, taken as it
    is while the file still has the size it had then (no second probe).
    """
    path = resolve_input(name, settings)
    same_file = probed is not None and probed.get("path") == str(path)
    if probed is not None and same_file and probed.get("size") == path.stat().st_size:
        info = ProbeResult.from_dict(probed)
    else:
        info = probe(path, decode_s=decode_s)
    validate(info, settings, needs_video=needs_video)
    return path, info


def safe_stem(name: str) -> str:
    """A file-name stem that is safe anywhere: no separators, no leading dash or dot."""
    stem = _UNSAFE.sub("_", Path(name).stem).strip("._-")[:80]
    return stem or "output"


def display_size(info: ProbeResult) -> tuple[int, int]:
    """Width and height as the viewer sees them (rotation applied)."""
    video = info.video
    if video is None or not video.width or not video.height:
        raise NotMedia(f"{Path(info.path).name}: no video dimensions")
    if (video.rotation or 0) % 180 == 90:
        return video.height, video.width
    return video.width, video.height


def target_height(info: ProbeResult, max_height: int) -> int:
    """The output height: the profile's, never above the source's, always even."""
    _, height = display_size(info)
    return max(2, min(height, max_height) // 2 * 2)


def web_video_options(profile: Profile, settings: Settings) -> dict[str, Any]:
    """Video encoder options of an ``mp4`` profile (whole-file and chunked encodes alike)."""
    options: dict[str, Any] = {
        "vcodec": profile.video_codec,
        "preset": profile.preset,
        "crf": profile.crf,
        "maxrate": f"{profile.maxrate_kbps}k",
        "bufsize": f"{2 * profile.maxrate_kbps}k",
    }
    if settings.ffmpeg_threads:
        options["threads"] = settings.ffmpeg_threads
    return options


def web_stream(
    src: Path, dst: Path, info: ProbeResult, profile: Profile, settings: Settings
) -> Any:
    """The ffmpeg-python graph of a ``web``-style MP4 (H.264 + AAC, faststart)."""
    inp = ffmpeg.input_file(src)
    height = target_height(info, profile.height)
    from mediaapp.ladder import frame_rate

    # Constant frame rate (a variable-rate source is resampled to its average rate); -2 keeps
    # the aspect ratio with an even width; ffmpeg applies rotation before the filters.
    video = (
        inp.video.filter("fps", frame_rate(info))
        .filter("scale", -2, height)
        .filter("format", "yuv420p")
    )
    streams = [video]
    audio_opts: dict[str, Any] = {"an": None}
    if info.audio is not None:
        streams.append(inp.audio)
        audio_opts = {
            "acodec": profile.audio_codec,
            "audio_bitrate": f"{profile.audio_bitrate_kbps}k",
        }
    out_opts: dict[str, Any] = {
        **web_video_options(profile, settings),
        "map_metadata": -1,
        **audio_opts,
    }
    if profile.faststart:
        out_opts["movflags"] = "+faststart"
    return ffmpeg_python.output(*streams, ffmpeg.output_target(dst), **out_opts)


def poster_stream(src: Path, dst: Path, info: ProbeResult, profile: Profile) -> Any:
    """The ffmpeg-python graph of one poster JPEG taken at ``profile.poster_at`` of the duration."""
    at = max(0.0, min(info.duration_s * profile.poster_at, max(info.duration_s - 0.1, 0.0)))
    inp = ffmpeg.input_file(src, ss=f"{at:.3f}")
    height = target_height(info, profile.poster_height)
    video = inp.video.filter("scale", -2, height)
    return ffmpeg_python.output(
        video, ffmpeg.output_target(dst), vframes=1, format="image2", vcodec="mjpeg", qscale=3
    )


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; rename it into place only on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.part-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def clear_partials(directory: Path) -> None:
    """Remove temporary files an earlier attempt left when its worker was killed mid-write."""
    if directory.is_dir():
        for stale in directory.glob(".*.part-*"):
            stale.unlink(missing_ok=True)


def discard_outputs(job_id: str, settings: Settings) -> None:
    """Remove everything a job wrote (it was cancelled: no partial results stay behind)."""
    directory = job_dir(job_id, settings)
    if directory.is_dir():
        shutil.rmtree(directory, ignore_errors=True)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_output(path: Path, kind: str, settings: Settings) -> dict[str, Any]:
    """Manifest entry of one output, read back from the file itself (opened, not decoded:
    the encoder just wrote it, and the entry's numbers are what verification compares)."""
    info = probe(path, decode_check=False)
    video, audio = info.video, info.audio
    main = video or audio
    return {
        "kind": kind,
        "path": str(path),
        "relpath": str(path.relative_to(settings.output_root)),
        "size": path.stat().st_size,
        "duration_s": info.duration_s,
        "codec": main.codec if main else None,
        "audio_codec": audio.codec if audio else None,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "bit_rate": info.bit_rate,
        "sha256": sha256(path),
    }


def describe_text(
    path: Path, kind: str, settings: Settings, *, duration_s: float
) -> dict[str, Any]:
    """Manifest entry of a text output (WebVTT): no streams to probe, same fields."""
    return {
        "kind": kind,
        "path": str(path),
        "relpath": str(path.relative_to(settings.output_root)),
        "size": path.stat().st_size,
        "duration_s": duration_s,
        "codec": "webvtt",
        "audio_codec": None,
        "width": None,
        "height": None,
        "bit_rate": None,
        "sha256": sha256(path),
    }


def verify_video(entry: dict[str, Any], source: ProbeResult, expected_height: int) -> None:
    """Fail the job if an output does not hold what we promise."""
    if entry["height"] != expected_height:
        raise NotMedia(f"output {entry['relpath']}: height {entry['height']} != {expected_height}")
    if abs(entry["duration_s"] - source.duration_s) > DURATION_TOLERANCE_S + 0.05:
        raise NotMedia(
            f"output {entry['relpath']}: duration {entry['duration_s']:.3f} s differs from "
            f"source {source.duration_s:.3f} s"
        )


def job_dir(job_id: str, settings: Settings) -> Path:
    """Where one job's outputs and manifest live."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", job_id):
        raise InvalidInput(f"job id {job_id!r} is not a safe name")
    return settings.output_root / job_id


def load_manifest(job_id: str, settings: Settings) -> dict[str, Any] | None:
    """The manifest of a job whose outputs are all complete on disk, else None (idempotency)."""
    path = job_dir(job_id, settings) / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    for out in manifest.get("outputs", []):
        p = Path(out["path"])
        if not p.is_file() or p.stat().st_size != out["size"]:
            return None
        if out.get("sha256") and sha256(p) != out["sha256"]:
            return None  # damaged since: do the work again
    return manifest


def write_manifest(manifest: dict[str, Any], settings: Settings) -> Path:
    """Write ``manifest.json`` beside the outputs, atomically."""
    final = job_dir(manifest["job_id"], settings) / "manifest.json"
    with atomic_output(final) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return final


class _Work:
    """What a job's steps produce: outputs, command lines, ffmpeg seconds."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.commands: list[str] = []
        self.encode_s = 0.0

    def run(self, stream: Any, **kwargs: Any) -> None:
        result = ffmpeg.run(stream, **kwargs)
        self.commands.append(result.cmd)
        self.encode_s += result.elapsed_s


def transcode(
    job_id: str,
    name: str,
    profile_name: str,
    settings: Settings,
    on_progress: ffmpeg.ProgressCallback | None = None,
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
    work = _Work()
    stem = safe_stem(name)
    if profile.kind == "mp4":
        _mp4(
            work, src, info, profile, out_dir / f"{stem}.{profile.name}.mp4", settings, on_progress
        )
    if profile.kind in ("mp4", "thumbs"):
        _previews(work, src, info, profile, out_dir, stem, settings)
    if profile.kind == "audio":
        _audio(work, src, info, profile, out_dir, stem, settings, on_progress)
    if profile.kind in ("hls", "dash"):
        from mediaapp import packaging

        packaging.encode_ladder(work, src, info, profile, out_dir, settings, on_progress, strategy)
    manifest = _manifest(job_id, name, profile, info, work, started)
    manifest["strategy"] = strategy if profile.kind in ("hls", "dash") else "single"
    write_manifest(manifest, settings)
    return manifest


def _manifest(
    job_id: str, name: str, profile: Profile, info: ProbeResult, work: _Work, started: float
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "task": "video.transcode",
        "profile": profile.name,
        "kind": profile.kind,
        "input": name,
        "source": info.to_dict(),
        "outputs": work.outputs,
        "ffmpeg_version": ffmpeg.ffmpeg_version(),
        "commands": work.commands,
        "encode_s": round(work.encode_s, 3),
        "elapsed_s": round(time.monotonic() - started, 3),
        "created_at": datetime.now(UTC).isoformat(),
    }


def plan_renditions(job_id: str, name: str, profile_name: str, settings: Settings) -> list[int]:
    """Validate the input of a per-rendition ladder job; return the rung indexes to encode."""
    from mediaapp import ladder, packaging

    profile = get_profile(profile_name)
    _, info = inspect(name, settings)
    out_dir = job_dir(job_id, settings)
    clear_partials(out_dir)
    shutil.rmtree(packaging.stage_dir(out_dir, profile.kind), ignore_errors=True)
    return [r.index for r in ladder.plan_rungs(info, profile)]


def encode_rendition(
    job_id: str,
    name: str,
    profile_name: str,
    index: int,
    settings: Settings,
    on_progress: ffmpeg.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode one rung of a per-rendition ladder job (one Celery task per rung)."""
    from mediaapp import packaging

    profile = get_profile(profile_name)
    src, info = inspect(name, settings)
    work = _Work()
    rung = packaging.encode_rung(
        work, src, info, profile, job_dir(job_id, settings), index, on_progress
    )
    return {"rung": rung.name, "commands": work.commands, "encode_s": round(work.encode_s, 3)}


def package_renditions(
    job_id: str, name: str, profile_name: str, rungs: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """Package the encoded rungs (master playlist, verification) and write the manifest."""
    from mediaapp import packaging

    done = load_manifest(job_id, settings)
    if done is not None:
        return done
    started = time.monotonic()
    profile = get_profile(profile_name)
    _, info = inspect(name, settings)
    work = _Work()
    work.commands = [c for r in rungs for c in r["commands"]]
    work.encode_s = sum(r["encode_s"] for r in rungs)
    packaging.package_hls(work, info, profile, job_dir(job_id, settings), settings)
    manifest = _manifest(job_id, name, profile, info, work, started)
    manifest["strategy"] = "per_rendition"
    write_manifest(manifest, settings)
    return manifest


def can_remux(src: Path, info: ProbeResult, profile: Profile) -> bool:
    """``reencode = "auto"``: the input already is what the profile makes (H.264 yuv420p +
    AAC or no audio, within the target height, no rotation, moov before mdat)."""
    video, audio = info.video, info.audio
    return bool(
        profile.reencode == "auto"
        and video is not None
        and video.codec == "h264"
        and video.pix_fmt == "yuv420p"
        and not video.rotation
        and (video.height or 0) <= profile.height
        and (audio is None or audio.codec == "aac")
        and len(info.streams) == (2 if audio else 1)
        and is_faststart(src)
    )


def is_faststart(path: Path) -> bool:
    """True when an MP4's ``moov`` box comes before its ``mdat`` box."""
    with open(path, "rb") as fh:
        offset = 0
        while True:
            fh.seek(offset)
            header = fh.read(16)
            if len(header) < 8:
                return False
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            if kind == b"moov":
                return True
            if kind == b"mdat" or size < 8:
                return False
            offset += size


def _mp4(
    work: _Work,
    src: Path,
    info: ProbeResult,
    profile: Profile,
    path: Path,
    settings: Settings,
    on_progress: ffmpeg.ProgressCallback | None,
) -> None:
    remux = can_remux(src, info, profile)
    with atomic_output(path) as tmp:
        if remux:  # already right: copy the streams, only make sure of faststart
            stream = ffmpeg.input_file(src).output(
                ffmpeg.output_target(tmp), c="copy", movflags="+faststart", map_metadata=-1
            )
        else:
            stream = web_stream(src, tmp, info, profile, settings)
        work.run(stream, duration_s=info.duration_s, on_progress=on_progress)
    entry = describe_output(path, "video", settings)
    entry["remuxed"] = remux
    verify_video(entry, info, target_height(info, profile.height))
    work.outputs.append(entry)


def _previews(
    work: _Work,
    src: Path,
    info: ProbeResult,
    profile: Profile,
    out_dir: Path,
    stem: str,
    settings: Settings,
) -> None:
    poster_path = out_dir / f"{stem}.poster.jpg"
    with atomic_output(poster_path) as tmp:
        work.run(poster_stream(src, tmp, info, profile))
    preview = sprites.plan(info.duration_s, *display_size(info))
    sprite_path = out_dir / f"{stem}.sprite.jpg"
    vtt_path = out_dir / f"{stem}.thumbs.vtt"
    with atomic_output(sprite_path) as tmp:
        work.run(sprites.sprite_stream(src, tmp, preview))
    with atomic_output(vtt_path) as tmp:
        tmp.write_text(sprites.vtt(preview, sprite_path.name))
    poster = describe_output(poster_path, "poster", settings)
    sprite = describe_output(sprite_path, "sprite", settings)
    if poster["height"] != target_height(info, profile.poster_height):
        raise NotMedia(f"poster {poster['relpath']}: height {poster['height']} is off")
    if (sprite["width"], sprite["height"]) != (
        preview.columns * preview.width,
        preview.rows * preview.height,
    ):
        raise NotMedia(f"sprite {sprite['relpath']}: {sprite['width']}x{sprite['height']} is off")
    work.outputs += [
        poster,
        sprite,
        describe_text(vtt_path, "vtt", settings, duration_s=info.duration_s),
    ]


def _audio(
    work: _Work,
    src: Path,
    info: ProbeResult,
    profile: Profile,
    out_dir: Path,
    stem: str,
    settings: Settings,
    on_progress: ffmpeg.ProgressCallback | None,
) -> None:
    if info.audio is None:
        raise NotMedia(f"{Path(info.path).name}: no audio stream for the audio profile")
    for suffix, codec in ((".m4a", "aac"), (".mp3", "libmp3lame")):
        path = out_dir / f"{stem}.audio{suffix}"
        with atomic_output(path) as tmp:
            stream = ffmpeg.input_file(src).audio.output(
                ffmpeg.output_target(tmp),
                acodec=codec,
                audio_bitrate=f"{profile.audio_bitrate_kbps}k",
                map_metadata=-1,
                **({"movflags": "+faststart"} if suffix == ".m4a" else {}),
            )
            work.run(stream, duration_s=info.duration_s, on_progress=on_progress)
        entry = describe_output(path, "audio", settings)
        tolerance = 1024 / (info.audio.sample_rate or 44100) + 0.05
        if abs(entry["duration_s"] - (info.audio.duration_s or info.duration_s)) > tolerance:
            raise NotMedia(f"output {entry['relpath']}: duration {entry['duration_s']} s is off")
        work.outputs.append(entry)


def thumbnail(
    job_id: str, name: str, settings: Settings, profile_name: str = "web"
) -> dict[str, Any]:
    """Make one poster JPEG for ``name``; return its manifest entry."""
    profile = get_profile(profile_name)
    src, info = inspect(name, settings)
    final = job_dir(job_id, settings) / f"{safe_stem(name)}.poster.jpg"
    with atomic_output(final) as tmp:
        result = ffmpeg.run(poster_stream(src, tmp, info, profile))
    return {**describe_output(final, "poster", settings), "command": result.cmd}


def probe_input(name: str, settings: Settings) -> dict[str, Any]:
    """Probe ``name`` (relative to the media root) without any media-type requirement."""
    _, info = inspect(name, settings, needs_video=False)
    return info.to_dict()


# Chunked parallel encoding (see mediaapp/chunking.py for the picture). Each function is one
# task's work; the tasks only carry their arguments and results between workers.

#: What the manifest keeps of each chunk.
_CHUNK_FIELDS = (
    *("index", "frames", "start_s", "duration_s"),
    *("reused", "encode_s", "hostname", "pid"),
)
#: Profile kinds whose video can be encoded in chunks.
CHUNKABLE = ("mp4", "hls", "dash")


def renditions(info: ProbeResult, profile: Profile, settings: Settings) -> list[Rendition]:
    """The video outputs a chunk is encoded into: the mp4, or every rung of the ladder."""
    from mediaapp import ladder

    if profile.kind == "mp4":
        height = target_height(info, profile.height)
        return [Rendition("video", height, web_video_options(profile, settings))]
    return [
        Rendition(r.name, r.height, ladder.video_options(r, info, profile))
        for r in ladder.plan_rungs(info, profile)
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
    outputs = renditions(info, profile, settings) if chunkable else []
    width, height = display_size(info) if chunkable else (0, 1)
    verdict = chunking.plan(
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
    on_progress: ffmpeg.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode (or reuse) one chunk of a chunked job into every rendition."""
    from mediaapp import ladder

    profile = get_profile(profile_name)
    _, info = inspect(name, settings, decode_s=0)
    return chunking.encode_chunk(
        chunking.work_dir(job_dir(job_id, settings)),
        SourceChunk(**chunk),
        renditions(info, profile, settings),
        ladder.frame_rate(info),
        _segment_s(profile),
        settings,
        on_progress,
    )


def encode_job_audio(
    job_id: str,
    name: str,
    profile_name: str,
    settings: Settings,
    on_progress: ffmpeg.ProgressCallback | None = None,
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
    work = _Work()
    _previews(work, src, info, profile, job_dir(job_id, settings), safe_stem(name), settings)
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
    from mediaapp import ladder, packaging

    done = load_manifest(job_id, settings)
    if done is not None:
        return done
    started = time.monotonic()
    profile = get_profile(profile_name)
    src, info = inspect(name, settings, decode_s=0)
    out_dir = job_dir(job_id, settings)
    wd = chunking.work_dir(out_dir)
    chunks = sorted((p for p in parts if p["part"] == "chunk"), key=lambda c: c["index"])
    work = _Work()
    for part in parts:
        work.commands += [c for c in (part.get("command"), *part.get("commands", ())) if c]
        work.encode_s += part.get("encode_s") or 0.0
    frame_s = 1 / ladder.frame_rate(info)
    audio = wd / "audio.m4a" if info.audio is not None else None
    joins: dict[str, dict[str, Any]] = {}
    if profile.kind == "mp4":  # the chunks straight into the final file, audio muxed in
        final = out_dir / f"{safe_stem(name)}.{profile.name}.mp4"
        with atomic_output(final) as tmp:
            streams = [chunking.joined_video(wd, "video", chunks).video]
            if audio is not None:
                streams.append(ffmpeg.input_file(audio).audio)
            joined_out = ffmpeg_python.output(
                *streams, ffmpeg.output_target(tmp), c="copy", f="mp4",
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
        for r in renditions(info, profile, settings):
            path = wd / f"joined.{r.name}.mp4"
            concat = chunking.joined_video(wd, r.name, chunks)
            work.run(concat.output(ffmpeg.output_target(path), c="copy", f="mp4"))
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
