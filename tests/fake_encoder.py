"""A fake GPU encoder for tests: an ffmpeg that claims ``h264_nvenc`` works, then fails a
real encode with it as NVENC does when the device runs out of memory.

No GPU exists on these machines, so the hardware fault → software fallback path is tested
with this instead (``MEDIAAPP_FFMPEG``). It wraps the real (bundled) ffmpeg: ``-encoders``,
``-version`` and every other command pass through; the one-frame proving encode of
``h264_nvenc`` (``-frames:v 1 ... -f null -``) runs with libx264 in its place (libx265 for
``hevc_nvenc``), so the worker proves it; any other command using it writes NVENC's own
error lines to stderr, appends its arguments to the log file, and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: What NVENC prints when the GPU has no memory left for another encode session (ffmpeg 6/7).
NVENC_OOM = (
    "[h264_nvenc @ 0x55d0c1a2b3c0] OpenEncodeSessionEx failed: out of memory (10): (no details)\n"
    "[h264_nvenc @ 0x55d0c1a2b3c0] No capable devices found\n"
    "[vost#0:0/h264_nvenc @ 0x55d0c1a2a100] Error while opening encoder - maybe incorrect "
    "parameters such as bit_rate, rate, width or height.\n"
    "Error while filtering: Generic error in an external library\n"
)

_SCRIPT = """#!{python}
import os, sys
REAL, LOG, ENCODER, SOFTWARE = {real!r}, {log!r}, {encoder!r}, {software!r}
args = sys.argv[1:]
if ENCODER in args:
    proving = "null" in args and "-frames:v" in args and args[args.index("-frames:v") + 1] == "1"
    if proving:
        args = [SOFTWARE if a == ENCODER else a for a in args]
    else:
        with open(LOG, "a") as fh:
            fh.write(" ".join(args) + "\\n")
        sys.stderr.write({stderr!r})
        sys.exit(1)
os.execv(REAL, [REAL, *args])
"""


def write_fake_ffmpeg(folder: Path, encoder: str = "h264_nvenc") -> tuple[Path, Path]:
    """Write the fake ffmpeg into ``folder``; (its path, the log of the encodes it failed)."""
    import imageio_ffmpeg

    path, log = folder / "ffmpeg-fake-gpu", folder / "fake-gpu-failures.log"
    path.write_text(
        _SCRIPT.format(
            python=sys.executable,
            real=imageio_ffmpeg.get_ffmpeg_exe(),
            log=str(log),
            encoder=encoder,
            software={"h264": "libx264", "hevc": "libx265"}[encoder.split("_")[0]],
            stderr=NVENC_OOM.replace("h264_nvenc", encoder),
        )
    )
    path.chmod(0o755)
    return path, log
