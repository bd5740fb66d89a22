"""``mediaapp gc`` against SeaweedFS: the chunk cache pruned by size, leftovers of killed jobs
(a job's audio, uncommitted output prefixes) removed, committed jobs kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mediaapp.ops.gc import collect
from mediaapp.settings import Settings
from tests.storage.conftest import BUCKET, boto, s3_env

pytestmark = pytest.mark.integration


def test_gc_prunes_the_cache_and_removes_uncommitted_jobs(prefix: str, tmp_path: Path) -> None:
    client = boto()
    put = lambda key, n=100: client.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=b"x" * n)  # noqa: E731
    for i in range(3):
        put(f"cache/ab/ab{i}.video.mp4")
        time.sleep(1.1)  # distinct LastModified seconds: the newest is kept first
    put("cache/jobs/dead/audio.m4a")
    put("out/dead/hls/seg_000.ts")  # killed before its manifest
    put("out/done/hls/seg_000.ts")
    put("out/done/manifest.json", 10)
    settings = Settings.from_env(s3_env(
        MEDIAAPP_DATA_DIR=str(tmp_path), MEDIAAPP_OUTPUT_URL=f"s3://{BUCKET}/{prefix}/out",
        MEDIAAPP_CHUNK_CACHE_URL=f"s3://{BUCKET}/{prefix}/cache",
        MEDIAAPP_CHUNK_CACHE_MAX_BYTES="250",
    ))  # fmt: skip
    report = collect(settings, now=time.time() + 3 * settings.ffmpeg_timeout_s)
    left = sorted(
        o["Key"].removeprefix(prefix + "/")
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    )
    assert left == [
        "cache/ab/ab1.video.mp4", "cache/ab/ab2.video.mp4",
        "out/done/hls/seg_000.ts", "out/done/manifest.json",
    ]  # fmt: skip
    assert report["chunk_cache"]["removed"] == 2 and report["uncommitted_objects"] == 1
    # A live job (younger than twice the ffmpeg timeout) is left alone.
    put("out/live/hls/seg_000.ts")
    assert collect(settings)["uncommitted_objects"] == 0
