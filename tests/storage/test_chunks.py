"""The chunk cache in SeaweedFS (storage/chunks.py): per-title trial results shared by hosts
that share nothing else, so a resubmission that lands on another host encodes no trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaapp.media import steps
from mediaapp.settings import Settings
from tests.media_sources import HARD, generate_graph
from tests.storage.conftest import BUCKET, boto, s3_env

pytestmark = pytest.mark.integration
PROFILE = """
[pt]
kind = "hls"
segment_s = 2
rungs = [{ height = 180, video_kbps = 2000, target_vmaf = 90 }]
pertitle = { samples = 2, sample_s = 1.0, max_trials = 3, subsample = 3 }
"""


def host(tmp_path: Path, name: str, media: Path, prefix: str) -> Settings:
    """The settings of one host: its own data folder, the media and the shared cache."""
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "pt.toml").write_text(PROFILE)
    return Settings.from_env(s3_env(
        MEDIAAPP_DATA_DIR=str(tmp_path / name), MEDIAAPP_MEDIA_ROOT=str(media),
        MEDIAAPP_PROFILES_DIR=str(tmp_path / "profiles"), MEDIAAPP_FFMPEG_THREADS="1",
        MEDIAAPP_CHUNK_CACHE_URL=f"s3://{BUCKET}/{prefix}/cache",
    ))  # fmt: skip


def test_a_resubmission_on_another_host_runs_no_trial_encode(
    prefix: str, tmp_path: Path, ffmpeg_calls: list[str]
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    src = generate_graph(media, "pt-hard.mp4", HARD, size="320x180", seconds=4)
    calls = ffmpeg_calls
    first = steps.run("trials-a", src, "pt", host(tmp_path, "host-a", media, prefix))
    assert first["pertitle"]["trial_encodes"] > 0
    held = boto().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/cache/trials/")
    assert len(held.get("Contents", [])) == first["pertitle"]["trial_encodes"]
    calls.clear()
    second = steps.run("trials-b", src, "pt", host(tmp_path, "host-b", media, prefix))
    assert second["pertitle"]["trial_encodes"] == 0
    assert not [c for c in calls if "/.pertitle/" in c and ("libx264" in c or "libvmaf" in c)]
    assert [r["crf"] for r in second["pertitle"]["rungs"]] == [
        r["crf"] for r in first["pertitle"]["rungs"]
    ]
