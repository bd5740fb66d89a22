"""Where jobs read and write: a folder or an S3 bucket prefix, behind one interface.

Beside the media layer (files ↔ objects, no celery, no env): workers *stage* an input into
their scratch folder, ffmpeg reads local files only, and the outputs are *published* under
the job's prefix, the manifest last (:mod:`mediaapp.storage.publish`).
"""

from __future__ import annotations

from pathlib import Path

from mediaapp.settings import Settings
from mediaapp.storage.base import Store, StoredObject
from mediaapp.storage.local import LocalStore
from mediaapp.storage.urls import ObjectUrl, is_url, output_prefix, parse


def open_store(location: str | Path, settings: Settings) -> Store:
    """The store rooted at ``location``: ``s3://bucket/prefix`` or a folder."""
    if is_url(location):
        from mediaapp.storage.s3 import S3Store  # boto3 only where S3 is used

        return S3Store(settings, output_prefix(str(location), settings.allowed_buckets))
    return LocalStore(Path(location))


def remote_outputs(settings: Settings) -> bool:
    """True when the job outputs go to an object store, not the output_root folder."""
    return is_url(settings.output_url)


__all__ = [
    "LocalStore",
    "ObjectUrl",
    "Store",
    "StoredObject",
    "is_url",
    "open_store",
    "parse",
    "remote_outputs",
]
