"""The stock way a Celery user audits tasks, for the dispatch benchmark: task events (``-E``,
sent events) read by a ``celery.events`` Receiver and written as fsynced JSON lines by the same
writer as our audit log (batches of 100, or after 0.2 s), one line per task event.

    python -m bench.stock_audit LOG      (until SIGTERM; touches LOG.ready once consuming)

Celery's events are transient, consumed without acks from an auto-delete queue: what the
receiver has not written when it dies is gone. That is the stock semantics, not ours.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

from celery.events.receiver import EventReceiver

from mediaapp.ops.audit import AuditLog, _iso


class StockAudit(EventReceiver):
    """An EventReceiver that batches task events into an :class:`AuditLog`."""

    def __init__(self, channel: Any, app: Any, log: AuditLog, ready: Path) -> None:
        super().__init__(channel, handlers={"*": self.on_event}, app=app)
        self.log, self.ready = log, ready
        self.pending: list[dict[str, Any]] = []
        self.oldest = 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if not kind.startswith("task-"):  # worker heartbeats and the like: not a task audit
            return
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append({"ts": _iso(time.time()), "exchange": "celeryev",
                             "routing_key": kind.replace("-", "."), "message_id": None,
                             "kind": "task" if kind == "task-sent" else "event", "name": kind,
                             "task_id": event.get("uuid"), "job_id": None,
                             "body": event})  # fmt: skip
        if len(self.pending) >= 100:
            self.flush()

    def on_iteration(self) -> None:
        if self.pending and time.monotonic() - self.oldest >= 0.2:
            self.flush()

    def on_consume_ready(self, *args: Any, **kwargs: Any) -> None:
        super().on_consume_ready(*args, **kwargs)
        self.ready.touch()

    def flush(self) -> None:
        if self.pending:
            self.log.append(self.pending)
            self.pending = []


def main(argv: list[str]) -> int:
    """Receive until SIGTERM, then write what is pending."""
    from bench.plain_app import app

    path = Path(argv[0])
    log = AuditLog(path)
    with app.connection_for_read() as conn:
        receiver = StockAudit(conn, app, log, path.with_suffix(".ready"))

        def stop(signum: int, frame: Any) -> None:
            receiver.should_stop = True

        signal.signal(signal.SIGTERM, stop)
        for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.2, wakeup=False):
            pass
        receiver.flush()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
