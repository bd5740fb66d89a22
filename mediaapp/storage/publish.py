"""Atomic publication without rename: the outputs under the job's prefix, the manifest LAST.

An object store has no rename, so the manifest is the commit marker: a reader trusts only a
job whose ``manifest.json`` exists, and only the objects it lists (with size, ETag and
SHA-256). A job killed or cancelled before its manifest leaves no manifest; what it did
upload is removed by the next attempt (every object under the prefix that this attempt did
not publish is deleted before the manifest goes up) or by ``mediaapp gc``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mediaapp.errors import InvalidInput, MediaError
from mediaapp.settings import Settings
from mediaapp.storage import open_store
from mediaapp.storage.base import Store
from mediaapp.storage.staging import describe, discard_staged, source_record
from mediaapp.storage.urls import is_url

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: The largest manifest a reader fetches, in bytes.
MAX_MANIFEST_BYTES = 64 * 1024**2


def job_store(job_id: str, settings: Settings) -> Store:
    """The store rooted at the job's prefix under ``MEDIAAPP_OUTPUT_URL``."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise InvalidInput(f"job id {job_id!r} is not a safe name")
    base = settings.output_url.rstrip("/")
    return open_store(f"{base}/{job_id}/", settings)


def _files(out_dir: Path) -> list[Path]:
    """What a job left in its local output folder to publish: no hidden file or folder
    (work dirs, partial files), no manifest (it goes last)."""
    found = []
    for path in sorted(out_dir.rglob("*")):
        rel = path.relative_to(out_dir)
        if (
            path.is_file()
            and not any(p.startswith(".") for p in rel.parts)
            and str(rel) != MANIFEST
        ):
            found.append(path)
    return found


def publish_job(manifest: dict[str, Any], out_dir: Path, settings: Settings) -> dict[str, Any]:
    """Upload the job's outputs from ``out_dir`` (its local scratch), remove strays of earlier
    attempts, then the manifest, rewritten with every output as a URL; the local copies go."""
    job_id = manifest["job_id"]
    store = job_store(job_id, settings)
    published: dict[str, dict[str, Any]] = {}
    for path in _files(out_dir):
        rel = str(path.relative_to(out_dir))
        obj = store.publish(path, rel)  # hashed as it is read for the upload
        published[rel] = {"relpath": rel, **describe(obj)}
    strays = [o.key for o in store.list() if o.key not in published and o.key != MANIFEST]
    if strays:
        log.info("job %s: removing %d objects of an earlier attempt", job_id, len(strays))
        store.delete(strays)
    out = dict(manifest)
    outputs = []
    for entry in manifest.get("outputs", []):
        rel = _job_relpath(entry, job_id)
        url = published[rel]["url"] if rel in published else store.url(rel)
        outputs.append({**entry, "path": url, "url": url, "relpath": rel})
    out["outputs"] = outputs
    out["files"] = list(published.values())
    out["output_url"] = store.url("")
    if is_url(manifest.get("input")):
        out.update(source_record(manifest["input"], settings))
    with tempfile.TemporaryDirectory(dir=_scratch(settings)) as tmp:
        local = Path(tmp) / MANIFEST
        local.write_text(json.dumps(out, indent=2, sort_keys=True))
        store.publish(local, MANIFEST)  # the commit marker, last
    shutil.rmtree(out_dir, ignore_errors=True)
    if is_url(manifest.get("input")):
        discard_staged(manifest["input"], settings)
    return out


def _job_relpath(entry: dict[str, Any], job_id: str) -> str:
    rel = str(entry.get("relpath", ""))
    return rel.split("/", 1)[1] if rel.startswith(f"{job_id}/") else rel


def _scratch(settings: Settings) -> Path:
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    return settings.scratch_dir


def load_published(job_id: str, settings: Settings) -> dict[str, Any] | None:
    """The job's manifest if it is published and every object it lists is there, unchanged
    (same size and ETag); else None (the job is not done)."""
    store = job_store(job_id, settings)
    if store.stat(MANIFEST) is None:
        return None
    with tempfile.TemporaryDirectory(dir=_scratch(settings)) as tmp:
        local = Path(tmp) / MANIFEST
        store.stage(MANIFEST, local, max_bytes=MAX_MANIFEST_BYTES)
        try:
            manifest: dict[str, Any] = json.loads(local.read_text())
        except ValueError:
            return None
    held = {o.key: o for o in store.list()}
    for f in manifest.get("files", []):
        obj = held.get(f["relpath"])
        if obj is None or obj.size != f["size"] or (f.get("etag") and obj.etag != f["etag"]):
            return None
    return manifest


def discard_published(job_id: str, settings: Settings) -> None:
    """Remove everything of a job from the store: the manifest first (readers stop trusting
    the job at once), then every other object under its prefix."""
    store = job_store(job_id, settings)
    with contextlib.suppress(MediaError):
        store.delete([MANIFEST])
        store.delete([o.key for o in store.list()])


def annotate_local(manifest: dict[str, Any]) -> dict[str, Any]:
    """Local outputs: each entry's URL (``file://``) beside its path, and the source's."""
    for entry in manifest.get("outputs", []):
        entry.setdefault("url", Path(entry["path"]).resolve().as_uri())
    source = manifest.get("source") or {}
    if source.get("path"):
        manifest.setdefault("source_url", Path(source["path"]).as_uri())
    return manifest
