"""The ladder: which rungs a source gets, their encoder options, and the ffmpeg graphs that
encode them (packaging them as HLS or DASH is :mod:`mediaapp.media.packaging`).

A rung's height is its short side (a portrait 1080x1920 source gets a "1080p" rung of
1080x1920, as on the big platforms); rungs above the source's short side are skipped (never
upscaled), and a source smaller than the lowest rung gets one rung at its own size. Every rung
has the same constant frame rate, square pixels and keyframes forced every ``segment_s``
seconds (no scene-cut keyframes), so segments line up across rungs and a player can switch at
any boundary.

Two strategies, measured in ``bench/ladder.py`` (figures in the README):

* ``single``: one ffmpeg process decodes the source once and ``split``s it into every rung;
* ``per_rendition``: one ffmpeg process per rung (each decodes the source again), which lets
  each rung be its own Celery task on any worker.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.errors import NotMedia
from mediaapp.media import command, hdr
from mediaapp.media.inputs import display_size, fit
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile

AAC_LC = "mp4a.40.2"
#: Samples of silence ffmpeg's AAC encoder puts before the audio (its ``initial_padding``).
AAC_PRIMING = 1024
#: The fMP4 initialisation segment of an HEVC rung, beside its media segments.
INIT_SEGMENT = "init.mp4"


@dataclass(frozen=True)
class PlannedRung:
    """A rung as it will be encoded for this source."""

    index: int
    short: int  # the profile's nominal height: the short side of the picture
    video_kbps: int
    width: int
    height: int
    crf: int | None = None  # per-title: the CRF the search chose (video_kbps is then the cap)

    @property
    def name(self) -> str:
        """Directory name of the rung (``2_480p``, whichever way the picture is turned)."""
        return f"{self.index}_{self.short}p"


def plan_rungs(info: ProbeResult, profile: Profile) -> list[PlannedRung]:
    """The rungs to encode for this source, highest first."""

    width, height = display_size(info)
    short = min(width, height)
    fitting = [r for r in profile.rungs if r.height <= short]
    if not fitting:
        size = fit(width, height, short)
        last = profile.rungs[-1]
        return [PlannedRung(0, min(size), last.video_kbps, *size, crf=last.crf)]
    return [
        PlannedRung(i, r.height, r.video_kbps, *fit(width, height, r.height), crf=r.crf)
        for i, r in enumerate(fitting)
    ]


def frame_rate(info: ProbeResult) -> float:
    """The constant output frame rate: the source's (rounded to 3 decimals), else 30."""
    fps = info.video.fps if info.video else None
    return round(fps, 3) if fps and 1 <= fps <= 120 else 30.0


def gop_frames(info: ProbeResult, profile: Profile) -> int:
    """Frames between forced keyframes: one segment."""
    return max(1, round(frame_rate(info) * profile.segment_s))


def video_options(
    rung: PlannedRung, info: ProbeResult, profile: Profile, suffix: str = ""
) -> dict[str, Any]:
    """Encoder options of a rung. HLS (MPEG-TS) rungs have no B-frames: TS has no edit list, so
    their reordering delay would start the picture 2 frames after 0, and hls.js and Shaka
    anchor 0 at the first decode time (Shaka jumps that gap). fMP4 (DASH) keeps them. The
    colour options (tone-mapped BT.709 tags, HEVC Main10 HDR) come from :mod:`hdr`."""
    gop = gop_frames(info, profile)
    colour = {} if suffix else hdr.encoder_options(colour_mode(info, profile), info.colour)
    rate = (  # per-title: constant quality at the chosen CRF, capped at video_kbps
        {f"crf:v{suffix}": rung.crf, f"maxrate:v{suffix}": f"{rung.video_kbps}k"}
        if rung.crf is not None
        else {f"b:v{suffix}": f"{rung.video_kbps}k",
              f"maxrate:v{suffix}": f"{round(rung.video_kbps * 1.07)}k"}
    )  # fmt: skip
    return rate | {
        f"bufsize:v{suffix}": f"{2 * rung.video_kbps}k",
    } | ({} if suffix else {
        "vcodec": profile.video_codec, "preset": profile.preset, "g": gop, "keyint_min": gop,
        "sc_threshold": 0, "force_key_frames": f"expr:gte(t,n_forced*{profile.segment_s})",
    }) | ({"bf": 0} if profile.kind == "hls" else {}) | colour  # fmt: skip


def colour_mode(info: ProbeResult, profile: Profile) -> str:
    """What the rungs do with the source's colour (see :func:`mediaapp.media.hdr.mode`)."""
    return hdr.mode(info.colour, profile.codec)


