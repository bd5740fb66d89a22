"""Measured quality (issue 16): every video rendition scored with libvmaf against its source,
in every strategy, recorded in the manifest; nothing measured (no libvmaf run) when the
profile does not ask. Media tier: real ffmpeg on 2 s 320x240 sources, no broker."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mediaapp import defaults
from mediaapp.media import command, qsample, quality, steps
from mediaapp.media.context import JobContext
from mediaapp.ops.report import quality_cell, render
from mediaapp.settings import Settings

from ..media_sources import generate, generate_hdr, settings_with_profiles
from .test_chunking import run_chunked

pytestmark = pytest.mark.media
VIDEO = ("video", "hls-rendition", "dash-representation")
PROFILES = """
[good]
kind = "mp4"
crf = 18
quality = { measure = true }

[bad]
kind = "mp4"
crf = 45
quality = { measure = true, subsample = 3 }

[qhls]
kind = "hls"
segment_s = 1
rungs = [{ height = 240, video_kbps = 600 }, { height = 120, video_kbps = 60 }]
[qhls.quality]
measure = true

[qhevc]
kind = "hls"
video_codec = "libx265"
segment_s = 1
rungs = [{ height = 240, video_kbps = 600 }]
quality = { measure = true }

[whole]
kind = "mp4"
crf = 18
quality = { measure = true, sample = 0 }

[qdash]
kind = "dash"
segment_s = 1
rungs = [{ height = 240, video_kbps = 600 }, { height = 120, video_kbps = 60 }]
quality = { measure = true, subsample = 4 }
"""


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return settings_with_profiles(tmp_path, media_root, "quality", PROFILES)


@pytest.fixture
def source(settings: Settings) -> str:
    return generate(settings.media_root, "q-320x240.mp4", size="320x240", seconds=2, gop=30)


def scored(manifest: dict) -> list[dict]:
    """The video entries' quality records; every video entry must have one."""
    videos = [o for o in manifest["outputs"] if o["kind"] in VIDEO]
    assert videos and all("quality" in o for o in videos), manifest["outputs"]
    return [o["quality"] for o in videos]


def check_ranges(
    q: dict, subsample: int, frames: int = 60, sample: int = defaults.QUALITY_SAMPLE_MIN
) -> None:
    assert set(q) == {"vmaf_mean", "vmaf_p5", "vmaf_min", "psnr_mean", "ssim_mean", "model",
                      "frames_scored", "subsample", "frames_total", "windows"}  # fmt: skip
    assert 0 <= q["vmaf_min"] <= q["vmaf_p5"] <= q["vmaf_mean"] <= 100
    assert 0 < q["psnr_mean"] <= 100 and 0 < q["ssim_mean"] <= 1
    assert q["model"] == "vmaf_v0.6.1"
    assert abs(q["frames_total"] - frames) <= 1  # the duration as probed, audio included
    if not sample:  # the whole duration, one frame in subsample
        assert q["windows"] == [] and q["subsample"] == subsample
        assert q["frames_scored"] == math.ceil(frames / subsample)
        return
    # The source has a keyframe every second (30 frames): one window from frame 0, one
    # after the keyframe at 1 s (sought to it), the sample split between them, each scored
    # frame after its previous one (one in 2).
    span = (sample // 2 - 1) * 2
    assert q["windows"] == [[0, span + 1], [32, span + 2]], q
    assert q["frames_scored"] == sample and q["subsample"] == 2


def test_a_bad_encode_scores_lower_than_a_good_one(settings: Settings, source: str) -> None:
    good_manifest = steps.run("q-good", source, "good", settings)
    good = scored(good_manifest)
    bad = scored(steps.run("q-bad", source, "bad", settings))
    check_ranges(good[0], 5)
    check_ranges(bad[0], 3)
    video = next(o for o in good_manifest["outputs"] if "quality" in o)
    assert f"{defaults.QUALITY_SAMPLE_MIN} of 60 frames in 2 windows" in quality_cell(video)
    assert bad[0]["vmaf_mean"] < good[0]["vmaf_mean"] - 15, (bad, good)
    assert bad[0]["psnr_mean"] < good[0]["psnr_mean"] and bad[0]["ssim_mean"] < good[0]["ssim_mean"]
    # Frame n against frame n: one frame off, testsrc2 scores ~26 dB PSNR and VMAF ~58.
    assert good[0]["psnr_mean"] > 40 and good[0]["vmaf_mean"] > 90
    page = render(good_manifest, [], settings.output_root / "q-good")  # the report page
    table = page.split('<table id="renditions">')[1].split("</table>")[0]
    row = next(r for r in table.split("<tr>") if "q-320x240.good.mp4" in r)
    assert f"VMAF {good[0]['vmaf_mean']:.1f} (p5 {good[0]['vmaf_p5']:.1f}" in row
    assert f"SSIM {good[0]['ssim_mean']:.4f}" in row and "vmaf_v0.6.1" in row


def test_a_sample_scores_as_the_whole_duration_does(settings: Settings, source: str) -> None:
    """The windows are frame-aligned after their seeks (one frame off, testsrc2 scores ~26 dB
    PSNR) and their figures are those of the whole duration, within sampling noise."""
    sampled = scored(steps.run("q-sampled", source, "good", settings))[0]
    whole = scored(steps.run("q-whole", source, "whole", settings))[0]
    check_ranges(sampled, 5)
    check_ranges(whole, 5, sample=0)
    assert sampled["psnr_mean"] > 40 and whole["psnr_mean"] > 40, (sampled, whole)
    assert abs(sampled["psnr_mean"] - whole["psnr_mean"]) < 1.5, (sampled, whole)
    assert abs(sampled["vmaf_mean"] - whole["vmaf_mean"]) < 3, (sampled, whole)


def test_a_source_without_an_index_is_scored_whole(settings: Settings, source: str) -> None:
    """MPEG-TS seeks by byte position and can land past a keyframe: no windows, no seek."""
    ts = settings.media_root / "q-320x240.ts"
    mp4 = str(settings.media_root / source)
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", mp4,
                 "-c", "copy", "-f", "mpegts", str(ts)])  # fmt: skip
    q = scored(steps.run("q-ts", ts.name, "good", settings))[0]
    check_ranges(q, 5, sample=0)
    assert q["psnr_mean"] > 40, q


