"""Hardware encoder fault → software fallback, with a real worker on the real RabbitMQ and a
fake GPU encoder (tests/fake_encoder.py: no GPU exists here). The worker proves
``h264_nvenc``, uses it, sees it fail as NVENC does when out of memory, disables it
(audited, and in its remote-control answer), and the job succeeds in software; the next job
on that worker goes straight to software."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.jobs.client import submit
from mediaapp.ops.audit import read_log

from ..conftest import BIN, Proc, child_env, worker_cmd
from ..fake_encoder import write_fake_ffmpeg
from .test_rabbitmq import of_job, wait_records

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_a_hardware_fault_falls_back_to_software_and_disables_the_encoder(
    spawn: Callable[..., Proc], audit_consumer: Path, tmp_path: Path
) -> None:
    fake, failures = write_fake_ffmpeg(tmp_path)
    cmd, node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    worker = spawn(cmd, child_env(MEDIAAPP_FFMPEG=str(fake)), name="gpu")
    worker.wait_for("ready.", timeout=90)
    proven = wait_records(audit_consumer, lambda r: r["name"] == "worker.capabilities")[0]
    assert proven["body"]["encoders"]["h264"] == {"software": ["libx264"],
                                                  "hardware": ["h264_nvenc"]}  # fmt: skip

    first = submit("clip.mp4", profile="web")
    manifest = first.wait(timeout=180)
    assert failures.read_text().count("-vcodec h264_nvenc") == 1  # the one failed attempt
    assert manifest["encoders"] == {"video": ["libx264"]}
    [fell] = manifest["fallback"]
    assert fell["from"] == "h264_nvenc" and fell["to"] == "libx264" and fell["worker"] == node
    assert fell["reason"] == "OpenEncodeSessionEx failed: out of memory (10): (no details)"
    assert Path(manifest["outputs"][0]["path"]).is_file()

    disabled = wait_records(audit_consumer, of_job(first.id, "worker.capability.disabled"))[0]
    assert disabled["routing_key"] == "event.worker.capability.disabled"
    assert disabled["body"]["encoder"] == "h264_nvenc" and disabled["body"]["worker"] == node
    assert "out of memory" in disabled["body"]["reason"]
    # The operator's view (the remote-control answer Flower can show too).
    out = subprocess.run([str(BIN / "mediaapp"), "workers", "--json"], env=child_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)[node]
    assert shown["encoders"]["h264"] == {"software": ["libx264"], "hardware": []}
    assert "out of memory" in shown["disabled"]["h264_nvenc"]

    second = submit("clip.mp4", profile="web")
    again = second.wait(timeout=180)
    assert "fallback" not in again and again["encoders"] == {"video": ["libx264"]}
    assert failures.read_text().count("-vcodec h264_nvenc") == 1  # not tried again
    assert worker.alive()
    # Nothing ran twice beyond the failed attempt: two starts for the first job, one after.
    wait_records(audit_consumer, of_job(second.id, "job.finished"))
    starts = [r["job_id"] for r in read_log(audit_consumer) if r["name"] == "task.started"]
    assert (starts.count(first.id), starts.count(second.id)) == (2, 1)
    # The re-run went back the way the step came (H.264: video_queue's key), retries=1.
    tasks = [r for r in read_log(audit_consumer) if r.get("kind") == "task"]
    again_sent = [r["routing_key"] for r in tasks if (r["task_id"], r["retries"]) == (first.id, 1)]
    assert again_sent == ["video.transcode"]


def test_an_hevc_rung_falls_back_on_the_hevc_route(
    spawn: Callable[..., Proc], audit_consumer: Path, tmp_path: Path
) -> None:
    # Per-rendition ladder: the rung is a task of its own on encode.hevc.rung, which any
    # worker that proved HEVC consumes; its re-run in software goes back there.
    fake, failures = write_fake_ffmpeg(tmp_path, "hevc_nvenc")
    cmd, node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    env = child_env(MEDIAAPP_FFMPEG=str(fake), MEDIAAPP_LADDER_STRATEGY="per_rendition")
    worker = spawn(cmd, env, name="gpu")
    worker.wait_for("ready.", timeout=90)
    job = submit("clip.mp4", profile="hls-hdr10")
    manifest = job.wait(timeout=240)
    assert failures.read_text().count("-vcodec hevc_nvenc") == 1
    [fell] = manifest["fallback"]
    assert (fell["from"], fell["to"], fell["step"]) == ("hevc_nvenc", "libx265", "video.rung")
    assert manifest["encoders"] == {"0_360p": ["libx265"]}
    rung = next(o for o in manifest["outputs"] if o["kind"] == "hls-rendition")
    assert rung["codec"] == "hevc"
    tasks = [r for r in read_log(audit_consumer) if r.get("kind") == "task"]
    sent = [r for r in tasks if (r["name"], r["job_id"]) == ("video.rung", job.id)]
    assert [(r["routing_key"], r["retries"]) for r in sent] == [
        ("encode.hevc.rung", 0),
        ("encode.hevc.rung", 1),
    ]
    disabled = wait_records(audit_consumer, of_job(job.id, "worker.capability.disabled"))[0]
    assert disabled["body"]["codec"] == "hevc" and disabled["body"]["worker"] == node
