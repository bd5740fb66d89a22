"""Exchanges, queues, bindings and task routes, declared as data here and nowhere else.

Picture (also in the README)::

    producers ──► media_exchange (topic, durable)
        ├─ video.#             ─► video_queue      ─► celery -A mediaapp worker -Q video_queue
        ├─ encode.hevc.#       ─► video_hevc_queue ─┐ added by each video worker
        ├─ encode.av1.#        ─► video_av1_queue  ─┘ that proved the codec
        ├─ media.#             ─► default_queue    ─► celery -A mediaapp worker -Q default_queue
        └─ #                   ─► audit_queue      ─► mediaapp audit (Kombu ConsumerMixin)
    task queues ── rejected/failed ──► media_dlx (topic) ── # ──► dead_letter_queue ─► mediaapp dlq

Routing keys of lifecycle events start with ``event.``: no task queue binds that prefix,
so an event can only ever reach the audit queue. A step that needs a codec beyond H.264 has
a key of its own prefix, ``encode.<codec>.<step>``, which ``video.#`` does not match: it
reaches that codec's queue only, never a worker that did not prove the codec. H.264 is the
baseline of every transcoding worker and stays on ``video_queue``. Task queues are priority
queues (``x-max-priority``).
"""

from __future__ import annotations

from kombu import Connection, Exchange, Queue

from mediaapp import defaults

MEDIA_EXCHANGE = Exchange("media_exchange", type="topic", durable=True, delivery_mode=2)
#: Where task queues dead-letter what they reject: failed jobs, refused messages. Messages keep
#: their original routing key and RabbitMQ adds an ``x-death`` header with the reason.
DEAD_LETTER_EXCHANGE = Exchange("media_dlx", type="topic", durable=True, delivery_mode=2)

#: Seconds RabbitMQ waits for the ack of a delivered task before closing the channel. Above
#: the hard task time limit, so a long transcode is never cut off by the broker.
CONSUMER_TIMEOUT_S = int(defaults.FFMPEG_TIMEOUT_S + defaults.TASK_TIME_LIMIT_MARGIN_S + 600)

#: Arguments of every task queue. Classic queues, on purpose: see the README ("Why classic
#: queues"). ``x-consumer-timeout`` takes effect from RabbitMQ 3.12 (3.10 ignores it, and the
#: broker-wide ``consumer_timeout`` applies there).
#: ``x-max-priority`` makes them priority queues: a queue declared before without it must be
#: migrated (``mediaapp declare --migrate``, mediaapp/ops/migrate.py), RabbitMQ refuses to
#: re-declare a queue with other arguments.
TASK_QUEUE_ARGUMENTS = {
    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
    "x-consumer-timeout": CONSUMER_TIMEOUT_S * 1000,
    "x-max-priority": defaults.MAX_PRIORITY,
}


def _task_queue(name: str, binding: str) -> Queue:
    return Queue(
        name,
        MEDIA_EXCHANGE,
        routing_key=binding,
        durable=True,
        auto_delete=False,
        queue_arguments=TASK_QUEUE_ARGUMENTS,
    )


VIDEO_QUEUE = _task_queue("video_queue", "video.#")
DEFAULT_QUEUE = _task_queue("default_queue", "media.#")
#: Work that needs a codec beyond H.264, by codec: a video worker consumes the queue of each
#: codec it proved at start-up (mediaapp/jobs/capabilities.py), and only those.
CAPABILITY_QUEUES = {
    "hevc": _task_queue("video_hevc_queue", "encode.hevc.#"),
    "av1": _task_queue("video_av1_queue", "encode.av1.#"),
}
AUDIT_QUEUE = Queue("audit_queue", MEDIA_EXCHANGE, routing_key="#", durable=True, auto_delete=False)
DEAD_LETTER_QUEUE = Queue(
    "dead_letter_queue", DEAD_LETTER_EXCHANGE, routing_key="#", durable=True, auto_delete=False
)

