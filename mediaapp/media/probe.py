"""Read what a media file holds, in-process, with PyAV.

Why PyAV and not ffprobe: the ``imageio-ffmpeg`` wheel ships ffmpeg but no ffprobe, and
PyAV's wheel carries its own libav* libraries, so ``pip install`` alone gives both. It also
hands us numbers instead of text to parse, and decoding the first frame here doubles as the
"can this actually be decoded" check and as the only way to read rotation (display matrix).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging

from mediaapp import defaults
from mediaapp.errors import LimitExceeded, NotMedia
from mediaapp.media import colour as colours
from mediaapp.media.colour import Colour
from mediaapp.media.phases import timed
from mediaapp.settings import Settings

log = logging.getLogger(__name__)

# Library messages reach Python logging, and Capture() can read why a decode failed.
av.logging.set_level(av.logging.ERROR)

#: The decode check before any encode: this many seconds of video, at most this many frames.
#: A dozen frames prove the stream decodes (codec, headers, first GOP) as well as a hundred
#: would, at a tenth of the cost (0.3 s for 2 s of 1080p was most of the pipeline's overhead);
#: damage later in the file is met by the encode itself.
DECODE_CHECK_S = 0.5
DECODE_CHECK_FRAMES = 12

#: Demuxers PyAV may use: real media containers only, never playlists (hls, concat, ...) that
#: could make the library open other files.
SAFE_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,h264,hevc,"
    "m4v,wav,mp3,aac,ogg,flac,image2,png_pipe,jpeg_pipe,mjpeg,asf,gif"
)


@dataclass
class StreamInfo:
    """One stream of a probed file."""

    index: int
    type: str  # video | audio | subtitle | data
    codec: str
    bit_rate: int | None = None
    duration_s: float | None = None
    #: Where the stream's first timestamp is, from the file's first (a late video or audio).
    start_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int | None = None
    #: Video: the pixels' aspect ratio ("64:45") when not square (anamorphic: 720x576 shown
    #: 16:9); None for square pixels or none given.
    sar: str | None = None
    pix_fmt: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    #: Video: transfer, primaries, matrix, bit depth; the HDR side data once a frame is decoded.
    colour: Colour | None = None
    #: Subtitles: the tagged language, the default/forced flags (captions.py converts them).
    language: str | None = None
    default: bool | None = None
    forced: bool | None = None


@dataclass
class ProbeResult:
    """What a file holds: the container, its streams, and the numbers a profile needs."""

    path: str
    size: int
    format: str
    duration_s: float
    bit_rate: int | None
    streams: list[StreamInfo] = field(default_factory=list)

    @property
    def video(self) -> StreamInfo | None:
        """The first video stream, if any."""
        return next((s for s in self.streams if s.type == "video"), None)

    @property
    def colour(self) -> Colour | None:
        """The first video stream's colour (None without video)."""
        return self.video.colour if self.video else None

    @property
    def audio(self) -> StreamInfo | None:
        """The first audio stream, if any."""
        return next((s for s in self.streams if s.type == "audio"), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in manifests (a video stream's colour with ``is_hdr``)."""
        data = asdict(self)
        for stream, out in zip(self.streams, data["streams"], strict=True):
            out["colour"] = stream.colour.to_dict() if stream.colour else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        """Back from :meth:`to_dict` (the job context carries it to later steps)."""
        streams = []
        for s in data.get("streams", []):
            colour = Colour.from_dict(s["colour"]) if s.get("colour") else None
            streams.append(StreamInfo(**{**s, "colour": colour}))
        return cls(**{**data, "streams": streams})


@timed("probe")
def probe(
    path: Path,
    *,
    decode_check: bool = True,
    decode_s: float | None = None,
    max_pixels: int = defaults.MAX_PIXELS,
) -> ProbeResult:
    """Open ``path`` (a local file only), list its streams, and decode the first video frame.

    Raises :class:`NotMedia` when the file cannot be opened as media or its first video frame
    cannot be decoded.
    """
    path = Path(path).resolve()
    size = path.stat().st_size
    log.info("probe %s", path)  # one line per probe: tests count them per job
    try:
        container = av.open(
            f"file:{path}",
            options={"protocol_whitelist": "file", "format_whitelist": SAFE_FORMATS},
            timeout=30.0,
        )
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise NotMedia(f"{path.name}: not a media file ffmpeg can open ({_reason(exc)})") from None
    with container:
        start = container.start_time
        streams = [_stream_info(s, start) for s in container.streams]
        duration = _span(container)
        if not duration:
            duration = max((s.duration_s or 0.0 for s in streams), default=0.0)
        result = ProbeResult(
            path=str(path),
            size=size,
            format=container.format.name,
            duration_s=round(duration, 6),
            bit_rate=container.bit_rate or None,
            streams=streams,
        )
        if decode_check and result.video is not None:
            seconds = DECODE_CHECK_S if decode_s is None else decode_s
            _decode_first_frame(container, result, max_pixels, seconds)
    return result


def _span(container: Any) -> float:
    """Seconds from the first timestamp to the end: Matroska's Duration, as ffmpeg writes it,
    is the end timestamp, so streams starting at 1.4 s made a 6 s file 7.4 s long (the other
    demuxers already give end minus start)."""
    if not container.duration:
        return 0.0
    seconds: float = container.duration / 1_000_000
    if container.format.name == "matroska,webm" and (container.start_time or 0) > 0:
        seconds -= container.start_time / 1_000_000
    return max(seconds, 0.0)


def validate(result: ProbeResult, settings: Settings, *, needs_video: bool = True) -> None:
    """Refuse inputs a profile cannot use or that exceed the configured limits."""
    name = Path(result.path).name
    if not result.streams:
        raise NotMedia(f"{name}: the container holds no streams")
    if needs_video and result.video is None:
        raise NotMedia(f"{name}: no video stream (streams: {_kinds(result)})")
    if len(result.streams) > settings.max_streams:
        raise LimitExceeded(
            f"{name}: {len(result.streams)} streams, over the limit of {settings.max_streams}"
        )
    if result.duration_s > settings.max_duration_s:
        raise LimitExceeded(
            f"{name}: duration {result.duration_s:.0f} s, over the limit of "
            f"{settings.max_duration_s:.0f} s"
        )
    video = result.video
    if video and video.width and video.height and video.width * video.height > settings.max_pixels:
        raise LimitExceeded(
            f"{name}: {video.width}x{video.height} pixels, over the limit of "
            f"{settings.max_pixels} pixels per frame"
        )


def _stream_info(stream: Any, file_start: int | None) -> StreamInfo:
    ctx = stream.codec_context
    start = _seconds(stream.start_time, stream.time_base)
    info = StreamInfo(
        index=stream.index,
        type=stream.type,
        codec=(ctx.codec.canonical_name if ctx is not None else None) or "unknown",
        bit_rate=(ctx.bit_rate if ctx is not None else None) or None,
        duration_s=_seconds(stream.duration, stream.time_base),
        start_s=None if start is None else round(start - (file_start or 0) / 1_000_000, 6),
    )
    if stream.type == "video":
        info.width = ctx.width or None
        info.height = ctx.height or None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        info.fps = round(float(rate), 3) if rate else None
        info.pix_fmt = ctx.pix_fmt
        sar = stream.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            info.sar = f"{sar.numerator}:{sar.denominator}"
        info.colour = colours.of_stream(stream)
    elif stream.type == "audio":
        info.sample_rate = ctx.sample_rate or None
        info.channels = ctx.channels or None
    elif stream.type == "subtitle":
        info.language = stream.metadata.get("language") or None
        info.default = bool(int(stream.disposition) & 1)  # AV_DISPOSITION_DEFAULT
        info.forced = bool(int(stream.disposition) & 64)  # AV_DISPOSITION_FORCED
    return info


def _decode_first_frame(
    container: Any, result: ProbeResult, max_pixels: int, seconds: float
) -> None:
    """Decode the first seconds of video: proof it decodes, and the only source of rotation."""
    video = result.video
    assert video is not None
    name = Path(result.path).name
    if video.width and video.height and video.width * video.height > max_pixels:
        raise LimitExceeded(
            f"{name}: {video.width}x{video.height} pixels, over the limit of {max_pixels}"
        )
    # The decoder refuses pictures over the limit instead of allocating them.
    # No frame threads here: leaving a decode loop early with frame threads running hung
    # PyAV on close (seen with thread_type="AUTO").
    container.streams.video[0].codec_context.options = {"max_pixels": str(max_pixels)}
    decoded = 0
    try:
        with av.logging.Capture() as logs:
            for frame in container.decode(video=0):
                if decoded == 0:
                    video.rotation = int(frame.rotation) % 360
                    video.width = video.width or frame.width
                    video.height = video.height or frame.height
                    if video.colour is not None:  # the HDR side data rides on frames
                        video.colour = colours.with_frame(video.colour, frame)
                decoded += 1
                if decoded >= DECODE_CHECK_FRAMES or (frame.time or 0) >= seconds:
                    return
    except av.error.FFmpegError as exc:
        size = next((m for _, _, m in logs if "Picture size" in m), None)
        if size:  # the decoder refused a picture over max_pixels: say so
            raise LimitExceeded(
                f"{name}: {size.strip()} (limit {max_pixels} pixels per frame)"
            ) from None
        raise NotMedia(f"{name}: video stream cannot be decoded ({_reason(exc)})") from None
    if decoded == 0:
        raise NotMedia(f"{name}: video stream has no decodable frame")


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return round(float(value * time_base), 6)


def _kinds(result: ProbeResult) -> str:
    return ", ".join(f"{s.type}/{s.codec}" for s in result.streams) or "none"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


@dataclass(frozen=True)
class Timing:
    """Presentation times of a file's first video stream, read by demuxing (no decode)."""

    #: Sorted presentation times of every video frame, in seconds.
    video_pts: list[float]
    #: Duration of one video frame (the mean spacing), in seconds.
    frame_s: float
    #: Duration of the first audio stream in seconds (None without audio).
    audio_s: float | None

    @property
    def frames(self) -> int:
        """Number of video frames."""
        return len(self.video_pts)

    @property
    def video_s(self) -> float:
        """First frame to the end of the last one, in seconds."""
        if not self.video_pts:
            return 0.0
        return self.video_pts[-1] - self.video_pts[0] + self.frame_s

    def irregular(self, frame_s: float | None = None) -> list[int]:
        """Indexes of frames whose distance to the previous one is not one frame
        (``frame_s``, else the mean spacing).

        A quarter frame of slack absorbs container rounding (Matroska keeps milliseconds);
        a gap, a duplicate or a dropped frame is a whole frame off.
        """
        pts, step = self.video_pts, frame_s or self.frame_s
        return [i for i in range(1, len(pts)) if abs(pts[i] - pts[i - 1] - step) > step / 4]


def timing(path: Path) -> Timing:
    """Frame times of ``path``: frame counts, spacing and joins checked without decoding."""
    with av.open(
        str(Path(path).resolve()),
        options={"protocol_whitelist": "file", "format_whitelist": SAFE_FORMATS},
    ) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        pts: list[float] = []
        audio_end = audio_start = None
        streams = [s for s in (video, audio) if s is not None]
        for packet in container.demux(*streams):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            if packet.stream is video:
                pts.append(start)
            else:
                end = start + float((packet.duration or 0) * packet.time_base)
                audio_start = start if audio_start is None else min(audio_start, start)
                audio_end = end if audio_end is None else max(audio_end, end)
    pts.sort()
    frame_s = (pts[-1] - pts[0]) / (len(pts) - 1) if len(pts) > 1 else 0.0
    audio_s = None if audio_end is None or audio_start is None else audio_end - audio_start
    return Timing(video_pts=pts, frame_s=frame_s, audio_s=audio_s)


def exact_video_s(path: Path) -> float:
    """Frames times frame spacing: an encoder's last frame can be short (a chunk's end is in
    Matroska milliseconds), leaving the track's own duration a few ticks short too."""
    t = timing(path)
    if t.frames > 1:
        return t.frame_s * t.frames
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        if video.duration is None or video.time_base is None:
            raise NotMedia(f"{path.name}: no video duration")
        return float(video.duration * video.time_base)
