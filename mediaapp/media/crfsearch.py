"""The per-title search's next CRF for one rung: a pure function of the trials so far (CRF →
the samples' VMAF mean), so the search runs the same in one process and as rounds of tasks."""

from __future__ import annotations

import math

from mediaapp.media.profiles import PerTitle

#: Most CRF steps one extrapolated guess moves.
MAX_STEP = 8
#: The VMAF lost per CRF step, as a share of what is left below 100, assumed until two trials
#: measure the slope: VMAF(CRF) flattens as it nears its ceiling (x264 veryfast: 0.43 a step
#: at 95.7 on slides, 0.8 at 92.5, 1.0 at 87).
SLOPE_SHARE = 0.1
#: The assumed slope's bounds, and the least measured slope believed (flatter: noise).
SLOPE_BOUNDS = (0.3, 1.5)
MIN_SLOPE = 0.02


def next_crf(trials: dict[int, float], target: float, pt: PerTitle) -> int | None:
    """The next CRF to try for one rung, or None when the search is over.

    ``lo``: the highest CRF tried that meets the target, ``hi``: the lowest that does not.
    Between the two, the secant (linear interpolation of VMAF over CRF); on one side only,
    the steps the slope says are needed to reach the target (the slope measured by the two
    trials nearest that side, else assumed from how far the VMAF is below 100). On the met
    side, when the measured slope says one step more would miss the target, the search ends.
    """
    if len(trials) >= pt.max_trials:
        return None
    if not trials:
        return min(max(pt.crf_start, pt.crf_min), pt.crf_max)
    lo = max((c for c, v in trials.items() if v >= target), default=None)
    hi = min((c for c, v in trials.items() if v < target), default=None)
    if lo is not None and hi is not None:
        if hi - lo <= 1:
            return None
        guess = lo + (trials[lo] - target) * (hi - lo) / max(trials[lo] - trials[hi], 1e-6)
        return min(max(math.floor(guess), lo + 1), hi - 1)
    edge = lo if lo is not None else hi
    assert edge is not None
    slope, measured = _slope(trials, edge)
    if lo is not None:  # every trial meets the target: a higher CRF, fewer bytes
        # Up the CRF the curve only gets steeper: the assumed slope there, if steeper.
        steps = math.floor((trials[lo] - target) / max(slope, _assumed(trials[lo])))
        if lo >= pt.crf_max or (measured and steps < 1):
            return None
        return min(lo + min(max(1, steps), MAX_STEP), pt.crf_max)
    assert hi is not None  # no trial meets it: a lower CRF
    if hi <= pt.crf_min:
        return None
    step = min(max(1, math.ceil((target - trials[hi]) / slope)), MAX_STEP)
    return max(hi - step, pt.crf_min)


def _slope(trials: dict[int, float], edge: int) -> tuple[float, bool]:
    """VMAF points lost per CRF step near ``edge`` (the trial the next step starts from):
    between the two trials closest to it, and whether it was measured (else assumed)."""
    near = sorted(sorted(trials, key=lambda c: abs(c - edge))[:2])
    if len(near) == 2:
        a, b = near
        measured = (trials[a] - trials[b]) / (b - a)
        if measured > 0:
            return max(measured, MIN_SLOPE), True
    return _assumed(trials[edge]), False


def _assumed(vmaf: float) -> float:
    """The slope assumed at ``vmaf``: a share of what is left below 100, within bounds."""
    low, high = SLOPE_BOUNDS
    return min(max(SLOPE_SHARE * (100 - vmaf), low), high)


def lowered(trials: dict[int, float], crf: int, gap: float, pt: PerTitle) -> int:
    """The CRF below ``crf`` that the slope near it says gains ``gap`` VMAF points: at least
    one step, at most :data:`MAX_STEP`, not below ``crf_min`` (a full encode's correction)."""
    slope, _ = _slope(trials, crf)
    step = min(max(1, math.ceil(gap / slope)), MAX_STEP)
    return max(crf - step, pt.crf_min)
