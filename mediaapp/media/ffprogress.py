"""ffmpeg's ``-progress`` output: one :class:`Progress` per ``key=value`` block.

Read by the ffmpeg boundary (:func:`mediaapp.media.command.run`) from ffmpeg's stdout and
handed to a step's progress callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One ``-progress`` block from ffmpeg."""

    out_time_s: float
    fps: float
    speed: float
    percent: float | None  # None when the total duration is unknown
    done: bool


ProgressCallback = Callable[[Progress], None]


def parse_progress_block(block: dict[str, str], duration_s: float | None) -> Progress:
    """Turn one ``key=value`` block of ``-progress`` output into a :class:`Progress`."""
    out_us = block.get("out_time_us") or block.get("out_time_ms") or "0"
    try:
        out_time = max(int(out_us), 0) / 1_000_000
    except ValueError:  # "N/A" before the first frame
        out_time = 0.0
    fps = _float(block.get("fps"))
    speed = _float(block.get("speed", "").rstrip("x"))
    done = block.get("progress") == "end"
    percent = None
    if duration_s:
        percent = 100.0 if done else min(99.9, 100.0 * out_time / duration_s)
    return Progress(out_time_s=out_time, fps=fps, speed=speed, percent=percent, done=done)


def _float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0
