"""``mediaapp declare --migrate``: re-declare task queues whose arguments changed, keeping
every queued message.

RabbitMQ refuses to declare a queue that exists with other arguments (``PRECONDITION_FAILED``):
a ``video_queue`` declared before priorities (no ``x-max-priority``) blocks every worker and
producer of this version. The migration, per task queue that refuses:

1. declares ``<queue>.migrating`` (durable, not yet bound) and moves every message into it;
2. binds it like the new queue, moves what arrived meanwhile, deletes the old queue (only
   if empty) and declares the new one with its arguments and binding;
3. unbinds the temporary queue, moves everything back and deletes it.

A message is acked in its source only after the broker confirmed its copy: a crash leaves
it in one queue or both, never in none. Messages keep body, headers (``x-death`` too),
priority and id; their order within a queue is kept. Publishes during the few milliseconds
when both queues are bound (steps 2 and 3) land in both and run twice, which is why steps
are idempotent (README, "Idempotency"); none is lost. A queue with consumers is refused
(:class:`~mediaapp.errors.QueueInUse`): a message a worker holds unacked would vanish with
the old queue, so stop its workers first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import amqp
from kombu import Connection, Queue

from mediaapp.errors import QueueInUse
from mediaapp.jobs import routing

log = logging.getLogger(__name__)


def needs_migration(connection: Connection, queue: Queue) -> bool:
    """True when ``queue`` exists with other arguments than ours (declaring it fails)."""
    channel = connection.channel()
    try:
        queue(channel).declare()
        return False
    except amqp.exceptions.PreconditionFailed:
        return True  # the broker closed this channel
    finally:
        try:
            channel.close()
        except Exception:  # already closed by the broker's refusal
            log.debug("closing the probe channel", exc_info=True)


def move(channel: Any, source: str, target: str) -> int:
    """Move every message of ``source`` to ``target``, in order; return how many."""
    moved = 0
    while (message := channel.basic_get(source, no_ack=False)) is not None:
        copy = amqp.Message(message.body, **message.properties)
        channel.basic_publish_confirm(copy, exchange="", routing_key=target)
        channel.basic_ack(message.delivery_tag)
        moved += 1
    return moved


def migrate_queue(connection: Connection, queue: Queue) -> int:
    """Re-declare one queue with its new arguments; return the messages carried over."""
    channel = connection.channel()
    _, before, consumers = channel.queue_declare(queue.name, passive=True)
    if consumers:
        raise QueueInUse(
            f"{queue.name} has {consumers} consumer(s): stop its workers, then migrate"
        )
    temp = f"{queue.name}.migrating"
    channel.queue_declare(temp, durable=True, auto_delete=False)
    exchange, key = queue.exchange.name, queue.routing_key
    moved = move(channel, queue.name, temp)
    channel.queue_bind(temp, exchange, key)  # from here new messages reach the temporary queue
    for _ in range(10):  # the old binding may still route a message in before the delete
        moved += move(channel, queue.name, temp)
        try:
            channel.queue_delete(queue.name, if_empty=True)
            break
        except amqp.exceptions.PreconditionFailed:  # not empty: the channel is closed
            channel = connection.channel()
    else:
        raise QueueInUse(f"{queue.name} keeps filling up: stop its producers, then migrate")
    queue(channel).declare()  # the new arguments and binding
    channel.queue_unbind(temp, exchange, key)
    back = move(channel, temp, queue.name)
    channel.queue_delete(temp, if_empty=True)
    channel.close()
    log.info("migrated %s: %d queued, %d moved and back", queue.name, before, back)
    if back < moved:  # cannot happen without a consumer on the temporary queue
        log.warning("%s: %d moved out but only %d back", queue.name, moved, back)
    return back


def migrate(
    connection: Connection, queues: Iterable[Queue] = routing.ALL_TASK_QUEUES
) -> dict[str, int | None]:
    """Migrate each task queue that needs it: queue name → messages carried over (None: the
    queue was fine as it was). Then declares the whole topology."""
    done: dict[str, int | None] = {}
    for queue in queues:
        needed = needs_migration(connection, queue)
        done[queue.name] = migrate_queue(connection, queue) if needed else None
    routing.declare_topology(connection)
    return done
