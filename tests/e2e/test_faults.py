"""Faults injected for real: hostile input, refused messages, dead letters, killed workers,
a killed audit consumer, a restarted broker. Nothing lost, nothing run twice, nothing let in."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kombu import Connection, Exchange

from mediaapp.errors import MediaError
from mediaapp.jobs.client import Job, submit
from mediaapp.jobs.job import send as send_job
from mediaapp.media import steps
from mediaapp.media.probe import probe
from mediaapp.ops.audit import read_log
from mediaapp.settings import Settings

from ..conftest import BIN, Proc, child_env, long_clip, queue_depth, wait_for, worker_cmd
from ..hostile import make_hostile

EXCHANGE = Exchange("media_exchange", type="topic", durable=True)


@pytest.fixture(scope="module")
def hostile(media_root: Path, corpus: Path) -> list[tuple[str, str | None]]:
    return make_hostile(media_root, corpus)


@pytest.mark.media
def test_every_hostile_input_gets_its_typed_error(
    hostile: list[tuple[str, str | None]], media_root: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, media_root=media_root)
    for i, (name, expected) in enumerate(hostile):
        try:
            manifest = steps.run(f"h{i}", name, "web", settings)
        except MediaError as exc:
            assert type(exc).__name__ == expected, (name, exc)
            assert str(exc), name
        else:
            assert expected is None, f"{name!r} was accepted"
            out = Path(manifest["outputs"][0]["path"])
            assert out.parent == settings.output_root / f"h{i}" and not out.name.startswith("-")
    assert not list(media_root.parent.rglob("pwned")), "a file name was run as a shell command"


@pytest.mark.integration
@pytest.mark.e2e
def test_hostile_jobs_fail_typed_are_dead_lettered_and_the_worker_lives(
    hostile: list[tuple[str, str | None]], video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    from mediaapp.jobs.app import app

    jobs = {}
    for name, expected in hostile:
        job_id = uuid.uuid4().hex
        send_job(app, job_id=job_id, name=name)  # bypasses the client's own checks on purpose
        jobs[job_id] = (name, expected)
    send_job(app, job_id=(bad_profile := uuid.uuid4().hex), name="silent.mp4", profile="8k-hdr")
    jobs[bad_profile] = ("silent.mp4", "UnknownProfile")
    failed = 0
    for job_id, (name, expected) in jobs.items():
        job = Job(job_id, name=name)
        if expected is None:
            assert job.wait(timeout=60)["outputs"][0]["codec"] == "h264", name
            continue
        with pytest.raises(MediaError):
            job.wait(timeout=60)
        assert type(job.error).__name__ == expected, (name, job.error)
        failed += 1
    # Every failure is in the audit log with its reason, and in the dead letters.
    finished = [r for r in read_log(audit_consumer) if r["name"] == "task.failed"]
    wait_for(
        lambda: len([r for r in read_log(audit_consumer) if r["name"] == "task.failed"]) >= failed,
        what="task.failed records",
    )
    finished = [r for r in read_log(audit_consumer) if r["name"] == "task.failed"]
    assert {r["job_id"] for r in finished} == {j for j, (_, e) in jobs.items() if e}
    assert all(r["body"]["error"]["code"] and r["body"]["error"]["message"] for r in finished)
    wait_for(lambda: queue_depth(rabbitmq, "dead_letter_queue")[0] == failed, what="dead letters")
    assert video_worker.alive()
    assert submit("clip.mp4").wait(timeout=60)["outputs"][0]["height"] == 360


@pytest.mark.integration
@pytest.mark.e2e
def test_dead_letter_list_and_retry_after_fixing_the_input(
    video_worker: Proc, media_root: Path, rabbitmq: str
) -> None:
    name = f"arrives-late-{uuid.uuid4().hex[:6]}.mp4"
    job = submit(name)
    with pytest.raises(MediaError, match="no such file"):
        job.wait(timeout=60)
    env = child_env()
    wait_for(lambda: queue_depth(rabbitmq, "dead_letter_queue")[0] == 1, what="dead letter")
    listed = subprocess.run(
        [str(BIN / "mediaapp"), "dlq", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    dead = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(dead) == 1 and dead[0]["task_id"] == job.id  # the job's one message
    assert dead[0]["job_id"] == job.id and dead[0]["task"] == "video.transcode"
    assert dead[0]["reason"] == "rejected" and dead[0]["routing_key"] == "video.transcode"
    assert dead[0]["queue"] == "video_queue" and "InputNotFound" in dead[0]["error"]
    assert dead[0]["input"] == name
    assert queue_depth(rabbitmq, "dead_letter_queue")[0] == 1  # listing leaves it there
    (media_root / name).write_bytes((media_root / "silent.mp4").read_bytes())
    retried = subprocess.run(
        [str(BIN / "mediaapp"), "dlq", "retry", job.id], env=env, capture_output=True, text=True
    )
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: Job(job.id).status() == "SUCCESS", what="the retried job")
    assert queue_depth(rabbitmq, "dead_letter_queue")[0] == 0


@pytest.mark.integration
@pytest.mark.e2e
def test_pickle_task_message_is_never_executed(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str, tmp_path: Path
) -> None:
    task_id = uuid.uuid4().hex
    marker = tmp_path / "executed"
    with Connection(rabbitmq) as conn:
        conn.Producer().publish(
            [[], {"job_id": task_id, "name": "clip.mp4", "marker": str(marker)}, {}],
            exchange=EXCHANGE,
            routing_key="video.transcode",
            serializer="pickle",
            headers={"task": "video.transcode", "id": task_id, "lang": "py", "retries": 0},
        )
    wait_for(lambda: queue_depth(rabbitmq, "dead_letter_queue")[0] == 1, what="dead letter")
    wait_for(
        lambda: any(r.get("task_id") == task_id for r in read_log(audit_consumer)),
        what="the audit record",
    )
    rec = next(r for r in read_log(audit_consumer) if r.get("task_id") == task_id)
    assert rec["kind"] == "rejected" and rec["error"]["type"] == "ContentDisallowed"
    time.sleep(0.5)
    events = [r for r in read_log(audit_consumer) if r.get("name") == "task.started"]
    assert all(r.get("task_id") != task_id for r in events), "a pickle message was executed"
    assert Job(task_id).status() == "PENDING"
    assert video_worker.alive()


@pytest.mark.integration
@pytest.mark.e2e
def test_worker_killed_mid_transcode_is_redelivered_and_completed(
    spawn: Callable[..., Proc], audit_consumer: Path, media_root: Path, clean_queues: None
) -> None:
    name = long_clip(media_root)
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    first = spawn(cmd, name="first")
    job = submit(name)
    wait_for(lambda: job.status() == "PROGRESS", timeout=60, what="the encode to start")
    first.kill()  # SIGKILL the whole worker: main process and pool child, mid-encode
    out_dir = Path(os.environ["MEDIAAPP_DATA_DIR"]) / "outputs" / job.id
    assert not list(out_dir.glob("*.web.mp4")), "a half file is visible under the final name"
    cmd2, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd2, name="second")
    manifest = job.wait(timeout=180)
    video = Path(manifest["outputs"][0]["path"])
    info = probe(video)
    assert abs(info.duration_s - 30) < 0.1 and info.video and info.video.height == 720
    assert [p.name for p in out_dir.iterdir() if ".part-" in p.name] == []
    wait_for(
        lambda: any(
            r["name"] == "job.finished" and r["job_id"] == job.id for r in read_log(audit_consumer)
        ),
        what="job.finished",
    )
    started = [
        r
        for r in read_log(audit_consumer)
        if r["name"] == "task.started" and r["task_id"] == job.id
    ]
    assert [r["body"]["redelivered"] for r in started] == [False, True]
    copies = [r for r in read_log(audit_consumer) if r["kind"] == "task" and r["task_id"] == job.id]
    assert len(copies) == 1  # one message published; the broker redelivered it


@pytest.mark.integration
@pytest.mark.e2e
def test_audit_consumer_killed_and_restarted_loses_nothing(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str, tmp_path: Path
) -> None:
    total = 20000
    with Connection(rabbitmq) as conn:
        producer = conn.Producer(serializer="json")
        for i in range(total):
            producer.publish(
                {"n": i},
                exchange=EXCHANGE,
                routing_key="user.bulk",
                message_id=f"bulk-{i}",
                delivery_mode=2,
            )
    log = tmp_path / "audit.jsonl"
    env = child_env(MEDIAAPP_AUDIT_LOG=str(log))
    audit = spawn([str(BIN / "mediaapp"), "audit"], env, "audit")
    deadline = time.monotonic() + 60
    while not (log.exists() and log.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.005)
    audit.kill()  # SIGKILL mid-stream: batches in flight were written or not, never acked
    written_before = len(list(read_log(log)))
    assert written_before < total, "killed too late to prove anything"
    spawn([str(BIN / "mediaapp"), "audit"], env, "audit2")
    wait_for(
        lambda: len({r.get("message_id") for r in read_log(log)}) >= total,
        timeout=120,
        what="every message",
    )
    records = list(read_log(log))
    first_copies = [r for r in records if not r.get("duplicate")]
    assert sorted(int(r["body"]["n"]) for r in first_copies) == list(range(total))
    dupes = [r for r in records if r.get("duplicate")]
    assert all(r["redelivered"] for r in dupes)  # a re-written line is always marked
    wait_for(lambda: queue_depth(rabbitmq, "audit_queue")[0] == 0, what="all acked")


@pytest.mark.integration
@pytest.mark.e2e
def test_broker_restart_with_jobs_queued_and_running(
    spawn: Callable[..., Proc], audit_consumer: Path, media_root: Path
) -> None:
    cmd, _ = worker_cmd("video_queue", "-c", "2", "-l", "info")
    spawn(cmd, name="worker")
    running = submit(long_clip(media_root))
    jobs = [running] + [
        submit(random.choice(["silent.mp4", "clip.mp4", "rotated.mp4"])) for _ in range(8)
    ]
    # The broker goes away with one job mid-encode and others still queued.
    wait_for(lambda: running.status() == "PROGRESS", what="the long job to be encoding")
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    try:
        time.sleep(3)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, capture_output=True)
    for job in jobs:
        assert job.wait(timeout=180)["job_id"] == job.id
    ids = {j.id for j in jobs}
    wait_for(
        lambda: (
            ids <= {r["job_id"] for r in read_log(audit_consumer) if r["name"] == "job.finished"}
        ),
        timeout=120,
        what="all job.finished",
    )
    copies = {r["task_id"] for r in read_log(audit_consumer) if r["kind"] == "task"}
    assert ids <= copies  # every job's message reached the audit log


@pytest.mark.integration
@pytest.mark.e2e
def test_transient_failures_retry_with_backoff_then_dead_letter(
    spawn: Callable[..., Proc], audit_consumer: Path, rabbitmq: str, tmp_path: Path
) -> None:
    # An ffmpeg that is killed by a signal every time: transient, so retried, then given up.
    fake = tmp_path / "ffmpeg-oom"
    fake.write_text("#!/bin/sh\nkill -9 $$\n")
    fake.chmod(0o755)
    env = child_env(MEDIAAPP_FFMPEG=str(fake), MEDIAAPP_MAX_RETRIES="2")
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd, env, "worker")
    job = submit("silent.mp4")
    with pytest.raises(MediaError, match="SIGKILL"):
        job.wait(timeout=120)
    # Killed by a signal: FFmpegKilled, the ffmpeg error that is a TransientError (retried).
    assert type(job.error).__name__ == "FFmpegKilled"
    wait_for(
        lambda: any(
            r["name"] == "task.failed" and r["task_id"] == job.id for r in read_log(audit_consumer)
        ),
        what="task.failed",
    )
    story = [r["name"] for r in read_log(audit_consumer) if r.get("task_id") == job.id]
    assert story.count("task.retried") == 2 and story.count("task.failed") == 1
    assert story.count("video.transcode") == 3  # the first message and two retry messages
    wait_for(lambda: queue_depth(rabbitmq, "dead_letter_queue")[0] == 1, what="dead letter")


@pytest.mark.integration
@pytest.mark.e2e
def test_cancel_kills_ffmpeg_and_removes_partial_outputs(
    video_worker: Proc, audit_consumer: Path, media_root: Path
) -> None:
    name = long_clip(media_root)
    job = submit(name)
    wait_for(lambda: job.status() == "PROGRESS", timeout=60, what="the encode to start")
    running = subprocess.run(["pgrep", "-f", job.id], capture_output=True, text=True)
    assert running.stdout.strip(), "no ffmpeg running for the job"
    job.cancel()
    with pytest.raises(MediaError, match="cancelled"):
        job.wait(timeout=30)
    assert job.status() == "CANCELLED"
    wait_for(
        lambda: subprocess.run(["pgrep", "-f", job.id], capture_output=True).stdout == b"",
        timeout=10,
        what="ffmpeg to be gone",
    )
    out_dir = Path(os.environ["MEDIAAPP_DATA_DIR"]) / "outputs" / job.id
    assert not out_dir.exists()
    wait_for(
        lambda: any(
            r["name"] == "job.cancelled" and r["job_id"] == job.id for r in read_log(audit_consumer)
        ),
        what="job.cancelled in the audit",
    )
    assert video_worker.alive()
    assert submit("silent.mp4").wait(timeout=60)["outputs"][0]["height"] == 240


@pytest.mark.integration
@pytest.mark.e2e
def test_cancel_of_a_queued_job(spawn: Callable[..., Proc], clean_queues: None) -> None:
    job = submit("clip.mp4")  # no worker yet: it waits in the queue
    job.cancel()
    cmd, _ = worker_cmd("video_queue", "-c", "1")
    spawn(cmd, name="worker")
    with pytest.raises(MediaError, match="cancelled"):
        job.wait(timeout=60)
    assert not (Path(os.environ["MEDIAAPP_DATA_DIR"]) / "outputs" / job.id).exists()
