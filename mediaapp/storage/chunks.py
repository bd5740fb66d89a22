"""The chunk cache in an object store: shared by every worker on every host.

Layout under ``MEDIAAPP_CHUNK_CACHE_URL`` (the same as the local cache folder's, so one
cleaner serves both)::

    <key[:2]>/<key>.<rendition>.mp4   an encoded chunk, by content key (see chunking.cache_key)
    src/<sha256>.mkv                  a source chunk, by its SHA-256 (split on one host,
                                      encoded on another)
    jobs/<job_id>/audio.m4a           a chunked job's audio track until its assemble step
    trials/<key[:2]>/<key>.json       a per-title trial's result, by content key (see
                                      pertitle.trial_key): a resubmission on any host is free

Every object is put whole (S3 has no partial objects; a killed multipart upload is aborted by
:func:`gc`), so the cache needs no temporary names. When the cache is a local folder (no
``MEDIAAPP_CHUNK_CACHE_URL``), every function here does nothing: the folder is shared as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from mediaapp.errors import InputNotFound, StorageCorrupt
from mediaapp.settings import Settings
from mediaapp.storage import open_store
from mediaapp.storage.base import Store, file_sha256
from mediaapp.storage.urls import is_url

log = logging.getLogger(__name__)


def remote(settings: Settings) -> bool:
    """True when the chunk cache is an object store."""
    return is_url(settings.chunk_cache_url)


def _store(settings: Settings) -> Store:
    return open_store(settings.chunk_cache_url, settings)


def encoded_key(key: str, rendition: str) -> str:
    """Where an encoded chunk lives in the cache (the local cache's layout)."""
    return f"{key[:2]}/{key}.{rendition}.mp4"


def put_sources(work: Path, chunks: list[dict[str, object]], settings: Settings) -> None:
    """Upload a job's source chunks (after the split) for workers on other hosts."""
    if not remote(settings):
        return
    store = _store(settings)
    for c in chunks:
        key, path = f"src/{c['sha256']}.mkv", work / str(c["name"])
        held = store.stat(key)
        if held is None or held.size != path.stat().st_size:
            store.publish(path, key, sha256=str(c["sha256"]))


def fetch_source(work: Path, name: str, sha256: str, settings: Settings) -> None:
    """Make sure source chunk ``name`` is in this host's work dir (fetched by content)."""
    local = work / name
    if not remote(settings) or (local.is_file() and file_sha256(local) == sha256):
        return
    _store(settings).stage(f"src/{sha256}.mkv", local, max_bytes=settings.max_input_bytes)
    if file_sha256(local) != sha256:
        local.unlink(missing_ok=True)
        raise StorageCorrupt(f"source chunk {name}: SHA-256 differs from the split's")


def fetch_encoded(key: str, targets: dict[str, Path], settings: Settings) -> bool:
    """Fetch every rendition of encoded chunk ``key`` into ``targets`` if the cache holds
    all of them; False (nothing fetched) otherwise."""
    if not remote(settings):
        return False
    store = _store(settings)
    held = {r: store.stat(encoded_key(key, r)) for r in targets}
    if any(obj is None for obj in held.values()):
        return False
    for r, path in targets.items():
        if not path.is_file():
            store.stage(encoded_key(key, r), path, max_bytes=settings.max_input_bytes)
    return True


def put_encoded(key: str, files: dict[str, Path], settings: Settings) -> None:
    """Put a freshly encoded chunk's renditions into the shared cache."""
    if remote(settings):
        store = _store(settings)
        for r, path in files.items():
            store.publish(path, encoded_key(key, r))


def fetch_trial(key: str, path: Path, settings: Settings) -> bool:
    """A per-title trial's result into ``path`` (the local cache) if the shared cache holds
    it; False otherwise (the trial runs)."""
    if not remote(settings):
        return False
    try:
        _store(settings).stage(f"trials/{key[:2]}/{key}.json", path, max_bytes=1 << 20)
    except InputNotFound:
        return False
    return True


def put_trial(key: str, path: Path, settings: Settings) -> None:
    """A fresh trial's result into the shared cache, for the workers of every host."""
    if remote(settings):
        _store(settings).publish(path, f"trials/{key[:2]}/{key}.json")


def put_audio(job_id: str, path: Path, settings: Settings) -> None:
    """A chunked job's audio track, for its assemble step on whichever host."""
    if remote(settings):
        _store(settings).publish(path, f"jobs/{job_id}/audio.m4a")


def fetch_audio(job_id: str, dest: Path, settings: Settings) -> None:
    """The job's audio track into ``dest``, unless this host has it already."""
    if remote(settings) and not dest.is_file():
        _store(settings).stage(f"jobs/{job_id}/audio.m4a", dest, max_bytes=settings.max_input_bytes)


def put_outputs(job_id: str, out_dir: Path, settings: Settings) -> None:
    """What a side step wrote into the job's output folder (a chunked mp4's poster, sprite
    and WebVTT), for the assemble step on whichever host: ``jobs/<job_id>/out/``."""
    if remote(settings) and out_dir.is_dir():
        store = _store(settings)
        for path in sorted(out_dir.rglob("*")):
            rel = path.relative_to(out_dir)
            if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                store.publish(path, f"jobs/{job_id}/out/{rel}")


def fetch_outputs(job_id: str, out_dir: Path, settings: Settings) -> None:
    """Bring what :func:`put_outputs` stored into this host's output folder."""
    if remote(settings):
        store = _store(settings)
        base = f"jobs/{job_id}/out/"
        for obj in store.list(base):
            dest = out_dir / obj.key[len(base) :]
            if not dest.is_file():
                store.stage(obj.key, dest, max_bytes=settings.max_input_bytes)


def finish_job(job_id: str, settings: Settings) -> None:
    """Drop a finished job's own objects (its audio); the chunks stay, as a cache."""
    if remote(settings):
        store = _store(settings)
        store.delete([o.key for o in store.list(f"jobs/{job_id}/")])


@dataclass
class Pruned:
    """What :func:`gc` removed, and what the cache holds after."""

    removed: int = 0
    removed_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    aborted_uploads: int = 0


def gc(settings: Settings, cache: Path, *, now: float | None = None) -> Pruned:
    """Prune the chunk cache (``cache``: the local folder, used when no URL is set): entries
    older than ``chunk_cache_max_age_s``, then the oldest until the total is at most
    ``chunk_cache_max_bytes``; leftovers (a job's audio, partial files) older than the ffmpeg
    timeout, twice over (no live step can be that old); stale multipart uploads."""
    now = time.time() if now is None else now
    store = _store(settings) if remote(settings) else open_store(cache, settings)
    leftover_age = 2 * settings.ffmpeg_timeout_s
    result, doomed = Pruned(), []
    entries = sorted(store.list(), key=lambda o: o.mtime, reverse=True)  # newest first
    for obj in entries:
        name = obj.key.rsplit("/", 1)[-1]
        leftover = obj.key.startswith("jobs/") or name.startswith(".")
        too_old = now - obj.mtime > (leftover_age if leftover else settings.chunk_cache_max_age_s)
        too_big = result.kept_bytes + obj.size > settings.chunk_cache_max_bytes
        if too_old or (too_big and not leftover):
            doomed.append(obj.key)
            result.removed += 1
            result.removed_bytes += obj.size
        else:
            result.kept += 1
            result.kept_bytes += obj.size
    store.delete(doomed)
    abort = getattr(store, "abort_uploads", None)
    if abort is not None:
        result.aborted_uploads = abort(leftover_age)
    log.info("chunk cache: removed %d (%d bytes), kept %d", result.removed,
             result.removed_bytes, result.kept)  # fmt: skip
    return result
