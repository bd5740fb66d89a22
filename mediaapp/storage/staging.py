"""Inputs named by URL, staged into the worker's scratch folder before ffmpeg sees them.

The staged copy's place depends only on the URL (``scratch/inputs/<hash>/<name>``), so every
step of a job on one host stages it once; a sidecar records the object's ETag and size, and
a step whose object no longer matches stages it again (or fails, when the job's probe saw
another size). Checks before a byte is fetched: the bucket allow-list, the key's confinement,
the size limit from the object's metadata; after: size and SHA-256 (when the store knows it).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from mediaapp.errors import InvalidInput
from mediaapp.settings import Settings
from mediaapp.storage.base import StoredObject
from mediaapp.storage.urls import ObjectUrl, parse

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def staged_dir(url: str, settings: Settings) -> Path:
    """The scratch folder of one input URL (the same on every step of a host)."""
    return settings.scratch_dir / "inputs" / hashlib.sha256(url.encode()).hexdigest()[:32]


def _local_name(obj: ObjectUrl) -> str:
    name = _UNSAFE.sub("_", obj.name).strip("._-")[:120]
    return name or "input"


def stage_input(url: str, settings: Settings, *, expect_size: int | None = None) -> Path:
    """The local copy of input ``url``, fetched unless this host already holds that object."""
    from mediaapp.storage.s3 import S3Store

    obj = parse(url, settings.allowed_buckets)
    folder = staged_dir(url, settings)
    local = folder / _local_name(obj)
    sidecar = folder / ".object.json"
    store = S3Store(settings, ObjectUrl(obj.bucket, ""))
    current = store.stat(obj.key)
    if current is None:
        from mediaapp.errors import InputNotFound

        raise InputNotFound(f"{url!r}: no such object")
    if expect_size is not None and current.size != expect_size:
        raise InvalidInput(f"{url!r}: changed while the job ran ({current.size} bytes, "
                           f"probed {expect_size})")  # fmt: skip
    held = _read_sidecar(sidecar)
    if local.is_file() and held == (current.etag, current.size):
        return local
    store.stage(obj.key, local, max_bytes=settings.max_input_bytes, expect=current)
    sidecar.write_text(json.dumps({"etag": current.etag, "size": current.size, "url": url}))
    return local


def source_record(url: str, settings: Settings) -> dict[str, Any]:
    """What a manifest says of a URL input: the URL and the ETag of the object staged."""
    held = _read_sidecar(staged_dir(url, settings) / ".object.json")
    if held is None:  # this host never staged it (the assemble step reads chunks only)
        from mediaapp.storage.s3 import S3Store

        obj = parse(url, settings.allowed_buckets)
        info = S3Store(settings, ObjectUrl(obj.bucket, "")).stat(obj.key)
        held = (info.etag, info.size) if info else None
    return {"source_url": url, "source_etag": held[0] if held else None}


def discard_staged(url: str, settings: Settings) -> None:
    """Remove this host's staged copy of ``url`` (the job is done with it)."""
    shutil.rmtree(staged_dir(url, settings), ignore_errors=True)


def _read_sidecar(path: Path) -> tuple[str | None, int] | None:
    try:
        data = json.loads(path.read_text())
        return data.get("etag"), int(data["size"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def describe(obj: StoredObject) -> dict[str, Any]:
    """A manifest's record of one stored object."""
    return {"url": obj.url, "size": obj.size, "sha256": obj.sha256, "etag": obj.etag}
