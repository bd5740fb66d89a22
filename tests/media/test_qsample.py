"""Reading where a file's video starts and its keyframes by demuxing (no decode), and which
containers the sampled windows trust to seek. Media tier: real ffmpeg output."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.media import command
from mediaapp.media.qsample import SEEKABLE, video_start

from ..media_sources import generate

pytestmark = pytest.mark.media


def test_keyframes_and_start_of_an_mp4_and_a_ts(media_root: Path) -> None:
    name = generate(media_root, "qs-320x240.mp4", size="320x240", seconds=2, gop=30)
    mp4 = video_start([media_root / name], keyframes=True)
    assert mp4.format in SEEKABLE and mp4.offset_s == pytest.approx(0, abs=1e-3)
    assert mp4.keyframes_s == pytest.approx((0.0, 1.0))
    assert video_start([media_root / name]).keyframes_s == ()  # not asked: not demuxed
    ts = media_root / "qs-320x240.ts"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i",
                 str(media_root / name), "-c", "copy", "-f", "mpegts", str(ts)])  # fmt: skip
    moved = video_start([ts], keyframes=True)
    assert moved.format == "mpegts" and moved.format not in SEEKABLE
    assert moved.first_s > 1  # MPEG-TS starts its clock at 1.4 s: timestamps kept as demuxed
    assert moved.keyframes_s == pytest.approx((0.0, 1.0), abs=0.02)
