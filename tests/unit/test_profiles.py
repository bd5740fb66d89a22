"""Profile files: validated on load, extended and overridden by a folder of the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.media import profiles
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def test_profile_files_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    cases = {
        '[x]\nkind = "mp4"\nheigth = 720\n': "'heigth': unknown field",
        '[x]\nheight = "720"\n': "'height': expected int",
        '[x]\nkind = "avi"\n': "'kind'",
        '[x]\nkind = "hls"\n': "'rungs'",
        '[x]\nkind = "hls"\nrungs = [{ height = 720 }]\n': r"'rungs\[0\]'",
        '[x]\npreset = "ludicrous"\n': "'preset'",
        "[x\n": "not valid TOML",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigurationError, match=message) as info:
            profiles.load_file(bad)
        assert str(bad) in str(info.value)


def test_user_profiles_extend_and_override(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("[web]\nheight = 540\n\n[tiny]\nheight = 144\n")
    mine = Settings.from_env({"MEDIAAPP_PROFILES_DIR": str(tmp_path)}).profiles_dir
    assert profiles.get_profile("web", mine).height == 540
    assert profiles.get_profile("tiny", mine).kind == "mp4"
    assert profiles.get_profile("hls", mine).rungs[0].height == 1080
    assert profiles.get_profile("web").height == 720  # the shipped one, without the folder


def _ladder(kind: str, *codec_lists: str) -> str:
    listed = [f", codecs = {c}" if c else "" for c in codec_lists]
    rungs = ", ".join(f"{{ height = {720 - 100 * n}, video_kbps = 900{c} }}"
                      for n, c in enumerate(listed))  # fmt: skip
    return f'[x]\nkind = "{kind}"\nrungs = [{rungs}]\n'


def test_codec_lists_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    cases = {
        _ladder("hls", '["vp9"]'): r"'rungs\[0\]\.codecs': 'vp9' is not one of h264, hevc, av1",
        _ladder("hls", "[]"): r"'rungs\[0\]\.codecs': expected a non-empty list",
        _ladder("hls", '"h264"'): r"'rungs\[0\]\.codecs': expected a non-empty list",
        _ladder("hls", '["av1", "av1"]'): r"'rungs\[0\]\.codecs': lists a codec twice",
        _ladder("dash", '["h264", "av1"]'): r"'rungs\[0\]\.codecs': codec lists are for hls",
        # The lowest rung must keep an H.264 variant for H.264-only players.
        _ladder("hls", "", '["hevc", "av1"]'): r"'rungs\[1\]\.codecs': the lowest rung",
        _ladder("hls", '["h264", "av1"]', '["av1"]'): r"'rungs\[1\]\.codecs': the lowest rung",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigurationError, match=message) as info:
            profiles.load_file(bad)
        assert str(bad) in str(info.value)
    bad.write_text(_ladder("hls", '["h264", "hevc", "av1"]', ""))  # the lowest: h264 (default)
    assert profiles.load_file(bad)["x"].codecs == ("h264", "hevc", "av1")


def test_a_multi_codec_ladder_lists_its_codecs_h264_first() -> None:
    multi = profiles.get_profile("hls-multi")
    assert multi.cmaf and multi.codecs == ("h264", "hevc", "av1")
    assert [multi.rung_codecs(r) for r in multi.rungs] == [("h264", "hevc", "av1")] * 2 + [
        ("h264",)
    ] * 2
    # One-codec ladders keep their own packaging (TS for H.264, fMP4 for HEVC).
    assert not profiles.get_profile("hls").cmaf and not profiles.get_profile("hls-hdr10").cmaf
    assert profiles.get_profile("hls-hdr10").codecs == ("hevc",)
