"""Per-title ladders, the pure parts: the rules that drop rungs
and the profile fields checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.media import pertitle, profiles

pytestmark = pytest.mark.unit


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
