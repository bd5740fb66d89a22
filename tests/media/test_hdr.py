"""HDR done right (issue 16): HDR sources detected, tone-mapped to BT.709 SDR in H.264,
kept as HDR10 or HLG in HEVC Main10 rungs, every output's colour read back; an SDR source
untouched. Media tier: real ffmpeg and PyAV on 2 s 320x240 clips, no broker."""

from __future__ import annotations

import io
from pathlib import Path
from xml.etree import ElementTree

import av
import pytest

from mediaapp.errors import ColourMismatch, InvalidInput
from mediaapp.media import colour, command, hdr, renditions, steps
from mediaapp.media.probe import ProbeResult, probe
from mediaapp.settings import Settings

from ..media_sources import MASTER_DISPLAY, generate, generate_hdr, settings_with_profiles
from .test_chunking import run_chunked

pytestmark = pytest.mark.media


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", media_root=media_root, ffmpeg_threads=1)


@pytest.fixture
def pq(media_root: Path) -> str:
    return generate_hdr(media_root, "hdr10-2s.mp4", gop=30)


@pytest.fixture
def hlg(media_root: Path) -> str:
    return generate_hdr(media_root, "hlg-2s.mp4", transfer=colour.HLG)


@pytest.fixture
def sdr(media_root: Path) -> str:
    return generate(media_root, "sdr-2s.mp4", size="320x240", seconds=2)


def output(manifest: dict, kind: str) -> dict:
    return next(o for o in manifest["outputs"] if o["kind"] == kind)


def first_segment(rung: dict) -> tuple[Path, Path | None]:
    playlist = Path(rung["path"])
    segments = renditions.media_playlist(playlist)
    return playlist.parent / segments[0][1], renditions.init_segment(playlist)


