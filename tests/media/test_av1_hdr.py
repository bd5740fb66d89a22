"""AV1 rungs of a multi-codec ladder keep an HDR source's HDR: 10-bit, BT.2020 and its transfer
(PQ or HLG), the mastering display and content light level carried over, said so by the
master (VIDEO-RANGE, the long av01 CODECS) and the MPD; H.264 beside them is tone-mapped; an
SDR source's AV1 stays 8-bit SDR. Real ffmpeg (SVT-AV1) on 1 s 256x144 clips."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mediaapp.media import colour, renditions, steps
from mediaapp.media.colour import Colour
from mediaapp.media.context import JobContext
from mediaapp.media.probe import probe
from mediaapp.settings import Settings

from ..media_sources import generate, generate_hdr, settings_with_profiles

pytestmark = pytest.mark.media

PROFILES = """
[av1-hdr]
kind = "hls"
segment_s = 1
preset = "ultrafast"
rungs = [{ height = 144, video_kbps = 300, codecs = ["h264", "av1"] }]
"""
CICP = "urn:mpeg:mpegB:cicp:"
MPD_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return settings_with_profiles(tmp_path, media_root, "av1-hdr", PROFILES)


def package(settings: Settings, source: str, job: str) -> tuple[Path, dict[str, Colour]]:
    """The job's package and each variant's colour, read back from its first segment."""
    steps.run(job, source, "av1-hdr", settings)
    root = settings.output_root / job / "hls"
    found = {}
    for name in ("0_144p-h264", "0_144p-av1"):
        segment = renditions.media_playlist(root / name / "index.m3u8")[0][1]
        found[name] = colour.read(root / name / segment, root / name / "init.mp4")
    return root, found


def master(root: Path) -> dict[str, dict[str, str]]:
    listed = renditions.parse_master((root / "master.m3u8").read_text())
    return {v["URI"].split("/")[0]: v for v in listed}


def mpd_colour(root: Path) -> dict[str, dict[str, str | None]]:
    """Each video adaptation set's CICP properties, by its first representation's codec."""
    found = {}
    for sets in ET.parse(root / "manifest.mpd").getroot().iterfind(".//d:AdaptationSet", MPD_NS):
        rep = sets.find("d:Representation", MPD_NS)
        if rep is not None and sets.get("contentType") == "video":
            found[rep.get("codecs", "")[:4]] = {
                p.get("schemeIdUri", "")[len(CICP) :]: p.get("value")
                for p in sets.iterfind("d:SupplementalProperty", MPD_NS)
            }
    return found


@pytest.mark.parametrize(
    ("transfer", "code", "video_range"), [(colour.PQ, "16", "PQ"), (colour.HLG, "18", "HLG")]
)
def test_av1_keeps_hdr_and_h264_is_tone_mapped(
    settings: Settings, transfer: str, code: str, video_range: str
) -> None:
    name = generate_hdr(settings.media_root, f"av1-{video_range}-144.mp4", transfer=transfer,
                        size="256x144", seconds=1, gop=30)  # fmt: skip
    source = probe(settings.media_root / name).colour
    assert source is not None and source.transfer == transfer
    root, found = package(settings, name, f"av1-{video_range.lower()}")
    av1, h264 = found["0_144p-av1"], found["0_144p-h264"]
    assert (av1.transfer, av1.primaries, av1.matrix, av1.bit_depth) == (
        transfer, "bt2020", "bt2020nc", 10)  # fmt: skip
    if transfer == colour.PQ:  # the source's static metadata, as SVT-AV1 stores it
        assert source.mastering is not None and source.content_light is not None
        assert av1.mastering is not None and av1.mastering.matches(source.mastering)
        assert av1.mastering.max_luminance == source.mastering.max_luminance == 1000
        assert av1.content_light == source.content_light
    else:  # HLG has none, and gets none
        assert av1.mastering is None and av1.content_light is None
    assert (h264.transfer, h264.primaries, h264.matrix, h264.bit_depth) == ("bt709",) * 3 + (8,)
    assert not h264.mastering and not h264.content_light
    listed = master(root)
    assert listed["0_144p-av1"]["VIDEO-RANGE"] == video_range
    assert listed["0_144p-h264"]["VIDEO-RANGE"] == "SDR"
    av1_codecs = listed["0_144p-av1"]["CODECS"].split(",")[0]
    assert av1_codecs.startswith("av01.0.") and av1_codecs.endswith(f".10.0.110.09.{code}.09.0")
    assert mpd_colour(root) == {
        "av01": {"ColourPrimaries": "9", "TransferCharacteristics": code,
                 "MatrixCoefficients": "9"},
        "avc1": {},
    }  # fmt: skip


def test_an_sdr_source_gives_8_bit_sdr_av1_as_before(settings: Settings) -> None:
    name = generate(settings.media_root, "av1-sdr-144.mp4", size="256x144", seconds=1, gop=30)
    manifest = steps.run("av1-sdr", name, "av1-hdr", settings)
    root = settings.output_root / "av1-sdr" / "hls"
    segment = renditions.media_playlist(root / "0_144p-av1" / "index.m3u8")[0][1]
    av1 = colour.read(root / "0_144p-av1" / segment, root / "0_144p-av1" / "init.mp4")
    assert av1.bit_depth == 8 and not av1.is_hdr and not av1.mastering and not av1.content_light
    (encode,) = [c for c in manifest["commands"] if "libsvtav1" in c]
    assert "-svtav1-params irefresh-type=2:scd=0 " in encode and "-pix_fmt yuv420p " in encode
    assert not any(w in encode for w in ("yuv420p10le", "bt2020", "smpte2084", "-color_"))
    assert master(root)["0_144p-av1"]["VIDEO-RANGE"] == "SDR"
    assert master(root)["0_144p-av1"]["CODECS"].startswith("av01.0.00M.08,")
    assert mpd_colour(root) == {"avc1": {}, "av01": {}}


def test_chunked_av1_keeps_hdr10_in_every_chunk(settings: Settings) -> None:
    """Each chunk is an encode of its own: every one 10-bit PQ with the static metadata."""
    name = generate_hdr(settings.media_root, "av1-PQ-144-2s.mp4", size="256x144", seconds=2,
                        gop=30)  # fmt: skip
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       profiles_dir=settings.profiles_dir, chunking="always", chunk_s=1,
                       ffmpeg_threads=1)  # fmt: skip
    ctx = JobContext.open("av1-chunked", name, "av1-hdr", chunked)
    plan = steps.chunk_plan(ctx, workers=2)
    chunks = steps.split(ctx, plan.chunk_s)
    assert len(chunks) == 2
    parts = [steps.encode_chunk(ctx, c, codec=codec) for codec in ("av1", "h264") for c in chunks]
    manifest = steps.assemble(ctx, [*parts, steps.encode_audio(ctx)], plan.to_dict())
    assert manifest["strategy"] == "chunked"
    folder = chunked.output_root / "av1-chunked" / "hls" / "0_144p-av1"
    segments = [f for _, f in renditions.media_playlist(folder / "index.m3u8")]
    assert len(segments) == 2
    source = probe(settings.media_root / name).colour
    assert source is not None and source.mastering is not None
    for segment in segments:
        found = colour.read(folder / segment, folder / "init.mp4")
        assert (found.transfer, found.bit_depth, found.content_light) == (
            colour.PQ, 10, source.content_light)  # fmt: skip
        assert found.mastering is not None and found.mastering.matches(source.mastering)


def test_an_hdr_av1_variant_is_scored_against_the_untone_mapped_source(
    settings: Settings,
) -> None:
    """Its reference is the source as it is (like HEVC's), not the H.264 rung's tone-map:
    PQ scored against SDR would be noise."""
    name = generate_hdr(settings.media_root, "av1-PQ-144.mp4", size="256x144", seconds=1,
                        gop=30)  # fmt: skip
    (Path(settings.profiles_dir) / "q.toml").write_text(
        PROFILES.replace("[av1-hdr]", "[av1-q]") + "quality = { measure = true }\n"
    )
    manifest = steps.run("av1-q", name, "av1-q", settings)
    scored = {o["codec"]: o["quality"] for o in manifest["outputs"] if o.get("quality")}
    assert scored.keys() == {"h264", "av1"}
    assert all(q["psnr_mean"] > 30 and q["vmaf_mean"] > 50 for q in scored.values()), scored
