"""A full encode below its target (retarget.py), the pure part: which rungs are encoded again,
at what CRF, and which cannot go lower and say why."""

from __future__ import annotations

from typing import Any

import pytest

from mediaapp.media import retarget
from mediaapp.media.profiles import PerTitle

pytestmark = pytest.mark.unit


def rung(short: int, crf: int, full: float | None, target: float = 93.0,
         bit_rate: int = 1_000_000, dropped: str | None = None) -> dict[str, Any]:  # fmt: skip
    trials = [{"crf": 23, "vmaf": 95.0}, {"crf": 26, "vmaf": 93.5}, {"crf": 27, "vmaf": 93.0}]
    return {"short": short, "crf": crf, "full_vmaf": full, "target_vmaf": target,
            "cap_kbps": 3000, "bit_rate": bit_rate, "dropped": dropped,
            "trials": trials}  # fmt: skip


def test_only_the_rungs_below_their_target_get_a_lower_crf() -> None:
    record = {"headroom": 0.0, "rungs": [
        rung(720, 26, 93.4),  # met: left alone
        rung(480, 27, 91.5),  # 1.5 short, 0.5 a step between CRF 26 and 27: 3 steps down
        rung(360, 27, 80.0),  # far below: at most MAX_STEP steps, not below crf_min
        rung(240, 27, 70.0, dropped="adds nothing"),
    ]}  # fmt: skip
    crfs = retarget.corrections(record, PerTitle(crf_min=22))
    assert crfs == {480: 24, 360: 22}


def test_the_headroom_is_aimed_for_and_one_step_is_the_least() -> None:
    record = {"headroom": 1.0, "rungs": [rung(480, 27, 92.9)]}
    # 0.1 short of the target, 1.1 short of target + headroom: 3 steps of 0.5.
    assert retarget.corrections(record, PerTitle()) == {480: 24}
    record = {"headroom": 0.0, "rungs": [rung(480, 27, 92.99)]}
    assert retarget.corrections(record, PerTitle()) == {480: 26}


def test_a_rung_that_cannot_go_lower_is_left_with_the_reason() -> None:
    at_min, capped = rung(480, 16, 90.0), rung(360, 27, 90.0, bit_rate=2_900_000)
    record = {"headroom": 0.0, "rungs": [at_min, capped]}
    assert retarget.corrections(record, PerTitle(crf_min=16)) == {}
    assert "crf_min 16" in at_min["retarget"]
    assert "at its cap (3000 kbit/s)" in capped["retarget"]