def luma_span(path: Path) -> int:
    """Brightest minus darkest luma of the first frame, in 8-bit steps."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    plane = frame.planes[0]
    raw, deep = bytes(plane), frame.format.components[0].bits > 8
    rows = [raw[r * plane.line_size : r * plane.line_size + plane.width * (2 if deep else 1)]
            for r in range(plane.height)]  # fmt: skip
    if deep:
        values = [int.from_bytes(row[i : i + 2], "little") >> 2 for row in rows
                  for i in range(0, len(row), 2)]  # fmt: skip
    else:
        values = [v for row in rows for v in row]
    return max(values) - min(values)


def test_hdr10_hlg_and_sdr_sources_are_told_apart(
    media_root: Path, pq: str, hlg: str, sdr: str
) -> None:
    found = probe(media_root / pq)
    c = found.colour
    assert c is not None and c.is_hdr and not c.dolby_vision
    assert (c.transfer, c.primaries, c.matrix, c.bit_depth) == (
        "smpte2084", "bt2020", "bt2020nc", 10,
    )  # fmt: skip
    assert c.mastering is not None and c.mastering.x265() == MASTER_DISPLAY
    assert c.content_light == colour.ContentLight(1000, 400)
    assert ProbeResult.from_dict(found.to_dict()) == found  # travels to later steps intact
    assert found.to_dict()["streams"][0]["colour"]["is_hdr"] is True
    h = probe(media_root / hlg).colour
    assert h is not None and h.is_hdr and h.transfer == "arib-std-b67" and h.mastering is None
    s = probe(media_root / sdr).colour
    assert s is not None and not s.is_hdr and s.bit_depth == 8


def test_hdr10_to_web_mp4_is_tone_mapped_bt709_8_bit(settings: Settings, pq: str) -> None:
    m = steps.run("hdr-web", pq, "web", settings)
    assert m["source"]["streams"][0]["colour"]["transfer"] == "smpte2084"  # manifest's input
    video = output(m, "video")
    found = colour.read(Path(video["path"]))  # read back here, not only by the job
    assert (found.transfer, found.primaries, found.matrix) == ("bt709",) * 3
    assert found.bit_depth == 8 and found.mastering is None and found.content_light is None
    assert video["colour"]["transfer"] == "bt709" and video["codec"] == "h264"
    encode = m["commands"][0]
    assert "tonemap=desat=0:tonemap=hable" in encode and "-color_trc bt709" in encode
    # Not washed out: the tone-map spreads the picture over more of the range than the raw
    # PQ signal does (lifted blacks, dim whites).
    assert luma_span(Path(video["path"])) > luma_span(settings.media_root / pq) + 15
    assert "tonemap=" in m["commands"][1]  # the poster JPEG too


def test_hdr10_to_hls_hdr10_keeps_pq_and_its_side_data(settings: Settings, pq: str) -> None:
    m = steps.run("hdr-hls10", pq, "hls-hdr10", settings)
    rung = output(m, "hls-rendition")
    segment, init = first_segment(rung)
    assert init is not None and segment.suffix == ".m4s"
    found = colour.read(segment, init)
    assert (found.transfer, found.primaries, found.matrix, found.bit_depth) == (
        "smpte2084", "bt2020", "bt2020nc", 10,
    )  # fmt: skip
    assert found.mastering is not None and found.mastering.x265() == MASTER_DISPLAY
    assert found.content_light == colour.ContentLight(1000, 400)
    master = Path(output(m, "hls-master")["path"]).read_text()
    variant = renditions.parse_master(master)[0]
    assert variant["CODECS"].startswith("hvc1.2.4.L") and variant["VIDEO-RANGE"] == "PQ"
    assert rung["codec"] == "hevc" and "tonemap" not in m["commands"][0]
    with av.open(str(Path(rung["path"]).parent / "init.mp4")) as c:
        assert c.streams.video[0].codec_context.codec_tag == "hvc1"


def test_hdr10_h264_ladders_are_tone_mapped(settings: Settings, pq: str) -> None:
    for profile in ("hls", "dash"):
        m = steps.run(f"hdr-{profile}", pq, profile, settings)
        rungs = [o for o in m["outputs"] if o["kind"] in ("hls-rendition", "dash-representation")]
        assert rungs and all(r["colour"]["transfer"] == "bt709" for r in rungs)
        assert all(r["colour"]["bit_depth"] == 8 and not r["colour"]["is_hdr"] for r in rungs)
    segment, init = first_segment(output(steps.run("hdr-hls-x", pq, "hls", settings),
                                         "hls-rendition"))  # fmt: skip
    assert init is None and colour.read(segment).primaries == "bt709"


def test_hlg_is_kept_in_hevc_and_tone_mapped_in_h264(settings: Settings, hlg: str) -> None:
    m = steps.run("hlg-hls10", hlg, "hls-hdr10", settings, strategy="per_rendition")
    found = colour.read(*first_segment(output(m, "hls-rendition")))
    assert (found.transfer, found.primaries, found.bit_depth) == ("arib-std-b67", "bt2020", 10)
    assert found.mastering is None  # none in the source: none made up
    master = Path(output(m, "hls-master")["path"]).read_text()
    assert renditions.parse_master(master)[0]["VIDEO-RANGE"] == "HLG"
    web = steps.run("hlg-web", hlg, "web", settings)
    assert colour.read(Path(output(web, "video")["path"])).transfer == "bt709"


def test_pq_tagged_in_the_container_only_is_tone_mapped(settings: Settings) -> None:
    """The frames say nothing of their colour, the MP4 says PQ: the tone-map reads the
    probe's tags (zscale had no path from "unspecified" and ffmpeg failed), chunked too."""
    name = generate_hdr(settings.media_root, "pq-colr-only.mp4", size="256x144", gop=30,
                        container_only=True)  # fmt: skip
    c = probe(settings.media_root / name).colour
    assert c is not None and c.transfer == "smpte2084" and c.primaries == "bt2020"
    with av.open(str(settings.media_root / name)) as container:
        assert next(container.decode(video=0)).color_trc == 2  # unspecified in the bitstream
    m = steps.run("pq-colr-web", name, "web", settings)
    found = colour.read(Path(output(m, "video")["path"]))
    assert (found.transfer, found.primaries, found.matrix, found.bit_depth) == (
        "bt709", "bt709", "bt709", 8,
    )  # fmt: skip
    assert "tin=smpte2084" in m["commands"][0]
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       chunking="always", chunk_s=1, ffmpeg_threads=1)  # fmt: skip
    m = run_chunked("pq-colr-chunked", name, "web", chunked)
    assert colour.read(Path(output(m, "video")["path"])).transfer == "bt709"


def test_pq_tagged_in_the_container_only_is_scored_against_its_tone_map(
    tmp_path: Path, media_root: Path
) -> None:
    """The quality reference's tone-map reads the probe's tags too (it failed: zscale had no
    path from the frames' "unspecified")."""
    name = generate_hdr(media_root, "pq-colr-only.mp4", size="256x144", gop=30,
                        container_only=True)  # fmt: skip
    toml = '[web-q]\nkind = "mp4"\nheight = 144\nquality = { measure = true, sample = 0 }\n'
    settings = settings_with_profiles(tmp_path, media_root, "colr-quality", toml)
    q = output(steps.run("pq-colr-q", name, "web-q", settings), "video")["quality"]
    assert q["psnr_mean"] > 35, q


