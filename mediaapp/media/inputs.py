"""Job inputs: a name confined to the media root, resolved, probed and validated."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from mediaapp import defaults
from mediaapp.errors import (
    EmptyInput,
    InputNotFound,
    InputOutsideRoot,
    InvalidInput,
    LimitExceeded,
    NotMedia,
    clip,
)
from mediaapp.media.languages import is_tag
from mediaapp.media.probe import ProbeResult, probe, validate
from mediaapp.settings import Settings
from mediaapp.storage import staging
from mediaapp.storage.urls import is_url

#: ``scheme:`` at the start of a name: URLs and ffmpeg protocols (concat:, subfile:, http:...).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_input(name: str, settings: Settings) -> Path:
    """Map a job's input name to a regular file inside the media root, or raise a typed error."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("no input file was given")
    if len(name) > defaults.MAX_NAME_BYTES:
        raise InvalidInput(
            f"input name is {len(name)} characters, over the limit {defaults.MAX_NAME_BYTES} "
            f"bytes: {clip(repr(name), defaults.MAX_QUOTE_CHARS)}"
        )
    if "\x00" in name:
        raise InvalidInput("input name contains a NUL byte")
    if not _is_utf8(name):
        raise InvalidInput(
            f"{name.encode('utf-8', 'backslashreplace').decode()!r}: file name is not valid "
            "UTF-8; rename the file (job messages and logs are UTF-8 JSON)"
        )
    if is_url(name):  # s3://bucket/key: confined, then staged into this worker's scratch
        return staging.stage_input(name, settings)
    if _SCHEME.match(name) and not (settings.media_root / name).exists():
        raise InputOutsideRoot(f"{name!r}: URLs and ffmpeg protocols are not accepted as input")
    root = settings.media_root
    candidate = Path(name)
    if candidate.is_absolute():
        raise InputOutsideRoot(
            f"{name!r}: absolute paths are not accepted; name a file under {root}"
        )
    if not Path(os.path.normpath(root / candidate)).is_relative_to(root):
        raise InputOutsideRoot(f"{name!r}: '..' leads outside the media root")
    try:
        resolved = (root / candidate).resolve(strict=True)
    except FileNotFoundError:
        raise InputNotFound(f"{name!r}: no such file under the media root") from None
    except (OSError, RuntimeError) as exc:  # symlink loops, name too long, ...
        raise InvalidInput(f"{name!r}: cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):  # a symlink pointing out
        raise InputOutsideRoot(f"{name!r}: resolves outside the media root")
    if not resolved.is_file():
        raise InputNotFound(f"{name!r}: not a regular file")
    size = resolved.stat().st_size
    if size == 0:
        raise EmptyInput(f"{name!r}: the file is empty (0 bytes)")
    if size > settings.max_input_bytes:
        raise LimitExceeded(
            f"{name!r}: {size} bytes, over the limit of {settings.max_input_bytes} bytes"
        )
    return resolved


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode() smuggled undecodable bytes in as surrogates
        return False
    return True


def inspect(
    name: str,
    settings: Settings,
    *,
    needs_video: bool = True,
    decode_s: float | None = None,
) -> tuple[Path, ProbeResult]:
    """Resolve, probe and validate an input before any encode.

    ``decode_s=0`` decodes the first frame only (rotation): for a step that knows the file
    was decoded already.
    """
    path = resolve_input(name, settings)
    info = probe(path, decode_s=decode_s, max_pixels=settings.max_pixels)
    validate(info, settings, needs_video=needs_video)
    return path, info


def safe_stem(name: str) -> str:
    """A file-name stem that is safe anywhere: no separators, no leading dash or dot."""
    stem = _UNSAFE.sub("_", Path(name).stem).strip("._-")[:80]
    return stem or "output"


def display_size(info: ProbeResult) -> tuple[int, int]:
    """Width and height as the viewer sees them (pixel aspect and rotation applied): the
    outputs have square pixels, so an anamorphic source's width is stretched to its aspect."""
    video = info.video
    if video is None or not video.width or not video.height:
        raise NotMedia(f"{Path(info.path).name}: no video dimensions")
    width = video.width
    if video.sar:
        width = max(1, round(video.width * Fraction(video.sar.replace(":", "/"))))
    if (video.rotation or 0) % 180 == 90:
        return video.height, width
    return width, video.height


def fit(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Even output dimensions whose short side is ``short_side`` (never above the source's).

    Sized on the short side, as the big platforms do, so a portrait source gets 720x1280 for
    "720p", not 406x720. The long side keeps the display aspect within a pixel; the encoders
    then mark pixels square (``setsar=1``), where ``scale=-2`` would skew them slightly.
    """
    short = max(2, min(width, height, short_side) // 2 * 2)
    long_side = max(width, height) * short / min(width, height)
    other = max(2, round(long_side / 2) * 2)
    return (other, short) if width >= height else (short, other)


def target_size(info: ProbeResult, short_side: int) -> tuple[int, int]:
    """Output width and height as seen (rotation applied) for a profile's nominal height."""
    return fit(*display_size(info), short_side)


def target_height(info: ProbeResult, max_height: int) -> int:
    """The output height (see :func:`target_size`)."""
    return target_size(info, max_height)[1]


def scale_square(video: Any, width: int, height: int, pix_fmt: str = "yuv420p") -> Any:
    """Scale to exactly ``width`` x ``height`` with square pixels, in ``pix_fmt``."""
    return video.filter("scale", width, height).filter("setsar", 1).filter("format", pix_fmt)


def check_subtitles(items: Any, settings: Settings) -> tuple[dict[str, str | None], ...]:
    """Subtitle files given with a job (``[{"path": "clip.srt", "language": "en"}]``): each a
    ``.srt`` or ``.vtt`` confined to the media root like the input, its language a tag. Their
    content is read (and may be refused, with a reason) only when captions are made."""
    if not items:
        return ()
    if not isinstance(items, list | tuple) or len(items) > defaults.MAX_STREAMS:
        raise InvalidInput(f"subtitles: a list of at most {defaults.MAX_STREAMS} files")
    checked = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise InvalidInput(f"subtitles: {clip(repr(item), 200)} is not {{'path': ...}}")
        language = item.get("language")
        if language is not None and not (isinstance(language, str) and is_tag(language)):
            raise InvalidInput(f"subtitles: {clip(repr(language), 200)} is not a language tag")
        path = resolve_input(item["path"], settings)
        if path.suffix.lower() not in (".srt", ".vtt"):
            raise InvalidInput(f"subtitles: {clip(repr(item['path']), 200)} is not .srt or .vtt")
        checked.append({"path": item["path"], "language": language})
    return tuple(checked)
