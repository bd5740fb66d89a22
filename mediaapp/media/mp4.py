"""Single-file outputs: the web MP4, its previews (poster, sprite, WebVTT), audio files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import FFmpegError, NotMedia, TransientError
from mediaapp.media import command, hdr, sprites
from mediaapp.media.context import JobContext
from mediaapp.media.inputs import display_size, target_height, target_size
from mediaapp.media.outputs import (
    OutputEntry,
    Work,
    atomic_output,
    duration_tolerance,
    verify_video,
)
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile
from mediaapp.media.renditions import frame_rate
from mediaapp.settings import Settings


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
    inp = command.input_file(src)
    mode = hdr.mode(info.colour, profile.codec)
    # Constant frame rate (a variable-rate source is resampled to its average rate); sized on
    # the short side with square pixels; ffmpeg applies rotation before the filters; an HDR
    # source tone-mapped to BT.709 SDR.
    video = hdr.picture(
        inp.video.filter("fps", frame_rate(info)),
        *target_size(info, profile.height),
        mode,
        info.colour,
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
        **hdr.encoder_options(mode, info.colour),
        "map_metadata": -1,
        **audio_opts,
    }
    if profile.faststart:
        out_opts["movflags"] = "+faststart"
    return ffmpeg.output(*streams, command.output_target(dst), **out_opts)


def poster_stream(
    src: Path, dst: Path, info: ProbeResult, profile: Profile, *, from_start: bool = False
) -> Any:
    """The ffmpeg-python graph of one poster JPEG taken at ``profile.poster_at`` of the duration
    (``from_start``: decoded from the start up to there, not reached by an input seek)."""
    at = max(0.0, min(info.duration_s * profile.poster_at, max(info.duration_s - 0.1, 0.0)))
    seek = {"ss": f"{at:.3f}"}
    inp = command.input_file(src, **({} if from_start else seek))
    width, height = target_size(info, profile.poster_height)
    video = inp.video.filter("scale", width, height).filter("setsar", 1)
    if info.colour is not None and info.colour.is_hdr:  # a JPEG is SDR: tone-map it too
        video = hdr.tonemap(video, info.colour)
    return ffmpeg.output(video, command.output_target(dst), vframes=1, format="image2",
                         vcodec="mjpeg", qscale=3, **(seek if from_start else {}))  # fmt: skip


def run_poster(work: Work, src: Path, dst: Path, info: ProbeResult, profile: Profile) -> None:
    """The poster by a fast input seek, else decoded from the start: an MPEG-TS has no index,
    and when no keyframe follows the point its demuxer seeks to, no frame reaches the encoder
    (ffmpeg exits 234, "received no packets")."""
    try:
        work.run(poster_stream(src, dst, info, profile))
    except FFmpegError as exc:
        if isinstance(exc, TransientError) or "received no packets" not in exc.stderr:
            raise
        work.run(poster_stream(src, dst, info, profile, from_start=True))


def can_remux(src: Path, info: ProbeResult, profile: Profile) -> bool:
    """``reencode = "auto"``: the input already is what the profile makes (H.264 yuv420p +
    AAC or no audio, within the target height, no rotation, moov before mdat, SDR)."""
    video, audio = info.video, info.audio
    return bool(
        profile.reencode == "auto"
        and video is not None
        and video.codec == "h264"
        and video.pix_fmt == "yuv420p"
        and not video.rotation
        and not (video.colour is not None and video.colour.is_hdr)
        and min(video.width or 0, video.height or 0) <= profile.height
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


def encode_mp4(
    work: Work, ctx: JobContext, on_progress: command.ProgressCallback | None = None
) -> None:
    """The profile's MP4 (a remux when the input already is one), verified."""
    src, info, profile = ctx.src, ctx.source, ctx.profile
    path = ctx.out_dir / f"{ctx.stem}.{profile.name}.mp4"
    remux = can_remux(src, info, profile)
    with atomic_output(path) as tmp:
        if remux:  # already right: copy the streams, only make sure of faststart
            stream = command.input_file(src).output(
                command.output_target(tmp), c="copy", movflags="+faststart", map_metadata=-1
            )
        else:
            stream = web_stream(src, tmp, info, profile, ctx.settings)
        work.run(stream, duration_s=info.duration_s, on_progress=on_progress)
    entry = OutputEntry.of_media(path, "video", ctx.settings.output_root, remuxed=remux)
    verify_video(entry, info, target_height(info, profile.height))
    verify_colour(entry, info, profile)
    work.outputs.append(entry)


