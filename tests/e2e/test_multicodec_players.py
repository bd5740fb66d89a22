"""A multi-codec ladder in real players (hls.js, dash.js in headless Chromium, as in
test_players.py): the HLS master and the DASH MPD play, and a browser that only has H.264
(``MediaSource.isTypeSupported`` refusing every other codec) still plays the H.264 variants,
and only them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mediaapp.media import steps
from mediaapp.settings import Settings

from ..conftest import chromium_driver
from ..media.test_cmaf import PROFILES
from ..media_sources import generate, generate_hdr
from .test_players import chromium, play_checks, served  # noqa: F401 - fixtures

pytestmark = [pytest.mark.media, pytest.mark.players]

#: Injected before any page script: the browser's MSE says no to anything but H.264 and AAC.
H264_ONLY = """
const real = MediaSource.isTypeSupported.bind(MediaSource);
MediaSource.isTypeSupported = (type) => {
  const codecs = (type.match(/codecs="?([^"]*)"?/) || [, ""])[1].split(",").map((c) => c.trim());
  return codecs.every((c) => !c || c.startsWith("avc1") || c.startsWith("mp4a")) && real(type);
};
"""
H264 = [(320, 180), (256, 144)]
ALL = [*H264, (320, 180), (320, 180)]  # + HEVC and AV1 at the top rung


@pytest.fixture(scope="module")
def package(served: tuple[Path, str], media_root: Path, tmp_path_factory: Any) -> dict:  # noqa: F811
    root, _ = served
    profiles = tmp_path_factory.mktemp("profiles")
    (profiles / "multi.toml").write_text(PROFILES)
    settings = Settings(data_dir=root / "data", media_root=media_root, ffmpeg_threads=2,
                        profiles_dir=str(profiles))  # fmt: skip
    source = generate(media_root, "multi-320x180.mp4", size="320x180", seconds=2, gop=30)
    return steps.run("multi-players", source, "multi-tiny", settings)


@pytest.fixture
def h264_only(tmp_path: Path) -> Iterator[Any]:
    driver = chromium_driver(tmp_path / "chromium", "--mute-audio", log_console=True)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": H264_ONLY})
    yield driver
    driver.quit()


def _third_party(manifest: dict) -> None:
    """The master and the MPD as PyPI's m3u8 and mpegdash parse them."""
    import m3u8
    from mpegdash.parser import MPEGDASHParser

    paths = {o["kind"]: Path(o["path"]) for o in manifest["outputs"]}
    master = m3u8.load(str(paths["hls-master"]))
    assert [p.stream_info.resolution for p in master.playlists] == ALL
    assert [p.stream_info.codecs.split(".")[0] for p in master.playlists] == [
        "avc1", "avc1", "hvc1", "av01"]  # fmt: skip
    assert [m.group_id for m in master.media if m.type == "AUDIO"] == ["aud"]
    mpd = MPEGDASHParser.parse(str(paths["dash-mpd"]))
    sets = mpd.periods[0].adaptation_sets
    assert [len(s.representations) for s in sets] == [2, 1, 1, 1]


def _page(site: tuple[Path, str], manifest: dict, kind: str, player: str) -> str:
    root, base = site
    entry = next(o for o in manifest["outputs"] if o["kind"] == kind)
    url = f"{base}/{quote(str(Path(entry['path']).relative_to(root)))}"
    return f"{base}/player.html?player={player}&src={quote(url, safe='')}"


@pytest.mark.parametrize(
    ("kind", "player"),
    [("hls-master", "hls"), ("dash-mpd", "dash"), ("hls-master", "shaka"), ("dash-mpd", "shaka")],
)
def test_a_multi_codec_ladder_plays(
    kind: str,
    player: str,
    package: dict,
    served: tuple[Path, str],  # noqa: F811
    chromium: Any,  # noqa: F811
) -> None:
    _third_party(package)
    chromium.get(_page(served, package, kind, player))
    listed = play_checks(chromium, [], package["source"]["duration_s"])
    # The player lists only what this Chromium decodes (H.264, AV1; HEVC seldom), at least
    # the H.264 variants.
    assert set(H264) <= {r[:2] for r in listed} and len(listed) <= len(ALL)


@pytest.mark.parametrize(("kind", "player"), [("hls-master", "hls"), ("dash-mpd", "dash")])
def test_an_h264_only_player_plays_the_h264_variants(
    kind: str,
    player: str,
    package: dict,
    served: tuple[Path, str],  # noqa: F811
    h264_only: Any,
) -> None:
    h264_only.get(_page(served, package, kind, player))
    assert h264_only.execute_script(
        "return [MediaSource.isTypeSupported('video/mp4; codecs=\"av01.0.00M.08\"'),"
        " MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.64000d\"')]"
    ) == [False, True]
    listed = play_checks(h264_only, H264, package["source"]["duration_s"])
    assert sorted(r[:2] for r in listed) == sorted(H264)


#: AV1 alone at the top rung, so that forcing it is forcing a size.
HDR_PROFILES = """
[av1-hdr-players]
kind = "hls"
segment_s = 1
preset = "ultrafast"
rungs = [
  { height = 180, video_kbps = 300, codecs = ["av1"] },
  { height = 144, video_kbps = 200 },
]
"""


@pytest.fixture(scope="module")
def hdr_package(served: tuple[Path, str], media_root: Path, tmp_path_factory: Any) -> dict:  # noqa: F811
    root, _ = served
    profiles = tmp_path_factory.mktemp("hdr-profiles")
    (profiles / "av1-hdr.toml").write_text(HDR_PROFILES)
    settings = Settings(data_dir=root / "data", media_root=media_root, ffmpeg_threads=2,
                        profiles_dir=str(profiles))  # fmt: skip
    source = generate_hdr(media_root, "hdr10-320x180.mp4", size="320x180", gop=30)
    return steps.run("av1-hdr-players", source, "av1-hdr-players", settings)


@pytest.mark.parametrize(("kind", "player"), [("hls-master", "hls"), ("dash-mpd", "dash")])
def test_an_hdr10_av1_variant_plays(
    kind: str,
    player: str,
    hdr_package: dict,
    served: tuple[Path, str],  # noqa: F811
    chromium: Any,  # noqa: F811
) -> None:
    """The 10-bit PQ AV1 variant (long av01 CODECS, VIDEO-RANGE=PQ, CICP descriptors) is one
    this Chromium lists and, forced in hls.js, plays throughout."""
    master = next(Path(o["path"]) for o in hdr_package["outputs"] if o["kind"] == "hls-master")
    assert ".10.0.110.09.16.09.0" in master.read_text() and "VIDEO-RANGE=PQ" in master.read_text()
    page = _page(served, hdr_package, kind, player)
    chromium.get(page + ("&force=1" if player == "hls" else ""))
    forced = (320, 180) if player == "hls" else None
    listed = play_checks(chromium, [], hdr_package["source"]["duration_s"], forced)
    if player == "hls":  # the HLS master lists H.264 then AV1: both playable here
        assert [r[:2] for r in listed] == [(256, 144), (320, 180)]