def audio_channels(info: ProbeResult) -> int:
    """Channels of a ladder's audio: the source's, at most two (5.1 is downmixed to stereo).
    Mono stays mono: two copies of one channel would double every rung's AAC encode."""
    channels = info.audio.channels if info.audio is not None else None
    return min(channels or 2, 2)


def _audio_options(info: ProbeResult, profile: Profile) -> dict[str, Any]:
    if info.audio is None:
        return {"an": None}
    return {"acodec": "aac", "b:a": f"{profile.audio_bitrate_kbps}k", "ac": audio_channels(info)}


def aligned_audio(audio: Any) -> Any:
    """The audio, less the AAC priming's worth of samples, so the first packet lands at 0.

    MPEG-TS has no edit list to hide the priming: the audio would start 23 ms before the
    video and hls.js sees a hole at the start. Dropped from the source, the samples that
    follow keep their times, so the audio stays in sync and starts with the video.
    """
    return audio.filter("atrim", start_sample=AAC_PRIMING)


def hls_options(rung_dir: Path, profile: Profile, *, fmp4: bool = False) -> dict[str, Any]:
    """The HLS muxer's options; no mux delay, so the first segment starts at 0, not 1.4 s.
    HEVC goes in fMP4 segments (``hvc1`` sample entries), as Apple's players need, and so
    does every variant of a CMAF package (``fmp4``)."""
    options: dict[str, Any] = {
        "muxdelay": 0,
        "muxpreload": 0,
        "f": "hls",
        "hls_time": profile.segment_s,
        "hls_playlist_type": "vod",
        "hls_flags": "independent_segments",
        "hls_segment_filename": command.output_target(rung_dir / "seg_%03d.ts"),
    }
    if fmp4 or profile.codec == "hevc":
        options |= {
            "hls_segment_type": "fmp4",
            "hls_fmp4_init_filename": INIT_SEGMENT,
            "hls_segment_filename": command.output_target(rung_dir / "seg_%03d.m4s"),
        }
    return options


def _scaled(video: Any, rung: PlannedRung, info: ProbeResult, profile: Profile) -> Any:
    return hdr.picture(video, rung.width, rung.height, colour_mode(info, profile), info.colour)


def hls_single_stream(src: Path, out_dir: Path, info: ProbeResult, profile: Profile) -> Any:
    """One ffmpeg process: decode once, constant frame rate, ``split`` into every rung."""
    rungs = plan_rungs(info, profile)
    inp = command.input_file(src)
    video = inp.video.filter("fps", frame_rate(info))
    branches = video.filter_multi_output("split", len(rungs))
    sound = aligned_audio(inp.audio).filter_multi_output("asplit", len(rungs))
    outputs = []
    for rung in rungs:
        rung_dir = out_dir / rung.name
        rung_dir.mkdir(parents=True, exist_ok=True)
        streams = [_scaled(branches.stream(rung.index), rung, info, profile)]
        if info.audio is not None:
            streams.append(sound.stream(rung.index))
        outputs.append(
            ffmpeg.output(
                *streams,
                command.output_target(rung_dir / "index.m3u8"),
                **video_options(rung, info, profile),
                **_audio_options(info, profile),
                **hls_options(rung_dir, profile),
            )
        )
    return ffmpeg.merge_outputs(*outputs)


def hls_rung_stream(
    src: Path, out_dir: Path, info: ProbeResult, profile: Profile, rung: PlannedRung
) -> Any:
    """One rung on its own (the per-rendition strategy): same options, its own decode."""
    rung_dir = out_dir / rung.name
    rung_dir.mkdir(parents=True, exist_ok=True)
    inp = command.input_file(src)
    streams = [_scaled(inp.video.filter("fps", frame_rate(info)), rung, info, profile)]
    if info.audio is not None:
        streams.append(aligned_audio(inp.audio))
    return ffmpeg.output(
        *streams,
        command.output_target(rung_dir / "index.m3u8"),
        **video_options(rung, info, profile),
        **_audio_options(info, profile),
        **hls_options(rung_dir, profile),
    )


def hls_copy_stream(joined: Path, audio: Path | None, rung_dir: Path, profile: Profile) -> Any:
    """One rung packaged from its already encoded video (chunked strategy): copy, no encode.

    The keyframes every ``segment_s`` were forced in every chunk, so the segmenter cuts
    exactly where the other rungs cut.
    """
    rung_dir.mkdir(parents=True, exist_ok=True)
    streams = [command.input_file(joined).video]
    if audio is not None:
        streams.append(command.input_file(audio).audio)
    return ffmpeg.output(
        *streams,
        command.output_target(rung_dir / "index.m3u8"),
        c="copy",
        **hls_options(rung_dir, profile),
    )


