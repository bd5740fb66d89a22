"""A step's encoder choice from what its worker proved, and what a worker answers once it
disabled an encoder."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from mediaapp.jobs import capabilities, fallback
from mediaapp.media import hardware
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


class _Backend:
    def __init__(self, values: dict[bytes, bytes]) -> None:
        self.values = values

    def get(self, key: bytes) -> bytes | None:
        return self.values.get(key)


def _task(name: str, backend: _Backend, retries: int = 0) -> SimpleNamespace:
    request = SimpleNamespace(hostname="w1@host", id="job1-rung0", retries=retries)
    return SimpleNamespace(name=name, request=request, backend=backend,
                           app=SimpleNamespace(backend=backend))  # fmt: skip


def _chosen(task: SimpleNamespace, settings: Settings) -> dict[str, Any]:
    with fallback.encoding(task, settings):  # type: ignore[arg-type]
        choice = hardware._current.get()
        assert choice is not None
        return {"use": choice.substitutes, "fallback": choice.fallback}


def test_a_step_uses_what_its_worker_has_not_disabled(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capabilities, "_found", FOUND)
    settings = Settings(data_dir=tmp_path)
    off = {capabilities.disabled_key("w1@host"): json.dumps({"hevc_qsv": "device lost"}).encode()}
    backend = _Backend(off)
    assert _chosen(_task("video.rung", backend), settings)["use"] == {"libx264": "h264_nvenc"}
    # Chunks of one rendition are joined by copy: one encoder for all, software.
    assert _chosen(_task("video.chunk", backend), settings)["use"] == {}
    # A re-run after a fault: software for that codec, and the record for the manifest.
    record = {"from": "h264_nvenc", "to": "libx264", "reason": "No capable devices found"}
    backend.values[fallback.fallback_key("job1-rung0")] = json.dumps([record]).encode()
    rerun = _chosen(_task("video.rung", backend, retries=1), settings)
    assert rerun == {"use": {}, "fallback": [record]}
