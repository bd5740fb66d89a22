"""A multi-codec ladder with real workers on the real RabbitMQ: each codec's variants (or
each codec's chunks) are steps of their own, routed to the workers that proved the codec;
the package (HLS and DASH over the same CMAF segments) is probed and parsed as in
tests/media/test_cmaf.py."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mediaapp.jobs import tenants
from mediaapp.jobs.job import chunk_task_id, new_job_id, send, step_ids, variant_task_id

from ..conftest import BIN, Proc, child_env, queue_depth, wait_for, worker_cmd
from ..media.test_cmaf import PROFILES, check_package
from ..media_sources import generate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
CODECS = ("h264", "hevc", "av1")


def _run(
    spawn: Callable[..., Proc],
    media_root: Path,
    tmp_path: Path,
    tenant: str | None = None,
    **env: str,
) -> tuple[Any, dict, tuple[Proc, str], tuple[Proc, str]]:
    """Two workers, one narrowed to H.264, and one multi-codec job through them."""
    from mediaapp.jobs.app import app

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "multi.toml").write_text(PROFILES)
    env |= {"MEDIAAPP_PROFILES_DIR": str(tmp_path / "profiles")}
    plain_cmd, plain_node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    full_cmd, full_node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    plain = spawn(plain_cmd, child_env(MEDIAAPP_CAPABILITIES="h264", **env), name="h264")
    full = spawn(full_cmd, child_env(**env), name="all")
    plain.wait_for("ready.", timeout=60)
    full.wait_for("ready.", timeout=60)
    source = generate(media_root, "multi-320x180.mp4", size="320x180", seconds=2, gop=30)
    # Sent as submit() does, which checks the profile in this process (shipped ones only here).
    job = send(app, job_id=new_job_id(), name=source, profile="multi-tiny", tenant=tenant)
    manifest = job.get(timeout=300)
    master = next(o for o in manifest["outputs"] if o["kind"] == "hls-master")
    check_package(manifest, Path(master["path"]).parent)
    return job, manifest, (plain, plain_node), (full, full_node)


def test_each_codec_of_a_ladder_runs_on_the_workers_that_proved_it(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, tmp_path: Path
) -> None:
    from mediaapp.jobs.app import app

    tenant = f"multi-{uuid.uuid4().hex[:8]}"
    job, manifest, (plain, plain_node), (full, full_node) = _run(
        spawn, media_root, tmp_path, tenant
    )
    assert manifest["strategy"] == "per_codec"
    ids = {c: variant_task_id(job.id, c) for c in CODECS}
    assert step_ids(app, job.id) == [ids["av1"], ids["hevc"], ids["h264"]]  # slowest first
    ran = {c: app.backend.get_task_meta(i) for c, i in ids.items()}
    assert {c: m["status"] for c, m in ran.items()} == dict.fromkeys(ran, "SUCCESS")
    # HEVC and AV1 only where they were proved; H.264 anywhere on video_queue.
    assert ran["hevc"]["worker"] == ran["av1"]["worker"] == full_node
    assert ran["h264"]["worker"] in (plain_node, full_node)
    for codec in ("hevc", "av1"):
        assert f"video.variants[{ids[codec]}] succeeded" in full.text()
        assert f"video.variants[{ids[codec]}]" not in plain.text()
    # Fair share: every step carried the job's tenant, and the job left its backlog.
    assert {m["kwargs"].get("tenant") for m in ran.values()} == {tenant}
    wait_for(lambda: tenants.backlog(app.backend, tenant) == 0, what="backlog released")


def test_chunked_encoding_works_per_codec_on_the_codecs_workers(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, tmp_path: Path
) -> None:
    from mediaapp.jobs.app import app

    job, manifest, (plain, _), (_, full_node) = _run(
        spawn, media_root, tmp_path, MEDIAAPP_CHUNKING="always", MEDIAAPP_CHUNK_S="1"
    )
    assert manifest["strategy"] == "chunked"
    assert [c["index"] for c in manifest["chunking"]["chunks"]] == [0, 1]
    for codec in ("hevc", "av1"):  # every chunk of these codecs on the worker that has them
        for index in (0, 1):
            task_id = chunk_task_id(job.id, index, codec)
            assert app.backend.get_task_meta(task_id)["worker"] == full_node
            assert f"video.chunk[{task_id}]" not in plain.text()
    assert app.backend.get_task_meta(chunk_task_id(job.id, 0, "h264"))["status"] == "SUCCESS"


def test_a_codec_no_worker_proved_waits_visibly_then_runs(
    spawn: Callable[..., Proc],
    clean_queues: None,
    rabbitmq: str,
    media_root: Path,
    tmp_path: Path,
) -> None:
    from mediaapp.jobs.app import app

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "multi.toml").write_text(PROFILES)
    env = {"MEDIAAPP_PROFILES_DIR": str(tmp_path / "profiles")}
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    no_av1 = spawn(cmd, child_env(MEDIAAPP_CAPABILITIES="h264,hevc", **env), name="no-av1")
    no_av1.wait_for("ready.", timeout=60)
    source = generate(media_root, "multi-320x180.mp4", size="320x180", seconds=2, gop=30)
    job = send(app, job_id=new_job_id(), name=source, profile="multi-tiny")
    # H.264 and HEVC run; the AV1 step waits in its queue, said so, and the job is not failed.
    wait_for(lambda: app.AsyncResult(variant_task_id(job.id, "hevc")).state == "SUCCESS"
             and app.AsyncResult(variant_task_id(job.id, "h264")).state == "SUCCESS",
             timeout=120, what="h264 and hevc steps")  # fmt: skip
    assert queue_depth(rabbitmq, "video_av1_queue") == (1, 0)
    listed = subprocess.run([str(BIN / "mediaapp"), "queues", "--json"], env=child_env(),
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(listed.stdout)["video_av1_queue"]["waiting_for"] == "av1"
    assert job.state == "STARTED"  # its first step fanned out; nothing failed
    assert f"video.variants[{variant_task_id(job.id, 'av1')}]" not in no_av1.text()
    cmd, node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd, child_env(**env), name="all")
    manifest = job.get(timeout=300)
    assert app.backend.get_task_meta(variant_task_id(job.id, "av1"))["worker"] == node
    assert [o["codec"] for o in manifest["outputs"] if o["kind"] == "hls-rendition"] == [
        "h264", "h264", "hevc", "av1"]  # fmt: skip
