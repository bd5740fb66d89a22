"""Capabilities and priorities with real workers on the real RabbitMQ: the start-up event in
the audit log, an HEVC step reaching only the worker that proved HEVC, and an urgent job
overtaking queued ones (order asserted, not timing)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.jobs import routing
from mediaapp.jobs.client import probe, submit
from mediaapp.ops.audit import read_log

from ..conftest import BIN, Proc, child_env, queue_depth, wait_for, worker_cmd
from .test_rabbitmq import of_job, wait_records

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_video_worker_publishes_its_capabilities_to_the_audit_log(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    record = wait_records(audit_consumer, lambda r: r["name"] == "worker.capabilities")[0]
    assert record["routing_key"] == "event.worker.capabilities"
    body = record["body"]
    assert body["codecs"] == ["h264", "hevc", "av1"]
    assert body["encoders"]["h264"] == {"software": ["libx264"], "hardware": []}
    assert "libcuda" in body["refused"]["h264_nvenc"]  # no GPU here: refused, with the reason
    assert body["queues"] == ["video_av1_queue", "video_hevc_queue", "video_queue"]
    assert queue_depth(rabbitmq, "video_hevc_queue")[1] == 1
    assert queue_depth(rabbitmq, "video_av1_queue")[1] == 1
    # The operator's view: mediaapp workers asks every worker (remote control).
    out = subprocess.run([str(BIN / "mediaapp"), "workers", "--json"], env=child_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)[body["worker"]]
    assert shown["encoders"] == body["encoders"] and shown["refused"] == body["refused"]


def test_a_hevc_step_reaches_only_the_worker_that_proved_hevc(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str
) -> None:
    from mediaapp.jobs.app import app

    hevc_cmd, hevc_node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    plain_cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    hevc = spawn(hevc_cmd, name="hevc")
    plain = spawn(plain_cmd, child_env(MEDIAAPP_CAPABILITIES="h264"), name="h264")
    hevc.wait_for("ready.", timeout=60)
    plain.wait_for("ready.", timeout=60)
    assert "consuming video_queue\n" in plain.text()  # narrowed: no HEVC queue for it
    assert queue_depth(rabbitmq, "video_hevc_queue")[1] == 1
    assert queue_depth(rabbitmq, "video_queue")[1] == 2
    key = routing.encode_key("hevc", "ping")
    sent = [
        app.send_task(
            "media.ping",
            kwargs={"payload": i},
            exchange=routing.MEDIA_EXCHANGE.name,
            routing_key=key,
            ignore_result=False,  # media.ping stores its result only when asked
        )
        for i in range(6)
    ]
    for result in sent:
        assert result.get(timeout=60)["payload"] is not None
    workers = {app.backend.get_task_meta(r.id)["worker"] for r in sent}
    assert workers == {hevc_node}
    assert "Task media.ping[" in hevc.text() and "Task media.ping[" not in plain.text()


def test_an_urgent_job_overtakes_queued_ones(video_worker: Proc, audit_consumer: Path) -> None:
    # A worker with one process (-c 1), prefetch 1 and acks_late holds only the job it runs.
    busy = submit("clip.mp4", profile="web")
    wait_for(lambda: busy.status() in ("STARTED", "PROGRESS"), timeout=60, what="busy worker")
    low = [probe("clip.mp4", priority=1) for _ in range(3)]
    urgent = probe("clip.mp4", priority=9)  # submitted last
    for job in (*low, urgent):
        job.wait(timeout=120)
    wait_records(audit_consumer, lambda r: r["name"] == "task.started", count=5)  # 1 + 4 jobs
    wait_records(audit_consumer, of_job(busy.id, "job.finished"))
    started = [
        r["job_id"]
        for r in read_log(audit_consumer)
        if r["name"] == "task.started" and r["job_id"] in {j.id for j in (*low, urgent)}
    ]
    assert started == [urgent.id] + [j.id for j in low]  # first, then the others in order
    # Nothing jumped the job already running: it finished before any of them started.
    names = [(r["name"], r["job_id"]) for r in read_log(audit_consumer)]
    assert names.index(("job.finished", busy.id)) < names.index(("task.started", urgent.id))


def test_an_hevc_job_waits_visibly_for_a_worker_that_proved_hevc(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str
) -> None:
    # Only an H.264 worker is up: the hls-hdr10 (HEVC) job must wait, not run there or fail.
    plain_cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    plain = spawn(plain_cmd, child_env(MEDIAAPP_CAPABILITIES="h264"), name="h264")
    plain.wait_for("ready.", timeout=60)
    job = submit("clip.mp4", profile="hls-hdr10")
    wait_for(lambda: queue_depth(rabbitmq, "video_hevc_queue")[0] == 1, what="queued")
    listed = subprocess.run([str(BIN / "mediaapp"), "queues", "--json"], env=child_env(),
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(listed.stdout)["video_hevc_queue"]["waiting_for"] == "hevc"
    assert job.status() == "PENDING" and "video.transcode[" not in plain.text()
    hevc_cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    hevc = spawn(hevc_cmd, name="hevc")
    manifest = job.wait(timeout=240)
    rung = next(o for o in manifest["outputs"] if o["kind"] == "hls-rendition")
    assert rung["codec"] == "hevc"
    hevc.wait_for(f"video.transcode[{job.id}] succeeded")  # logged after the result is stored
    assert "video.transcode[" not in plain.text()
