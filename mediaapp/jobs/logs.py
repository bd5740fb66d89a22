"""Structured logs: ``MEDIAAPP_LOG_FORMAT=json`` makes workers and the audit consumer write one
JSON object per line, each carrying the job id and task id of the task that logged it, so a
search for a job id finds every line about it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from celery import signals
from celery._state import get_current_task


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the current Celery task's ids when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize ``record`` (and the running task's context) as one JSON line."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        task = get_current_task()
        request = getattr(task, "request", None)
        if request is not None and getattr(request, "id", None):
            doc["task_id"] = request.id
            doc["task"] = task.name if task is not None else None
            doc["job_id"] = (getattr(request, "kwargs", None) or {}).get("job_id")
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def use_json(logger: logging.Logger | None = None) -> None:
    """Give every handler of ``logger`` (default: root) the JSON formatter."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())


def _after_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    use_json(logger)


def connect_json_logging() -> None:
    """Switch Celery's worker and task loggers to JSON once Celery has set them up."""
    signals.after_setup_logger.connect(_after_setup, weak=False)
    signals.after_setup_task_logger.connect(_after_setup, weak=False)
