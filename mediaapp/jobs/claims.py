"""Claiming an upload event's job id once, before the job is dispatched.

The same ``video.upload`` event can arrive twice at once (a producer retrying after a lost
confirm, two copies consumed by two workers). Its job id is a UUIDv5 of the event id, so
both copies name the same job; the first to claim it dispatches it, the other is a duplicate
(audited as ``upload.duplicate`` and acked). The claim is a Redis ``SET NX`` with a TTL on the
result backend's client, or an ``O_EXCL`` file on the embedded set-up (one machine).

A claim records whether its job was sent: a *redelivered* copy of an event whose claimer died
between claiming and sending finds the claim unsent and dispatches the job itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mediaapp import defaults
from mediaapp.settings import get_settings

CLAIMED, SENT = b"claimed", b"sent"


def _key(job_id: str) -> str:
    return f"mediaapp:upload-claim:{job_id}"


def _file(job_id: str) -> Path:
    return get_settings().data_dir / "claims" / job_id


def claim(backend: Any, job_id: str, *, redelivered: bool) -> bool:
    """True if this delivery may dispatch ``job_id`` (raises the backend's error when down)."""
    client = getattr(backend, "client", None)
    if client is not None and hasattr(client, "set"):
        if client.set(_key(job_id), CLAIMED, nx=True, ex=defaults.UPLOAD_CLAIM_TTL_S):
            return True
        return redelivered and client.get(_key(job_id)) != SENT
    path = _file(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        return True
    except FileExistsError:
        return redelivered and path.read_bytes() != SENT


def mark_sent(backend: Any, job_id: str) -> None:
    """The claimed job was published: later copies are duplicates, redelivered or not."""
    client = getattr(backend, "client", None)
    if client is not None and hasattr(client, "set"):
        client.set(_key(job_id), SENT, ex=defaults.UPLOAD_CLAIM_TTL_S)
        return
    _file(job_id).write_bytes(SENT)
