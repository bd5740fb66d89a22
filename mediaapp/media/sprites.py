"""Scrubbing previews: a sprite sheet of evenly spaced thumbnails and the WebVTT track that
maps each time range to its tile (``sprite.jpg#xywh=x,y,w,h``), as players expect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp.media import command, hdr
from mediaapp.media.colour import Colour

#: Width of one thumbnail in pixels, the most thumbnails per sheet, columns per row.
THUMB_WIDTH = 160
MAX_THUMBS = 100
COLUMNS = 10
#: At most one thumbnail per this many seconds.
MIN_INTERVAL_S = 1.0
#: How long a still image lasts once encoded (one frame at ffmpeg's default 25 fps).
STILL_S = 0.04


@dataclass(frozen=True)
class SpritePlan:
    """How many thumbnails, their size, and the grid they sit in."""

    count: int
    columns: int
    rows: int
    width: int
    height: int
    duration_s: float

    @property
    def interval_s(self) -> float:
        """Seconds each thumbnail stands for."""
        return self.duration_s / self.count


def plan(duration_s: float, display_width: int, display_height: int) -> SpritePlan:
    """Evenly spaced thumbnails over the whole duration, at most one a second, at most 100.
    A still image (no duration) is one frame long, as ffmpeg encodes it: one thumbnail."""
    duration_s = max(duration_s, STILL_S)
    count = max(1, min(MAX_THUMBS, math.ceil(duration_s / MIN_INTERVAL_S)))
    columns = min(COLUMNS, count)
    height = max(2, round(THUMB_WIDTH * display_height / display_width / 2) * 2)
    return SpritePlan(count, columns, math.ceil(count / columns), THUMB_WIDTH, height, duration_s)


def sprite_stream(
    src: Path, dst: Path, p: SpritePlan, *, tonemap: bool = False, source: Colour | None = None
) -> Any:
    """One ffmpeg pass: pick ``count`` frames evenly, scale, and tile them into one JPEG
    (``tonemap``: an HDR source's thumbnails tone-mapped to SDR, as JPEGs are, read as the
    ``source`` colour)."""
    video = (
        command.input_file(src)
        .video.filter("fps", f"{p.count}/{p.duration_s:.6f}")
        .filter("scale", p.width, p.height)
        .filter("setsar", 1)  # thumbnails with square pixels, as every other output
    )
    if tonemap:
        video = hdr.tonemap(video, source)
    video = video.filter("tile", f"{p.columns}x{p.rows}")
    return ffmpeg.output(
        video, command.output_target(dst), vframes=1, format="image2", vcodec="mjpeg", qscale=4
    )


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def vtt(p: SpritePlan, sprite_name: str) -> str:
    """The WebVTT text: contiguous cues from 0 to the duration, one per tile."""
    lines = ["WEBVTT", ""]
    for i in range(p.count):
        start = i * p.interval_s
        end = p.duration_s if i == p.count - 1 else (i + 1) * p.interval_s
        x, y = (i % p.columns) * p.width, (i // p.columns) * p.height
        lines += [
            f"{_stamp(start)} --> {_stamp(end)}",
            f"{sprite_name}#xywh={x},{y},{p.width},{p.height}",
            "",
        ]
    return "\n".join(lines)


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, target) of each cue: what a player reads back (used by verification)."""

    def seconds(stamp: str) -> float:
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    cues = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "-->" in line:
            start, end = (part.strip() for part in line.split("-->"))
            cues.append((seconds(start), seconds(end), lines[i + 1].strip()))
    return cues
