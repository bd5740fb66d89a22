"""The Prometheus endpoint, scraped after real jobs through a real worker."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from mediaapp.errors import MediaError
from mediaapp.jobs.client import submit
from mediaapp.ops.metrics import PipelineMetrics

from ..conftest import BIN, Proc, child_env
from ..e2e.test_flower import free_port


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.M)
    assert match, f"{name}{{{labels}}} not in metrics"
    return float(match.group(1))


@pytest.mark.unit
def test_duplicates_do_not_count_twice() -> None:
    metrics = PipelineMetrics()
    record = {"kind": "event", "name": "job.finished", "body": {"state": "SUCCESS", "runtime_s": 1}}
    metrics.observe(record)
    metrics.observe({**record, "duplicate": True})
    assert metrics.jobs.labels("SUCCESS")._value.get() == 1


@pytest.mark.unit
def test_rendition_vmaf_is_a_histogram_of_each_scored_rendition() -> None:
    metrics = PipelineMetrics()
    body = {"task": "video.transcode", "runtime_s": 2, "vmaf_means": [96.0, 88.5, 41.0]}
    metrics.observe({"kind": "event", "name": "task.succeeded", "body": body})
    metrics.observe({"kind": "event", "name": "task.succeeded", "body": {"task": "video.probe"}})
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "mediaapp_rendition_vmaf_count") == 3
    assert sample(text, "mediaapp_rendition_vmaf_sum") == 225.5
    assert sample(text, "mediaapp_rendition_vmaf_bucket", 'le="90.0"') == 2
    assert sample(text, "mediaapp_rendition_vmaf_bucket", 'le="40.0"') == 0


@pytest.mark.integration
@pytest.mark.e2e
def test_metrics_after_real_jobs(
    video_worker: Proc, spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    port = free_port()
    env = child_env(MEDIAAPP_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    audit = spawn([str(BIN / "mediaapp"), "audit", "--metrics-port", str(port)], env, "audit")
    audit.wait_for("audit consumer ready")
    good = [submit("clip.mp4"), submit("silent.mp4")]
    bad = submit("small-pdf.pdf")
    for job in good:
        job.wait(timeout=90)
    with pytest.raises(MediaError):
        bad.wait(timeout=60)
    text = ""
    for _ in range(50):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        if 'mediaapp_jobs_total{state="FAILURE"}' in text and 'state="SUCCESS"} 2.0' in text:
            break
        time.sleep(0.2)
    assert sample(text, "mediaapp_jobs_total", 'state="SUCCESS"') == 2
    assert sample(text, "mediaapp_jobs_total", 'state="FAILURE"') == 1
    # The PDF is refused by the transcode step's probe: one message per job.
    assert sample(text, "mediaapp_dead_lettered_total", 'task="video.transcode"') == 1
    assert sample(text, "mediaapp_step_duration_seconds_count", 'task="video.transcode"') == 3
    assert sample(text, "mediaapp_encode_speed_ratio_count") == 2
    assert sample(text, "mediaapp_bytes_out_total") > 100_000
    assert sample(text, "mediaapp_bytes_in_total") > 100_000
    assert sample(text, "mediaapp_queue_messages", 'queue="dead_letter_queue"') == 1
    assert sample(text, "mediaapp_audit_lag_messages") >= 0
    assert sample(text, "mediaapp_messages_audited_total", 'kind="task"') == 3  # 3 jobs


@pytest.mark.integration
@pytest.mark.e2e
def test_json_logs_carry_job_and_task_ids(
    spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    import json

    from ..conftest import worker_cmd

    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    worker = spawn(cmd, child_env(MEDIAAPP_LOG_FORMAT="json"), "worker")
    job = submit("clip.mp4")
    job.wait(timeout=90)
    worker.wait_for(f"{job.id}] succeeded")
    lines = [json.loads(line) for line in worker.text().splitlines() if line.startswith("{")]
    about_job = [doc for doc in lines if doc.get("job_id") == job.id]
    assert any("ffmpeg:" in doc["message"] for doc in about_job), about_job
    assert {doc["task_id"] for doc in about_job} == {job.id}
    assert all(doc["level"] for doc in about_job)