def _dash_sets(videos: int, audio: bool) -> str:
    """One adaptation set per rung (merged after muxing: see ``manifests.fix_mpd``), audio."""
    sets = [f"id={i},streams={i}" for i in range(videos)]
    return " ".join(sets + ([f"id={videos},streams=a"] if audio else []))


def dash_copy_stream(
    joined: list[Path], audio: Path | None, out_dir: Path, profile: Profile
) -> Any:
    """The ladder packaged as DASH from already encoded rungs (chunked strategy): copy."""
    streams = [command.input_file(path).video for path in joined]
    sets = _dash_sets(len(joined), audio is not None)
    if audio is not None:
        streams.append(command.input_file(audio).audio)
    return ffmpeg.output(
        *streams,
        command.output_target(out_dir / "manifest.mpd"),
        c="copy",
        f="dash",
        seg_duration=profile.segment_s,
        use_template=1,
        use_timeline=1,
        adaptation_sets=sets,
    )


def dash_stream(src: Path, out_dir: Path, info: ProbeResult, profile: Profile) -> Any:
    """The ladder as DASH in one process: one video adaptation set, one audio."""
    rungs = plan_rungs(info, profile)
    inp = command.input_file(src)
    branches = inp.video.filter("fps", frame_rate(info)).filter_multi_output("split", len(rungs))
    streams = [_scaled(branches.stream(r.index), r, info, profile) for r in rungs]
    options: dict[str, Any] = {}
    for r in rungs:
        options |= video_options(r, info, profile, suffix=f":{r.index}")
    options |= {k: v for k, v in video_options(rungs[0], info, profile).items()
                if not k.startswith(("b:v", "crf:v", "maxrate", "bufsize"))}  # fmt: skip
    sets = _dash_sets(len(rungs), info.audio is not None)
    if info.audio is not None:
        streams.append(inp.audio)
    return ffmpeg.output(
        *streams,
        command.output_target(out_dir / "manifest.mpd"),
        **options,
        **_audio_options(info, profile),
        f="dash",
        seg_duration=profile.segment_s,
        use_template=1,
        use_timeline=1,
        adaptation_sets=sets,
    )


def media_playlist(path: Path) -> list[tuple[float, str]]:
    """(duration, file) of each segment of an HLS media playlist."""
    segments, duration = [], 0.0
    for line in path.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            segments.append((duration, line))
    return segments


def init_segment(playlist: Path) -> Path | None:
    """The fMP4 initialisation segment a media playlist maps (``EXT-X-MAP``), if any."""
    found = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.read_text())
    return playlist.parent / found[1] if found else None


def hevc_codec(hvcc: bytes) -> str:
    """The CODECS string of an HEVC stream, from its ``hvcC`` record (ISO/IEC 14496-15
    annex E): ``hvc1.<space><profile>.<compatibility, bit-reversed>.<tier><level>.<constraints>``,
    e.g. ``hvc1.2.4.L93.90`` for Main10."""
    if len(hvcc) < 13 or hvcc[0] != 1:
        raise NotMedia("HEVC stream without an hvcC configuration record")
    space = ("", "A", "B", "C")[hvcc[1] >> 6]
    compat = int(f"{int.from_bytes(hvcc[2:6], 'big'):032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and not constraints[-1]:
        constraints.pop()
    tier = "H" if hvcc[1] & 0x20 else "L"
    parts = [f"hvc1.{space}{hvcc[1] & 0x1F}", f"{compat:X}", f"{tier}{hvcc[12]}"]
    return ".".join(parts + [f"{b:02X}" for b in constraints])


def expected_segments(duration_s: float, segment_s: int, frame_s: float = 0.0) -> int:
    """Segments a rung of ``duration_s`` must have (the last one may be short). Given the
    frame duration, one for each multiple of ``segment_s`` a frame starts at or after (the
    forced keyframes): none when the last frame starts just before it (120 frames at 29.97
    fps last 4.004 s in one 4 s segment)."""
    if frame_s > 0:
        return max(1, math.floor(round((duration_s - frame_s) / segment_s, 6)) + 1)
    return max(1, math.ceil(round(duration_s, 3) / segment_s))


_ATTR = re.compile(r'([A-Z-]+)=("[^"]*"|[^,]*)')


def parse_master(text: str) -> list[dict[str, str]]:
    """The attributes and URI of each variant of a master playlist."""
    variants, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(line.split(":", 1)[1])}
            attrs["URI"] = lines[i + 1]
            variants.append(attrs)
    return variants
