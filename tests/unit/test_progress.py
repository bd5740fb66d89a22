"""ProgressReporter: throttled, monotonic, never kills an encode by failing, may cancel it."""

from __future__ import annotations

import pytest

from mediaapp.jobs.progress import ProgressReporter
from mediaapp.media.ffprogress import Progress

pytestmark = pytest.mark.unit


def test_progress_reporter_throttles_and_computes_eta() -> None:
    sent: list[dict] = []
    now = [0.0]
    rep = ProgressReporter(sent.append, step="transcode", interval_s=0.5, clock=lambda: now[0])
    for i in range(10):  # ten updates within 0.45 s → one forwarded
        now[0] = i * 0.05
        rep(Progress(out_time_s=i, fps=25, speed=2.0, percent=i * 10.0, done=False))
    assert len(sent) == 1
    now[0] = 1.0
    rep(Progress(out_time_s=5.0, fps=25, speed=2.0, percent=50.0, done=False))
    assert sent[-1]["percent"] == 50.0 and sent[-1]["eta_s"] == 2.5  # 5 s left at 2x
    rep(Progress(out_time_s=10.0, fps=25, speed=2.0, percent=100.0, done=True))  # never throttled
    assert sent[-1]["eta_s"] == 0.0 and len(sent) == 3


def test_progress_never_moves_backwards() -> None:
    sent: list[dict] = []
    rep = ProgressReporter(sent.append, step="transcode", interval_s=0)
    for percent in (10.0, 95.3, 94.2, 97.0):  # ffmpeg's out_time can dip as streams flush
        rep(Progress(out_time_s=percent, fps=25, speed=1.0, percent=percent, done=False))
    assert [m["percent"] for m in sent] == [10.0, 95.3, 95.3, 97.0]


def test_progress_reporter_survives_a_failing_update() -> None:
    def boom(meta: dict) -> None:
        raise ConnectionError("broker hiccup")

    rep = ProgressReporter(boom, step="transcode")
    rep(Progress(out_time_s=1, fps=1, speed=1, percent=1.0, done=False))  # must not raise
    assert rep.sent == 0


def test_progress_check_may_stop_the_encode() -> None:
    from mediaapp.errors import JobCancelled

    def cancelled() -> None:
        raise JobCancelled("job x was cancelled")

    rep = ProgressReporter(lambda meta: None, step="transcode", check=cancelled)
    with pytest.raises(JobCancelled):
        rep(Progress(out_time_s=1, fps=1, speed=1, percent=1.0, done=False))
