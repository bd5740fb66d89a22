"""Encoder capabilities on the real bundled ffmpeg: software encoders proven by a real
one-frame encode, hardware ones (no GPU here) refused with ffmpeg's own reason."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.media import command, encoders
from mediaapp.settings import Settings

pytestmark = pytest.mark.media


def test_software_encoders_are_proven_and_hardware_ones_refused_with_a_reason() -> None:
    caps = encoders.detect()
    offered = caps.encoders()
    assert offered["h264"]["software"] == ["libx264"]
    assert "libx265" in offered["hevc"]["software"]
    assert "libsvtav1" in offered["av1"]["software"]
    assert caps.codecs == ("h264", "hevc", "av1")
    refused = caps.refused()
    # The bundled ffmpeg lists NVENC, yet this machine has no GPU: listed is not working.
    assert "h264_nvenc" in encoders.listed_encoders()
    assert "libcuda" in refused["h264_nvenc"]
    for name in ("h264_nvenc", "hevc_qsv", "av1_vaapi"):
        assert refused[name], name
        assert all(name not in kinds["hardware"] for kinds in offered.values())
    assert caps.ffmpeg == command.ffmpeg_version()


def test_detection_runs_once_per_process() -> None:
    first = encoders.detect()
    assert encoders.detect().trials is first.trials


def test_an_encoder_that_fails_its_encode_is_refused(tmp_path: Path) -> None:
    # A wrapper that lists like ffmpeg but fails every encode, as a broken build would.
    real = command.ffmpeg_binary()
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f'#!/bin/sh\ncase "$*" in *-encoders*) exec {real} "$@";; esac\n'
        'echo "[libx264 @ 0x1] broken build" >&2\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    caps = encoders.detect(command.Limits(binary=str(fake)))
    assert "h264" not in caps.codecs
    assert caps.refused()["libx264"] == "broken build"


def test_narrowing_keeps_the_claimed_and_drops_a_claim_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({"MEDIAAPP_CAPABILITIES": " HEVC, h264_nvenc "})
    assert settings.claimed_capabilities == ("hevc", "h264_nvenc")
    with caplog.at_level(logging.WARNING):
        caps = encoders.detect(claims=settings.claimed_capabilities)
    assert caps.codecs == ("hevc",)
    assert caps.encoders() == {"hevc": {"software": ["libx265"], "hardware": []}}
    assert caps.dropped == ("h264_nvenc",)
    assert "h264_nvenc, which failed its test" in caplog.text
    assert caps.to_dict()["dropped"] == ["h264_nvenc"]


def test_an_unknown_capability_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"MEDIAAPP_CAPABILITIES": "h264,h266"})
    assert str(info.value).startswith("MEDIAAPP_CAPABILITIES='h264,h266': unknown h266: use av1,")


def test_a_worker_tests_only_the_encoders_it_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    real = encoders.prove

    def prove(encoder: str, codec: str, limits: command.Limits) -> encoders.Trial:
        tried.append(encoder)
        return real(encoder, codec, limits)

    monkeypatch.setattr(encoders, "prove", prove)
    encoders.clear_cache()
    try:
        caps = encoders.detect(claims=("h264",))
    finally:
        encoders.clear_cache()
    assert caps.codecs == ("h264",) and "libx264" in tried
    assert not {"libx265", "libsvtav1"} & set(tried)  # no test encode of what it won't use
    assert caps.refused()["libx265"] == encoders.NOT_CLAIMED
