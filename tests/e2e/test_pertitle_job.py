"""Per-title ladders on real workers (issue 16): the trial encodes of each search round run as
parallel ``video.trial`` tasks (one a sample) on two workers, the ``video.search`` body folds
them in and encodes the ladder; a resubmission finds every trial in the cache."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.errors import JobCancelled
from mediaapp.jobs import job as workflow
from mediaapp.jobs.app import app
from mediaapp.jobs.client import Job
from mediaapp.media import command
from mediaapp.ops.audit import read_log
from mediaapp.settings import get_settings

from ..conftest import Proc, child_env, wait_for, worker_cmd
from ..media.test_pertitle import PROFILES
from ..media_sources import HARD, generate_graph

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_trials_run_as_parallel_tasks_on_two_workers(
    spawn: Callable[..., Proc], audit_consumer: Path, clean_queues: None, media_root: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "pertitle.toml").write_text(PROFILES)
    env = child_env(MEDIAAPP_PROFILES_DIR=str(tmp_path / "profiles"))
    for i in range(2):
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        spawn(cmd, env, f"worker{i}").wait_for("ready.", timeout=60)
    source = generate_graph(media_root, "pt-hard.mp4", HARD)
    manifests, run = [], uuid.uuid4().hex[:12]
    for attempt in ("a", "b"):
        job_id = f"pertitle-e2e-{attempt}-{run}"
        # send(), not submit(): the profile lives in the workers' profiles folder only.
        workflow.send(app, job_id=job_id, name=source, profile="pt")
        manifests.append(Job(job_id, app=app).wait(timeout=300))
    first, second = manifests
    record = first["pertitle"]
    assert record["trial_tasks"] is True and record["rounds"] >= 2
    assert record["trial_encodes"] > 0
    for rung in record["rungs"]:
        assert 1 <= len(rung["trials"]) <= 4 and rung["met"], rung
    assert [o["height"] for o in first["outputs"] if o["kind"] == "hls-rendition"] == [270, 180]
    # The same source again: every trial from the cache, the same CRFs.
    assert second["pertitle"]["trial_encodes"] == 0
    assert [r["crf"] for r in second["pertitle"]["rungs"]] == [r["crf"] for r in record["rungs"]]

    job_id = f"pertitle-e2e-a-{run}"

    def story() -> list[dict]:
        return [r for r in read_log(audit_consumer) if r.get("job_id") == job_id]

    wait_for(lambda: any(r["name"] == "job.finished" for r in story()), 30, "job.finished")
    tasks = [r["name"] for r in story() if r["kind"] == "task"]
    rounds = record["rounds"]
    assert tasks.count("video.trial") == 2 * rounds and tasks.count("video.search") == rounds
    hosts = {
        r["body"]["hostname"] + str(r["body"]["pid"])
        for r in story()
        if r["name"] == "task.started" and r["body"]["task"] == "video.trial"
    }
    assert len(hosts) == 2, "the trials did not spread over the two workers"


#: An ffmpeg whose trial encodes (written under the search's ``trial-*`` folder) take 3 s
#: longer: a cancel then lands while the round runs, before its ``video.search`` body starts.
SLOW_TRIALS = """#!/bin/sh
case "$*" in *"/trial-"*) sleep 3;; esac
exec {real} "$@"
"""


@pytest.mark.parametrize("workers", [2, 1], ids=["body-revoked", "trial-queued"])
def test_a_search_cancelled_mid_round_ends_cancelled_and_leaves_nothing(
    spawn: Callable[..., Proc], audit_consumer: Path, clean_queues: None, media_root: Path,
    tmp_path: Path, workers: int,
) -> None:  # fmt: skip
    """Two workers: the revoke of a cancel reaches them before the round's body
    (``video.search``, which carries the job id) is queued: dropped unrun, it left the job
    REVOKED (a waiter waited forever), no ``job.cancelled``, the sample chunks in
    ``.pertitle``. One worker (counted as two): the second trial, queued, was revoked too, and
    a revoked chord part fails the chord: the job ended FAILURE (a ChordError)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "pertitle.toml").write_text(PROFILES)
    slow = tmp_path / "ffmpeg"
    slow.write_text(SLOW_TRIALS.format(real=command.ffmpeg_binary()))
    slow.chmod(0o755)
    env = child_env(MEDIAAPP_PROFILES_DIR=str(tmp_path / "profiles"), MEDIAAPP_FFMPEG=str(slow),
                    MEDIAAPP_CHUNK_WORKERS="2")  # fmt: skip
    procs = []
    for i in range(workers):
        cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
        procs.append(spawn(cmd, env, f"worker{i}"))
        procs[-1].wait_for("ready.", timeout=60)
    source = generate_graph(media_root, "pt-hard.mp4", HARD)
    job = Job(f"pertitle-cancel-{uuid.uuid4().hex[:12]}", app=app)
    workflow.send(app, job_id=job.id, name=source, profile="pt")

    def story() -> list[dict]:
        return [r for r in read_log(audit_consumer) if r.get("job_id") == job.id]

    wait_for(lambda: any(r["name"] == "task.started" and r["body"]["task"] == "video.trial"
                         for r in story()), 60, "a trial to start")  # fmt: skip
    job.cancel()
    with pytest.raises(JobCancelled):
        job.wait(timeout=60)
    assert job.status() == "CANCELLED"
    wait_for(lambda: any(r["name"] == "job.cancelled" for r in story()), 30, "job.cancelled")
    assert not (get_settings().output_root / job.id).exists()
    assert not [r for r in story() if r["name"] == "job.finished"]
    assert all(w.alive() for w in procs)