#: Queues Celery workers consume. ``audit_queue`` is deliberately absent: a bare
#: ``celery -A mediaapp worker`` must never execute the audit copies.
TASK_QUEUES = (VIDEO_QUEUE, DEFAULT_QUEUE)

#: Everything a publisher declares before its first message. Kombu's virtual transports
#: (the embedded broker) route a topic message only to bindings the publishing process
#: knows, and drop the copy otherwise; on RabbitMQ this makes a fresh broker safe too.
TOPOLOGY = (VIDEO_QUEUE, DEFAULT_QUEUE, *CAPABILITY_QUEUES.values(), AUDIT_QUEUE, DEAD_LETTER_QUEUE)
#: The queues that carry tasks (priority queues, dead-lettering): what a migration re-declares.
ALL_TASK_QUEUES = (VIDEO_QUEUE, DEFAULT_QUEUE, *CAPABILITY_QUEUES.values())

#: Prefix of lifecycle-event routing keys (``event.task.started``, ``event.job.finished``, ...).
EVENT_PREFIX = "event."

#: Routing keys of events that outside producers publish (see README, "Event contract").
UPLOAD_EVENT = "video.upload"

#: One explicit route per task, each with its own routing key. A route without a key would
#: publish the queue's binding pattern itself (``video.#``) as the key.
TASK_ROUTING_KEYS = {
    "video.probe": ("video_queue", "video.probe"),
    "video.transcode": ("video_queue", "video.transcode"),
    "video.thumbnail": ("video_queue", "video.thumbnail"),
    "video.rung": ("video_queue", "video.rung"),
    "video.package": ("video_queue", "video.package"),
    # Multi-codec ladders: a codec's variants (HEVC, AV1: encode.<codec>.variants), packaging.
    "video.variants": ("video_queue", "video.variants"),
    "video.package_variants": ("video_queue", "video.package_variants"),
    # Per-title ladders: trial encodes of one sample, then the search's next round or ladder.
    "video.trial": ("video_queue", "video.trial"),
    "video.search": ("video_queue", "video.search"),
    "video.fail_job": ("video_queue", "video.fail_job"),
    # Chunked jobs: one task per chunk, the audio track once, previews, then the join.
    "video.chunk": ("video_queue", "video.chunk"),
    "video.audio": ("video_queue", "video.audio"),
    "video.previews": ("video_queue", "video.previews"),
    "video.assemble": ("video_queue", "video.assemble"),
    # Celery's own chord poller (result backends without native chords, e.g. files).
    "celery.chord_unlock": ("video_queue", "video.chord_unlock"),
    "media.ping": ("default_queue", "media.ping"),
}

#: Tasks too short to be worth Flower's per-task events (a health check, the dispatch
#: benchmark's unit): no ``task-sent`` from the client, no ``task-received/-started/-succeeded``
#: from the worker. The audit log still has each message and its lifecycle (batched:
#: mediaapp.jobs.eventbatch); Flower shows the worker, not each ping.
SHORT_TASKS = frozenset({"media.ping"})

TASK_ROUTES = {
    name: {
        "queue": queue,
        "exchange": MEDIA_EXCHANGE.name,
        "routing_key": key,
        # Celery passes this to Producer.publish(declare=...): every publish knows the topology.
        "declare": list(TOPOLOGY),
    }
    for name, (queue, key) in TASK_ROUTING_KEYS.items()
}


def encode_key(codec: str, step: str) -> str:
    """Routing key of a step that needs ``codec``'s encoder, e.g. ``encode.hevc.rung``."""
    if codec not in CAPABILITY_QUEUES:
        raise ValueError(f"no capability queue for {codec!r} (H.264 work uses video_queue)")
    return f"encode.{codec}.{step}"


def event_key(name: str) -> str:
    """Routing key of a lifecycle event, e.g. ``task.started`` → ``event.task.started``."""
    return EVENT_PREFIX + name


def declare_topology(connection: Connection) -> None:
    """Declare the exchange, every queue and every binding (idempotent)."""
    channel = connection.default_channel
    for queue in TOPOLOGY:
        queue(channel).declare()
