"""Where quality is sampled: a few windows of the output, each starting just after a source
keyframe, so scoring costs what the sample costs rather than a decode of every input.

Decoding the source and every rendition end to end costs more than the whole budget of a
quality figure (a 1080p decode is ~10 % of a veryfast ladder's CPU), and libvmaf's own
``n_subsample`` still decodes and scales every frame. So the scorer seeks each input to a
handful of windows instead; a window starts just after a source keyframe so the seek decodes
nothing before it (renditions have keyframes every segment, their pre-roll is short). Frames
are numbered on the output grid (frame 0: the first video frame), as the encode made them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from mediaapp import defaults
from mediaapp.media.probe import SAFE_FORMATS


@dataclass(frozen=True)
class Window:
    """Output frames ``start`` to ``start + frames - 1``; ``first`` is the job's first window
    (scored from its first frame; later ones open with the frame before their first score)."""

    start: int
    frames: int
    first: bool
    #: Where the source is sought to (seconds after its first video frame): the keyframe.
    seek_s: float = 0.0

    def scored(self, subsample: int) -> int:
        """Frames libvmaf scores in this window (one in ``subsample``, each after its previous)."""
        if subsample <= 1:
            return self.frames
        lead = 0 if self.first else 1
        return max(0, (self.frames - lead + subsample - 1) // subsample)


#: Containers whose demuxer seeks by an index to the keyframe before the time asked. MPEG-TS
#: seeks by byte position and can land past the only keyframe of a segment (no frame out).
SEEKABLE = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")


@dataclass(frozen=True)
class VideoStart:
    """Where a file's container starts and its first video frame is (seconds, as demuxed:
    ``-ss`` counts from the first), its format and keyframes (seconds after that frame)."""

    container_s: float
    first_s: float
    format: str = ""
    keyframes_s: tuple[float, ...] = ()

    @property
    def offset_s(self) -> float:
        """The first video frame, in seconds after the container's start."""
        return self.first_s - self.container_s


def video_start(files: Sequence[Path], keyframes: bool = False) -> VideoStart:
    """Demux (no decode) the first video stream of ``files`` read as one byte stream (an
    HLS segment, a DASH init segment and fragments): its start and, if asked, keyframes."""
    paths = [str(Path(f).resolve()) for f in files]
    url = paths[0] if len(paths) == 1 else "concat:" + "|".join(paths)
    options = {"protocol_whitelist": "file,concat", "format_whitelist": SAFE_FORMATS}
    with av.open(url, options=options) as container:
        stream = container.streams.video[0]
        base = Fraction(container.start_time or 0, 1_000_000)
        tb = stream.time_base or Fraction(1, 90_000)
        first = Fraction(stream.start_time or 0) * tb
        keys: list[Fraction] = []
        if keyframes:
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    keys.append(Fraction(packet.pts) * tb - first)
        name = container.format.name
    return VideoStart(float(base), float(first), name, tuple(float(k) for k in sorted(keys)))


def lead_frames(files: Sequence[Path], lead_s: float, fps: float) -> int:
    """Frames a rendition (``files``: up to its first segment) shows before the source's
    first video frame, ``lead_s`` after the source's container starts: HLS and DASH fill a
    late video's lead with copies of that frame (outputs keep the offset), where an MP4's
    edit list starts its video late instead (none)."""
    if lead_s * fps < 0.5:
        return 0
    return max(0, round((lead_s - video_start(files).offset_s) * fps))


def segment_starts(durations: Sequence[float]) -> tuple[float, ...]:
    """Nominal start of each segment (seconds from the first frame) from their durations."""
    starts, at = [], 0.0
    for duration in durations:
        starts.append(at)
        at += duration
    return tuple(starts)


def default_sample(duration_s: float) -> int:
    """Frames to score when the profile does not say: a few per minute of video, so the cost
    stays a small share of the encode's however long the source (bounded both ways)."""
    per_minute = round(duration_s / 60 * defaults.QUALITY_SAMPLE_PER_MIN)
    return max(defaults.QUALITY_SAMPLE_MIN, min(defaults.QUALITY_SAMPLE_MAX, per_minute))


def plan(
    total: int, fps: float, keyframes_s: Sequence[float], sample: int, windows: int,
    subsample: int = 2,
) -> list[Window]:  # fmt: skip
    """At most ``windows`` windows spread over ``total`` output frames that together score
    ``sample`` frames (one in ``subsample``), each starting just after the latest source
    keyframe before its spot. Empty when ``sample`` is 0 (the whole duration is scored)."""
    if sample <= 0 or total <= 0:
        return []
    step = max(1, subsample)
    count = max(1, min(windows, sample))
    starts: dict[int, float] = {}
    for i in range(count):
        spot = (i + 0.5) * total / count / fps  # seconds
        key = max((k for k in keyframes_s if 0 < k <= spot), default=0.0)
        # The first output frame that surely comes from the keyframe or after it (the fps
        # filter takes the nearest source frame, or repeats the one before), and not before.
        starts[0 if key <= 0 else math.ceil(key * fps + 1.5)] = key
    per = [sample // len(starts) + (i < sample % len(starts)) for i in range(len(starts))]
    result: list[Window] = []
    for (start, key), want in zip(sorted(starts.items()), per, strict=True):
        first = not result
        span = want if step == 1 else (want - 1) * step + (1 if first else 2)
        if start >= total or (result and start < result[-1].start + result[-1].frames):
            continue  # past the end, or overlaps the window before (keyframes close together)
        result.append(Window(start, min(span, total - start), first, key))
    return [w for w in result if w.scored(step) > 0]
