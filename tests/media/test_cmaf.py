"""Multi-codec ladders: H.264, HEVC and AV1 variants as CMAF, one HLS master and one DASH MPD
over the same segments; every variant probed back, the master playlist parsed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import pytest

from mediaapp.media import colour, renditions, steps
from mediaapp.media.context import JobContext
from mediaapp.settings import Settings

from ..media_sources import MASTER_DISPLAY, generate, generate_hdr, settings_with_profiles

pytestmark = pytest.mark.media

#: Tiny on purpose: SVT-AV1 is slow on two cores.
PROFILES = """
[multi-tiny]
kind = "hls"
segment_s = 1
rungs = [
  { height = 180, video_kbps = 300, codecs = ["h264", "hevc", "av1"] },
  { height = 144, video_kbps = 200 },
]
"""
MPD_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
#: (variant folder, decoder, profile, sample entry, CODECS pattern, pixel format)
EXPECTED = [
    ("0_180p-h264", "h264", "High", "avc1", r"avc1\.6400[0-9a-f]{2}", "yuv420p"),
    ("1_144p-h264", "h264", "High", "avc1", r"avc1\.6400[0-9a-f]{2}", "yuv420p"),
    ("0_180p-hevc", "hevc", "Main 10", "hvc1", r"hvc1\.2\.4\.L\d+\.90", "yuv420p10le"),
    ("0_180p-av1", "av1", "Main", "av01", r"av01\.0\.\d\dM\.08", "yuv420p"),
]


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return settings_with_profiles(tmp_path, media_root, "multi", PROFILES)


@pytest.fixture
def source(settings: Settings) -> str:
    return generate(settings.media_root, "multi-320x180.mp4", size="320x180", seconds=2, gop=30)


def played(folder: Path) -> dict:
    """Decoder, profile, sample entry, pixel format, frames and keyframe positions of a
    variant: its init segment and every media segment, read back as one file."""
    segments = [folder / f for _, f in renditions.media_playlist(folder / "index.m3u8")]
    whole = folder.parent / f".{folder.name}.mp4"
    whole.write_bytes(b"".join(p.read_bytes() for p in [folder / "init.mp4", *segments]))
    with av.open(str(whole)) as c:
        stream = c.streams.video[0]
        ctx = stream.codec_context
        keys = [p.is_keyframe for p in c.demux(stream) if p.size]
        found = {"decoder": stream.codec.name, "profile": ctx.profile,
                 "tag": ctx.codec_tag, "pix_fmt": ctx.format.name if ctx.format else None,
                 "size": (ctx.width, ctx.height)}  # fmt: skip
    whole.unlink()
    return found | {"frames": len(keys), "keyframes": [i for i, k in enumerate(keys) if k],
                    "segments": len(segments)}  # fmt: skip


def check_package(manifest: dict, root: Path) -> None:
    """Every variant probed, the master parsed, the MPD over the very same files."""
    kinds = [o["kind"] for o in manifest["outputs"]]
    assert kinds == ["hls-master", "dash-mpd", *["hls-rendition"] * 4, "hls-audio"]
    for name, decoder, profile, tag, _, pix_fmt in EXPECTED:
        found = played(root / name)
        assert found["decoder"].replace("libdav1d", "av1") == decoder, name
        assert (found["profile"], found["tag"], found["pix_fmt"]) == (profile, tag, pix_fmt)
        assert found["size"] == ((320, 180) if "180p" in name else (256, 144))
        # 60 frames, a keyframe at every segment start (1 s): segments line up across codecs.
        assert (found["frames"], found["segments"]) == (60, 2)
        assert found["keyframes"][:2] == [0, 30], (name, found["keyframes"])

    master = (root / "master.m3u8").read_text()
    variants = renditions.parse_master(master)
    assert [v["URI"] for v in variants] == [f"{e[0]}/index.m3u8" for e in EXPECTED]
    for variant, (_, _, _, _, pattern, _) in zip(variants, EXPECTED, strict=True):
        assert re.fullmatch(pattern + r",mp4a\.40\.2", variant["CODECS"]), variant
        assert variant["AUDIO"] == "aud" and variant["VIDEO-RANGE"] == "SDR"
        assert int(variant["BANDWIDTH"]) >= int(variant["AVERAGE-BANDWIDTH"]) > 0
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud"' in master
    assert 'URI="audio/index.m3u8"' in master
    # An H.264-only player keeps the avc1 variants, and the first variant is one of them.
    h264_only = [v for v in variants if v["CODECS"].split(",")[0].startswith("avc1")]
    assert [v["RESOLUTION"] for v in h264_only] == ["320x180", "256x144"]
    assert variants[0] is h264_only[0]

    mpd = ET.parse(root / "manifest.mpd").getroot()
    sets = mpd.findall(".//d:AdaptationSet", MPD_NS)
    reps = {s.get("id"): [r.get("codecs") for r in s.findall("d:Representation", MPD_NS)]
            for s in sets}  # fmt: skip
    assert [len(r) for r in reps.values()] == [2, 1, 1, 1]  # h264, hevc, av1, audio
    used: set[Path] = set()
    for rep in mpd.findall(".//d:Representation", MPD_NS):
        tpl = rep.find("d:SegmentTemplate", MPD_NS)
        assert tpl is not None
        count = len(tpl.findall(".//d:S", MPD_NS))
        media = [tpl.get("media", "").replace("$Number%03d$", f"{n:03d}") for n in range(count)]
        used |= {root / tpl.get("initialization", ""), *(root / m for m in media)}
    hls = {p for p in root.rglob("*") if p.suffix in (".m4s", ".mp4")}
    assert used == hls and len(hls) == 5 * 3  # the same 15 files: one init + 2 segments each
    hls_codecs = {v["CODECS"].split(",")[0] for v in variants}
    assert {c for r in reps.values() for c in r} == hls_codecs | {"mp4a.40.2"}


def test_a_multi_codec_ladder_is_one_cmaf_package_for_hls_and_dash(
    settings: Settings, source: str
) -> None:
    manifest = steps.run("multi-single", source, "multi-tiny", settings)
    root = settings.output_root / "multi-single" / "hls"
    check_package(manifest, root)
    assert len(manifest["commands"]) == 1  # one encode: the source decoded once for all


def test_per_rendition_encodes_each_codec_on_its_own(settings: Settings, source: str) -> None:
    manifest = steps.run("multi-per", source, "multi-tiny", settings, strategy="per_rendition")
    check_package(manifest, settings.output_root / "multi-per" / "hls")
    encodes = manifest["commands"]
    assert [("libx264" in c, "libx265" in c, "libsvtav1" in c) for c in encodes] == [
        (True, False, False), (False, True, False), (False, False, True)]  # fmt: skip


def test_chunked_encoding_works_per_codec(settings: Settings, source: str) -> None:
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       profiles_dir=settings.profiles_dir, chunking="always", chunk_s=1,
                       ffmpeg_threads=1)  # fmt: skip
    ctx = JobContext.open("multi-chunked", source, "multi-tiny", chunked)
    plan = steps.chunk_plan(ctx, workers=2)
    chunks = steps.split(ctx, plan.chunk_s)
    assert len(chunks) == 2
    # Each chunk once per codec (the step each codec's workers run), then the audio, once.
    parts = [steps.encode_chunk(ctx, c, codec=codec) for codec in ("av1", "hevc", "h264")
             for c in chunks]  # fmt: skip
    for part in parts:
        (command,) = [part["command"]]
        encoder = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}[part["codec"]]
        assert encoder in command and all(
            e not in command for e in ("libx264", "libx265", "libsvtav1") if e != encoder
        )
    parts.append(steps.encode_audio(ctx))
    manifest = steps.assemble(ctx, parts, plan.to_dict())
    assert manifest["strategy"] == "chunked"
    assert set(manifest["chunking"]["joins"]) == {e[0] for e in EXPECTED}
    check_package(manifest, settings.output_root / "multi-chunked" / "hls")


def test_an_hdr10_source_stays_hdr10_in_hevc_and_av1_and_is_tone_mapped_in_h264(
    settings: Settings,
) -> None:
    pq = generate_hdr(settings.media_root, "hdr10-320x180.mp4", size="320x180", gop=30)
    manifest = steps.run("multi-hdr", pq, "multi-tiny", settings)
    root = settings.output_root / "multi-hdr" / "hls"
    ranges = {v["URI"].split("/")[0]: v["VIDEO-RANGE"]
              for v in renditions.parse_master((root / "master.m3u8").read_text())}  # fmt: skip
    assert ranges == {"0_180p-h264": "SDR", "1_144p-h264": "SDR", "0_180p-hevc": "PQ",
                      "0_180p-av1": "PQ"}  # fmt: skip
    for out in (o for o in manifest["outputs"] if o["kind"] == "hls-rendition"):
        playlist = Path(out["path"])
        segment = playlist.parent / renditions.media_playlist(playlist)[0][1]
        found = colour.read(segment, playlist.parent / "init.mp4")
        if out["codec"] in ("hevc", "av1"):
            assert (found.transfer, found.primaries, found.bit_depth) == (
                colour.PQ, "bt2020", 10)  # fmt: skip
            assert found.mastering is not None and found.content_light is not None
            assert out["codec"] == "av1" or found.mastering.x265() == MASTER_DISPLAY
        else:  # H.264: BT.709 SDR, 8-bit, no HDR side data
            assert (found.transfer, found.primaries, found.bit_depth) == ("bt709", "bt709", 8)
            assert not found.mastering and not found.content_light, out["name"]


def test_captions_reach_both_the_master_and_the_mpd(settings: Settings, source: str) -> None:
    (settings.media_root / "multi-captions.vtt").write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello\n"
    )
    given = [{"path": "multi-captions.vtt", "language": "en"}]
    manifest = steps.run("multi-subs", source, "multi-tiny", settings, subtitles=given)
    root = settings.output_root / "multi-subs" / "hls"
    master = (root / "master.m3u8").read_text()
    assert "#EXT-X-MEDIA:TYPE=SUBTITLES" in master and 'URI="subs0/index.m3u8"' in master
    assert all(v.get("SUBTITLES") == "subs" for v in renditions.parse_master(master))
    mpd = ET.parse(root / "manifest.mpd").getroot()
    text = [s for s in mpd.iter(f"{{{MPD_NS['d']}}}AdaptationSet")
            if s.get("contentType") == "text"]  # fmt: skip
    assert len(text) == 1 and text[0].get("lang") == "en"
    kinds = [o["kind"] for o in manifest["outputs"]]
    assert kinds.count("hls-subtitles") == 1 and kinds.count("dash-subtitles") == 1


def test_quality_is_measured_on_every_variant(settings: Settings, source: str) -> None:
    (Path(settings.profiles_dir) / "measured.toml").write_text(
        PROFILES.replace("[multi-tiny]", "[multi-measured]") + "quality = { measure = true }\n"
    )
    manifest = steps.run("multi-q", source, "multi-measured", settings)
    scored = {o["name"]: o["quality"] for o in manifest["outputs"] if o["kind"] == "hls-rendition"}
    assert list(scored) == [f"{e[0]}/index.m3u8" for e in EXPECTED]
    # Frame-aligned (PSNR well above noise) and a real picture in every codec.
    assert all(q["psnr_mean"] > 30 and q["vmaf_mean"] > 50 for q in scored.values()), scored