def test_hlg_signalled_by_an_alternative_transfer_sei_is_hlg(settings: Settings) -> None:
    """Broadcast HLG says bt2020-10 in the VUI (and MP4) for SDR screens and arib-std-b67 in
    an alternative transfer characteristics SEI, which ffmpeg's decoder applies to the
    frames: the probe took it for SDR, and every output then failed its check as an "SDR
    output tagged HDR"."""
    name = generate_hdr(settings.media_root, "hlg-atc.mp4", transfer=colour.HLG,
                        size="256x144", seconds=1, atc=True)  # fmt: skip
    with av.open(str(settings.media_root / name)) as container:
        assert container.streams.video[0].codec_context.color_trc == 14  # bt2020-10
    c = probe(settings.media_root / name).colour
    assert c is not None and c.transfer == colour.HLG and c.is_hdr
    web = steps.run("hlg-atc-web", name, "web", settings)
    assert colour.read(Path(output(web, "video")["path"])).transfer == "bt709"
    hevc = steps.run("hlg-atc-hls10", name, "hls-hdr10", settings)
    found = colour.read(*first_segment(output(hevc, "hls-rendition")))
    assert (found.transfer, found.primaries, found.bit_depth) == (colour.HLG, "bt2020", 10)


def test_sdr_source_with_hdr_side_data_gives_a_clean_sdr_mp4(settings: Settings) -> None:
    """No transfer tag calls it HDR, but its SEI carries a mastering display and light level:
    the SDR rendition drops them as the HEVC one does (libx264 wrote them, and the job failed
    its own check as an "SDR output tagged HDR"), chunked too."""
    name = "sdr-with-mastering.mp4"
    params = f"log-level=error:keyint=30:hdr10=1:master-display={MASTER_DISPLAY}:max-cll=1000,400"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi",
                 "-i", "testsrc2=size=256x144:rate=30:duration=2", "-vf", "format=yuv420p10le",
                 "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", params,
                 "-y", str(settings.media_root / name)])  # fmt: skip
    c = probe(settings.media_root / name).colour
    assert c is not None and not c.is_hdr and c.mastering is not None
    m = steps.run("sdr-md-web", name, "web", settings)
    found = colour.read(Path(output(m, "video")["path"]))
    assert not found.is_hdr and found.mastering is None and found.content_light is None
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       chunking="always", chunk_s=1, ffmpeg_threads=1)  # fmt: skip
    m = run_chunked("sdr-md-chunked", name, "web", chunked)
    assert colour.read(Path(output(m, "video")["path"])).mastering is None


def test_pq_in_bt709_primaries_is_hdr10_in_bt2020(settings: Settings) -> None:
    """HDR10 is BT.2020: a PQ source in other primaries is converted to them (the rung was
    encoded in BT.709 primaries, tagged so, and failed its check), and tone-maps from its own."""
    name = generate_hdr(settings.media_root, "pq-bt709-primaries.mp4", size="256x144",
                        seconds=1, primaries="bt709")  # fmt: skip
    c = probe(settings.media_root / name).colour
    assert c is not None and (c.transfer, c.primaries) == ("smpte2084", "bt709")
    m = steps.run("pq709-hls10", name, "hls-hdr10", settings)
    found = colour.read(*first_segment(output(m, "hls-rendition")))
    assert (found.transfer, found.primaries, found.matrix) == ("smpte2084", "bt2020", "bt2020nc")
    assert found.mastering is not None and found.mastering.x265() == MASTER_DISPLAY
    web = steps.run("pq709-web", name, "web", settings)
    assert colour.read(Path(output(web, "video")["path"])).primaries == "bt709"


