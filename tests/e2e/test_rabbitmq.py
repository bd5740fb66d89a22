"""Integration and end-to-end tiers on the real RabbitMQ: workers and the audit consumer run
as separate processes started exactly as a user starts them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kombu import Connection, Consumer, Exchange

from mediaapp.errors import JobFailed, NotMedia
from mediaapp.jobs import routing
from mediaapp.jobs.client import Job, submit
from mediaapp.jobs.events import publish_event
from mediaapp.jobs.job import EVENT_NAMESPACE
from mediaapp.ops.audit import read_log

from ..conftest import REPO, Proc, queue_depth

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def wait_records(
    log: Path, pred: Callable[[dict], bool], count: int = 1, timeout: float = 30
) -> list[dict]:
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = [r for r in read_log(log) if pred(r)]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"only {len(found)} of {count} audit records after {timeout} s")


def of_job(job_id: str, name: str) -> Callable[[dict], bool]:
    return lambda r: (
        r.get("name") == name and (r.get("job_id") == job_id or r.get("task_id") == job_id)
    )


def test_topic_routed_task_runs_once_and_is_mirrored(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    job = submit("clip.mp4", profile="web")
    manifest = job.wait(timeout=90)
    assert manifest["job_id"] == job.id and Path(manifest["outputs"][0]["path"]).is_file()
    wait_records(audit_consumer, of_job(job.id, "job.finished"))
    time.sleep(0.5)  # let any (wrong) duplicate arrive before counting
    records = [r for r in read_log(audit_consumer) if job.id in (r.get("job_id"), r.get("task_id"))]
    names = [r["name"] for r in records]
    assert names.count("video.transcode") == 1, names  # the task message copy
    assert "video.probe" not in names  # the probe runs inside the job's one step
    main = [r["name"] for r in records if r.get("task_id") == job.id]
    assert main.count("task.started") == 1 and main.count("task.succeeded") == 1
    task = next(r for r in records if r["kind"] == "task" and r["name"] == "video.transcode")
    assert task["exchange"] == "media_exchange" and task["routing_key"] == "video.transcode"
    assert (
        task["message_id"] and task["redelivered"] is False and task["kwargs"]["name"] == "clip.mp4"
    )
    for r in records:
        assert {
            "ts",
            "exchange",
            "routing_key",
            "kind",
            "name",
            "task_id",
            "job_id",
            "redelivered",
            "message_id",
        } <= r.keys()
    # Executed exactly once, by the one worker; the audit copy was never executed.
    assert video_worker.text().count(f"video.transcode[{job.id}] succeeded") == 1
    assert queue_depth(rabbitmq, "video_queue")[0] == 0
    assert queue_depth(rabbitmq, "audit_queue") == (0, 1)  # all acked, one consumer


def test_events_never_reach_a_task_queue(clean_queues: None, rabbitmq: str) -> None:
    from mediaapp.jobs.app import app

    for name in ("task.started", "task.succeeded", "job.finished", "upload.accepted"):
        publish_event(app, name, job_id="x")
    time.sleep(0.3)
    assert queue_depth(rabbitmq, "video_queue")[0] == 0
    assert queue_depth(rabbitmq, "default_queue")[0] == 0
    assert queue_depth(rabbitmq, "audit_queue")[0] == 4


def test_publishing_declares_the_topology_on_a_fresh_broker(rabbitmq: str) -> None:
    """A producer that publishes first, before any consumer ever ran, loses no audit copy."""
    with Connection(rabbitmq) as conn:
        for q in routing.TOPOLOGY:
            q(conn.default_channel).delete()
    # A new publishing process (a web app, a script): nothing declared yet on its connection.
    subprocess.run(
        [sys.executable, "-c", "import mediaapp; mediaapp.submit('clip.mp4')"],
        check=True,
        timeout=60,
        cwd=REPO,
    )
    assert queue_depth(rabbitmq, "video_queue")[0] == 1
    assert queue_depth(rabbitmq, "audit_queue")[0] == 1


def test_seed_style_producer_events(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    event_id = f"seed-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "seed_producer.py"),
            "--broker",
            rabbitmq,
            "--file",
            "clip.mp4",
            "--id",
            event_id,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "video.upload" in out.stdout and "user.login" in out.stdout
    job_id = str(uuid.uuid5(EVENT_NAMESPACE, event_id))
    manifest = Job(job_id).wait(timeout=90)
    assert manifest["input"] == "clip.mp4"
    wait_records(audit_consumer, of_job(job_id, "job.finished"))
    log = list(read_log(audit_consumer))
    upload = [r for r in log if r["routing_key"] == "video.upload"]
    login = [r for r in log if r["routing_key"] == "user.login"]
    assert len(upload) == 1 and upload[0]["body"] == {"file": "clip.mp4", "id": event_id}
    assert len(login) == 1 and login[0]["body"] == {"user": "admin"} and login[0]["kind"] == "event"
    assert len([r for r in log if r["name"] == "upload.accepted"]) == 1
    assert len([r for r in log if r["name"] == "video.transcode" and r["task_id"] == job_id]) == 1
    assert "unknown message" not in video_worker.text().lower()
    assert video_worker.text().count(f"video.transcode[{job_id}] succeeded") == 1


def test_bad_input_fails_typed_audited_and_the_worker_lives_on(
    video_worker: Proc, audit_consumer: Path
) -> None:
    bad = submit("small-pdf.pdf")
    with pytest.raises(JobFailed, match=r"small-pdf\.pdf") as info:
        bad.wait(timeout=60)
    assert "video.transcode" in str(info.value)  # the step that refused it
    assert isinstance(bad.error, NotMedia) and "not a media file" in str(bad.error)
    failed = wait_records(audit_consumer, of_job(bad.id, "task.failed"))[0]
    assert failed["body"]["error"]["code"] == "not_media"
    assert failed["body"]["input"] == "small-pdf.pdf"
    finished = wait_records(audit_consumer, of_job(bad.id, "job.finished"))[0]
    assert finished["body"]["state"] == "FAILURE"
    # The same worker goes on with the next job.
    assert video_worker.alive()
    assert submit("silent.mp4").wait(timeout=60)["outputs"][0]["height"] == 240


def test_upload_event_without_file_is_rejected_and_audited(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    exchange = Exchange("media_exchange", type="topic", durable=True)
    with Connection(rabbitmq) as conn:
        conn.Producer(serializer="json").publish(
            {"id": "no-file"}, exchange=exchange, routing_key="video.upload"
        )
    rejected = wait_records(audit_consumer, lambda r: r["name"] == "upload.rejected")[0]
    assert rejected["body"]["error"]["type"] == "InvalidInput"
    assert "'file'" in rejected["body"]["error"]["message"]
    time.sleep(0.3)
    assert queue_depth(rabbitmq, "video_queue")[0] == 0  # acked, not redelivered for ever
    assert video_worker.alive()


def test_progress_is_reported_by_a_real_worker(video_worker: Proc, media_root: Path) -> None:
    from ..conftest import long_clip

    seen: list[dict] = []
    job = submit(long_clip(media_root, 20), profile="web")
    job.wait(timeout=180, interval=0.1, on_progress=seen.append)
    percents = [m["percent"] for m in seen if m.get("percent") is not None]
    assert percents and 0 < min(percents) < 100, seen
    assert all(m["job_id"] == job.id and m["step"] == "transcode" for m in seen)
    assert percents == sorted(percents)


def test_audit_refuses_pickle_and_malformed_json(audit_consumer: Path, rabbitmq: str) -> None:
    exchange = Exchange("media_exchange", type="topic", durable=True)
    with Connection(rabbitmq) as conn:
        producer = conn.Producer()
        producer.publish(
            {"evil": True}, exchange=exchange, routing_key="user.pickle", serializer="pickle"
        )
        producer.publish(
            b"{not json",
            exchange=exchange,
            routing_key="user.broken",
            content_type="application/json",
            content_encoding="utf-8",
        )
    records = wait_records(audit_consumer, lambda r: r["kind"] == "rejected", count=2)
    by_key = {r["routing_key"]: r for r in records}
    assert by_key["user.pickle"]["error"]["type"] == "ContentDisallowed"
    assert by_key["user.broken"]["error"]["type"] in {
        "DecodeError",
        "JSONDecodeError",
        "ValueError",
    }
    time.sleep(0.5)
    assert queue_depth(rabbitmq, "audit_queue")[0] == 0  # recorded and acked, not stuck


def test_audit_marks_redelivered_and_duplicate_copies(
    clean_queues: None, rabbitmq: str, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    from ..conftest import BIN, child_env

    exchange = Exchange("media_exchange", type="topic", durable=True)
    with Connection(rabbitmq) as conn:
        conn.Producer(serializer="json").publish(
            {"n": 1}, exchange=exchange, routing_key="user.test", message_id="mid-1"
        )
        # A consumer takes it and dies without acking: the broker redelivers it flagged.
        got: list = []
        with Consumer(
            conn, [routing.AUDIT_QUEUE], callbacks=[lambda b, m: got.append(m)], accept=["json"]
        ):
            conn.drain_events(timeout=5)
        assert got and not got[0].acknowledged
    log = tmp_path / "audit.jsonl"
    # The log already holds that message (written, crash before the ack).
    log.write_text(json.dumps({"message_id": "mid-1", "name": "user.test"}) + "\n")
    proc = spawn([str(BIN / "mediaapp"), "audit"], child_env(MEDIAAPP_AUDIT_LOG=str(log)), "audit")
    proc.wait_for("audit consumer ready")
    record = wait_records(log, lambda r: r.get("routing_key") == "user.test")[0]
    assert record["redelivered"] is True and record["duplicate"] is True


def test_a_bare_worker_never_consumes_the_audit_queue(
    spawn: Callable[..., Proc], clean_queues: None, rabbitmq: str
) -> None:
    import socket

    from ..conftest import BIN

    node = f"bare{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    worker = spawn([str(BIN / "celery"), "-A", "mediaapp", "worker", "-n", node, "-l", "info"])
    worker.wait_for("ready.")
    out = subprocess.run(
        [str(BIN / "celery"), "-A", "mediaapp", "inspect", "active_queues", "-d", node, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    queues = {q["name"] for q in json.loads(out.stdout)[node]}
    # Its task queues, plus the capability queues of the codecs it proved (it has video_queue).
    assert queues == {"video_queue", "default_queue", "video_hevc_queue", "video_av1_queue"}
    assert queue_depth(rabbitmq, "audit_queue")[1] == 0


def test_hls_job_per_rendition_spreads_rungs_as_tasks(
    spawn: Callable[..., Proc], audit_consumer: Path, clean_queues: None, media_root: Path
) -> None:
    """The per-rendition strategy: a chord of one task per rung, then packaging."""
    from ..conftest import child_env, long_clip, worker_cmd

    env = child_env(MEDIAAPP_LADDER_STRATEGY="per_rendition")
    for i in range(2):  # two workers: the rungs really spread
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        spawn(cmd, env, f"worker{i}")
    job = submit(long_clip(media_root, 12), profile="hls")
    seen: list[dict] = []
    manifest = job.wait(timeout=240, interval=0.2, on_progress=seen.append)
    assert manifest["strategy"] == "per_rendition"
    rungs = [o for o in manifest["outputs"] if o["kind"] == "hls-rendition"]
    assert [r["height"] for r in rungs] == [720, 480, 360] and all(
        r["segments"] == 3 for r in rungs
    )
    assert Path(next(o["path"] for o in manifest["outputs"] if o["kind"] == "hls-master")).is_file()
    steps = {s["task_id"] for p in seen for s in p.get("steps", [])}
    assert steps == {f"{job.id}-rung{i}" for i in range(3)}
    assert any(0 < p["percent"] < 100 for p in seen)
    wait_records(audit_consumer, of_job(job.id, "job.finished"))
    story = [r for r in read_log(audit_consumer) if r.get("job_id") == job.id]
    names = [r["name"] for r in story if r["kind"] == "task"]
    assert sorted(names) == [
        "video.package",
        "video.rung",
        "video.rung",
        "video.rung",
        "video.transcode",
    ]
    assert {r["routing_key"] for r in story if r["kind"] == "task"} == {
        "video.transcode",
        "video.rung",
        "video.package",
    }
    hosts = {
        r["body"]["hostname"] + str(r["body"]["pid"])
        for r in story
        if r["name"] == "task.started" and r["body"]["task"] == "video.rung"
    }
    assert len(hosts) >= 2, "the rungs did not spread over the two workers"


def test_hls_job_single_process_through_the_cli(
    video_worker: Proc, audit_consumer: Path, media_root: Path, tmp_path: Path
) -> None:
    """`mediaapp submit --profile hls --wait`: progress, then a verified package."""
    from ..conftest import BIN, child_env

    out = subprocess.run(
        [str(BIN / "mediaapp"), "submit", "clip.mp4", "--profile", "hls", "--wait", "--json"],
        env=child_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)  # stdout is the manifest alone (the job id is on stderr)
    job_id = manifest["job_id"]
    assert manifest["strategy"] == "single" and manifest["kind"] == "hls"
    assert [o["height"] for o in manifest["outputs"] if o["kind"] == "hls-rendition"] == [360]
    assert "100.0%" in out.stderr  # the progress bars were drawn
    status = subprocess.run(
        [str(BIN / "mediaapp"), "status", job_id],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "SUCCESS" in status.stdout and "hls-master" in status.stdout
