"""Small generated sources for the packaging and player tests (cached in the media root)."""

from __future__ import annotations

from pathlib import Path

from mediaapp.media import command


def generate(
    media_root: Path,
    name: str,
    *,
    size: str = "640x360",
    seconds: float = 3,
    rate: float = 30,
    gop: int | None = None,
    audio: bool = True,
    rotate: int = 0,
) -> str:
    """testsrc2 (+ a sine tone): H.264/AAC; ``rotate`` adds display-matrix rotation."""
    path = media_root / name
    if path.exists():
        return name
    tmp = path.with_name(f".gen-{name}")
    video = f"testsrc2=size={size}:rate={rate}:duration={seconds}"
    args = [command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-g", str(gop)] if gop else []
    command.run([*args, "-f", "mp4", "-y", str(tmp)])
    if rotate:
        rotated = path.with_name(f".rot-{name}")
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error",
                    "-display_rotation", str(rotate), "-i", str(tmp), "-c", "copy", "-y",
                    str(rotated)])  # fmt: skip
        tmp.unlink()
        tmp = rotated
    tmp.rename(path)
    return name
