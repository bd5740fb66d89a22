"""Where quality is sampled: windows after source keyframes, the sample split between them."""

from __future__ import annotations

import math

import pytest

from mediaapp.media.qsample import Window, default_sample, plan, segment_starts

pytestmark = pytest.mark.unit


def scored(windows: list[Window], subsample: int = 2) -> int:
    return sum(w.scored(subsample) for w in windows)


def test_the_bench_clip_two_keyframes_two_windows() -> None:
    # x264's default GOP on a 10 s 30 fps clip: keyframes at 0 and frame 250 only.
    windows = plan(300, 30.0, (0.0, 250 / 30), sample=6, windows=4)
    assert windows == [Window(0, 5, True, 0.0), Window(252, 6, False, 250 / 30)]
    assert scored(windows) == 6  # 3 each: S p S p S, then p S p S p S


def test_windows_spread_after_dense_keyframes() -> None:
    keys = tuple(float(k) for k in range(0, 60, 2))  # a keyframe every 2 s, 60 s at 30 fps
    windows = plan(1800, 30.0, keys, sample=8, windows=4)
    # Spots at 7.5, 22.5, 37.5, 52.5 s; the keyframe before each, and 2 frames after it.
    assert [w.start for w in windows] == [182, 662, 1082, 1562]
    assert [w.seek_s for w in windows] == [6.0, 22.0, 36.0, 52.0]
    assert [w.first for w in windows] == [True, False, False, False]
    assert [w.frames for w in windows] == [3, 4, 4, 4] and scored(windows) == 8
    for w in windows:  # the first frame read comes from the keyframe or after it
        assert (w.start - 0.5) / 30 >= w.seek_s


def test_other_frame_rates_and_one_keyframe() -> None:
    assert plan(250, 25.0, (0.0, 6.0), sample=4, windows=2)[1].start == math.ceil(150 + 1.5)
    only_first = plan(300, 30.0, (0.0,), sample=8, windows=4)  # collapse into one window
    assert only_first == [Window(0, 15, True, 0.0)] and scored(only_first) == 8
    every = plan(300, 30.0, (0.0,), sample=8, windows=4, subsample=1)
    assert every == [Window(0, 8, True, 0.0)] and scored(every, 1) == 8


def test_no_sample_no_windows_and_never_past_the_end() -> None:
    assert plan(300, 30.0, (0.0,), sample=0, windows=4) == []
    assert plan(0, 30.0, (0.0,), sample=6, windows=4) == []
    # A sample larger than the clip: the first window takes all 20 frames, and the one
    # after the keyframe at 0.5 s (frame 17) would overlap it: dropped.
    assert plan(20, 30.0, (0.0, 0.5), sample=40, windows=4) == [Window(0, 20, True, 0.0)]


def test_window_scored_frames_and_segment_starts() -> None:
    assert Window(0, 9, True).scored(2) == 5 and Window(10, 10, False).scored(2) == 5
    assert Window(0, 16, True).scored(5) == 4 and Window(32, 17, False).scored(5) == 4
    assert Window(5, 7, False).scored(1) == 7
    assert segment_starts([4.0, 4.0, 2.0]) == (0.0, 4.0, 8.0)


def test_the_default_sample_grows_with_the_duration_within_bounds() -> None:
    assert default_sample(2) == 4 and default_sample(10) == 4  # at least 4 frames
    assert default_sample(60) == 12 and default_sample(300) == 60  # 12 a minute
    assert default_sample(6 * 3600) == 120  # at most 120
