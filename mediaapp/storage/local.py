"""A folder as a store: the local default, same interface as S3."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from mediaapp.errors import InputNotFound, LimitExceeded, StorageCorrupt
from mediaapp.storage.base import StoredObject, file_sha256
from mediaapp.storage.urls import check_key


class LocalStore:
    """Objects are files under ``root``; publication is copy to a hidden name, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key) if key else self.root

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def _describe(self, key: str, path: Path) -> StoredObject:
        st = path.stat()
        etag = f"{st.st_size:x}-{st.st_mtime_ns:x}"
        return StoredObject(key, path.as_uri(), st.st_size, etag, None, st.st_mtime)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        return self._describe(key, path) if path.is_file() else None

    def stage(
        self, key: str, dest: Path, *, max_bytes: int, expect: StoredObject | None = None
    ) -> StoredObject:
        info = self.stat(key)
        if info is None:
            raise InputNotFound(f"{self.url(key)}: no such file")
        if info.size > max_bytes:
            raise LimitExceeded(f"{info.url}: {info.size} bytes, over the limit of {max_bytes}")
        _copy_atomic(self._path(key), dest)
        if dest.stat().st_size != info.size:
            raise StorageCorrupt(f"{info.url}: changed while it was copied")
        return info

    def publish(self, src: Path, key: str, *, sha256: str | None = None) -> StoredObject:
        path = self._path(key)
        if path.resolve() != Path(src).resolve():
            _copy_atomic(src, path)
        digest = file_sha256(path)
        if sha256 and digest != sha256:
            raise StorageCorrupt(f"{path}: SHA-256 differs from what was sent")
        info = self._describe(key, path)
        return StoredObject(info.key, info.url, info.size, info.etag, digest, info.mtime)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file():
                yield self._describe(str(path.relative_to(self.root)), path)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


def _copy_atomic(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
