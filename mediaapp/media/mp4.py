"""Single-file outputs: the web MP4, its previews (poster, sprite, WebVTT), audio files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import (
    NotMedia,
)
from mediaapp.media import command, sprites
from mediaapp.media.inputs import (
    display_size,
    inspect,
    safe_stem,
    scale_square,
    target_height,
    target_size,
)
from mediaapp.media.outputs import (
    Work,
    atomic_output,
    describe_output,
    describe_text,
    job_dir,
    verify_video,
)
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile, get_profile
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
    # Constant frame rate (a variable-rate source is resampled to its average rate); sized on
    # the short side with square pixels; ffmpeg applies rotation before the filters.
    video = scale_square(
        inp.video.filter("fps", frame_rate(info)), *target_size(info, profile.height)
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
    return ffmpeg.output(*streams, command.output_target(dst), **out_opts)


def poster_stream(src: Path, dst: Path, info: ProbeResult, profile: Profile) -> Any:
    """The ffmpeg-python graph of one poster JPEG taken at ``profile.poster_at`` of the duration."""
    at = max(0.0, min(info.duration_s * profile.poster_at, max(info.duration_s - 0.1, 0.0)))
    inp = command.input_file(src, ss=f"{at:.3f}")
    width, height = target_size(info, profile.poster_height)
    video = inp.video.filter("scale", width, height).filter("setsar", 1)
    return ffmpeg.output(
        video, command.output_target(dst), vframes=1, format="image2", vcodec="mjpeg", qscale=3
    )


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
    work: Work,
    src: Path,
    info: ProbeResult,
    profile: Profile,
    path: Path,
    settings: Settings,
    on_progress: command.ProgressCallback | None,
) -> None:
    remux = can_remux(src, info, profile)
    with atomic_output(path) as tmp:
        if remux:  # already right: copy the streams, only make sure of faststart
            stream = command.input_file(src).output(
                command.output_target(tmp), c="copy", movflags="+faststart", map_metadata=-1
            )
        else:
            stream = web_stream(src, tmp, info, profile, settings)
        work.run(stream, duration_s=info.duration_s, on_progress=on_progress)
    entry = describe_output(path, "video", settings)
    entry["remuxed"] = remux
    verify_video(entry, info, target_height(info, profile.height))
    work.outputs.append(entry)


def encode_previews(
    work: Work,
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


def encode_audio_files(
    work: Work,
    src: Path,
    info: ProbeResult,
    profile: Profile,
    out_dir: Path,
    stem: str,
    settings: Settings,
    on_progress: command.ProgressCallback | None,
) -> None:
    if info.audio is None:
        raise NotMedia(f"{Path(info.path).name}: no audio stream for the audio profile")
    for suffix, codec in ((".m4a", "aac"), (".mp3", "libmp3lame")):
        path = out_dir / f"{stem}.audio{suffix}"
        with atomic_output(path) as tmp:
            stream = command.input_file(src).audio.output(
                command.output_target(tmp),
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
        result = command.run(poster_stream(src, tmp, info, profile))
    return {**describe_output(final, "poster", settings), "command": result.cmd}