def test_a_failed_sample_falls_back_to_the_whole_duration(
    settings: Settings, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window whose seek finds nothing is no reason to fail a finished job: read it all."""

    def broken(*args: object, **kwargs: object) -> object:
        return command.input_file(settings.media_root / "missing.mp4").output("-", f="null")

    monkeypatch.setattr(quality, "sampled_stream", broken)
    manifest = steps.run("q-fallback", source, "good", settings)
    check_ranges(scored(manifest)[0], 5, sample=0)
    assert not any("missing.mp4" in c for c in manifest["commands"])  # failed: not kept
    assert sum("libvmaf" in c for c in manifest["commands"]) == 1


def test_a_source_with_one_keyframe_is_scored_whole(settings: Settings) -> None:
    """Every window would start after the only keyframe, at frame 0: a sample of the first
    frames (an encoder's worst) is not the rendition's figure; the whole duration is."""
    sparse = generate(settings.media_root, "q-one-key.mp4", size="320x240", seconds=4, gop=1000)
    assert qsample.video_start([settings.media_root / sparse], keyframes=True).keyframes_s == (0.0,)
    check_ranges(scored(steps.run("q-one-key", sparse, "good", settings))[0], 5, 120, sample=0)


def test_frames_total_counts_the_video_not_the_audio_after_it(settings: Settings) -> None:
    """A clip whose sound runs 2 s past its picture: the rendition has 30 frames, not 90."""
    name = "q-short-picture.mp4"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error",
                 "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1",
                 "-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:v", "libx264",
                 "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y",
                 str(settings.media_root / name)])  # fmt: skip
    q = scored(steps.run("q-short-picture", name, "whole", settings))[0]
    check_ranges(q, 5, 30, sample=0)


def test_a_still_image_is_one_frame(settings: Settings) -> None:
    """A PNG has no duration: its rendition is one frame, not 0."""
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=320x240", "-frames:v", "1", "-y",
                 str(settings.media_root / "q-still.png")])  # fmt: skip
    q = scored(steps.run("q-still", "q-still.png", "qhls", settings))[0]
    check_ranges(q, 5, 1, 0)
    assert q["frames_total"] == q["frames_scored"] == 1, q


def test_a_tone_mapped_rung_is_scored_against_the_source_tone_mapped(settings: Settings) -> None:
    """An HDR10 source on an H.264 ladder: each rung is tone-mapped to SDR; against the PQ
    picture itself it scored VMAF 100 at ~22 dB (and per-title took CRF 40 for it)."""
    pq = generate_hdr(settings.media_root, "q-pq.mp4", gop=30)
    for q in scored(steps.run("q-pq", pq, "qhls", settings)):
        check_ranges(q, 5)
        assert q["psnr_mean"] > 35 and q["vmaf_mean"] < 99.5, q


def test_fmp4_hevc_rungs_are_read_with_their_init_segment(settings: Settings, source: str) -> None:
    """HEVC rungs are fMP4 segments: neither a window nor the whole reads without the init."""
    q = scored(steps.run("q-hevc", source, "qhevc", settings))[0]
    check_ranges(q, 5)
    assert q["psnr_mean"] > 35 and q["vmaf_mean"] > 85, q


def test_every_rung_is_scored_in_every_ladder_strategy(settings: Settings, source: str) -> None:
    runs = {
        "hls single": steps.run("q-hls", source, "qhls", settings),
        "hls per_rendition, one process": steps.run(
            "q-hls-pr", source, "qhls", settings, strategy="per_rendition"
        ),
        "dash": steps.run("q-dash", source, "qdash", settings),
    }
    ctx = JobContext.open("q-hls-tasks", source, "qhls", settings)  # as the Celery steps run it
    parts = [steps.encode_rung(ctx, i) for i in steps.prepare_rungs(ctx)]
    runs["hls per_rendition, tasks"] = steps.package_rungs(ctx, parts)
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       profiles_dir=settings.profiles_dir, chunking="always", chunk_s=1,
                       ffmpeg_threads=1)  # fmt: skip
    runs["hls chunked"] = run_chunked("q-hls-chunked", source, "qhls", chunked)
    assert len(runs["hls chunked"]["chunking"]["chunks"]) == 2
    for what, manifest in runs.items():
        top, low = scored(manifest)
        for q in (top, low):
            check_ranges(q, 4 if what == "dash" else 5)
        # 600 kbit/s at 320x240 is near transparent (and frame-aligned: PSNR > 35 dB);
        # 60 kbit/s at 160x120 is not.
        assert top["psnr_mean"] > 35 and top["vmaf_mean"] > 85, (what, top)
        assert low["vmaf_mean"] < top["vmaf_mean"], (what, low, top)


def test_measure_off_records_nothing_and_runs_no_libvmaf(settings: Settings, source: str) -> None:
    for profile in ("web", "hls"):
        m = steps.run(f"q-off-{profile}", source, profile, settings)
        assert not any("quality" in o for o in m["outputs"])
        assert m["commands"] and not any("libvmaf" in c for c in m["commands"])
        assert "VMAF" not in render(m, [], settings.output_root / f"q-off-{profile}")
