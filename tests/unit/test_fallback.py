"""A step's encoder choice from what its worker proved, and what a worker answers once it
disabled an encoder."""

from __future__ import annotations

import pytest

from mediaapp.jobs import capabilities, fallback
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit

FOUND = {
    "worker": "w1@host",
    "encoders": {
        "h264": {"software": ["libx264"], "hardware": ["h264_vaapi", "h264_nvenc"]},
        "hevc": {"software": ["libx265"], "hardware": ["hevc_qsv"]},
        "av1": {"software": ["libsvtav1"], "hardware": []},
    },
}


def test_a_worker_prefers_its_proven_hardware_encoder_that_takes_system_frames(
    tmp_path: object,
) -> None:
    settings = Settings(data_dir=tmp_path)
    # VAAPI is proven but needs uploaded frames: NVENC is the one used for H.264.
    assert fallback.substitutes(FOUND, settings, {}, set()) == {
        "libx264": "h264_nvenc",
        "libx265": "hevc_qsv",
    }
    off = {"h264_nvenc": "OpenEncodeSessionEx failed: out of memory (10)"}
    assert fallback.substitutes(FOUND, settings, off, set()) == {"libx265": "hevc_qsv"}
    assert fallback.substitutes(FOUND, settings, {}, {"hevc"}) == {"libx264": "h264_nvenc"}
    plain = Settings(data_dir=tmp_path, prefer_hardware=False)
    assert fallback.substitutes(FOUND, plain, {}, set()) == {}


def test_the_codec_of_an_encoder() -> None:
    assert fallback.codec_of("hevc_nvenc") == "hevc"
    assert fallback.codec_of("libx264") == "h264"
    assert fallback.codec_of("mjpeg") is None


def test_a_disabled_encoder_leaves_the_answer_and_is_listed_with_its_reason() -> None:
    answer = capabilities.without(FOUND, {"h264_nvenc": "No capable devices found"})
    assert answer["encoders"]["h264"] == {"software": ["libx264"], "hardware": ["h264_vaapi"]}
    assert answer["encoders"]["hevc"] == FOUND["encoders"]["hevc"]
    assert answer["disabled"] == {"h264_nvenc": "No capable devices found"}
