"""The one interface of every store: stage for reading, publish for writing, list, delete.

A store is rooted at a location (a folder, or an ``s3://bucket/prefix``); every method takes a
key relative to that root, confined to it (:func:`mediaapp.storage.urls.check_key`).
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Content types players expect of what jobs publish (HLS, DASH, segments).
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".vtt": "text/vtt",
    ".json": "application/json",
}


def content_type(path: Path | str) -> str:
    """The Content-Type an object named like ``path`` is served with."""
    suffix = Path(path).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(str(path))[0] or "binary/octet-stream"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredObject:
    """One object (or file) in a store, as the store describes it."""

    key: str  # relative to the store's root
    url: str
    size: int
    etag: str | None = None
    sha256: str | None = None  # hex, when the store knows it
    mtime: float = 0.0  # seconds since the epoch


class Store(Protocol):
    """What every store does; keys are relative to the store's root."""

    def url(self, key: str) -> str:
        """The URL of ``key`` (what manifests record)."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object's size, ETag, SHA-256 and time, or None when it does not exist."""
        ...

    def stage(
        self, key: str, dest: Path, *, max_bytes: int, expect: StoredObject | None = None
    ) -> StoredObject:
        """Copy ``key`` into ``dest`` (streamed, atomic): the size limit checked before a byte
        is read, the size and known SHA-256 checked after; ``expect``: it must still be it."""
        ...

    def publish(self, src: Path, key: str, *, sha256: str | None = None) -> StoredObject:
        """Store ``src`` as ``key`` (whole or not at all) and check what the store now holds."""
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object under ``prefix``."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (missing ones are not an error)."""
        ...
