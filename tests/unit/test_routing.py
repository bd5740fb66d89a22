"""Routing as data: every route, queue and binding, checked through Kombu's own topic matching."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from mediaapp.jobs import routing

pytestmark = pytest.mark.unit


def test_every_task_route_has_an_explicit_key_that_its_queue_binds() -> None:
    for name, route in routing.TASK_ROUTES.items():
        key = route["routing_key"]
        assert "#" not in key and "*" not in key, f"{name} publishes a pattern"
        assert key == name or key == "video." + name.split(".")[-1], "key names the task"
        assert _routed(key)[route["queue"]] == 1, f"{key} does not reach {route['queue']}"
        assert route["queue"] in {q.name for q in routing.TASK_QUEUES}
        assert routing.AUDIT_QUEUE in route["declare"]


def test_task_queues_dead_letter_and_outlast_the_time_limit() -> None:
    from mediaapp.jobs.app import app

    for q in routing.ALL_TASK_QUEUES:
        assert q.queue_arguments["x-dead-letter-exchange"] == "media_dlx"
        assert q.queue_arguments["x-consumer-timeout"] > app.conf.task_time_limit * 1000
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.task_acks_late and not app.conf.task_acks_on_failure_or_timeout
    assert routing.DEAD_LETTER_QUEUE.routing_key == "#"


def test_audit_queue_is_never_a_task_queue() -> None:
    from mediaapp.jobs.app import app

    names = {q.name for q in app.conf.task_queues}
    assert "audit_queue" not in names
    assert names == {"video_queue", "default_queue"}


def _routed(key: str) -> dict[str, int]:
    """Publish one message through Kombu's own topic routing (memory transport); count copies."""
    counts = {}
    with Connection("memory://") as conn:
        # An exchange of its own: the memory transport keeps bindings for the whole process.
        exchange = Exchange(f"media_exchange-{uuid.uuid4().hex}", type="topic")
        topology = [q for q in routing.TOPOLOGY if q.exchange == routing.MEDIA_EXCHANGE]
        queues = [Queue(q.name + key, exchange, routing_key=q.routing_key) for q in topology]
        for q in queues:
            q(conn.default_channel).declare()
        conn.Producer().publish({"x": 1}, exchange=exchange, routing_key=key, serializer="json")
        for q, orig in zip(queues, topology, strict=True):
            counts[orig.name] = q(conn.default_channel).queue_declare(passive=True).message_count
            q(conn.default_channel).delete()
    return counts


def _only(*names: str) -> dict[str, int]:
    """The copies a key should give: one in each named queue, none anywhere else."""
    media = [q.name for q in routing.TOPOLOGY if q.exchange == routing.MEDIA_EXCHANGE]
    return {name: int(name in names) for name in media}


@pytest.mark.parametrize(
    "key", ["video.transcode", "video.upload", "video.probe", "video.upload.v2"]
)
def test_video_keys_reach_video_queue_and_audit(key: str) -> None:
    assert _routed(key) == _only("video_queue", "audit_queue")


@pytest.mark.parametrize(
    ("codec", "queue"), [("hevc", "video_hevc_queue"), ("av1", "video_av1_queue")]
)
def test_a_codec_step_reaches_its_capability_queue_only(codec: str, queue: str) -> None:
    # Never video_queue too: a worker that did not prove the codec must not get a copy.
    assert _routed(routing.encode_key(codec, "rung")) == _only(queue, "audit_queue")
    with pytest.raises(ValueError, match="video_queue"):
        routing.encode_key("h264", "rung")


def test_task_queues_are_priority_queues() -> None:
    from mediaapp.jobs.app import app

    for q in routing.ALL_TASK_QUEUES:
        assert q.queue_arguments["x-max-priority"] == 9
    assert app.conf.task_queue_max_priority == 9
    assert app.conf.task_default_priority == 5
    assert app.conf.task_inherit_parent_priority
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_acks_late


@pytest.mark.parametrize(
    "name", ["task.started", "task.succeeded", "task.failed", "job.finished", "upload.accepted"]
)
def test_events_only_ever_reach_the_audit_queue(name: str) -> None:
    assert _routed(routing.event_key(name)) == _only("audit_queue")


def test_user_login_is_audited_only() -> None:
    assert _routed("user.login") == _only("audit_queue")
