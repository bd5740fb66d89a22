"""Per-title ladders, the pure parts: the CRF search's next guess, the rules that drop rungs,
and the profile fields checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.media import pertitle, profiles
from mediaapp.media.profiles import PerTitle

pytestmark = pytest.mark.unit


def converge(curve: dict[int, float], target: float, pt: PerTitle) -> tuple[dict[int, float], int]:
    """Run the search against a known VMAF(CRF) curve; the trials and the chosen CRF."""
    trials: dict[int, float] = {}
    while (crf := pertitle.next_crf(trials, target, pt)) is not None and crf not in trials:
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
    assert pertitle.next_crf({23: 95, 24: 92, 25: 91}, 93, pt) is None  # max_trials spent
    assert pertitle.next_crf({23: 95, 24: 92}, 93, PerTitle()) is None  # neighbours: done


def rung(name: str, vmaf: float, kbps: int) -> dict[str, object]:
    return {"rung": name, "sample_vmaf": vmaf, "sample_kbps": kbps, "dropped": None}


def test_rungs_that_add_nothing_are_dropped_with_the_reason() -> None:
    ladder = [rung("0_720p", 95.5, 900), rung("1_480p", 95.0, 600), rung("2_360p", 90, 700)]
    pertitle.drop(ladder, margin=1.0)
    assert ladder[2]["dropped"] == "700 kbit/s, more than 1_480p above it (600 kbit/s)"
    assert "VMAF 95.50 within 1.0 of 1_480p's 95.00" in str(ladder[0]["dropped"])
    assert ladder[1]["dropped"] is None  # one rung always stays
    kept = [rung("0_720p", 97, 900), rung("1_480p", 94, 600), rung("2_360p", 90, 300)]
    pertitle.drop(kept, margin=1.0)
    assert not any(r["dropped"] for r in kept)


def test_per_title_fields_are_checked_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    head = '[x]\nkind = "hls"\n'
    ok = "rungs = [{ height = 360, video_kbps = 900, target_vmaf = 93 }]\n"
    cases = {
        "rungs = [{ height = 360, video_kbps = 900, target_vmaf = 130 }]\n":
            r"'rungs\[0\].target_vmaf'",
        "rungs = [{ height = 360, video_kbps = 900, vmaf = 93 }]\n": r"'rungs\[0\]'",
        ok + "pertitle = { max_trials = 0 }\n": "'pertitle.max_trials'",
        ok + "pertitle = { samples = 2.5 }\n": "'pertitle.samples'",
        ok + "pertitle = { crf_min = 40, crf_max = 30 }\n": "'pertitle.crf_min'",
        ok + "pertitle = { trials = 3 }\n": "'pertitle.trials': unknown field",
    }  # fmt: skip
    for text, message in cases.items():
        bad.write_text(head + text)
        with pytest.raises(ConfigurationError, match=message):
            profiles.load_file(bad)
    bad.write_text(head + ok + "pertitle = { sample_s = 1, margin = 0.5, headroom = 1 }\n")
    profile = profiles.load_file(bad)["x"]
    assert profile.rungs[0].target_vmaf == 93.0 and pertitle.wanted(profile)
    assert profile.pertitle.sample_s == 1.0 and profile.pertitle.margin == 0.5
    assert profile.pertitle.headroom == 1.0 and isinstance(profile.pertitle.headroom, float)
    shipped = profiles.get_profile("hls-pertitle")
    assert pertitle.wanted(shipped) and shipped.quality.measure and shipped.pertitle.headroom == 1
    assert not pertitle.wanted(profiles.get_profile("hls"))
