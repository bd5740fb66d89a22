"""Pooling libvmaf's per-frame log (percentiles, means) and the ``quality`` profile option."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError, NotMedia
from mediaapp.media import profiles, quality

pytestmark = pytest.mark.unit


def log(*frames: tuple[float, float, float]) -> dict:
    """A libvmaf JSON log (log_fmt=json) with these (vmaf, psnr_y, float_ssim) frames."""
    return {
        "version": "3.0.0",
        "frames": [
            {"frameNum": 5 * i, "metrics": dict(vmaf=v, psnr_y=p, float_ssim=s, psnr_cb=50.0)}
            for i, (v, p, s) in enumerate(frames)
        ],
        "pooled_metrics": {"vmaf": {"mean": -1.0}},  # not what we report: we pool ourselves
    }


def test_percentile_is_linear_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert quality.percentile(values, 0) == 1 and quality.percentile(values, 100) == 100
    assert quality.percentile(values, 50) == pytest.approx(50.5)
    assert quality.percentile(values, 5) == pytest.approx(5.95)  # numpy.percentile's answer
    assert quality.percentile([7.0], 5) == 7.0
    assert quality.percentile([90.0, 10.0], 5) == pytest.approx(14.0)  # order does not matter
    with pytest.raises(ValueError):
        quality.percentile([], 5)


def test_log_pooled_into_the_manifest_record() -> None:
    # One bad frame in twenty: p5 lies 95 % of the way from it to the next rank.
    frames = [(90.0, 40.0, 0.99)] * 19 + [(30.0, 25.0, 0.80)]
    score = quality.parse_log(log(*frames), subsample=5).to_dict()
    assert score == {
        "vmaf_mean": 87.0, "vmaf_p5": pytest.approx(87.0), "vmaf_min": 30.0,
        "psnr_mean": 39.25, "ssim_mean": pytest.approx(0.9805), "model": "vmaf_v0.6.1",
        "frames_scored": 20, "subsample": 5, "frames_total": 0, "windows": [],
    }  # fmt: skip
    two_bad = quality.parse_log(log(*frames[:18], *frames[-1:] * 2), 5)
    assert two_bad.vmaf_p5 == 30.0 and two_bad.vmaf_mean == 84.0  # 5 % of 20 frames: 2 bad


def test_a_log_without_scores_is_not_media() -> None:
    with pytest.raises(NotMedia):
        quality.parse_log({"frames": []}, 5)
    with pytest.raises(NotMedia):  # VMAF without the PSNR/SSIM asked for in the same pass
        quality.parse_log({"frames": [{"frameNum": 0, "metrics": {"vmaf": 80.0}}]}, 5)


def test_a_trial_log_has_vmaf_alone() -> None:
    """A per-title trial is scored without PSNR and SSIM: its mean VMAF is all it reads."""
    frames = [{"frameNum": i, "metrics": {"vmaf": v}} for i, v in enumerate((90.0, 92.0, 95.5))]
    assert quality.vmaf_mean({"frames": frames}) == 92.5
    with pytest.raises(NotMedia):
        quality.vmaf_mean({"frames": []})


def test_quality_option_is_validated(tmp_path: Path) -> None:
    ok = tmp_path / "ok.toml"
    ok.write_text("[a]\nquality = { measure = true }\n\n[b]\n[b.quality]\nsubsample = 10\n"
                  "sample = 0\n")  # fmt: skip
    loaded = profiles.load_file(ok)
    assert loaded["a"].quality == profiles.Quality(measure=True, subsample=5, sample=None)
    assert loaded["b"].quality == profiles.Quality(measure=False, subsample=10, sample=0)
    assert profiles.get_profile("web").quality.measure is False  # off unless asked
    bad = tmp_path / "bad.toml"
    cases = {
        "[x]\nquality = true\n": "'quality': expected dict",
        '[x]\nquality = { measure = "yes" }\n': "'quality.measure'",
        "[x]\nquality = { measure = 1 }\n": "'quality.measure'",
        "[x]\nquality = { subsample = 0 }\n": "'quality.subsample'",
        "[x]\nquality = { subsample = true }\n": "'quality.subsample'",
        "[x]\nquality = { target_vmaf = 93 }\n": "'quality.target_vmaf': unknown field",
        "[x]\nquality = { sample = -1 }\n": "'quality.sample'",
        "[x]\nquality = { sample = 2.5 }\n": "'quality.sample'",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigurationError, match=message) as info:
            profiles.load_file(bad)
        assert str(bad) in str(info.value)
