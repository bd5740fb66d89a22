"""Phase timing: nested phases count once, nothing is collected outside a step."""

from __future__ import annotations

import time

from mediaapp.media import phases


@phases.timed("probe")
def fake_probe() -> str:
    with phases.phase("ffmpeg"):  # a probe that runs ffmpeg stays probe time
        time.sleep(0.01)
    return "probed"


def test_nested_phases_count_for_the_outermost() -> None:
    with phases.collecting() as totals:
        assert fake_probe() == "probed"
        with phases.phase("hash"):
            pass
        time.sleep(0.02)  # work outside any phase
        with phases.collecting() as inner:  # a media function inside a task joins its collection
            assert inner is totals
        snap = phases.snapshot()
    assert set(totals) == {"probe", "hash"} and totals["probe"] >= 0.01
    assert set(snap) == {"probe", "hash", "other"} and snap["other"] >= 0.02


def test_nothing_is_collected_outside_a_step() -> None:
    assert fake_probe() == "probed"
    assert phases.snapshot() == {}
    with phases.collecting():
        fake_probe()
    assert phases.snapshot() == {}  # the step's dict went with it