def test_a_dead_search_round_retried_from_the_dead_letters_is_counted_afresh(
    rabbitmq: str, clean_queues: None
) -> None:
    """A ``video.search`` body's deliveries are counted per round (it replaces itself under
    the job id); ``mediaapp dlq retry`` reset the count under the bare id, so a round dead-
    lettered as poison (its worker killed each time) was refused as poison again at once."""
    from kombu import Connection

    from mediaapp.jobs.deliveries import count_delivery
    from mediaapp.jobs.routing import DEAD_LETTER_EXCHANGE
    from mediaapp.ops.dlq import retry_dead

    job_id = f"pertitle-dlq-{uuid.uuid4().hex[:12]}"
    for _ in range(4):  # the round's message died with its worker four times: poison
        count_delivery(app.backend, f"{job_id}-round2", 0)
    body = [[[]], {"job_id": job_id, "name": "pt-hard.mp4", "state": {}, "round": 2},
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]  # fmt: skip
    with Connection(rabbitmq) as conn:
        conn.Producer().publish(
            body, exchange=DEAD_LETTER_EXCHANGE, routing_key="video.search", serializer="json",
            headers={"id": job_id, "task": "video.search", "retries": 0},
        )  # fmt: skip
    wait_for(lambda: retry_dead(app, job_id) is not None, 10, "the dead letter")
    assert count_delivery(app.backend, f"{job_id}-round2", 0) == 1


HEVC = """
[pt-hevc]
kind = "hls"
segment_s = 2
video_codec = "libx265"
rungs = [{ height = 180, video_kbps = 2000, target_vmaf = 90 }]
pertitle = { samples = 2, sample_s = 1.0, max_trials = 2, subsample = 3 }
"""


def test_an_hevc_search_encodes_its_ladder_on_a_worker_that_proved_hevc(
    spawn: Callable[..., Proc], audit_consumer: Path, clean_queues: None, media_root: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The trials went to the HEVC queue, but the round's body (``video.search``), which
    encodes the ladder at the end, went to ``video_queue``: any worker, HEVC proved or not.
    Here the one ``video_queue`` consumer is narrowed to H.264 (the job's first step lands
    there too: this process, which sends it, has not the profile, so routes it as H.264)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "pertitle.toml").write_text(HEVC)
    env = child_env(MEDIAAPP_PROFILES_DIR=str(tmp_path / "profiles"), MEDIAAPP_CHUNK_WORKERS="2")
    cmd, node = worker_cmd("video_queue", "-c", "1", "-l", "info")
    hevc = spawn(cmd, env, "hevc")
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    plain = spawn(cmd, {**env, "MEDIAAPP_CAPABILITIES": "h264"}, "h264")
    hevc.wait_for("ready.", timeout=60)
    plain.wait_for("ready.", timeout=60)
    app.control.cancel_consumer("video_queue", destination=[node], reply=True)
    source = generate_graph(media_root, "pt-hard.mp4", HARD)
    job = Job(f"pertitle-hevc-{uuid.uuid4().hex[:12]}", app=app)
    workflow.send(app, job_id=job.id, name=source, profile="pt-hevc")
    manifest = job.wait(timeout=300)
    assert manifest["pertitle"]["trial_tasks"] is True
    wait_for(lambda: any(r["name"] == "job.finished" and r.get("job_id") == job.id
                         for r in read_log(audit_consumer)), 30, "job.finished")  # fmt: skip
    ran = {r["body"]["task"]: r["body"]["pid"] for r in read_log(audit_consumer)
           if r.get("job_id") == job.id and r["name"] == "task.started"}  # fmt: skip
    assert os.getpgid(ran["video.search"]) == hevc.popen.pid, ran
