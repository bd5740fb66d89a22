"""Hostile inputs, made on the fly in a media root: (name, expected error class name or None)."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def make_hostile(root: Path, corpus: Path) -> list[tuple[str, str | None]]:
    """Write the hostile files into ``root``; return (job input name, expected error type)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "zero.mp4").write_bytes(b"")
    shutil.copy(corpus / "small-pdf.pdf", root / "document.mp4")
    (root / "notes.mp4").write_text("just some text, not a video\n")
    clip = (corpus / "ffmpeg-python-in1.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(clip[: len(clip) // 2])
    shutil.copy(corpus / "small-Mpeg4.mp4", root / "nostreams.mp4")
    shutil.copy(corpus / "small-mp4-with-audio.mp4", root / "audio-only.mp4")
    (root / "huge-claim.mp4").write_bytes(_png_claiming(30000, 30000))
    (root / "playlist.m3u8").write_text("#EXTM3U\n#EXTINF:10,\nfile:/etc/passwd\n#EXT-X-ENDLIST\n")
    (root / "list.ffconcat").write_text("ffconcat version 1.0\nfile '/etc/passwd'\n")
    link = root / "link-out.mp4"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    for name in ("-i evil.mp4", "it's $(touch pwned); ok.mp4", "spaced name.mp4"):
        shutil.copy(root / "silent.mp4", root / name)
    bad_utf8 = os.fsdecode(b"\xff\xfe-latin1.mp4")
    shutil.copy(root / "silent.mp4", root / bad_utf8)
    return [
        ("zero.mp4", "EmptyInput"),
        ("document.mp4", "NotMedia"),
        ("notes.mp4", "NotMedia"),
        ("truncated.mp4", "NotMedia"),
        ("nostreams.mp4", "NotMedia"),
        ("audio-only.mp4", "NotMedia"),
        ("huge-claim.mp4", "LimitExceeded"),
        ("playlist.m3u8", "NotMedia"),
        ("list.ffconcat", "NotMedia"),
        ("link-out.mp4", "InputOutsideRoot"),
        ("../../etc/passwd", "InputOutsideRoot"),
        ("/etc/passwd", "InputOutsideRoot"),
        ("concat:silent.mp4|silent.mp4", "InputOutsideRoot"),
        ("http://127.0.0.1:9/x.mp4", "InputOutsideRoot"),
        ("subfile:,,start,0,end,0,,:/etc/passwd", "InputOutsideRoot"),
        ("missing.mp4", "InputNotFound"),
        ("-i evil.mp4", None),
        ("it's $(touch pwned); ok.mp4", None),
        ("spaced name.mp4", None),
        (bad_utf8, "InvalidInput"),
    ]
