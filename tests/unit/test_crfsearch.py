"""The per-title CRF search's next guess (``mediaapp.media.crfsearch``), against known
VMAF(CRF) curves: straight lines, and the one x264 veryfast made of the bench's easy source
(slides), which flattens out near VMAF 97.4 as the CRF falls."""

from __future__ import annotations

import pytest

from mediaapp.media import crfsearch
from mediaapp.media.profiles import PerTitle

pytestmark = pytest.mark.unit

#: VMAF of the bench's easy source (1280x720 slides) encoded at 720p by the hls ladder's x264
#: options at each CRF (the whole 30 s, one frame in 5), measured 2026-11-30.
EASY_720 = {1: 97.393, 4: 97.349, 7: 97.279, 10: 97.18, 12: 97.07, 14: 96.961, 16: 96.786,
            18: 96.542, 21: 96.129, 23: 95.682, 26: 94.868, 30: 92.52, 35: 87.383}  # fmt: skip


def curve_of(points: dict[int, float]) -> dict[int, float]:
    """``points`` linearly interpolated at every CRF 0..51 (flat beyond the ends)."""
    known = sorted(points)
    curve = {}
    for c in range(52):
        a = max((k for k in known if k <= c), default=known[0])
        b = min((k for k in known if k >= c), default=known[-1])
        share = 0.0 if a == b else (c - a) / (b - a)
        curve[c] = points[a] + (points[b] - points[a]) * share
    return curve


def converge(curve: dict[int, float], target: float, pt: PerTitle) -> tuple[dict[int, float], int]:
    """Run the search against a known VMAF(CRF) curve; the trials and the chosen CRF."""
    trials: dict[int, float] = {}
    while (crf := crfsearch.next_crf(trials, target, pt)) is not None and crf not in trials:
        trials[crf] = curve[crf]
    meeting = [c for c, v in trials.items() if v >= target]
    return trials, max(meeting) if meeting else min(trials)


@pytest.mark.parametrize("slope", [0.8, 1.5, 3.0])
@pytest.mark.parametrize("target", [80.0, 90.5, 95.0])
def test_the_search_finds_the_highest_crf_meeting_the_target(slope: float, target: float) -> None:
    curve = {c: 100 - slope * (c - 10) for c in range(52)}  # VMAF falls as the CRF rises
    pt = PerTitle(max_trials=6, crf_min=10, crf_max=45)
    trials, chosen = converge(curve, target, pt)
    best = max(c for c in range(10, 46) if curve[c] >= target)
    assert len(trials) <= 6
    assert curve[chosen] >= target and chosen >= best - 1, (trials, chosen, best)


def test_the_search_is_bounded_and_stops_at_the_crf_limits() -> None:
    pt = PerTitle(max_trials=3, crf_min=18, crf_max=30, crf_start=23)
    trials, chosen = converge({c: 99.0 for c in range(52)}, 90, pt)  # always met
    assert chosen == 30 and len(trials) <= 3
    trials, chosen = converge({c: 50.0 for c in range(52)}, 90, pt)  # never met
    assert chosen == 18 and min(trials) == 18 and len(trials) <= 3
    assert crfsearch.next_crf({23: 95, 24: 92, 25: 91}, 93, pt) is None  # max_trials spent
    assert crfsearch.next_crf({23: 95, 24: 92}, 93, PerTitle()) is None  # neighbours: done


@pytest.mark.parametrize("target", [97.0, 97.2, 97.3, 97.384])
def test_a_flat_curve_is_crossed_in_long_steps(target: float) -> None:
    """Near its ceiling the VMAF of slides gains a tenth of a point per CRF step: a measured
    slope that small means a long way to go, not the default slope's one step at a time (the
    bench's matched case stopped at CRF 16, 96.8 for 97.4, after 6 trials)."""
    curve = curve_of(EASY_720)
    trials, chosen = converge(curve, target, PerTitle(max_trials=8, crf_min=0, crf_max=51))
    best = max(c for c in range(52) if curve[c] >= target)
    assert curve[chosen] >= target and chosen >= best - 2, (trials, chosen, best)


@pytest.mark.parametrize("target", [89.0, 91.0, 93.0, 94.0, 96.0])
def test_the_search_stops_when_the_next_step_is_predicted_to_miss(target: float) -> None:
    """A trial above the target by less than the measured slope: one CRF more would fall
    below it, so the search ends there rather than spend a trial on finding that out."""
    curve = curve_of(EASY_720)
    trials, chosen = converge(curve, target, PerTitle(max_trials=4))
    best = max(c for c in range(16, 41) if curve[c] >= target)
    assert curve[chosen] >= target and chosen >= best - 1, (trials, chosen, best)
    assert len(trials) <= 3, trials
