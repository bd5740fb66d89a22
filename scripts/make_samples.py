"""Make the small media files in ``samples/`` from ffmpeg's test sources (lavfi).

Run ``python scripts/make_samples.py``; it uses the same ffmpeg boundary as the workers, so
the binary comes from the project's own install (imageio-ffmpeg) like everything else.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mediaapp.media import command

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

#: name → (ffmpeg arguments after the binary, what the file is for)
RECIPES: dict[str, tuple[list[str], str]] = {
    "clip.mp4": (
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=4",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=4",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "28",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-shortest",
        ],
        "4 s 640x360 H.264 + AAC: the demo clip",
    ),
    "silent.mp4": (
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "30",
            "-pix_fmt",
            "yuv420p",
        ],
        "2 s 320x240 video with no audio stream",
    ),
    "rotated.mp4": (
        ["-display_rotation", "90", "-i", "samples/silent.mp4", "-c", "copy"],
        "silent.mp4 with a 90° display matrix: players show it 240x320",
    ),
    "tone.m4a": (
        [
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=660:sample_rate=44100:duration=2",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ],
        "2 s audio only: refused by video profiles",
    ),
}


def main() -> int:
    """Write every sample (overwriting), in recipe order (rotated.mp4 reads silent.mp4)."""
    SAMPLES.mkdir(exist_ok=True)
    binary = command.ffmpeg_binary()
    for name, (args, why) in RECIPES.items():
        out = SAMPLES / name
        args = [a.replace("samples/", f"{SAMPLES}/") for a in args]
        command.run(
            [binary, "-nostdin", "-hide_banner", "-loglevel", "error", *args, "-y", str(out)]
        )
        print(f"{out.relative_to(SAMPLES.parent)}  {out.stat().st_size:>7} bytes  {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
