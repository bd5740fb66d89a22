"""An S3 bucket prefix as a store, on boto3 (any S3 server: AWS, SeaweedFS, MinIO...).

Endpoint, region and credentials come from the settings, never from a URL, and never reach a
log line, a manifest, an audit record or a command line (they are ``SecretStr``; boto3 signs
requests with them and logs neither). Downloads are streamed by boto3's transfer manager into
a hidden file renamed when complete; uploads are multipart above ``s3_part_bytes``, each part
with its SHA-256 checked by the server, and the whole file's SHA-256 stored as metadata and
read back. Errors are typed: wrong credentials or bucket → ConfigurationError, server gone or
transfer broken off → StorageUnavailable (retryable), missing object → InputNotFound.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mediaapp.errors import (
    ConfigurationError,
    EmptyInput,
    InputNotFound,
    InvalidInput,
    LimitExceeded,
    MediaError,
    StorageCorrupt,
    StorageUnavailable,
)
from mediaapp.settings import Settings
from mediaapp.storage.base import StoredObject, content_type
from mediaapp.storage.urls import ObjectUrl, check_bucket, check_key

log = logging.getLogger(__name__)

#: Error codes that mean the configuration is wrong, not the object or the moment.
_CONFIG_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "NoSuchBucket",
    "AuthorizationHeaderMalformed", "InvalidBucketName", "PermanentRedirect",
}  # fmt: skip
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_CHANGED_CODES = {"412", "PreconditionFailed"}
#: Threads one transfer uses (boto3's default).
TRANSFER_THREADS = 10


@functools.lru_cache(maxsize=8)
def _client(endpoint: str, region: str, key_id: str, secret: str) -> Any:
    import boto3  # the storage layer's one heavy import, paid only by processes that use S3
    from botocore.config import Config

    config = Config(
        region_name=region,
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        # Checksums only when asked (SHA-256 on our uploads): some servers refuse CRC trailers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    creds = {"aws_access_key_id": key_id, "aws_secret_access_key": secret} if key_id else {}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None, config=config, **creds
    )


def client(settings: Settings) -> Any:
    """The process's boto3 S3 client for these settings (one per configuration)."""
    return _client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id.get_secret_value(),
        settings.s3_secret_access_key.get_secret_value(),
    )


def transfer_config(settings: Settings) -> Any:
    """boto3's transfer settings: multipart above one part, parts of ``s3_part_bytes``."""
    from boto3.s3.transfer import TransferConfig

    part = max(5 * 1024**2, settings.s3_part_bytes)  # S3's smallest part
    return TransferConfig(
        multipart_threshold=part, multipart_chunksize=part, max_concurrency=TRANSFER_THREADS
    )


def typed(exc: BaseException, what: str) -> MediaError:
    """The error tree's verdict on a boto3/botocore exception (the message names no secret)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = f"{what}: {code} {err.get('Message', '')}".strip()
        if code in _CONFIG_CODES or status == 403:
            return ConfigurationError(f"{message} (check MEDIAAPP_S3_* settings)")
        if code in _MISSING_CODES or status == 404:
            return InputNotFound(f"{what}: no such object")
        if code in _CHANGED_CODES:
            return InvalidInput(f"{what}: changed while the job ran")
        return StorageUnavailable(message)
    if isinstance(exc, NoCredentialsError):
        return ConfigurationError(f"{what}: no S3 credentials (MEDIAAPP_S3_ACCESS_KEY_ID)")
    if isinstance(exc, BotoCoreError | OSError):
        return StorageUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    # s3transfer wraps failed parts in its own exceptions (S3UploadFailedError, RetriesExceeded).
    return StorageUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def _sha256_of(head: dict[str, Any]) -> str | None:
    """The whole object's SHA-256 (hex): our metadata, else a full-object checksum."""
    meta = head.get("Metadata") or {}
    if meta.get("sha256"):
        return str(meta["sha256"])
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") != "COMPOSITE":
        return base64.b64decode(checksum).hex()  # a single-part upload's own SHA-256
    return None


class _HashingWriter:
    """A write-only, non-seekable sink: s3transfer then writes the parts in order through it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return int(self.fh.write(data))


class _HashingReader:
    """A read-only, non-seekable source: s3transfer reads it once, in order, part by part."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.fh.read(size)
        self.digest.update(data)
        self.read_bytes += len(data)
        return data


