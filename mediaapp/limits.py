"""Bounds on what we take in and on what we quote back.

An input can be as large as its producer likes (a 10 MiB file name); nothing we publish,
store or audit may grow with it: strings are cut to a bounded prefix that says how much was
left out, lists to a bounded length. RabbitMQ 4 refuses messages over 16 MiB by default.
"""

from __future__ import annotations

from typing import Any

from mediaapp import defaults
from mediaapp.errors import InvalidInput, clip

#: Items of a list kept in a bounded copy.
MAX_LIST_ITEMS = 200
#: Nesting kept in a bounded copy (deeper values are replaced by a note).
MAX_DEPTH = 8


def quote(value: object, limit: int = defaults.MAX_QUOTE_CHARS) -> str:
    """``repr`` of an input for a message, at most about ``limit`` characters."""
    return clip(repr(value), limit)


def bounded(value: Any, limit: int = defaults.MAX_AUDIT_FIELD_CHARS, depth: int = 0) -> Any:
    """A copy of a JSON-like value whose every string is at most ``limit`` characters."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, bytes):
        return clip(value.decode("utf-8", "replace"), limit)
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        return f"[{type(value).__name__} nested deeper than {MAX_DEPTH}]"
    if isinstance(value, dict):
        items = list(value.items())
        out = {clip(str(k), 200): bounded(v, limit, depth + 1) for k, v in items[:MAX_LIST_ITEMS]}
        if len(items) > MAX_LIST_ITEMS:
            out["..."] = f"{len(items) - MAX_LIST_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple):
        kept = [bounded(v, limit, depth + 1) for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            kept.append(f"... {len(value) - MAX_LIST_ITEMS} more items")
        return kept
    return value


def check_name_length(name: str) -> None:
    """Refuse a file name longer than any file system allows (before it is published)."""
    if len(name.encode("utf-8", "surrogateescape")) > defaults.MAX_NAME_BYTES:
        raise InvalidInput(
            f"file name is {len(name)} characters, over the limit {defaults.MAX_NAME_BYTES} "
            f"bytes: {quote(name)}"
        )