def verify_colour(entry: OutputEntry, info: ProbeResult, profile: Profile) -> None:
    """The MP4's colour is what its mode promises (:func:`hdr.verify`); recorded in its entry."""
    mode = hdr.mode(info.colour, profile.codec)
    found = hdr.verify(Path(entry.path), mode, info.colour, entry.relpath)
    entry.extra["colour"] = found.to_dict()


def encode_previews(work: Work, ctx: JobContext) -> None:
    """Poster, sprite sheet and the WebVTT track that maps time ranges to its tiles."""
    src, info, profile, root = ctx.src, ctx.source, ctx.profile, ctx.settings.output_root
    poster_path = ctx.out_dir / f"{ctx.stem}.poster.jpg"
    with atomic_output(poster_path) as tmp:
        run_poster(work, src, tmp, info, profile)
    preview = sprites.plan(info.duration_s, *display_size(info))
    sprite_path = ctx.out_dir / f"{ctx.stem}.sprite.jpg"
    vtt_path = ctx.out_dir / f"{ctx.stem}.thumbs.vtt"
    with atomic_output(sprite_path) as tmp:
        hdr_source = info.colour is not None and info.colour.is_hdr
        work.run(sprites.sprite_stream(src, tmp, preview, tonemap=hdr_source, source=info.colour))
    with atomic_output(vtt_path) as tmp:
        tmp.write_text(sprites.vtt(preview, sprite_path.name))
    poster = OutputEntry.of_media(poster_path, "poster", root)
    sprite = OutputEntry.of_media(sprite_path, "sprite", root)
    if poster.height != target_height(info, profile.poster_height):
        raise NotMedia(f"poster {poster.relpath}: height {poster.height} is off")
    if (sprite.width, sprite.height) != (
        preview.columns * preview.width,
        preview.rows * preview.height,
    ):
        raise NotMedia(f"sprite {sprite.relpath}: {sprite.width}x{sprite.height} is off")
    vtt = OutputEntry.of_files(
        vtt_path, "vtt", root, [vtt_path], duration_s=info.duration_s, codec="webvtt"
    )
    work.outputs += [poster, sprite, vtt]


def encode_audio_files(
    work: Work, ctx: JobContext, on_progress: command.ProgressCallback | None = None
) -> None:
    """The audio profile: AAC in M4A and MP3, each checked against the source's duration."""
    info = ctx.source
    if info.audio is None:
        raise NotMedia(f"{Path(info.path).name}: no audio stream for the audio profile")
    for suffix, codec in ((".m4a", "aac"), (".mp3", "libmp3lame")):
        path = ctx.out_dir / f"{ctx.stem}.audio{suffix}"
        with atomic_output(path) as tmp:
            stream = command.input_file(ctx.src).audio.output(
                command.output_target(tmp),
                acodec=codec,
                audio_bitrate=f"{ctx.profile.audio_bitrate_kbps}k",
                map_metadata=-1,
                **({"movflags": "+faststart"} if suffix == ".m4a" else {}),
            )
            work.run(stream, duration_s=info.duration_s, on_progress=on_progress)
        entry = OutputEntry.of_media(path, "audio", ctx.settings.output_root)
        source_s = info.audio.duration_s or info.duration_s
        if abs(entry.duration_s - source_s) > duration_tolerance(info):
            raise NotMedia(f"output {entry.relpath}: duration {entry.duration_s} s is off")
        work.outputs.append(entry)


def thumbnail(work: Work, ctx: JobContext) -> OutputEntry:
    """One poster JPEG of the input (the ``video.thumbnail`` job)."""
    final = ctx.out_dir / f"{ctx.stem}.poster.jpg"
    with atomic_output(final) as tmp:
        run_poster(work, ctx.src, tmp, ctx.source, ctx.profile)
    entry = OutputEntry.of_media(final, "poster", ctx.settings.output_root)
    work.outputs.append(entry)
    return entry
