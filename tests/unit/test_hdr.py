"""Colour modes, encoder options, checks and CODECS strings, without running ffmpeg."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.media import cmaf, colour, hdr, renditions
from mediaapp.media.colour import Colour, ContentLight
from mediaapp.media.profiles import get_profile, parse_profile

pytestmark = pytest.mark.unit

D65_1000 = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
SDR = Colour("bt709", "bt709", "bt709", 8)


def hdr10(**changes: object) -> Colour:
    raw = struct.pack("<20i2i", 34000, 50000, 16000, 50000, 13250, 50000, 34500, 50000,
                      7500, 50000, 3000, 50000, 15635, 50000, 16450, 50000, 1, 10000,
                      10000000, 10000, 1, 1)  # fmt: skip
    base = Colour("smpte2084", "bt2020", "bt2020nc", 10, colour._mastering(raw),
                  ContentLight(1000, 400))  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_modes_follow_the_source_and_the_codec() -> None:
    assert hdr.mode(None, "h264") == hdr.mode(SDR, "h264") == hdr.SDR
    assert (
        hdr.mode(hdr10(), "h264") == hdr.mode(hdr10(transfer="arib-std-b67"), "h264") == "tonemap"
    )
    assert hdr.mode(hdr10(), "hevc") == hdr.HEVC_PQ
    assert hdr.mode(hdr10(transfer="arib-std-b67"), "hevc") == hdr.HEVC_HLG
    assert hdr.mode(SDR, "hevc") == hdr.mode(Colour("bt2020-10", "bt2020", None, 10), "hevc")
    assert hdr.mode(SDR, "hevc") == hdr.HEVC_SDR  # wide gamut without PQ/HLG is not HDR
    assert hdr.mode(hdr10(), "av1") == hdr.AV1_PQ
    assert hdr.mode(hdr10(transfer="arib-std-b67"), "av1") == hdr.AV1_HLG
    assert hdr.mode(SDR, "av1") == hdr.mode(None, "av1") == hdr.SDR  # 8-bit, as it always was


def test_encoder_options_carry_the_static_metadata_only_for_hdr() -> None:
    assert hdr.encoder_options(hdr.SDR, SDR) == {}  # the SDR command is what it was
    assert hdr.encoder_options(hdr.TONEMAP, hdr10())["color_trc"] == "bt709"
    pq = hdr.encoder_options(hdr.HEVC_PQ, hdr10())
    assert f"master-display={D65_1000}" in pq["x265-params"]
    assert "max-cll=1000,400" in pq["x265-params"] and "hdr10=1" in pq["x265-params"]
    assert (pq["pix_fmt"], pq["tag:v"], pq["color_trc"]) == ("yuv420p10le", "hvc1", "smpte2084")
    plain = hdr.encoder_options(hdr.HEVC_SDR, SDR)
    assert "transfer" not in plain["x265-params"] and "color_trc" not in plain
    assert (
        "master-display"
        not in hdr.encoder_options(hdr.HEVC_PQ, hdr10(mastering=None))["x265-params"]
    )


def test_av1_hdr_passes_the_static_metadata_to_svt_av1() -> None:
    pq = hdr.encoder_options(hdr.AV1_PQ, hdr10())
    assert pq["svtav1-params"] == (
        "irefresh-type=2:scd=0:mastering-display=G(0.26500,0.69000)B(0.15000,0.06000)"
        "R(0.68000,0.32000)WP(0.31270,0.32900)L(1000.0000,0.0001):content-light=1000,400"
    )
    assert (pq["pix_fmt"], pq["color_primaries"], pq["color_trc"], pq["colorspace"]) == (
        "yuv420p10le", "bt2020", "smpte2084", "bt2020nc")  # fmt: skip
    hlg = hdr.encoder_options(hdr.AV1_HLG, hdr10(transfer="arib-std-b67", mastering=None,
                                                 content_light=None))  # fmt: skip
    assert hlg["svtav1-params"] == hdr.SVTAV1_BASE and hlg["color_trc"] == "arib-std-b67"


def test_av1_hdr_rungs_are_checked_like_hevc_ones() -> None:
    assert hdr.problems(hdr10(), hdr.AV1_PQ, hdr10()) == []
    assert "8-bit, not 10-bit" in hdr.problems(hdr10(bit_depth=8), hdr.AV1_PQ, hdr10())
    assert hdr.problems(SDR, hdr.AV1_PQ, hdr10())  # tone-mapped where it should not be
    assert hdr.problems(hdr10(), hdr.AV1_HLG, hdr10())  # PQ where HLG was promised
    assert hdr.problems(hdr10(mastering=None), hdr.AV1_PQ, hdr10())
    assert hdr.problems(hdr10(content_light=ContentLight(999, 400)), hdr.AV1_PQ, hdr10())
    # AV1's metadata OBU stores chromaticities in 0.16 fixed point: 0.68 comes back 0.67999
    m = hdr10().mastering
    assert m is not None
    av1 = dataclasses.replace(m, red=(0.67999, 0.32001), white_point=(0.3127, 0.32899))
    assert hdr.problems(hdr10(mastering=av1), hdr.AV1_PQ, hdr10()) == []
    other = dataclasses.replace(m, red=(0.708, 0.292))  # a BT.2020 display, not P3
    assert hdr.problems(hdr10(mastering=other), hdr.AV1_PQ, hdr10())


def test_av1_codecs_string_of_an_hdr_stream_is_the_long_form() -> None:
    av1c = bytes([0x81, 0x00, 0x4C, 0x00])  # Main, level 2.0, 10-bit, 4:2:0
    assert cmaf._av1_codec(av1c) == "av01.0.00M.10"
    assert cmaf._av1_codec(av1c, SDR) == "av01.0.00M.10"  # the short form means BT.709
    assert cmaf._av1_codec(av1c, hdr10()) == "av01.0.00M.10.0.110.09.16.09.0"
    hlg = hdr10(transfer="arib-std-b67")
    assert cmaf._av1_codec(av1c, hlg, full_range=True) == "av01.0.00M.10.0.110.09.18.09.1"


def test_problems_name_what_is_wrong() -> None:
    assert hdr.problems(SDR, hdr.TONEMAP, hdr10()) == []
    assert hdr.problems(hdr10(), hdr.HEVC_PQ, hdr10()) == []
    assert hdr.problems(Colour(None, None, None, 8), hdr.SDR, None) == []
    assert hdr.problems(hdr10(), hdr.SDR, SDR)  # an SDR rendition tagged HDR
    assert hdr.problems(SDR, hdr.HEVC_PQ, hdr10())  # an HDR10 rung that is not
    missing = hdr.problems(hdr10(mastering=None), hdr.HEVC_PQ, hdr10())
    assert missing and "mastering display" in missing[0]
    assert "8-bit, not 10-bit" in hdr.problems(hdr10(bit_depth=8), hdr.HEVC_PQ, hdr10())
    leak = hdr.problems(Colour("bt709", "bt709", "bt709", 8, hdr10().mastering), hdr.TONEMAP, None)
    assert leak == ["tone-mapped but carries HDR side data"]


def test_colour_survives_json() -> None:
    c = hdr10()
    assert Colour.from_dict(c.to_dict()) == c and c.to_dict()["is_hdr"]
    assert c.mastering is not None and c.mastering.x265() == D65_1000


def test_hevc_codecs_string_is_read_from_the_hvcc_record() -> None:
    main10 = bytes.fromhex("010220000000900000000000" + "5d")  # Main10, L3.1, progressive
    assert renditions.hevc_codec(main10) == "hvc1.2.4.L93.90"
    main = bytes.fromhex("01016000000090000000000078")  # Main (compat 1 and 2), L4
    assert renditions.hevc_codec(main) == "hvc1.1.6.L120.90"
    high_tier = bytes.fromhex("0122200000009000000000005d")
    assert renditions.hevc_codec(high_tier) == "hvc1.2.4.H93.90"


def test_hevc_is_a_shipped_hls_profile_and_nothing_else() -> None:
    assert get_profile("hls-hdr10").codec == "hevc" and get_profile("hls").codec == "h264"
    with pytest.raises(ConfigurationError, match="hls profiles only"):
        parse_profile("x", {"kind": "mp4", "video_codec": "libx265"}, "test.toml")
    with pytest.raises(ConfigurationError, match="video_codec"):
        parse_profile("x", {"kind": "mp4", "video_codec": "libvpx"}, "test.toml")


def test_the_tone_map_reads_the_probed_tags_bt2020_where_unstated() -> None:
    assert hdr.source_tags(hdr10()) == {
        "tin": "smpte2084", "pin": "bt2020", "min": "bt2020nc", "p": "bt2020",
    }  # fmt: skip
    bare = hdr.source_tags(Colour("arib-std-b67", None, None, 10))  # the transfer alone
    assert (bare["tin"], bare["pin"], bare["min"]) == ("arib-std-b67", "bt2020", "bt2020nc")
    assert hdr.source_tags(SDR) == hdr.source_tags(None) == {}
