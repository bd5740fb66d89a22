"""Per-tenant fair share with real workers on the real RabbitMQ and Redis: a tenant whose
backlog was queued first cannot starve a tenant that comes later, and a tenant's cap holds
its steps back without failing them (order and events asserted, not timing)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.errors import JobFailed
from mediaapp.jobs import tenants
from mediaapp.jobs.client import Job, probe, submit
from mediaapp.ops.audit import read_log

from ..conftest import BIN, Proc, child_env, wait_for, worker_cmd
from .test_rabbitmq import of_job, wait_records

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _tenant(label: str) -> str:
    """A tenant of this test only: its backlog in Redis starts empty."""
    return f"{label}-{uuid.uuid4().hex[:8]}"


def test_a_later_tenant_starts_within_the_next_slots_not_after_the_backlog(
    video_worker: Proc, audit_consumer: Path
) -> None:
    from mediaapp.jobs.app import app

    a, b = _tenant("a"), _tenant("b")
    # One pool process (-c 1, prefetch 1, acks_late): it holds only the job it runs.
    busy = submit("clip.mp4", profile="web", tenant=a)
    wait_for(lambda: busy.status() in ("STARTED", "PROGRESS"), timeout=60, what="busy worker")
    backlog = [probe("clip.mp4", tenant=a) for _ in range(8)]  # tenant A's backlog, first
    late = [probe("clip.mp4", tenant=b) for _ in range(2)]  # then tenant B's two jobs
    assert tenants.backlog(app.backend, a) == 9 and tenants.backlog(app.backend, b) == 2
    for job in (*backlog, *late):
        job.wait(timeout=180)
    ids = {j.id for j in (*backlog, *late)}
    wait_records(audit_consumer, lambda r: r["name"] == "task.started" and r["job_id"] in ids,
                 count=len(ids))  # fmt: skip
    wait_records(audit_consumer, of_job(busy.id, "job.finished"))
    started = [r for r in read_log(audit_consumer)
               if r["name"] == "task.started" and r["job_id"] in ids]  # fmt: skip
    # Plain FIFO would start B's jobs 9th and 10th. B's first job outranks all of A's backlog
    # (priority 5 against 4 and below); its second ties A's first (4), queued earlier: slots
    # alternate, then A's backlog runs in its own order.
    assert [r["job_id"] for r in started] == [
        late[0].id, backlog[0].id, late[1].id, *(j.id for j in backlog[1:])
    ]  # fmt: skip
    assert {r["job_id"]: r["body"]["tenant"] for r in started} == {
        **{j.id: a for j in backlog}, **{j.id: b for j in late}
    }  # fmt: skip
    finished = wait_records(audit_consumer, lambda r: r["name"] == "job.finished"
                            and r["job_id"] in ids, count=len(ids))  # fmt: skip
    assert {r["body"]["tenant"] for r in finished} == {a, b}
    # Every ended job leaves its tenant's backlog (in task_success, just after the result).
    wait_for(lambda: tenants.backlog(app.backend, a) == tenants.backlog(app.backend, b) == 0,
             what="backlogs released")  # fmt: skip


def test_a_tenant_over_its_cap_is_deferred_not_failed(
    spawn: Callable[..., Proc], clean_queues: None, audit_consumer: Path
) -> None:
    from mediaapp.jobs.app import app

    capped, free = _tenant("capped"), _tenant("free")
    cmd, _ = worker_cmd("video_queue", "-c", "2", "-l", "info")
    worker = spawn(cmd, child_env(MEDIAAPP_TENANT_CAPS=f"{capped}=1"), name="worker")
    worker.wait_for("ready.", timeout=60)
    # Two idle slots, two transcodes of the capped tenant: one runs, the other is put back.
    jobs = [submit("clip.mp4", profile="web", tenant=capped) for _ in range(2)]
    other = probe("clip.mp4", tenant=free)
    for job in (*jobs, other):
        job.wait(timeout=240)
    ids = {j.id for j in jobs}
    deferred = wait_records(audit_consumer, lambda r: r["name"] == "task.deferred")
    body = deferred[0]["body"]
    assert body["job_id"] in ids and body["tenant"] == capped
    assert body["running"] == 1 and body["cap"] == 1
    assert all(r["body"]["tenant"] == capped for r in read_log(audit_consumer)
               if r["name"] == "task.deferred")  # fmt: skip
    # Deferred is neither a retry nor a failure, and the job kept its one attempt count.
    names = {r["name"] for r in read_log(audit_consumer) if r.get("job_id") in ids}
    assert "task.retried" not in names and "task.failed" not in names
    # Its tenant's running set and backlog are empty once both ended.
    client = app.backend.client
    assert client.zcard(tenants.running_key(capped)) == 0
    wait_for(lambda: tenants.backlog(app.backend, capped) == 0, what="backlog released")


def test_a_raw_upload_event_carries_its_tenant_into_the_job(
    video_worker: Proc, audit_consumer: Path, rabbitmq: str
) -> None:
    from kombu import Connection

    from mediaapp.jobs import routing
    from mediaapp.jobs.app import app
    from mediaapp.jobs.job import job_id_for_event

    tenant, event_id = _tenant("producer"), f"fair-{uuid.uuid4().hex[:8]}"
    with Connection(rabbitmq) as conn:  # a plain AMQP producer: no Celery, no mediaapp client
        conn.Producer().publish({"file": "clip.mp4", "id": event_id, "tenant": tenant},
                                exchange=routing.MEDIA_EXCHANGE, routing_key=routing.UPLOAD_EVENT,
                                serializer="json", delivery_mode=2)  # fmt: skip
    job_id = job_id_for_event(event_id, None)
    Job(job_id).wait(timeout=120)
    wait_records(audit_consumer, of_job(job_id, "job.finished"))
    log = list(read_log(audit_consumer))
    accepted = [r["body"] for r in log if r["name"] == "upload.accepted"]
    assert [(b["job_id"], b["tenant"]) for b in accepted] == [(job_id, tenant)]
    sent = [r for r in log if r["kind"] == "task" and r["task_id"] == job_id]
    assert sent and sent[0]["kwargs"]["tenant"] == tenant  # the job message itself
    finished = [r["body"] for r in log if r["name"] == "job.finished" and r["job_id"] == job_id]
    assert finished[0]["tenant"] == tenant and finished[0]["state"] == "SUCCESS"
    wait_for(lambda: tenants.backlog(app.backend, tenant) == 0, what="backlog released")


def test_every_step_of_a_fanned_out_job_carries_the_tenant(
    spawn: Callable[..., Proc], clean_queues: None, audit_consumer: Path
) -> None:
    from mediaapp.jobs.app import app

    tenant = _tenant("ladder")
    cmd, _ = worker_cmd("video_queue", "-c", "1", "-l", "info")
    spawn(cmd, child_env(MEDIAAPP_LADDER_STRATEGY="per_rendition"), name="worker")
    job = submit("clip.mp4", profile="hls", tenant=tenant)
    assert job.wait(timeout=240)["strategy"] == "per_rendition"
    wait_records(audit_consumer, of_job(job.id, "job.finished"))
    story = [r for r in read_log(audit_consumer) if r.get("job_id") == job.id]
    started = {(r["body"]["task"], r["body"]["tenant"]) for r in story
               if r["name"] == "task.started"}  # fmt: skip
    assert {task for task, _ in started} == {"video.transcode", "video.rung", "video.package"}
    assert {t for _, t in started} == {tenant}
    messages = [r for r in story if r["kind"] == "task"]
    assert len(messages) >= 3 and all(r["kwargs"]["tenant"] == tenant for r in messages)
    # The chord's body (task id = job id) ended the job: out of the tenant's backlog.
    wait_for(lambda: tenants.backlog(app.backend, tenant) == 0, what="backlog released")


def test_failed_and_cancelled_jobs_leave_their_tenants_backlog(
    video_worker: Proc, audit_consumer: Path
) -> None:
    from mediaapp.jobs.app import app

    tenant = _tenant("ends")
    out = subprocess.run([str(BIN / "mediaapp"), "submit", "clip.mp4", "--tenant", tenant],
                         env=child_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    busy = Job(out.stdout.strip())  # the CLI's job counts in the tenant's backlog too
    wait_for(lambda: busy.status() in ("STARTED", "PROGRESS"), timeout=60, what="busy worker")
    missing = probe("no-such-clip.mp4", tenant=tenant)  # fails typed, dead-lettered
    cancelled = probe("clip.mp4", tenant=tenant)  # revoked while queued
    assert tenants.backlog(app.backend, tenant) == 3
    cancelled.cancel()
    busy.wait(timeout=120)
    with pytest.raises(JobFailed, match="no-such-clip"):
        missing.wait(timeout=120)
    wait_records(audit_consumer, of_job(cancelled.id, "task.revoked"))
    wait_for(lambda: tenants.backlog(app.backend, tenant) == 0, what="backlog released")
    assert "task.started" not in {r["name"] for r in read_log(audit_consumer)
                                  if r.get("job_id") == cancelled.id}  # fmt: skip
