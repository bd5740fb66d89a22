"""``mediaapp declare --migrate`` on the real RabbitMQ: a task queue declared before priorities
(no x-max-priority) holding messages becomes a priority queue, and
every message comes back with its body, headers, priority and order."""

from __future__ import annotations

import subprocess

import amqp
import pytest
from kombu import Connection, Exchange, Queue

from mediaapp.errors import QueueInUse
from mediaapp.jobs import routing
from mediaapp.ops import migrate

from ..conftest import BIN, child_env

pytestmark = pytest.mark.integration


def _old_video_queue(conn: Connection) -> None:
    """video_queue as the previous release declared it, without the priority argument."""
    channel = conn.channel()
    try:
        channel.queue_delete("video_queue")
        channel.queue_delete("video_queue.migrating")
    finally:
        channel.close()
    args = {k: v for k, v in routing.TASK_QUEUE_ARGUMENTS.items() if k != "x-max-priority"}
    old = Queue("video_queue", routing.MEDIA_EXCHANGE, routing_key="video.#", durable=True,
                auto_delete=False, queue_arguments=args)  # fmt: skip
    old(conn.default_channel).declare()


def _publish(conn: Connection, count: int) -> None:
    producer = conn.Producer()
    for i in range(count):
        producer.publish({"n": i}, exchange=routing.MEDIA_EXCHANGE, routing_key="video.probe",
                         serializer="json", headers={"x-test": i}, priority=i % 3,
                         message_id=f"m{i}", delivery_mode=2)  # fmt: skip


def _drain(conn: Connection, name: str) -> list[tuple[int, int, int | None, str]]:
    got = []
    queue = Queue(name, no_declare=True)(conn.default_channel)
    while (message := queue.get(no_ack=True)) is not None:
        props = message.properties
        got.append((message.decode()["n"], message.headers["x-test"], props.get("priority"),
                    props.get("message_id")))  # fmt: skip
    return got


def test_migrate_keeps_every_queued_message_and_makes_a_priority_queue(
    rabbitmq: str, clean_queues: None
) -> None:
    with Connection(rabbitmq) as conn:
        _old_video_queue(conn)
        with pytest.raises(amqp.exceptions.PreconditionFailed):
            Queue(routing.VIDEO_QUEUE.name, routing.MEDIA_EXCHANGE, routing_key="video.#",
                  durable=True, queue_arguments=routing.TASK_QUEUE_ARGUMENTS)(
                conn.channel()).declare()  # fmt: skip
        _publish(conn, 30)
    # Without --migrate the CLI names the fix.
    plain = subprocess.run([str(BIN / "mediaapp"), "declare"], env=child_env(),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert plain.returncode == 78 and "mediaapp declare --migrate" in plain.stdout + plain.stderr
    out = subprocess.run([str(BIN / "mediaapp"), "declare", "--migrate"], env=child_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "video_queue: migrated, 30 kept" in out.stdout
    assert "default_queue: unchanged" in out.stdout
    with Connection(rabbitmq) as conn:
        assert not migrate.needs_migration(conn, routing.VIDEO_QUEUE)  # the new arguments
        with pytest.raises(amqp.exceptions.NotFound):  # the temporary queue is gone
            conn.channel().queue_declare("video_queue.migrating", passive=True)
        # video.# does not match a codec step's key: an HEVC step never lands here.
        hevc = routing.encode_key("hevc", "rung")
        conn.Producer().publish(
            {"n": -1}, exchange=routing.MEDIA_EXCHANGE, routing_key=hevc, serializer="json"
        )
        got = _drain(conn, "video_queue")
    # Nothing lost, nothing changed; a priority queue now hands out the most urgent first.
    assert len(got) == 30
    assert sorted(got) == [(i, i, i % 3, f"m{i}") for i in range(30)]
    assert [prio for _, _, prio, _ in got] == sorted((i % 3 for i in range(30)), reverse=True)
    for prio in range(3):  # and keeps the order within one priority
        ns = [n for n, _, p, _ in got if p == prio]
        assert ns == sorted(ns)


def test_a_queue_with_consumers_is_not_migrated(rabbitmq: str, clean_queues: None) -> None:
    with Connection(rabbitmq) as conn:
        name = "migrate_busy_queue"
        exchange = Exchange("migrate_test", type="topic", durable=False)
        Queue(name, exchange, routing_key="x.#")(conn.default_channel).declare()
        conn.Producer().publish({"n": 1}, exchange=exchange, routing_key="x.y", serializer="json")
        consumer_channel = conn.channel()
        consumer_channel.basic_consume(name, callback=lambda m: None)
        new = Queue(name, exchange, routing_key="x.#", max_priority=9)
        assert migrate.needs_migration(conn, new)
        with pytest.raises(QueueInUse, match="1 consumer"):
            migrate.migrate_queue(conn, new)
        consumer_channel.close()
        assert migrate.migrate_queue(conn, new) == 1
        assert not migrate.needs_migration(conn, new)
        conn.default_channel.queue_delete(name)
