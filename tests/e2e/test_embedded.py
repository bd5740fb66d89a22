"""End-to-end on the embedded default (Kombu filesystem broker, file results): no server at all."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.ops.audit import AuditLog, read_log

from ..conftest import BIN, REPO, Proc, child_env

pytestmark = pytest.mark.e2e


def embedded_env(data: Path, media_root: Path) -> dict[str, str]:
    env = child_env(MEDIAAPP_DATA_DIR=str(data), MEDIAAPP_MEDIA_ROOT=str(media_root))
    env.pop("MEDIAAPP_BROKER_URL")
    env.pop("MEDIAAPP_RESULT_BACKEND")
    return env


def test_demo_runs_the_whole_pipeline_without_a_server(tmp_path: Path) -> None:
    env = embedded_env(tmp_path / "data", REPO)
    out = subprocess.run(
        [str(BIN / "mediaapp"), "demo"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "filesystem://" in out.stderr and "submit → manifest" in out.stderr
    records = list(read_log(tmp_path / "data" / "audit.jsonl"))
    names = [r["name"] for r in records]
    assert names.count("video.transcode") == 1 and names.count("job.finished") == 1
    assert {"task.started", "task.succeeded"} <= set(names)
    manifests = list((tmp_path / "data" / "outputs").glob("*/manifest.json"))
    assert len(manifests) == 1
    video = json.loads(manifests[0].read_text())["outputs"][0]
    assert Path(video["path"]).stat().st_size == video["size"] and video["codec"] == "h264"

    # The demo kills its worker 0.3 s after the job ended: a second demo on the same
    # broker folder finds nothing left over (no job run twice) and loses nothing of its own.
    again = subprocess.run([str(BIN / "mediaapp"), "demo"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=180)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    records = list(read_log(tmp_path / "data" / "audit.jsonl"))
    per_step: dict[str, int] = {}
    for r in records:
        if r["name"] == "task.started":
            per_step[r["body"]["task_id"]] = per_step.get(r["body"]["task_id"], 0) + 1
    jobs = {r["body"]["job_id"] for r in records if r["name"] == "job.finished"}
    assert len(jobs) == 2 and set(per_step.values()) == {1}, per_step
    assert [r["name"] for r in records].count("job.finished") == 2


def test_worker_started_as_documented_serves_python_and_outside_producers(
    tmp_path: Path, media_root: Path, spawn: Callable[..., Proc]
) -> None:
    data = tmp_path / "data"
    env = embedded_env(data, media_root)
    # Exactly the documented command: nothing added.
    worker = spawn([str(BIN / "celery"), "-A", "mediaapp", "worker", "-Q", "video_queue"], env)
    audit = spawn([str(BIN / "mediaapp"), "audit"], env, "audit")
    audit.wait_for("audit consumer ready")
    client = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, mediaapp; j = mediaapp.submit('clip.mp4'); print(json.dumps(j.wait(90)))",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert client.returncode == 0, client.stderr[-2000:]
    manifest = json.loads(client.stdout)
    assert manifest["outputs"][0]["height"] == 360

    event_id = f"fs-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "seed_producer.py"),
            "--broker",
            "filesystem://",
            "--data-folder",
            str(data / "broker"),
            "--file",
            "silent.mp4",
            "--id",
            event_id,
        ],
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
    )
    from mediaapp.jobs.job import EVENT_NAMESPACE

    job_id = str(uuid.uuid5(EVENT_NAMESPACE, event_id))
    meta = data / "results" / f"celery-task-meta-{job_id}"
    for _ in range(300):  # the file result backend, read directly: this process uses RabbitMQ
        if meta.exists() and json.loads(meta.read_text())["status"] == "SUCCESS":
            break
        time.sleep(0.2)
    assert json.loads(meta.read_text())["result"]["input"] == "silent.mp4"
    log = data / "audit.jsonl"
    keys: list[str] = []
    for _ in range(100):
        keys = [r["routing_key"] for r in read_log(log)]
        if keys.count("event.job.finished") >= 2:
            break
        time.sleep(0.2)
    assert keys.count("video.upload") == 1 and keys.count("user.login") == 1
    assert keys.count("video.transcode") == 2  # the Python job and the upload's job
    assert "unknown message" not in worker.text().lower()


def test_audit_log_file_is_private_and_append_only(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    log.append([{"message_id": "a", "n": 1}])
    log.append([{"message_id": "a", "n": 2}, {"message_id": "b"}])
    log.close()
    assert (tmp_path / "audit" / "audit.jsonl").stat().st_mode & 0o777 == 0o640
    assert not (tmp_path / "audit").stat().st_mode & 0o002
    lines = list(read_log(tmp_path / "audit" / "audit.jsonl"))
    assert [r.get("duplicate") for r in lines] == [None, True, None]
    reopened = AuditLog(tmp_path / "audit" / "audit.jsonl")  # ids survive a restart
    assert set(reopened.seen_ids) == {"a", "b"}
