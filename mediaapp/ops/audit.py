"""The audit mirror: every message that crosses ``media_exchange``, in an append-only log.

:class:`AuditConsumer` is a Kombu ``ConsumerMixin`` on ``audit_queue`` (bound with ``#``). It
never executes anything: a task message is recorded, not run. Lines are appended to a JSON
Lines file and a message is acked only after its line is flushed and fsynced; lines are
written in batches (one fsync per batch, the batch's messages acked together after it),
which is what makes durable auditing fast.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import signal
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kombu import Connection, Consumer
from kombu.message import Message
from kombu.mixins import ConsumerMixin

from mediaapp import defaults
from mediaapp.jobs import routing
from mediaapp.jobs.events import BUNDLE, unbundle
from mediaapp.limits import bounded

log = logging.getLogger(__name__)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def message_record(body: Any, message: Message) -> dict[str, Any]:
    """The audit line of one decoded message: task messages and events alike."""
    headers = message.headers or {}
    props = message.properties or {}
    info = message.delivery_info or {}
    record: dict[str, Any] = {
        "ts": _iso(time.time()),
        "exchange": info.get("exchange"),
        "routing_key": info.get("routing_key"),
        "redelivered": bool(info.get("redelivered")),
        "message_id": props.get("message_id"),
        "content_type": message.content_type,
    }
    if "task" in headers:  # Celery protocol 2 task message
        kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 else {}
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        record.update(
            kind="task",
            name=headers.get("task"),
            task_id=headers.get("id"),
            job_id=kwargs.get("job_id"),
            retries=headers.get("retries", 0),
            kwargs=kwargs,
        )
    else:
        doc = body if isinstance(body, dict) else {"body": body}
        record.update(
            kind="event",
            name=doc.get("event") or info.get("routing_key"),
            task_id=doc.get("task_id"),
            job_id=doc.get("job_id"),
            body=doc,
        )
    return record


def message_records(body: Any, message: Message) -> list[dict[str, Any]]:
    """The audit lines of one message: its own, or one per event of a bundle (ids ``<id>.<n>``,
    so a redelivered bundle's lines are flagged duplicate like any other copy)."""
    record = message_record(body, message)
    if record["kind"] != "event" or record["name"] != BUNDLE:
        return [record]
    mid, parts = record["message_id"], unbundle(record["body"])
    return [{**record, "message_id": f"{mid}.{n}" if mid else None, "body": part,
             "name": part.get("event") or record["routing_key"], "task_id": part.get("task_id"),
             "job_id": part.get("job_id")} for n, part in enumerate(parts)]  # fmt: skip


def rejected_record(message: Message, exc: BaseException) -> dict[str, Any]:
    """The audit line of a message we refuse to decode (pickle, malformed JSON, ...)."""
    info = message.delivery_info or {}
    raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return {
        "ts": _iso(time.time()),
        "exchange": info.get("exchange"),
        "routing_key": info.get("routing_key"),
        "redelivered": bool(info.get("redelivered")),
        "message_id": (message.properties or {}).get("message_id"),
        "content_type": message.content_type,
        "kind": "rejected",
        "name": "message.rejected",
        "task_id": (message.headers or {}).get("id"),
        "job_id": None,
        "error": {"type": type(exc).__name__, "message": str(exc)},
        # Kept as base64 and capped: evidence, never something to decode and run.
        "body_b64": base64.b64encode(raw[:4096]).decode(),
        "body_size": len(raw),
    }


class RecentIds:
    """The last ``size`` message ids logged, oldest forgotten first (a set that stays small)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, mid: str) -> None:
        if mid in self._ids:
            return
        self._ids[mid] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, mid: object) -> bool:
        return mid in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class AuditLog:
    """An append-only JSON Lines file, written in fsynced batches.

    A batch is on disk whole or not at all: short writes are continued, a failed write
    (ENOSPC, EIO) is cut back to the last whole line and raised, and message ids count as
    logged only once their line is fsynced. A torn last line left by a crash is cut off at
    start (its message was never acked, so the broker delivers it again).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Append-only and not world-writable: only this writer adds to the record.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.repaired = repair_torn_tail(self.path)
        self.seen_ids = RecentIds(defaults.AUDIT_DEDUP_WINDOW)
        for record in read_log(self.path):
            if record.get("message_id"):
                self.seen_ids.add(record["message_id"])

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write and fsync ``records``; return only when they are on disk (or raise OSError,
        with the file as it was before)."""
        batch_ids: dict[str, None] = {}  # in log order: the window keeps the newest
        lines = []
        for record in records:
            mid = record.get("message_id")
            record.pop("duplicate", None)  # computed afresh on every attempt
            if mid and (mid in self.seen_ids or mid in batch_ids):
                record["duplicate"] = True  # a redelivered copy of a message already logged
            elif mid:
                batch_ids[mid] = None
            lines.append(json.dumps(bounded(record), separators=(",", ":"), default=str))
        data = ("\n".join(lines) + "\n").encode()
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:  # a short write (disk nearly full) is continued, never dropped
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):  # no torn line stays behind
                os.ftruncate(self._fd, start)
            raise
        for mid in batch_ids:
            self.seen_ids.add(mid)

    def close(self) -> None:
        """Close the file (everything written is already synced)."""
        os.close(self._fd)


def repair_torn_tail(path: Path) -> int:
    """Cut a last line without its newline (a crash mid-write); return the bytes removed."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:  # back to the last newline, a block at a time
            step = min(65536, pos)
            fh.seek(pos - step)
            block = fh.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                pos = pos - step + cut + 1
                break
            pos -= step
        fh.truncate(pos)
        os.fsync(fh.fileno())
    log.warning("audit log %s: removed a torn last line (%d bytes); its message comes again",
                path, size - pos)  # fmt: skip
    return size - pos


class AuditConsumer(ConsumerMixin):
    """Consumes ``audit_queue`` into an :class:`AuditLog`; acks only what is on disk."""

    def __init__(
        self,
        connection: Connection,
        log_path: Path,
        *,
        batch_lines: int = defaults.AUDIT_BATCH_LINES,
        flush_s: float = defaults.AUDIT_FLUSH_S,
        prefetch: int = defaults.AUDIT_PREFETCH,
    ) -> None:
        self.connection = connection
        self.audit_log = AuditLog(log_path)
        self.batch_lines = batch_lines
        self.flush_s = flush_s
        self.prefetch = prefetch
        self._pending: list[tuple[dict[str, Any], Message]] = []
        #: Called with each record once it is on disk (metrics).
        self.observers: list[Any] = []
        self._oldest = 0.0
        self.written = 0
        self.ready = False
        #: Failed writes (disk full, I/O error) and when the next attempt is due.
        self.write_errors = 0
        self._retry_at = 0.0
        self._backoff = defaults.AUDIT_RETRY_S

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Consumer]:
        """One JSON-only consumer on the audit queue, with a bounded prefetch."""
        consumer = Consumer(
            queues=[routing.AUDIT_QUEUE], accept=["json"], callbacks=[self.on_message]
        )
        consumer.qos(prefetch_count=self.prefetch)
        return [consumer]

    def on_consume_ready(
        self, connection: Connection, channel: Any, consumers: Any, **kw: Any
    ) -> None:
        """Declare the whole topology: the ``#`` binding must exist before anyone publishes."""
        routing.declare_topology(connection)
        self.ready = True
        log.info("audit consumer ready, writing %s", self.audit_log.path)

    def on_message(self, body: Any, message: Message) -> None:
        """Queue the record; the message is acked after its batch is on disk."""
        self._add(message_records(body, message), message)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """Pickle, malformed JSON, unknown content types: recorded as rejected, never decoded."""
        log.warning("audit: refused message (%s) on %s", exc, message.delivery_info)
        self._add([rejected_record(message, exc)], message)

    def _add(self, records: list[dict[str, Any]], message: Message) -> None:
        # A message's lines join one batch whole: it is acked only once all of them are written.
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.extend((record, message) for record in records)
        if len(self._pending) >= self.batch_lines and time.monotonic() >= self._retry_at:
            self.flush()

    def on_iteration(self) -> None:
        """Flush a partial batch once its oldest line has waited ``flush_s`` (or, after a
        failed write, once its back-off is over)."""
        now = time.monotonic()
        if self._pending and now >= self._retry_at and now - self._oldest >= self.flush_s:
            self.flush()

    def on_consume_end(self, connection: Connection, channel: Any) -> None:
        """Write what is pending before the consumer goes away (acks may then fail: fine)."""
        self.flush()

    def flush(self) -> None:
        """Write the batch, fsync, then ack its messages (one multiple-ack where supported)."""
        if not self._pending:
            return
        batch = self._pending
        try:
            self.audit_log.append([record for record, _ in batch])
        except OSError as exc:
            self._write_failed(exc)
            return  # nothing acked: the batch stays pending (the broker holds the rest)
        self._pending = []
        if self.write_errors and self._backoff > defaults.AUDIT_RETRY_S:
            log.warning("audit log %s writable again: %d lines written", self.audit_log.path,
                        len(batch))  # fmt: skip
        self._backoff = defaults.AUDIT_RETRY_S
        self.written += len(batch)
        for observe in self.observers:
            for record, _ in batch:
                observe(record)
        if self.connection.transport.driver_type == "amqp":
            batch[-1][1].ack(multiple=True)
        else:
            for message in {id(m): m for _, m in batch}.values():  # a bundle's lines share one
                message.ack()

    def _write_failed(self, exc: OSError) -> None:
        """Disk full or I/O error: keep the batch, try again after a back-off. The broker
        connection stays up (no reconnect storm); the queue's depth is the audit lag."""
        self.write_errors += 1
        what = "disk full (ENOSPC)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else str(exc)
        log.error(
            "audit log %s: %s; %d lines pending, not acked; retrying in %.1f s",
            self.audit_log.path, what, len(self._pending), self._backoff,
        )  # fmt: skip
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, defaults.AUDIT_RETRY_MAX_S)

    def run_forever(self) -> None:
        """Consume until :attr:`should_stop`; wakes every ``flush_s`` to flush partial batches."""
        try:
            self.run(safety_interval=self.flush_s)
        finally:
            self.audit_log.close()


