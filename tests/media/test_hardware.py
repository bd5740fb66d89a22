"""Device faults on the real bundled ffmpeg: NVENC chosen on this GPU-less host fails the
way a host that lost its driver does (a typed, retryable EncoderFault naming it), while a bad
input with NVENC chosen stays an ordinary failure that disables nothing."""

from __future__ import annotations

from pathlib import Path

import ffmpeg
import pytest

from mediaapp.errors import EncoderFault, FFmpegError
from mediaapp.media import command, hardware

from ..conftest import SAMPLES

pytestmark = pytest.mark.media


def _encode(src: Path, dst: Path) -> object:
    inp = command.input_file(src)
    return ffmpeg.output(inp.video, command.output_target(dst), vcodec="libx264",
                         preset="veryfast", crf=23, t=1)  # fmt: skip


def test_nvenc_without_its_driver_is_an_encoder_fault(tmp_path: Path) -> None:
    with hardware.choosing({"libx264": "h264_nvenc"}), pytest.raises(EncoderFault) as caught:
        command.run(_encode(SAMPLES / "clip.mp4", tmp_path / "out.mp4"))
    fault = caught.value
    assert fault.encoder == "h264_nvenc" and fault.retryable
    assert "libcuda" in fault.reason  # ffmpeg's own words: Cannot load libcuda.so.1
    assert "-vcodec h264_nvenc" in fault.cmd and "-preset" not in fault.cmd


def test_a_bad_input_with_nvenc_chosen_is_not_a_device_fault(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((SAMPLES / "clip.mp4").read_bytes()[:3000])  # header, no frames
    with hardware.choosing({"libx264": "h264_nvenc"}), pytest.raises(FFmpegError) as caught:
        command.run(_encode(broken, tmp_path / "out.mp4"))
    assert type(caught.value) is FFmpegError and not caught.value.retryable


def test_software_runs_as_the_profile_says_and_is_recorded(tmp_path: Path) -> None:
    with hardware.choosing() as choice:
        result = command.run(_encode(SAMPLES / "clip.mp4", tmp_path / "out.mp4"))
    assert "-vcodec libx264" in result.cmd and "-preset veryfast" in result.cmd
    assert choice.used == {"video": ["libx264"]}