def test_the_multi_codec_mpd_says_which_adaptation_set_is_hdr(
    tmp_path: Path, media_root: Path, pq: str
) -> None:
    """The master says VIDEO-RANGE=PQ for the HEVC variant; the MPD over the same segments
    said nothing, so a DASH client took PQ for SDR: CICP code points, as DASH-IF signals them."""
    toml = ('[multi-hdr]\nkind = "hls"\nsegment_s = 1\npreset = "veryfast"\nrungs = '
            '[{ height = 240, video_kbps = 400, codecs = ["h264", "hevc"] }]\n')  # fmt: skip
    settings = settings_with_profiles(tmp_path, media_root, "multi-hdr", toml)
    m = steps.run("hdr-multi-mpd", pq, "multi-hdr", settings)
    mpd = next(Path(o["path"]) for o in m["outputs"] if o["path"].endswith(".mpd"))
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    cicp = "urn:mpeg:mpegB:cicp:"
    found = {}
    for adaptation in ElementTree.parse(mpd).getroot().iterfind(".//d:AdaptationSet", ns):
        codecs = adaptation.find("d:Representation", ns).get("codecs")  # type: ignore[union-attr]
        properties = adaptation.iterfind("d:SupplementalProperty", ns)
        found[codecs[:4]] = {p.get("schemeIdUri", "")[len(cicp):]: p.get("value")
                             for p in properties}  # fmt: skip
    assert found["hvc1"] == {"ColourPrimaries": "9", "TransferCharacteristics": "16",
                             "MatrixCoefficients": "9"}  # fmt: skip
    assert found["avc1"] == {}  # tone-mapped: SDR, nothing to say


def test_sdr_source_is_untouched(settings: Settings, sdr: str) -> None:
    web = steps.run("sdr-web", sdr, "web", settings)
    for cmd in web["commands"]:
        assert not any(w in cmd for w in ("zscale", "tonemap", "sidedata", "-color_trc"))
    assert "scale=320:240[s1];[s1]setsar=1[s2];[s2]format=yuv420p" in web["commands"][0]
    found = colour.read(Path(output(web, "video")["path"]))
    assert not found.is_hdr and found.transfer is None  # untagged in, untagged out
    hevc = steps.run("sdr-hls10", sdr, "hls-hdr10", settings)
    found = colour.read(*first_segment(output(hevc, "hls-rendition")))
    assert not found.is_hdr and found.mastering is None and found.bit_depth == 10
    assert "hdr10" not in hevc["commands"][0] and "smpte2084" not in hevc["commands"][0]
    master = Path(output(hevc, "hls-master")["path"]).read_text()
    assert renditions.parse_master(master)[0]["VIDEO-RANGE"] == "SDR"


def test_chunked_hdr10_web_is_tone_mapped_in_every_chunk(settings: Settings, pq: str) -> None:
    chunked = Settings(data_dir=settings.data_dir, media_root=settings.media_root,
                       chunking="always", chunk_s=1, ffmpeg_threads=1)  # fmt: skip
    m = run_chunked("hdr-chunked", pq, "web", chunked)
    assert len(m["chunking"]["chunks"]) == 2
    encodes = [c for c in m["commands"] if "libx264" in c]
    assert len(encodes) == 2 and all("tonemap=desat=0:tonemap=hable" in c for c in encodes)
    assert colour.read(Path(output(m, "video")["path"])).transfer == "bt709"


def test_a_colour_mismatch_is_a_typed_error_that_is_not_retried(
    settings: Settings, pq: str, sdr: str
) -> None:
    source = probe(settings.media_root / pq).colour
    sdr_file = settings.media_root / sdr
    with pytest.raises(ColourMismatch, match="not smpte2084/bt2020/bt2020nc"):
        hdr.verify(sdr_file, hdr.HEVC_PQ, source, "fake-hdr10.mp4")
    with pytest.raises(ColourMismatch, match="SDR output tagged HDR"):
        hdr.verify(settings.media_root / pq, hdr.SDR, source, "hdr-as-sdr.mp4")
    with pytest.raises(ColourMismatch, match="not bt709"):
        hdr.verify(settings.media_root / pq, hdr.TONEMAP, source, "untouched.mp4")
    assert issubclass(ColourMismatch, InvalidInput) and not ColourMismatch.retryable


def test_hevc_segments_start_on_keyframes_on_the_segment_grid(settings: Settings) -> None:
    name = generate_hdr(settings.media_root, "hdr10-9s.mp4", seconds=9)
    m = steps.run("hdr-grid", name, "hls-hdr10", settings)
    playlist = Path(output(m, "hls-rendition")["path"])
    init = renditions.init_segment(playlist)
    assert init is not None
    starts = []
    for _, segment in renditions.media_playlist(playlist):
        data = io.BytesIO(init.read_bytes() + (playlist.parent / segment).read_bytes())
        with av.open(data) as c:
            first = min((p for p in c.demux(video=0) if p.pts is not None), key=lambda p: p.pts)
            assert first.is_keyframe, f"{segment} does not start on a keyframe"
            starts.append(round(float(first.pts * first.time_base), 3))
    assert starts == [0.0, 4.0, 8.0]
