"""What players read must match what the media holds (issue 11): exact DASH durations and
declared bandwidths, square pixels, ladders sized on the short side, HLS starting at 0 with
audio and video aligned, one playlist version, keyframes on the segment grid when chunked.
Media tier: real ffmpeg, no broker."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import av
import pytest

from mediaapp.media import manifests, renditions, steps
from mediaapp.media.inputs import fit
from mediaapp.media.probe import ProbeResult, StreamInfo
from mediaapp.media.profiles import get_profile
from mediaapp.settings import Settings

from ..media_sources import generate
from .test_chunking import run_chunked

pytestmark = pytest.mark.media
MPD = "{urn:mpeg:dash:schema:mpd:2011}"


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=media_root, ffmpeg_threads=1)


def outputs(manifest: dict, kind: str) -> list[dict]:
    return [o for o in manifest["outputs"] if o["kind"] == kind]


def picture(path: Path) -> tuple[int, int, str]:
    """Width, height and sample aspect ratio of the first decoded frame."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        sar = c.streams.video[0].codec_context.sample_aspect_ratio
        return frame.width, frame.height, f"{sar.numerator}:{sar.denominator}" if sar else "1:1"


def starts(segment: Path) -> dict[str, float]:
    """First presentation time of each stream of a segment."""
    found: dict[str, float] = {}
    with av.open(str(segment)) as c:
        for p in c.demux():
            if p.pts is not None:
                t = float(p.pts * p.time_base)
                found[p.stream.type] = min(found.get(p.stream.type, t), t)
    return found


def segment_starts(playlist: Path) -> list[float]:
    """Where each segment's video starts, relative to the first, checking it is a keyframe."""
    times = []
    for _, seg in renditions.media_playlist(playlist):
        with av.open(str(playlist.parent / seg)) as c:
            first = min((p for p in c.demux(video=0) if p.pts is not None), key=lambda p: p.pts)
            assert first.is_keyframe, f"{seg} does not start on a keyframe"
            times.append(float(first.pts * first.time_base))
    return [round(t - times[0], 3) for t in times]


def channels(segment: Path) -> int:
    """Audio channels of a segment."""
    with av.open(str(segment)) as c:
        return c.streams.audio[0].codec_context.channels


def check_mpd(mpd_path: Path, source_s: float) -> ET.Element:
    """The duration is the timelines' end to the millisecond; bandwidths cover every segment."""
    mpd = ET.parse(mpd_path).getroot()
    lines = manifests.timelines(mpd_path)
    declared = mpd.get("mediaPresentationDuration", "")
    assert declared == f"PT{math.ceil(max(t.end_s for t in lines) * 1000) / 1000:.3f}S"
    assert abs(float(declared[2:-1]) - source_s) < 0.05
    for rep, line in zip(mpd.iter(f"{MPD}Representation"), lines, strict=True):
        peak = max(p.stat().st_size * 8 / d for p, d in line.segments)
        assert math.ceil(peak) == int(rep.get("bandwidth", 0)), rep.attrib
        assert rep.get("sar", "1:1") == "1:1"
    return mpd


@pytest.mark.unit
def test_sizes_fit_the_short_side_keeping_the_aspect_within_a_pixel() -> None:
    cases = {
        (1920, 1080, 480): (854, 480), (1280, 720, 720): (1280, 720),
        (1080, 1920, 720): (720, 1280), (1080, 1920, 480): (480, 854),
        (1279, 719, 720): (1278, 718), (320, 240, 720): (320, 240), (240, 320, 1080): (240, 320),
    }  # fmt: skip
    for (w, h, short), size in cases.items():
        assert fit(w, h, short) == size
        out_w, out_h = size
        assert abs(out_w - out_h * w / h) <= 1 and out_w % 2 == out_h % 2 == 0


def test_dash_duration_is_exact_on_the_real_clip_and_a_non_round_one(settings: Settings) -> None:
    for name in ("ffmpeg-python-in1.mp4", generate(settings.media_root, "nonround.mp4",
                                                    size="320x180", seconds=7.27)):  # fmt: skip
        m = steps.run(f"dash-{name[:8]}", name, "dash", settings)
        mpd = outputs(m, "dash-mpd")[0]
        check_mpd(Path(mpd["path"]), m["source"]["duration_s"])


def test_an_ntsc_source_of_whole_segments_of_frames_packages(settings: Settings) -> None:
    """120 frames at 29.97 fps last 4.004 s: the keyframe forced at 4 s has no frame to fall
    on, so one 4 s segment holds them all (the check wanted two)."""
    name = generate(settings.media_root, "ntsc-120.mp4", size="320x180", seconds=4.004,
                    rate=29.97)  # fmt: skip
    m = steps.run("ntsc-hls", name, "hls", settings)
    rung = outputs(m, "hls-rendition")[0]
    assert len(renditions.media_playlist(Path(rung["path"]))) == 1
    assert renditions.expected_segments(8.008, 4, 1 / 29.97) == 2
    assert renditions.expected_segments(121 / 30, 4, 1 / 30) == 2  # a frame at 4 s: cut there
    assert renditions.expected_segments(4.0, 4, 1 / 30) == 1


def test_chunked_dash_with_8_s_chunks(settings: Settings) -> None:
    name = generate(settings.media_root, "twenty.mp4", seconds=20, gop=250)  # keys 0, 8.33 s...
    eight = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                     chunking="always", chunk_s=8, ffmpeg_threads=1)  # fmt: skip
    m = run_chunked("chunked-dash-8", name, "dash", eight)
    assert len(m["chunking"]["chunks"]) == 3
    check_mpd(Path(outputs(m, "dash-mpd")[0]["path"]), m["source"]["duration_s"])


