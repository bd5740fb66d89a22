"""The one module that builds the Celery app (Celery's ``proj/celery.py`` pattern).

``celery -A mediaapp worker -Q video_queue`` finds it as ``mediaapp.app``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from celery import Celery, signals
from celery.app import amqp
from kombu.common import maybe_declare

from mediaapp import defaults
from mediaapp.errors import ConfigurationError
from mediaapp.jobs import capabilities, events, outage, routing, step, tenants
from mediaapp.jobs.logs import connect_json_logging
from mediaapp.settings import Settings, get_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from our typed settings (one place, no module-level globals)."""
    hard_limit = settings.ffmpeg_timeout_s + defaults.TASK_TIME_LIMIT_MARGIN_S
    soft_limit = settings.ffmpeg_timeout_s + defaults.TASK_TIME_LIMIT_MARGIN_S / 2
    if hard_limit >= routing.CONSUMER_TIMEOUT_S:
        raise ConfigurationError(
            f"task time limit {hard_limit:.0f} s must stay under the broker consumer timeout "
            f"{routing.CONSUMER_TIMEOUT_S} s: lower MEDIAAPP_FFMPEG_TIMEOUT_S"
        )
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: pickle from the network would be remote code execution.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # Topology and routes come from mediaapp.routing, the only place they are declared.
        "task_queues": routing.TASK_QUEUES,
        "task_routes": routing.TASK_ROUTES,
        "task_default_queue": routing.DEFAULT_QUEUE.name,
        "task_default_exchange": routing.MEDIA_EXCHANGE.name,
        "task_default_exchange_type": routing.MEDIA_EXCHANGE.type,
        "task_default_routing_key": "media.default",
        "task_create_missing_queues": False,
        "task_default_delivery_mode": "persistent",
        # Reliability: ack after the work is done (a crash means redelivery, not loss), one
        # message at a time per process, and a failed task's message is rejected instead of
        # acked, so the task queue dead-letters it (reason and routing key in x-death).
        "task_acks_late": True,
        "task_acks_on_failure_or_timeout": False,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Priorities (0..9, 9 most urgent): the task queues are RabbitMQ priority queues; a
        # job's later steps (chain, chord, retry) keep the priority of the step that sent them.
        # With prefetch 1 and acks_late a busy worker holds no queued message, so an urgent
        # job overtakes everything still queued.
        "task_queue_max_priority": defaults.MAX_PRIORITY,
        "task_default_priority": defaults.DEFAULT_PRIORITY,
        "task_inherit_parent_priority": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Soft limit first: it raises inside the task, whose ffmpeg call kills its process
        # group; the hard limit is the backstop. Both stay under the broker's consumer timeout.
        "task_soft_time_limit": soft_limit,
        "task_time_limit": hard_limit,
        "task_track_started": True,
        "result_extended": True,
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        # Our consumer turns outside-producer events (video.upload) into jobs instead of
        # discarding them as "unknown message".
        "worker_consumer": "mediaapp.jobs.uploads:UploadConsumer",
        # Task events feed Flower (sent events show queued tasks too). The embedded broker has
        # nobody to read them, so they stay off there.
        "worker_send_task_events": settings.task_events and not settings.embedded,
        "task_send_sent_event": settings.task_events and not settings.embedded,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts_level": "INFO",
    }
    if settings.result_backend.startswith(("redis://", "rediss://")):
        config.update(outage.backend_config(settings))
    if settings.embedded:
        folder = settings.broker_folder
        for sub in ("messages", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "results").mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    else:
        config["broker_transport_options"] = {"confirm_publish": True}
    return config


class AMQP(amqp.AMQP):
    """Celery's task messages, with two costs removed: Flower's ``task-sent`` for short tasks,
    and declaring the topology on every publish."""

    @cached_property
    def create_task_message(self) -> Callable[..., Any]:
        make = super().create_task_message

        def create(task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
            message = make(task_id, name, *args, **kwargs)
            if message.sent_event and name in routing.SHORT_TASKS:
                return message._replace(sent_event=None)
            return message

        return create

    @cached_property
    def send_task_message(self) -> Callable[..., Any]:
        """Declare a route's ``declare`` list once per channel, not on every publish.

        Kombu binds a copy of each entity before it looks in its cache of declared ones: six
        queues a publish were a third of a client's CPU per ``send_task``. A new channel
        (a reconnect) declares them again.
        """
        send = super().send_task_message

        def publish(producer: Any, name: str, message: Any, *args: Any, **kwargs: Any) -> Any:
            declare = kwargs.get("declare")
            if declare:
                channel = producer.channel
                done = channel.__dict__.setdefault("_mediaapp_declared", set())
                key = tuple(entity.name for entity in declare)
                if key not in done:
                    for entity in declare:
                        maybe_declare(entity, channel, retry=True)
                    done.add(key)
                kwargs["declare"] = []  # not None: Celery would declare the queue again
            return send(producer, name, message, *args, **kwargs)

        return publish


def create_app(settings: Settings | None = None) -> Celery:
    """Build a configured app; tests call this with their own settings."""
    settings = settings or get_settings()
    app = Celery("mediaapp", include=["tasks.video", "tasks.media"], amqp=AMQP)
    app.conf.update(celery_config(settings))

    events.connect_signals(lifecycle=settings.lifecycle_events)
    capabilities.connect_signals()
    tenants.connect_signals()
    step.connect_signals()
    signals.celeryd_init.connect(outage.on_worker_init, weak=False)
    if settings.log_format == "json":
        connect_json_logging()
    return app


app = create_app()
