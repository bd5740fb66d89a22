"""Profiles with an s3:// input and an s3:// output prefix, against a real SeaweedFS: the
manifest's URLs resolve, checksums match, and the outputs play when fetched over HTTP."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from mediaapp.media import steps
from mediaapp.settings import Settings
from tests.conftest import MEDIA_ROOT, SAMPLES
from tests.storage.conftest import BUCKET, SECRET, boto, public_url, s3_env, upload

pytestmark = pytest.mark.media


def settings_for(prefix: str, tmp_path: Path, **extra: str) -> Settings:
    env = s3_env(
        MEDIAAPP_DATA_DIR=str(tmp_path / "data"),
        MEDIAAPP_MEDIA_ROOT=str(MEDIA_ROOT),
        MEDIAAPP_OUTPUT_URL=f"s3://{BUCKET}/{prefix}/out",
        **extra,
    )
    return Settings.from_env(env)


def check_published(manifest: dict, settings: Settings) -> None:
    """Every file the manifest lists is in the bucket with its size and SHA-256; nothing
    else is under the job's prefix but the manifest."""
    client = boto()
    prefix = manifest["output_url"].removeprefix(f"s3://{BUCKET}/")
    listed = {
        o["Key"]: o["Size"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    }
    expected = {f["url"].removeprefix(f"s3://{BUCKET}/"): f for f in manifest["files"]}
    assert set(listed) == set(expected) | {prefix + "manifest.json"}
    for key, f in expected.items():
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert len(body) == f["size"] == listed[key]
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
    for out in manifest["outputs"]:
        assert out["url"].startswith(manifest["output_url"])
        assert out["url"] in {f["url"] for f in manifest["files"]} or out["kind"] in (
            "hls", "dash",
        )  # fmt: skip
    stored = json.loads(
        client.get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read()
    )
    assert stored == manifest
    assert not (settings.output_root / manifest["job_id"]).exists()  # local scratch gone


def plays(url: str, expect_video: bool = True) -> None:
    """ffmpeg (the network reader, in the test only) decodes ``url`` to the end."""
    from mediaapp.media.command import ffmpeg_binary

    out = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", url, "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("profile", ["web", "hls", "dash"])
def test_s3_input_and_output(profile: str, prefix: str, tmp_path: Path) -> None:
    settings = settings_for(prefix, tmp_path)
    url = upload(SAMPLES / "clip.mp4", f"{prefix}/in/clip.mp4")
    manifest = steps.run(f"job-{profile}", url, profile, settings)
    assert manifest["input"] == url
    assert manifest["source_url"] == url
    assert manifest["source_etag"]
    assert all(o["path"].startswith("s3://") for o in manifest["outputs"])
    check_published(manifest, settings)
    plays(public_url(manifest["outputs"][0]["url"]))  # the mp4, the HLS master, the MPD
    # The job again: the published manifest is found, nothing is encoded twice.
    again = steps.run(f"job-{profile}", url, profile, settings)
    assert again["created_at"] == manifest["created_at"]


@pytest.mark.integration
@pytest.mark.e2e
def test_cli_submit_of_an_s3_url_through_a_worker(
    spawn, clean_queues: None, prefix: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from tests.conftest import BIN, child_env, worker_cmd

    url = upload(SAMPLES / "clip.mp4", f"{prefix}/in/clip.mp4")
    env = child_env(**s3_env(MEDIAAPP_OUTPUT_URL=f"s3://{BUCKET}/{prefix}/out"))
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd, env, "worker").wait_for("ready.", timeout=60)
    out = subprocess.run(
        [str(BIN / "mediaapp"), "submit", url, "--wait", "--json", "--timeout", "120"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout[out.stdout.index("{") :])
    assert manifest["input"] == url and manifest["source_url"] == url
    check_published(manifest, Settings.from_env(s3_env(MEDIAAPP_DATA_DIR=str(tmp_path))))
    assert SECRET not in out.stdout + out.stderr
    # Outside the allow-list: refused in the client, before anything is sent.
    bad = subprocess.run(
        [str(BIN / "mediaapp"), "submit", "s3://other-bucket/x.mp4"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 65 and "not allowed" in bad.stdout + bad.stderr
