"""A multi-codec ladder with real workers on the real RabbitMQ: each codec's variants are a
step of their own, routed to the workers that proved the codec; the package (HLS and DASH
over the same CMAF segments) is probed and parsed as in tests/media/test_cmaf.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.jobs.job import new_job_id, send, variant_task_id

from ..conftest import Proc, child_env, worker_cmd
from ..media.test_cmaf import PROFILES, check_package
from ..media_sources import generate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_each_codec_of_a_ladder_runs_on_the_workers_that_proved_it(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, tmp_path: Path
) -> None:
    from mediaapp.jobs.app import app

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "multi.toml").write_text(PROFILES)
    env = {"MEDIAAPP_PROFILES_DIR": str(tmp_path / "profiles")}
    plain_cmd, plain_node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    full_cmd, full_node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    plain = spawn(plain_cmd, child_env(MEDIAAPP_CAPABILITIES="h264", **env), name="h264")
    full = spawn(full_cmd, child_env(**env), name="all")
    plain.wait_for("ready.", timeout=60)
    full.wait_for("ready.", timeout=60)
    source = generate(media_root, "multi-320x180.mp4", size="320x180", seconds=2, gop=30)

    # Sent as submit() does, which checks the profile in this process (shipped ones only here).
    job = send(app, job_id=new_job_id(), name=source, profile="multi-tiny")
    manifest = job.get(timeout=300)
    assert manifest["strategy"] == "per_codec"
    master = next(o for o in manifest["outputs"] if o["kind"] == "hls-master")
    check_package(manifest, Path(master["path"]).parent)
    ran = {
        c: app.backend.get_task_meta(variant_task_id(job.id, c)) for c in ("h264", "hevc", "av1")
    }
    assert {c: m["status"] for c, m in ran.items()} == dict.fromkeys(ran, "SUCCESS")
    # HEVC and AV1 only where they were proved; H.264 anywhere on video_queue.
    assert ran["hevc"]["worker"] == ran["av1"]["worker"] == full_node
    assert ran["h264"]["worker"] in (plain_node, full_node)
    assert "encode.hevc" not in plain.text() and "encode.av1" not in plain.text()
    for codec in ("hevc", "av1"):
        assert f"video.variants[{variant_task_id(job.id, codec)}] succeeded" in full.text()
        assert f"video.variants[{variant_task_id(job.id, codec)}]" not in plain.text()
