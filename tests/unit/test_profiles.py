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
