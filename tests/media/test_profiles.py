"""Every shipped profile on real media: ladders (HLS, DASH), audio, thumbnails, remux; and the
profile data files' validation. Media tier: real ffmpeg, no broker."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import av
import pytest

from mediaapp.errors import NotMedia
from mediaapp.media import command, renditions, steps
from mediaapp.media.probe import probe
from mediaapp.settings import Settings

from .test_media import check_previews

pytestmark = pytest.mark.media


def make(path: Path, *args: str) -> None:
    if not path.exists():
        command.run(
            [command.ffmpeg_binary(), "-nostdin", "-loglevel", "error", *args, "-y", str(path)]
        )


@pytest.fixture(scope="module")
def inputs(media_root: Path) -> Path:
    src = ["-f", "lavfi", "-i"]
    make(
        media_root / "hd.mp4",
        *src,
        "testsrc2=size=1280x720:rate=30:duration=9",
        *src,
        "sine=duration=9",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
    )
    make(
        media_root / "odd.mp4",
        *src,
        "testsrc2=size=1279x719:rate=25:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    )
    # Variable frame rate: frames dropped at irregular times, timestamps kept.
    make(
        media_root / "vfr.mp4",
        *src,
        "testsrc2=size=640x360:rate=30:duration=5",
        "-vf",
        "select='not(mod(n\\,7))+lt(mod(n\\,5)\\,2)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    )
    return media_root


@pytest.fixture
def settings(tmp_path: Path, inputs: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=inputs)


def rung_pts_steps(playlist: Path) -> set[float]:
    """Distinct gaps between consecutive video frames over a whole rung (CFR → one gap)."""
    times = []
    for _, seg in renditions.media_playlist(playlist):
        with av.open(str(playlist.parent / seg)) as c:
            times += [float(p.pts * p.time_base) for p in c.demux(video=0) if p.pts is not None]
    times.sort()
    return {round(b - a, 4) for a, b in itertools.pairwise(times)}


def keyframe_times(playlist: Path) -> list[float]:
    """Start time of each segment, and that each segment starts on a keyframe."""
    starts = []
    for _, seg in renditions.media_playlist(playlist):
        with av.open(str(playlist.parent / seg)) as c:
            first = next(p for p in c.demux(video=0) if p.pts is not None)
            assert first.is_keyframe, f"{seg} does not start on a keyframe"
            starts.append(round(float(first.pts * first.time_base), 3))
    return starts


def test_hls_ladder_on_720p(settings: Settings) -> None:
    m = steps.run("hls1", "hd.mp4", "hls", settings)
    master = next(o for o in m["outputs"] if o["kind"] == "hls-master")
    rungs = [o for o in m["outputs"] if o["kind"] == "hls-rendition"]
    assert [r["height"] for r in rungs] == [720, 480, 360]  # 1080 skipped: never upscaled
    variants = renditions.parse_master(Path(master["path"]).read_text())
    for rung, variant in zip(rungs, variants, strict=True):
        assert rung["segments"] == 3  # ceil(9 s / 4 s)
        assert abs(rung["duration_s"] - 9.0) <= 1 / 30 + 1024 / 44100 + 0.01
        assert (
            rung["width"] % 2 == 0 and variant["RESOLUTION"] == f"{rung['width']}x{rung['height']}"
        )
        assert variant["CODECS"].startswith("avc1.64") and variant["CODECS"].endswith(",mp4a.40.2")
        assert int(variant["BANDWIDTH"]) >= int(variant["AVERAGE-BANDWIDTH"]) > 100_000
        assert rung["sha256"] and len(rung["sha256"]) == 64
        playlist = Path(rung["path"])
        assert rung_pts_steps(playlist) == {round(1 / 30, 4)}
    # Segments line up across rungs: same boundaries, each starting on a keyframe.
    starts = [keyframe_times(Path(r["path"])) for r in rungs]
    assert all(s == starts[0] for s in starts)
    assert [round(t - starts[0][0], 3) for t in starts[0]] == [0.0, 4.0, 8.0]  # TS starts at 1.4 s
    assert not list(Path(master["path"]).parent.parent.glob(".hls.part-*"))
    # Playable: ffmpeg's own HLS client reads the master playlist and decodes every variant.
    command.run(
        [
            command.ffmpeg_binary(),
            "-nostdin",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
            master["path"],
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ]
    )


def test_hls_per_rendition_strategy_gives_the_same_ladder(settings: Settings) -> None:
    m = steps.run("hls2", "hd.mp4", "hls", settings, strategy="per_rendition")
    rungs = [o for o in m["outputs"] if o["kind"] == "hls-rendition"]
    assert [(r["height"], r["segments"]) for r in rungs] == [(720, 3), (480, 3), (360, 3)]
    assert len(m["commands"]) == 3


@pytest.mark.parametrize(
    ("name", "heights", "audio"),
    [
        ("silent.mp4", [240], False),  # smaller than the lowest rung: one rung, own size
        ("rotated.mp4", [320], False),  # rotation applied: 240x320
        ("odd.mp4", [480, 360], False),  # 1279x719: even dimensions out
        ("vfr.mp4", [360], False),  # variable frame rate in, constant out
        ("ffmpeg-python-in1.mp4", [240], True),  # the real clip
    ],
)
def test_hls_edge_cases(settings: Settings, name: str, heights: list[int], audio: bool) -> None:
    m = steps.run(f"e-{name.replace('.', '-')}", name, "hls", settings)
    rungs = [o for o in m["outputs"] if o["kind"] == "hls-rendition"]
    assert [r["height"] for r in rungs] == heights
    for rung in rungs:
        assert rung["width"] % 2 == 0 and rung["height"] % 2 == 0
        assert ("mp4a" in rung["codecs"]) is audio
        assert len(rung_pts_steps(Path(rung["path"]))) == 1, "not a constant frame rate"
    if name == "rotated.mp4":
        assert rungs[0]["width"] == 240


def test_dash_ladder(settings: Settings) -> None:
    m = steps.run("dash1", "hd.mp4", "dash", settings)
    mpd = next(o for o in m["outputs"] if o["kind"] == "dash-mpd")
    reps = [o for o in m["outputs"] if o["kind"] == "dash-representation"]
    assert [r["height"] for r in reps] == [720, 480, 360]
    assert all(r["size"] > 10_000 and r["segments"] >= 3 and r["sha256"] for r in reps)
    assert mpd["representations"] == 4  # three video, one audio
    assert abs(mpd["duration_s"] - 9.0) < 0.1 and Path(mpd["path"]).name == "manifest.mpd"


def test_audio_profile(settings: Settings) -> None:
    m = steps.run("aud1", "clip.mp4", "audio", settings)
    codecs = sorted(o["codec"] for o in m["outputs"])
    assert codecs == ["aac", "mp3"]
    for out in m["outputs"]:
        assert abs(out["duration_s"] - 4.0) < 0.1 and out["width"] is None
    assert steps.run("aud2", "tone.m4a", "audio", settings)["outputs"]
    with pytest.raises(NotMedia, match="no audio"):
        steps.run("aud3", "silent.mp4", "audio", settings)


def test_thumbs_profile(settings: Settings) -> None:
    m = steps.run("th1", "ffmpeg-python-in1.mp4", "thumbs", settings)
    assert [o["kind"] for o in m["outputs"]] == ["poster", "sprite", "vtt"]
    check_previews(m, m["source"]["duration_s"])


def test_reencode_auto_remuxes_what_already_fits(settings: Settings) -> None:
    web = steps.run("w1", "clip.mp4", "web", settings)
    shutil.copy(web["outputs"][0]["path"], settings.media_root / "already-web.mp4")
    m = steps.run("w2", "already-web.mp4", "web-auto", settings)
    assert m["outputs"][0]["remuxed"] is True and " -c copy " in m["commands"][0]
    assert probe(Path(m["outputs"][0]["path"])).video.height == 360
    again = steps.run("w3", "clip.mp4", "web-auto", settings)  # not faststart: encode
    assert again["outputs"][0]["remuxed"] is False


@pytest.mark.parametrize(("name", "size"), [("odd.mp4", (1278, 718)), ("vfr.mp4", (640, 360))])
def test_web_profile_makes_even_constant_rate_output(
    settings: Settings, name: str, size: tuple[int, int]
) -> None:
    m = steps.run(f"web-{name[:3]}", name, "web", settings)
    video = m["outputs"][0]
    assert (video["width"], video["height"]) == size
    with av.open(video["path"]) as c:
        times = [float(p.pts * p.time_base) for p in c.demux(video=0) if p.pts is not None]
    times.sort()
    assert len({round(b - a, 4) for a, b in itertools.pairwise(times)}) == 1, "not CFR"
