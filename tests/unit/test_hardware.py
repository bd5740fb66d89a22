"""Hardware encoders at run time: the device faults told from every other failure (real
NVENC, QSV and VAAPI messages), the encoder swapped into a step's commands, and what the
manifest records."""

from __future__ import annotations

import pytest

from mediaapp.media import hardware

pytestmark = pytest.mark.unit


def _args(encoder: str, target: str = "file:/out/job/.web.mp4.part") -> list[str]:
    return ["ffmpeg", "-i", "file:/in/clip.mp4", "-vcodec", encoder, "-preset", "veryfast",
            "-crf", "23", "-maxrate", "5000k", target]  # fmt: skip


#: (encoder, stderr, the reason quoted): ffmpeg's own lines for each family's faults.
FAULTS = [
    ("h264_nvenc",
     "[h264_nvenc @ 0x55d0c1a2b3c0] OpenEncodeSessionEx failed: out of memory (10): "
     "(no details)\n[vost#0:0/h264_nvenc @ 0x55d0] Error while opening encoder\n",
     "OpenEncodeSessionEx failed: out of memory (10): (no details)"),
    ("hevc_nvenc", "[hevc_nvenc @ 0x5601] No capable devices found\n",
     "No capable devices found"),
    ("h264_nvenc", "[h264_nvenc @ 0x5601] Cannot load libcuda.so.1\n",
     "Cannot load libcuda.so.1"),
    ("h264_nvenc",
     "[h264_nvenc @ 0x5601] cuCtxCreate(&ctx, 0, dev) failed -> CUDA_ERROR_OUT_OF_MEMORY\n",
     "cuCtxCreate(&ctx, 0, dev) failed -> CUDA_ERROR_OUT_OF_MEMORY"),
    ("h264_nvenc", "[h264_nvenc @ 0x1] EncodePicture failed!: device does not exist (4)\n",
     "EncodePicture failed!: device does not exist (4)"),
    ("h264_qsv",
     "[h264_qsv @ 0x5601] Error initializing an internal MFX session: unsupported (-3)\n",
     "Error initializing an internal MFX session: unsupported (-3)"),
    ("hevc_qsv", "[hevc_qsv @ 0x1] Error during encoding: device failed (-17)\n",
     "Error during encoding: device failed (-17)"),
    ("h264_vaapi",
     "[AVHWDeviceContext @ 0x55] Failed to initialise VAAPI connection: -1 (unknown libva "
     "error).\n", "Failed to initialise VAAPI connection: -1 (unknown libva error)."),
]  # fmt: skip


@pytest.mark.parametrize(("encoder", "stderr", "reason"), FAULTS)
def test_a_device_fault_names_the_encoder_and_the_line_that_says_why(
    encoder: str, stderr: str, reason: str
) -> None:
    assert hardware.fault(_args(encoder), stderr) == (encoder, reason)


@pytest.mark.parametrize(
    ("encoder", "stderr"),
    [
        # A bad input fails in software too: nothing to disable.
        ("h264_nvenc", "file:/in/clip.mp4: Invalid data found when processing input\n"),
        ("h264_nvenc", "[h264 @ 0x1] error while decoding MB 3 4, bytestream -7\n"),
        # A parameter the encoder refuses is ours to fix, not the device's.
        ("h264_nvenc", "[h264_nvenc @ 0x1] InitializeEncoder failed: invalid param (8): Level\n"),
        # NVENC's words, but no hardware encoder ran: not a device fault of this command.
        ("libx264", "[h264_nvenc @ 0x1] OpenEncodeSessionEx failed: out of memory (10)\n"),
        # Another family's words do not count for this one.
        ("h264_qsv", "[h264_nvenc @ 0x1] No capable devices found\n"),
    ],
)
def test_other_failures_are_not_device_faults(encoder: str, stderr: str) -> None:
    assert hardware.fault(_args(encoder), stderr) is None


def test_the_choice_swaps_the_encoder_and_drops_the_software_only_options() -> None:
    with hardware.choosing({"libx264": "h264_nvenc"}):
        swapped = hardware.substitute(_args("libx264"))
        assert hardware.substitute(_args("libx265")) == _args("libx265")  # not chosen
    assert swapped == ["ffmpeg", "-i", "file:/in/clip.mp4", "-vcodec", "h264_nvenc",
                       "-cq", "23", "-maxrate", "5000k", "file:/out/job/.web.mp4.part"]  # fmt: skip
    assert hardware.substitute(_args("libx264")) == _args("libx264")  # no choice open: as is
    rung = ["ffmpeg", "-vcodec", "libx265", "-force_key_frames", "expr:gte(t,n_forced*4)",
            "-x265-params", "hdr-opt=1", "file:/o/0_360p/index.m3u8"]  # fmt: skip
    with hardware.choosing({"libx265": "hevc_qsv"}):
        assert hardware.substitute(rung) == [
            "ffmpeg", "-vcodec", "hevc_qsv", "-forced_idr", "1",
            "-force_key_frames", "expr:gte(t,n_forced*4)", "file:/o/0_360p/index.m3u8",
        ]  # fmt: skip


def test_the_encoders_are_recorded_per_rendition() -> None:
    hls = ["ffmpeg", "-i", "file:/in/a.mp4", "-vcodec", "libx264", "-hls_segment_filename",
           "file:/o/.hls.part-1/0_720p/seg_%03d.ts", "file:/o/.hls.part-1/0_720p/index.m3u8",
           "-vcodec", "h264_nvenc", "-an", "file:/o/.hls.part-1/1_360p/index.m3u8",
           "-c", "copy", "file:/o/x.mp4"]  # fmt: skip
    chunk = ["ffmpeg", "-i", "file:/w/c3.mkv", "-c:v", "libx264", "file:/w/e00003.1_360p.mp4"]
    assert hardware.video_encoders(hls) == [("0_720p", "libx264"), ("1_360p", "h264_nvenc")]
    assert hardware.video_encoders(chunk) == [("1_360p", "libx264")]
    with hardware.choosing(fallback=[{"from": "h264_nvenc", "to": "libx264"}]):
        hardware.record(hls)
        hardware.absorb({"encoders": {"0_720p": ["h264_nvenc"]}, "fallback": []})
        assert hardware.recorded() == {
            "encoders": {"0_720p": ["libx264", "h264_nvenc"], "1_360p": ["h264_nvenc"]},
            "fallback": [{"from": "h264_nvenc", "to": "libx264"}],
        }
    assert hardware.recorded() == {}