def serve(
    log_path: Path | None = None,
    *,
    batch_lines: int | None = None,
    install_signal_handlers: bool = True,
    metrics_port: int | None = None,
) -> AuditConsumer:
    """Run the audit consumer on the app's broker until SIGINT/SIGTERM (or ``should_stop``).

    This is what ``mediaapp audit`` runs; call it from Python to embed the consumer.
    """
    from mediaapp.jobs.app import app
    from mediaapp.settings import get_settings

    settings = get_settings()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if settings.log_format == "json":
            from mediaapp.jobs.logs import use_json

            use_json()
    consumer = AuditConsumer(
        app.connection_for_read(),
        log_path or settings.audit_log,
        batch_lines=batch_lines or defaults.AUDIT_BATCH_LINES,
    )
    if metrics_port is not None:
        from mediaapp.ops.metrics import PipelineMetrics

        metrics = PipelineMetrics()
        metrics.serve(metrics_port, app.connection_for_read)
        consumer.observers.append(metrics.observe)
        log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
    if install_signal_handlers:

        def stop(signum: int, frame: Any) -> None:
            consumer.should_stop = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    consumer.run_forever()
    return consumer


def read_log(path: Path) -> Iterator[dict[str, Any]]:
    """Every record of an audit log (a torn last line from a crash is skipped)."""
    if not Path(path).exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def job_trail(path: Path, job_id: str) -> list[dict[str, Any]]:
    """The audit records of one job, in log order."""
    return [r for r in read_log(path) if r.get("job_id") == job_id or r.get("task_id") == job_id]