class S3Store:
    """Objects under ``s3://bucket/prefix``."""

    def __init__(self, settings: Settings, root: ObjectUrl) -> None:
        check_bucket(root.bucket, settings.allowed_buckets)
        self.settings = settings
        self.bucket = root.bucket
        self.prefix = root.key if not root.key or root.key.endswith("/") else root.key + "/"
        self.s3 = client(settings)

    def _key(self, key: str) -> str:
        return check_key(self.prefix + check_key(key)) if key else self.prefix

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _describe(self, key: str, head: dict[str, Any]) -> StoredObject:
        modified = head.get("LastModified")
        return StoredObject(
            key=key,
            url=self.url(key),
            size=int(head.get("ContentLength", head.get("Size", 0))),
            etag=str(head.get("ETag", "")).strip('"') or None,
            sha256=_sha256_of(head),
            mtime=modified.timestamp() if modified else 0.0,
        )

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self.s3.head_object(
                Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except Exception as exc:
            error = typed(exc, self.url(key))
            if isinstance(error, InputNotFound):
                return None
            raise error from None
        return self._describe(key, head)

    def stage(
        self, key: str, dest: Path, *, max_bytes: int, expect: StoredObject | None = None
    ) -> StoredObject:
        info = self.stat(key)
        if info is None:
            raise InputNotFound(f"{self.url(key)}: no such object")
        if expect is not None and (info.etag, info.size) != (expect.etag, expect.size):
            raise InvalidInput(f"{info.url}: changed while the job ran")
        if info.size > max_bytes:  # from the metadata, before a byte is fetched
            raise LimitExceeded(f"{info.url}: {info.size} bytes, over the limit of {max_bytes}")
        if info.size == 0:
            raise EmptyInput(f"{info.url}: the object is empty (0 bytes)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
        try:
            # Ranged GETs in parallel, pinned to the ETag seen first (s3transfer sends If-Match
            # itself). An object whose SHA-256 the store knows is written in order through the
            # hash (no second read of the file); any other straight into place, part by part.
            with open(tmp, "wb") as fh:
                sink = _HashingWriter(fh) if info.sha256 else fh
                self.s3.download_fileobj(
                    self.bucket, self._key(key), sink, Config=transfer_config(self.settings)
                )
            size = tmp.stat().st_size
            if size != info.size:
                raise StorageCorrupt(f"{info.url}: {size} bytes fetched, {info.size} stored")
            if isinstance(sink, _HashingWriter) and sink.digest.hexdigest() != info.sha256:
                raise StorageCorrupt(f"{info.url}: SHA-256 of what was fetched differs")
            tmp.replace(dest)
        except Exception as exc:
            raise typed(exc, info.url) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return info

    def publish(self, src: Path, key: str, *, sha256: str | None = None) -> StoredObject:
        """Upload ``src``: each part with its CRC32, checked by the server as it arrives (in
        transit); the whole file's SHA-256 computed from the same bytes as they are read
        (stored as metadata when the caller knows it beforehand); size read back (HEAD)."""
        url = self.url(key)
        extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32", "ContentType": content_type(key)}
        if sha256:
            extra["Metadata"] = {"sha256": sha256}
        try:
            with open(src, "rb") as fh:
                source = _HashingReader(fh)
                self.s3.upload_fileobj(
                    source, self.bucket, self._key(key), ExtraArgs=extra,
                    Config=transfer_config(self.settings),
                )  # fmt: skip
        except Exception as exc:
            raise typed(exc, url) from None
        digest = source.digest.hexdigest()
        info = self.stat(key)
        size = src.stat().st_size
        if info is None or info.size != size or source.read_bytes != size:
            raise StorageCorrupt(f"{url}: the store does not hold what was sent")
        if (sha256 and digest != sha256) or (info.sha256 and info.sha256 != digest):
            raise StorageCorrupt(f"{url}: SHA-256 of what was stored differs")
        return dataclasses.replace(info, sha256=digest)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    yield self._describe(key, item)
        except Exception as exc:
            raise typed(exc, self.url(prefix)) from None

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": self._key(k)} for k in keys]
        try:
            for start in range(0, len(batch), 1000):
                self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch[start : start + 1000]}
                )
        except Exception as exc:
            raise typed(exc, self.url("")) from None

    def abort_uploads(self, older_than_s: float) -> int:
        """Abort multipart uploads under the prefix begun more than ``older_than_s`` ago
        (what a killed upload leaves: invisible parts that still take space)."""
        import time

        aborted = 0
        try:
            found = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
            for up in found.get("Uploads", ()):
                if time.time() - up["Initiated"].timestamp() > older_than_s:
                    self.s3.abort_multipart_upload(
                        Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                    )
                    aborted += 1
        except Exception as exc:
            raise typed(exc, self.url("")) from None
        return aborted

    def presign(self, key: str, expires_s: int = 3600) -> str:
        """An HTTP URL that reads ``key`` without credentials, for ``expires_s`` seconds."""
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_s,
        )  # fmt: skip
        return url