def test_ladder_rungs_have_square_pixels_and_keep_the_aspect(settings: Settings) -> None:
    name = generate(settings.media_root, "hd-2s.mp4", size="1280x720", seconds=2)
    m = steps.run("sq-hls", name, "hls", settings)
    rungs = outputs(m, "hls-rendition")
    sizes = [picture(Path(r["path"]).parent / "seg_000.ts") for r in rungs]
    assert sizes == [(1280, 720, "1:1"), (854, 480, "1:1"), (640, 360, "1:1")]
    for w, h, _ in sizes:
        assert abs(w - h * 16 / 9) <= 1  # the display aspect, within a pixel
    dash = steps.run("sq-dash", name, "dash", settings)
    reps = outputs(dash, "dash-representation")
    assert [(r["width"], r["height"]) for r in reps] == [(1280, 720), (854, 480), (640, 360)]
    check_mpd(Path(reps[0]["path"]), 2.0)


def test_portrait_sources_are_sized_on_the_short_side(settings: Settings) -> None:
    portrait = generate(settings.media_root, "portrait.mp4", size="1080x1920", seconds=1.5)
    web = steps.run("pt-web", portrait, "web", settings)
    assert picture(Path(web["outputs"][0]["path"])) == (720, 1280, "1:1")
    assert picture(Path(outputs(web, "poster")[0]["path"])) == (720, 1280, "1:1")
    hls = steps.run("pt-hls", portrait, "hls", settings)
    rungs = outputs(hls, "hls-rendition")
    assert [(r["width"], r["height"]) for r in rungs] == [
        (1080, 1920), (720, 1280), (480, 854), (360, 640),
    ]  # fmt: skip
    assert [Path(r["path"]).parent.name for r in rungs] == ["0_1080p", "1_720p", "2_480p", "3_360p"]
    assert all(picture(Path(r["path"]).parent / "seg_000.ts")[2] == "1:1" for r in rungs)
    rotated = generate(settings.media_root, "rotated-hd.mp4", size="1280x720", seconds=1,
                       rotate=90)  # fmt: skip
    web = steps.run("rot-web", rotated, "web", settings)
    assert picture(Path(web["outputs"][0]["path"])) == (720, 1280, "1:1")


def test_hls_starts_at_zero_with_audio_and_video_aligned(settings: Settings) -> None:
    m = steps.run("hls-start", "ffmpeg-python-in1.mp4", "hls", settings)
    for rung in outputs(m, "hls-rendition"):
        first = starts(Path(rung["path"]).parent / "seg_000.ts")
        assert first["video"] == first["audio"] == 0, first  # not 1.4667 and 1.4453 s
        assert channels(Path(rung["path"]).parent / "seg_000.ts") == 2  # a stereo source


@pytest.mark.unit
def test_ladder_audio_is_the_sources_channels_at_most_stereo() -> None:
    def source(count: int | None) -> ProbeResult:
        audio = StreamInfo(index=1, type="audio", codec="aac", channels=count)
        return ProbeResult("x.mp4", 1, "mp4", 1.0, None, [audio])

    assert [renditions.audio_channels(source(n)) for n in (1, 2, 6, None)] == [1, 2, 2, 2]
    options = renditions._audio_options(source(1), get_profile("hls"))
    assert options["ac"] == 1  # mono stays mono: an upmix doubled each rung's AAC encode


def test_playlists_share_one_version_and_declare_the_peak(settings: Settings) -> None:
    name = generate(settings.media_root, "hd-2s.mp4", size="1280x720", seconds=2)
    m = steps.run("pl-hls", name, "hls", settings)
    master = Path(outputs(m, "hls-master")[0]["path"])
    playlists = [master, *master.parent.glob("*/index.m3u8")]
    versions = {re.search(r"#EXT-X-VERSION:(\d+)", p.read_text())[1] for p in playlists}
    assert versions == {"3"}
    for variant in renditions.parse_master(master.read_text()):
        playlist = master.parent / variant["URI"]
        peak = max(
            (playlist.parent / f).stat().st_size * 8 / d
            for d, f in renditions.media_playlist(playlist)
        )
        assert int(variant["BANDWIDTH"]) == math.ceil(peak)


def test_each_rung_is_read_back_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The master playlist and the checks share one reading of each rung's first segment."""
    opened, real_open = [], av.open

    def counting_open(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return real_open(*args, **kwargs)

    name = generate(settings.media_root, "hd-2s.mp4", size="1280x720", seconds=2)
    monkeypatch.setattr(av, "open", counting_open)
    m = steps.run("read-once", name, "hls", settings)
    rungs = outputs(m, "hls-rendition")
    assert len(rungs) == 3 and len(opened) == 1 + len(rungs), opened  # the probe, each rung


def test_chunked_hls_segments_sit_on_the_grid_like_unchunked(settings: Settings) -> None:
    name = generate(settings.media_root, "twenty.mp4", seconds=20, gop=250)
    whole = steps.run("grid-whole", name, "hls", settings)
    eight = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                     chunking="always", chunk_s=8, ffmpeg_threads=1)  # fmt: skip
    chunked = run_chunked("grid-chunked", name, "hls", eight)
    assert [c["start_s"] for c in chunked["chunking"]["chunks"]] == [0.0, 8.333333, 16.666667]
    for m in (whole, chunked):
        playlist = Path(outputs(m, "hls-rendition")[0]["path"])
        assert segment_starts(playlist) == [0.0, 4.0, 8.0, 12.0, 16.0]
        assert channels(playlist.parent / "seg_000.ts") == 1  # the source's mono, not upmixed
