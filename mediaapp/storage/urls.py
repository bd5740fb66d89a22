"""Locations as URLs: a folder or ``s3://bucket/key``, parsed and confined.

Confinement is checked here, once, for every URL a job names: only buckets in the settings'
allow-list, no key that climbs out of its prefix (``..`` segments, percent-encoded or not,
backslashes, empty segments), no control characters, no other scheme. Pure: no I/O.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from mediaapp.errors import ConfigurationError, InputOutsideRoot, InvalidInput

#: The longest key S3 accepts, in bytes (UTF-8).
MAX_KEY_BYTES = 1024
#: S3 bucket names: 3-63 lower-case letters, digits, dots and dashes.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


@dataclass(frozen=True)
class ObjectUrl:
    """``s3://bucket/key``: one object, or a prefix when ``key`` is empty or ends in ``/``."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The last segment of the key (a file name)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def child(self, relpath: str) -> ObjectUrl:
        """``relpath`` under this prefix, confined to it."""
        rel = check_key(relpath, what="relative key")
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return ObjectUrl(self.bucket, check_key(base + rel))


def is_url(text: object) -> bool:
    """True when ``text`` names a location by URL (``s3://``), not a path."""
    return isinstance(text, str) and text[:5].lower() == "s3://"


def check_key(key: str, *, what: str = "key") -> str:
    """``key`` if it stays where it is put, else :class:`InputOutsideRoot`."""
    if not isinstance(key, str):
        raise InvalidInput(f"{what} {key!r} is not text")
    if _CONTROL.search(key):
        raise InvalidInput(f"{what} {key!r}: control characters are not accepted")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidInput(f"{what} is over {MAX_KEY_BYTES} bytes")
    # Decode until stable: %2e%2e, %252e%252e... all reach the same verdict as "..".
    seen, decoded = key, urllib.parse.unquote(key)
    while decoded != seen:
        seen, decoded = decoded, urllib.parse.unquote(decoded)
    for form in (key, decoded):
        if "\\" in form or form.startswith("/"):
            raise InputOutsideRoot(f"{what} {key!r}: absolute or backslash-separated")
        segments = form.split("/")
        if any(s in (".", "..") for s in segments):
            raise InputOutsideRoot(f"{what} {key!r}: '.' and '..' segments are not accepted")
        if any(s == "" for s in segments[:-1]):
            raise InputOutsideRoot(f"{what} {key!r}: empty path segment")
    return key


def check_bucket(bucket: str, allowed: frozenset[str]) -> str:
    """``bucket`` if it is a bucket name on the allow-list."""
    if not _BUCKET.fullmatch(bucket or ""):
        raise InvalidInput(f"bucket {bucket!r} is not a valid bucket name")
    if bucket not in allowed:
        raise InputOutsideRoot(
            f"bucket {bucket!r} is not allowed (MEDIAAPP_S3_BUCKETS: {', '.join(sorted(allowed))})"
        )
    return bucket


def parse(url: str, allowed: frozenset[str], *, prefix: bool = False) -> ObjectUrl:
    """Parse and confine ``s3://bucket/key``; ``prefix=True`` accepts an empty key."""
    if not is_url(url):
        scheme = m.group(0) if isinstance(url, str) and (m := _SCHEME.match(url)) else None
        why = f"scheme {scheme!r} is not accepted" if scheme else "not an s3:// URL"
        raise InputOutsideRoot(f"{url!r}: {why}")
    rest = url[5:]
    bucket, _, key = rest.partition("/")
    if "?" in url or "#" in url:
        raise InvalidInput(f"{url!r}: query strings and fragments are not accepted")
    check_bucket(bucket, allowed)
    if not key and not prefix:
        raise InvalidInput(f"{url!r}: names a bucket, not an object")
    if key:
        check_key(key)
    if not prefix and key.endswith("/"):
        raise InvalidInput(f"{url!r}: names a prefix, not an object")
    return ObjectUrl(bucket, key)


def output_prefix(url: str, allowed: frozenset[str]) -> ObjectUrl:
    """The output prefix of ``MEDIAAPP_OUTPUT_URL`` (or the chunk cache's): a configuration
    error, not an input error, when it is wrong."""
    try:
        return parse(url, allowed, prefix=True)
    except InvalidInput as exc:
        raise ConfigurationError(f"{url!r}: {exc}") from None
