"""The ffmpeg boundary's pure parts: the argument vector and the -progress parser."""

from __future__ import annotations

import pytest

from mediaapp.media.ffprogress import Progress, parse_progress_block

pytestmark = pytest.mark.unit


def test_progress_block_parsing() -> None:
    block = {"out_time_us": "2500000", "fps": "50.0", "speed": "4.2x", "progress": "continue"}
    p = parse_progress_block(block, duration_s=10.0)
    assert p == Progress(out_time_s=2.5, fps=50.0, speed=4.2, percent=25.0, done=False)
    end = parse_progress_block({"out_time_us": "N/A", "progress": "end"}, duration_s=10.0)
    assert end.percent == 100.0 and end.done
    assert parse_progress_block(block, duration_s=None).percent is None
