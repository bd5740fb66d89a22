"""Routing as data: every route, queue and binding, checked through Kombu's own topic matching."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from mediaapp.jobs import routing

pytestmark = pytest.mark.unit


def test_every_task_route_has_an_explicit_key_that_its_queue_binds() -> None:
    queues = {q.name: q for q in routing.TASK_QUEUES}
    for name, route in routing.TASK_ROUTES.items():
        key = route["routing_key"]
        assert "#" not in key and "*" not in key, f"{name} publishes a pattern"
        assert key == name or key == "video." + name.split(".")[-1], "key names the task"
        prefix = queues[route["queue"]].routing_key.removesuffix("#")
        assert key.startswith(prefix)
        assert routing.AUDIT_QUEUE in route["declare"]


def test_task_queues_dead_letter_and_outlast_the_time_limit() -> None:
    from mediaapp.jobs.app import app

    for q in routing.TASK_QUEUES:
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
        exchange = Exchange("media_exchange", type="topic")
        topology = [q for q in routing.TOPOLOGY if q.exchange == routing.MEDIA_EXCHANGE]
        queues = [Queue(q.name + key, exchange, routing_key=q.routing_key) for q in topology]
        for q in queues:
            q(conn.default_channel).declare()
        conn.Producer().publish({"x": 1}, exchange=exchange, routing_key=key, serializer="json")
        for q, orig in zip(queues, topology, strict=True):
            counts[orig.name] = q(conn.default_channel).queue_declare(passive=True).message_count
            q(conn.default_channel).delete()
    return counts


@pytest.mark.parametrize("key", ["video.transcode", "video.upload", "video.probe"])
def test_video_keys_reach_video_queue_and_audit(key: str) -> None:
    assert _routed(key) == {"video_queue": 1, "default_queue": 0, "audit_queue": 1}


@pytest.mark.parametrize(
    "name", ["task.started", "task.succeeded", "task.failed", "job.finished", "upload.accepted"]
)
def test_events_only_ever_reach_the_audit_queue(name: str) -> None:
    assert _routed(routing.event_key(name)) == {
        "video_queue": 0,
        "default_queue": 0,
        "audit_queue": 1,
    }


def test_user_login_is_audited_only() -> None:
    assert _routed("user.login") == {"video_queue": 0, "default_queue": 0, "audit_queue": 1}
