"""Hardware encoders at run time: which encoder a step's commands really run, and whether a
failure was the device's fault.

The profiles name software encoders (libx264, libx265). A step that may use hardware opens
:func:`choosing` with the substitutions its worker chose (``libx264`` → ``h264_nvenc``);
:func:`mediaapp.media.command.run` swaps the encoder in every command it runs inside, and
records which encoder made which rendition (:func:`recorded`, the manifest's ``encoders``).
When such a command fails, :func:`fault` tells a device fault (out of memory, device lost,
no device, driver not loaded: the hardware, which the software encoder would not hit) from
anything else (a bad input fails in software too, and must disable nothing). Only encoders
that take frames from system memory are substituted (NVENC, QSV): VAAPI needs its frames
uploaded by the filter graph, which the profiles' graphs do not do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from mediaapp import defaults

#: Hardware encoder families a step may substitute for the software encoder.
SUBSTITUTABLE = ("nvenc", "qsv")
#: Options of x264/x265 that a hardware encoder refuses or reads differently; dropped.
_SOFTWARE_ONLY = {"-preset", "-crf", "-tune", "-x264-params", "-x265-params", "-x264opts"}
#: Rate control: the software CRF becomes the family's constant-quality option.
_QUALITY = {"nvenc": "-cq", "qsv": "-global_quality"}
#: Forced keyframes must be IDR frames (a segment starts with one): not by default in these.
_FORCED_IDR = {"nvenc": "-forced-idr", "qsv": "-forced_idr"}
_CODEC_OPTION = re.compile(r"^-(?:vcodec|c:v|codec:v)(?::\d+)?$")
#: The encoders of renditions (posters' mjpeg and the like are not recorded).
_RENDITION_ENCODERS = {e for names in defaults.CAPABILITY_ENCODERS.values() for e in names}

#: ffmpeg's own words for a device fault, by family (libavcodec nvenc.c/qsv*.c/vaapi*.c and
#: libavutil hwcontext_*.c). An encoder's open or encode failing for another reason (an
#: invalid parameter, a bad input) is not here.
FAULTS: dict[str, tuple[str, ...]] = {
    "nvenc": (
        r"(?:OpenEncodeSessionEx|InitializeEncoder|EncodePicture|nvEnc\w+|Failed locking "
        r"bitstream buffer)\s*failed!?:?\s*(?:out of memory|no encode device|unsupported "
        r"device|invalid encoder device|invalid device|device does not exist|generic error)",
        r"No (?:NVENC )?capable devices found",
        r"Cannot load lib(?:cuda|nvidia-encode)\S*",
        r"cu\w+\(.*\) failed",
        r"CUDA_ERROR_\w+",
        r"The minimum required Nvidia driver for nvenc is",
        r"Driver does not support the required nvenc API version",
    ),
    "qsv": (
        r"Error initializing an? (?:internal )?MFX session",
        r"Error (?:initializing|creating) (?:the|a) MFX",
        r"device failed \(-17\)",
        r"memory allocation error \(-4\)",
        r"MFX_ERR_(?:DEVICE_FAILED|DEVICE_LOST|MEMORY_ALLOC|UNSUPPORTED)",
        r"device lost",
    ),
    "vaapi": (
        r"Failed to initialise VAAPI connection",
        r"No VA display found",
        r"vaInitialize failed",
        r"Failed to create (?:a )?VAAPI device",
        r"Device creation failed",
    ),
}


@dataclass
class Choice:
    """One step's encoders: what it substitutes, what it ran (rendition → encoders), and
    the faults it fell back from (the manifest's ``fallback``)."""

    substitutes: dict[str, str] = field(default_factory=dict)
    used: dict[str, list[str]] = field(default_factory=dict)
    fallback: list[dict[str, Any]] = field(default_factory=list)

    def note(self, rendition: str, encoder: str) -> None:
        """``encoder`` made (part of) ``rendition``."""
        known = self.used.setdefault(rendition, [])
        if encoder not in known:
            known.append(encoder)


_current: ContextVar[Choice | None] = ContextVar("encoder_choice", default=None)


@contextmanager
def choosing(
    substitutes: dict[str, str] | None = None, fallback: list[dict[str, Any]] | None = None
) -> Iterator[Choice]:
    """Run the commands inside with ``substitutes`` (software → hardware encoder) and record
    what they used. Inside a choice already open (a task around the function it calls),
    join that one."""
    existing = _current.get()
    if existing is not None:
        yield existing
        return
    choice = Choice(dict(substitutes or {}), {}, list(fallback or ()))
    token = _current.set(choice)
    try:
        yield choice
    finally:
        _current.reset(token)


def family(encoder: str) -> str:
    """``nvenc`` of ``h264_nvenc``; ``""`` for a software encoder."""
    return "" if encoder in defaults.SOFTWARE_ENCODERS else encoder.rsplit("_", 1)[-1]


def substitute(args: list[str]) -> list[str]:
    """``args`` with the open choice's hardware encoders in place of the software ones, and
    without the options only the software encoders take."""
    choice = _current.get()
    if choice is None or not choice.substitutes:
        return args
    used = {v for i, v in enumerate(args[1:], 1) if _CODEC_OPTION.match(args[i - 1])}
    hardware = [choice.substitutes[e] for e in used if e in choice.substitutes]
    if not hardware:
        return args
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if i and _CODEC_OPTION.match(args[i - 1]) and arg in choice.substitutes:
            arg = choice.substitutes[arg]
            idr = _FORCED_IDR.get(family(arg))
            if idr and "-force_key_frames" in args:
                out += [arg, idr, "1"]
                continue
        elif arg in _SOFTWARE_ONLY and i + 1 < len(args):
            skip = True
            if arg == "-crf" and (quality := _QUALITY.get(family(hardware[0]))):
                out += [quality, args[i + 1]]
            continue
        out.append(arg)
    return out


def video_encoders(args: list[str]) -> list[tuple[str, str]]:
    """(rendition, encoder) of every video encode in ``args``: the rung of an HLS output
    (its folder), the rendition of a chunk (``e00003.<rendition>.mp4``), else ``video``."""
    found = []
    for i, arg in enumerate(args[:-1]):
        if _CODEC_OPTION.match(arg) and args[i + 1] in _RENDITION_ENCODERS:
            found.append((_rendition(args, i + 2), args[i + 1]))
    return found


def _rendition(args: list[str], start: int) -> str:
    for i in range(start, len(args)):
        if args[i].startswith("file:") and args[i - 1] not in ("-i", "-hls_segment_filename"):
            path = PurePosixPath(args[i].removeprefix("file:"))
            if path.name == "index.m3u8":
                return path.parent.name
            chunk = re.fullmatch(r"e\d+\.(.+)\.mp4(?:\.[^.]*)?", path.name)
            return chunk[1] if chunk else "video"
    return "video"


def record(args: list[str]) -> None:
    """Note the encoders a finished command used in the open choice (if any)."""
    choice = _current.get()
    if choice is not None:
        for rendition, encoder in video_encoders(args):
            choice.note(rendition, encoder)


def fault(args: list[str], stderr: str) -> tuple[str, str] | None:
    """(encoder, reason) when a failed command's hardware encoder failed as hardware does:
    the line of stderr that says so. ``None`` for every other failure."""
    hardware = [e for _, e in video_encoders(args) if family(e)]
    for encoder in dict.fromkeys(hardware):
        for pattern in FAULTS.get(family(encoder), ()):
            found = re.search(pattern, stderr)
            if found:
                line = stderr[stderr.rfind("\n", 0, found.start()) + 1 :].split("\n", 1)[0]
                line = re.sub(r"^\[[^]]+\]\s*", "", line.strip())
                return encoder, line[: defaults.MAX_QUOTE_CHARS]
    return None


def recorded() -> dict[str, Any]:
    """The open choice's ``encoders`` and ``fallback``, as the manifest and a step's result
    carry them (empty outside :func:`choosing`)."""
    choice = _current.get()
    if choice is None:
        return {}
    return {
        **({"encoders": {k: list(v) for k, v in choice.used.items()}} if choice.used else {}),
        **({"fallback": list(choice.fallback)} if choice.fallback else {}),
    }


def absorb(part: dict[str, Any]) -> None:
    """Take in the encoders and fallbacks another step reported (a rung, a chunk)."""
    choice = _current.get()
    if choice is None:
        return
    for rendition, encoders in (part.get("encoders") or {}).items():
        for encoder in encoders:
            choice.note(rendition, encoder)
    for item in part.get("fallback") or ():
        if item not in choice.fallback:
            choice.fallback.append(item)
