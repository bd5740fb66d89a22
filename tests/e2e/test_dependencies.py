"""Issue 12: nothing lost when a dependency fails. Real processes, real outages: a private
Redis killed and restarted mid-encode, an audit disk that fills and frees, an output disk
that is full, the same upload event delivered twice, a 10 MiB file name."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange

from mediaapp.errors import MediaError
from mediaapp.jobs.client import Job
from mediaapp.jobs.job import send as send_job
from mediaapp.ops.audit import read_log

from ..conftest import Proc, child_env, long_clip, queue_depth, wait_for, worker_cmd
from ..outages import MEDIAAPP, app_for, fill, own_redis, tmpfs

EXCHANGE = Exchange("media_exchange", type="topic", durable=True)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def start_audit(spawn: Callable[..., Proc], log: Path, **env: str) -> Proc:
    proc = spawn([*MEDIAAPP, "audit"], child_env(MEDIAAPP_AUDIT_LOG=str(log), **env), "audit")
    proc.wait_for("audit consumer ready", timeout=30)
    return proc


def story(log: Path, job_id: str) -> list[dict[str, Any]]:
    return [r for r in read_log(log) if r.get("job_id") == job_id]


def test_redis_restart_mid_encode_does_not_stop_it(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, tmp_path: Path
) -> None:
    name = long_clip(media_root, 30)
    with own_redis(tmp_path) as redis:
        env = {"MEDIAAPP_RESULT_BACKEND": redis.url, "MEDIAAPP_FFMPEG_THREADS": "1",
               "MEDIAAPP_BACKEND_GRACE_S": "45"}  # fmt: skip
        log = tmp_path / "audit.jsonl"
        start_audit(spawn, log, **env)
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        worker = spawn(cmd, child_env(**env), "worker")
        worker.wait_for("ready.")
        app = app_for(result_backend=redis.url)
        job_id = uuid.uuid4().hex
        send_job(app, job_id=job_id, name=name)
        job = Job(job_id, app=app, name=name)
        wait_for(
            lambda: job.status() == "PROGRESS" and (job.progress or {}).get("percent", 0) > 3,
            timeout=90,
            what="the encode to be under way",
        )
        outcome: dict[str, Any] = {}

        def wait() -> None:
            try:
                outcome["manifest"] = job.wait(timeout=240)
            except BaseException as exc:  # reported below
                outcome["error"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        redis.stop()  # Redis gone for 10 s while ffmpeg encodes
        waiter.start()
        time.sleep(10)
        assert waiter.is_alive(), outcome  # the client keeps waiting through the outage
        redis.start()
        waiter.join(timeout=240)
        assert "error" not in outcome, outcome.get("error")
        manifest = outcome["manifest"]
        assert manifest["job_id"] == job_id and manifest["outputs"][0]["codec"] == "h264"
        wait_for(
            lambda: any(r["name"] == "job.finished" for r in story(log, job_id)),
            what="job.finished audited",
        )
        events = [r["name"] for r in story(log, job_id) if r["kind"] == "event"]
        assert first_finished(log, job_id) == 1
        assert "task.failed" not in events and "task.retried" not in events, events
        started = [r for r in story(log, job_id) if r["name"] == "task.started"
                   and r["task_id"] == job_id]  # fmt: skip
        assert len(started) == 1, "the encode was restarted"  # ffmpeg was never killed
        assert "result backend" in worker.text() and "unreachable" in worker.text()
        assert job.status() == "SUCCESS"


def first_finished(log: Path, job_id: str) -> int:
    """``job.finished`` events of a job's first delivery (a broker restart by another test
    run on this shared RabbitMQ may redeliver a finished job, which re-reports it)."""
    return sum(
        1 for r in story(log, job_id)
        if r["name"] == "job.finished" and not r["body"].get("redelivered")
    )  # fmt: skip


def publish(url: str, key: str, body: Any, message_id: str | None = None) -> None:
    with Connection(url) as conn:
        conn.Producer(serializer="json").publish(
            body, exchange=EXCHANGE, routing_key=key, delivery_mode=2,
            message_id=message_id or uuid.uuid4().hex, declare=[EXCHANGE],
        )  # fmt: skip


def upload_events(log: Path) -> list[str]:
    return [r["name"] for r in read_log(log) if str(r.get("name")).startswith("upload.")]


def queues_json() -> dict[str, Any]:
    out = subprocess.run([*MEDIAAPP, "queues", "--json"], env=child_env(),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    return dict(json.loads(out.stdout))


def test_audit_disk_fills_and_frees_every_event_once(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str, tmp_path: Path
) -> None:
    total = 300
    with tmpfs(tmp_path / "disk", "256k") as disk:
        log = disk / "audit.jsonl"
        filler = fill(disk, 12 * 1024)  # 12 KiB free: room for a few dozen lines
        audit = start_audit(spawn, log)
        with Connection(rabbitmq) as conn:
            producer = conn.Producer(serializer="json")
            for i in range(total):
                producer.publish({"n": i, "pad": "x" * 200}, exchange=EXCHANGE,
                                 routing_key="user.fill", message_id=f"fill-{i}",
                                 delivery_mode=2)  # fmt: skip
        audit.wait_for("ENOSPC", timeout=30)  # said as such
        wait_for(lambda: queues_json()["audit_queue"]["messages"] > 0, what="audit lag shown")
        time.sleep(3)  # a while on a full disk: back-off, not a reconnect storm
        assert audit.alive()
        assert "Connection to broker lost" not in audit.text()
        assert audit.text().count("ENOSPC") < 12, "no back-off between attempts"
        filler.unlink()  # space comes back
        wait_for(lambda: len(list(read_log(log))) >= total, timeout=60, what="every event")
        data = log.read_bytes()
        assert data.endswith(b"\n")
        records = [json.loads(line) for line in data.splitlines()]  # no torn line anywhere
        ids = [r["message_id"] for r in records]
        assert sorted(ids) == sorted(f"fill-{i}" for i in range(total))  # each exactly once
        assert not any(r.get("duplicate") for r in records)
        wait_for(lambda: queue_depth(rabbitmq, "audit_queue")[0] == 0, what="all acked")


@pytest.mark.unit
def test_a_torn_last_line_is_cut_at_start(tmp_path: Path) -> None:
    from mediaapp.ops.audit import AuditLog

    log = tmp_path / "audit.jsonl"
    log.write_bytes(b'{"message_id":"a"}\n{"message_id":"b"}\n{"message_id":"c","na')
    audit = AuditLog(log)
    assert audit.repaired == len(b'{"message_id":"c","na')
    assert log.read_bytes() == b'{"message_id":"a"}\n{"message_id":"b"}\n'
    assert set(audit.seen_ids) == {"a", "b"}  # "c" was never acked: it is written when it comes
    audit.append([{"message_id": "c"}, {"message_id": "c"}])
    lines = [json.loads(x) for x in log.read_bytes().splitlines()]
    assert [r.get("duplicate") for r in lines[2:]] == [None, True]


@pytest.mark.media
def test_output_disk_too_small_is_refused_before_encoding(media_root: Path, tmp_path: Path) -> None:
    from mediaapp.errors import OutOfSpace
    from mediaapp.media import steps
    from mediaapp.settings import Settings

    name = long_clip(media_root, 30)
    with tmpfs(tmp_path / "out", "24m") as out:
        settings = Settings(data_dir=tmp_path, media_root=media_root, output_root=out)
        with pytest.raises(OutOfSpace, match=str(out)) as caught:
            steps.run("small-disk", name, "web", settings)
        assert caught.value.retryable and caught.value.exit_code == 75
        assert not (out / "small-disk").exists()


def test_output_disk_fills_mid_encode(
    spawn: Callable[..., Proc], clean_queues: None, media_root: Path, tmp_path: Path
) -> None:
    from mediaapp.errors import OutOfSpace

    name = long_clip(media_root, 30)
    with tmpfs(tmp_path / "out", "64m") as out:
        env = child_env(MEDIAAPP_OUTPUT_ROOT=str(out), MEDIAAPP_MAX_RETRIES="0",
                        MEDIAAPP_FFMPEG_THREADS="1")  # fmt: skip
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        spawn(cmd, env, "worker").wait_for("ready.")
        app = app_for(output_root=out)
        job_id = uuid.uuid4().hex
        send_job(app, job_id=job_id, name=name)
        job = Job(job_id, app=app, name=name)
        wait_for(lambda: job.status() == "PROGRESS", timeout=90, what="the encode")
        fill(out, 0)  # someone else fills the disk while ffmpeg writes
        with pytest.raises(MediaError):
            job.wait(timeout=120)
        assert isinstance(job.error, OutOfSpace), repr(job.error)
        assert str(out / job_id) in str(job.error)  # names the path
        assert not (out / job_id).exists()  # the job folder is removed


def test_same_upload_event_twice_at_once_is_one_job(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    start_audit(spawn, log)
    for i in range(2):  # two workers: the two copies are handled at the same time
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        spawn(cmd, name=f"worker{i}").wait_for("ready.")
    event = {"file": "clip.mp4", "id": f"upload-{uuid.uuid4().hex}"}
    publish(rabbitmq, "video.upload", event)
    publish(rabbitmq, "video.upload", event)  # a producer's retry: same event id
    wait_for(lambda: len(upload_events(log)) >= 2, what="both copies handled")
    assert sorted(upload_events(log)) == ["upload.accepted", "upload.duplicate"]
    job_id = next(r["job_id"] for r in read_log(log) if r["name"] == "upload.accepted")
    Job(job_id).wait(timeout=120)
    wait_for(lambda: first_finished(log, job_id) >= 1, what="job.finished")
    time.sleep(2)  # a second job would finish about now
    assert first_finished(log, job_id) == 1
    sent = [r for r in read_log(log) if r["kind"] == "task" and r["name"] == "video.transcode"]
    assert len(sent) == 1  # the job was dispatched once
    dupe = next(r for r in read_log(log) if r["name"] == "upload.duplicate")
    assert dupe["job_id"] == job_id


def test_a_10_mib_file_name_is_refused_and_only_quoted_short(
    video_worker: Proc, rabbitmq: str, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    from mediaapp.errors import InvalidInput
    from mediaapp.jobs.app import app

    log = tmp_path / "audit.jsonl"
    start_audit(spawn, log)
    huge = "a" * (10 * 1024 * 1024)
    publish(rabbitmq, "video.upload", {"file": huge + ".mp4", "id": "huge-name"})
    publish(rabbitmq, "video.upload", {"file": "clip.mp4", "id": "i" * 100_000})
    publish(rabbitmq, "video.upload", {"file": "clip.mp4", "pad": "p" * 200_000})
    big_job = uuid.uuid4().hex
    send_job(app, job_id=big_job, name="b" * 1024 * 1024)  # bypasses the client's check
    wait_for(lambda: len(upload_events(log)) >= 3, timeout=60, what="the uploads refused")
    job = Job(big_job)
    with pytest.raises(MediaError):
        job.wait(timeout=60)
    assert isinstance(job.error, InvalidInput) and len(str(job.error)) < 2100
    wait_for(lambda: first_finished(log, big_job) == 1, what="the job's failure audited")
    rejected = [r for r in read_log(log) if r["name"] == "upload.rejected"]
    assert len(rejected) == 3
    assert all(len(r["body"]["error"]["message"]) < 400 for r in rejected)
    assert log.stat().st_size < 256 * 1024, "audit lines grew with the input"
    assert max(len(line) for line in log.read_bytes().splitlines()) < 64 * 1024
    with pytest.raises(InvalidInput, match="over the limit"):
        from mediaapp.jobs.client import submit

        submit(huge)  # the client refuses before publishing anything
