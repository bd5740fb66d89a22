"""The job model: ids, the ids of its steps, its backend keys, and the workflow it sends."""

from __future__ import annotations

import json
import uuid

import pytest
from celery import Celery

from mediaapp.errors import InvalidInput
from mediaapp.jobs import job
from mediaapp.jobs.app import celery_config
from mediaapp.settings import Settings

pytestmark = pytest.mark.unit


def test_job_ids_are_safe_folder_names_and_events_map_to_one_job() -> None:
    assert job.check_job_id(job.new_job_id())
    for bad in ("../x", "", "a" * 65, "a b", None, 7):
        with pytest.raises(InvalidInput):
            job.check_job_id(bad)
    same = job.job_id_for_event("evt-1", "tag-1")
    assert same == job.job_id_for_event("evt-1", "tag-2")  # the event id decides
    assert same == str(uuid.uuid5(job.EVENT_NAMESPACE, "evt-1"))
    assert job.job_id_for_event(None, "tag-1") != job.job_id_for_event(None, "tag-2")


def test_step_ids_and_keys_are_derived_from_the_job_id() -> None:
    assert job.rung_task_id("j", 2) == "j-rung2"
    assert job.chunk_task_id("j", 10) == "j-chunk10"
    assert job.part_task_id("j", "audio") == "j-audio"
    assert job.steps_key("j") == b"mediaapp-steps-j" and job.cancel_key("j") == b"mediaapp-cancel-j"
    assert job.delivery_key("j-chunk1", 2) == "mediaapp:deliveries:j-chunk1:2"


def test_a_transcode_is_one_message_with_an_errback(tmp_path) -> None:
    """One dispatch per job: the probe runs inside the transcode step (bench overhead)."""
    app = Celery("t")
    app.conf.update(celery_config(Settings(data_dir=tmp_path)))
    sent: list = []
    app.send_task = lambda *a, **k: sent.append((a, k))  # type: ignore[method-assign]
    job.send(app, job_id="j1", name="clip.mp4", profile="hls", priority=8)
    (args, options), *rest = sent
    assert args == ("video.transcode",) and options["task_id"] == "j1" and not rest
    assert options["kwargs"] == {"job_id": "j1", "name": "clip.mp4", "profile": "hls"}
    errback = options["link_error"]
    assert errback.task == "video.fail_job" and errback.kwargs == {"job_id": "j1"}
    assert options["priority"] == 8 and errback.options["priority"] == 8  # the errback too
    assert "routing_key" not in options  # H.264: task_routes' video_queue
    sent.clear()
    job.send(app, job_id="j3", name="clip.mp4", profile="hls-hdr10")  # HEVC rungs
    (_, options), *_ = sent
    assert options["routing_key"] == "encode.hevc.transcode"
    assert options["exchange"] == "media_exchange"
    sent.clear()
    job.send(app, job_id="j2", name="clip.mp4", task="video.thumbnail")  # one step: one task
    kwargs = {"job_id": "j2", "name": "clip.mp4"}
    assert sent == [(("video.thumbnail",), {"kwargs": kwargs, "task_id": "j2", "priority": 5})]
    with pytest.raises(InvalidInput):
        job.send(app, job_id="../etc", name="clip.mp4")


def test_priority_is_0_to_9_and_defaults_to_5() -> None:
    assert job.check_priority(None) == 5
    assert [job.check_priority(p) for p in (0, 9)] == [0, 9]
    for bad in (-1, 10, "9", 2.5, True):
        with pytest.raises(InvalidInput):
            job.check_priority(bad)


def test_an_upload_event_may_carry_a_priority() -> None:
    from mediaapp.jobs.uploads import upload_to_job

    assert upload_to_job({"file": "a.mp4", "priority": 9})["priority"] == 9
    assert upload_to_job({"file": "a.mp4"})["priority"] is None
    with pytest.raises(InvalidInput, match="upload event 'priority'"):
        upload_to_job({"file": "a.mp4", "priority": "urgent"})


def test_step_ids_of_a_fanned_out_job_round_trip(tmp_path) -> None:
    app = Celery("t", backend=f"file://{tmp_path}")
    assert job.step_ids(app, "j") == []
    app.backend.set(job.steps_key("j"), json.dumps(["j-rung0", "j-rung1"]).encode())
    assert job.step_ids(app, "j") == ["j-rung0", "j-rung1"]
    assert job.failed_step(app, "j") is None  # nothing failed yet


def test_only_steps_that_encode_beyond_h264_go_to_a_capability_queue() -> None:
    assert job.needs("h264", "rung") == {}
    assert job.needs("hevc", "rung") == {
        "exchange": "media_exchange",
        "routing_key": "encode.hevc.rung",
    }
    assert job.needs("av1", "chunk")["routing_key"] == "encode.av1.chunk"


def test_a_job_with_an_unknown_profile_is_still_sent_for_the_worker_to_refuse(tmp_path) -> None:
    app = Celery("t")
    app.conf.update(celery_config(Settings(data_dir=tmp_path)))
    sent: list = []
    app.send_task = lambda *a, **k: sent.append((a, k))  # type: ignore[method-assign]
    job.send(app, job_id="j9", name="clip.mp4", profile="8k-hdr")
    assert sent and "routing_key" not in sent[0][1]  # video_queue: the worker fails it typed
