"""Named transcoding profiles, loaded from TOML data files and checked on load.

The shipped profiles are in ``mediaapp/media/profiles.toml``; every ``*.toml`` file in
``MEDIAAPP_PROFILES_DIR`` (``settings.profiles_dir``, which callers pass in: this module reads
no environment) adds profiles or replaces shipped ones by name. A bad field fails loudly with
the file and the field named. The ffmpeg arguments are derived from a profile in
:mod:`mediaapp.media.mp4` and :mod:`mediaapp.media.renditions`, never written in the data.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from mediaapp.errors import ConfigurationError, UnknownProfile

SHIPPED = Path(__file__).with_name("profiles.toml")
KINDS = ("mp4", "hls", "dash", "audio", "thumbs")


@dataclass(frozen=True)
class Rung:
    """One rendition of a ladder."""

    height: int
    video_kbps: int


@dataclass(frozen=True)
class Quality:
    """Whether each video rendition is scored against its source (VMAF, PSNR, SSIM), and on
    one frame in how many (``subsample``): scoring every frame would cost about as much as
    the encode, and a quality figure does not need them all."""

    measure: bool = False
    subsample: int = 5
    #: Frames scored per rendition, in a few windows after source keyframes (so only they are
    #: decoded); 0: the whole duration (every input decoded end to end); None: by duration
    #: (:func:`mediaapp.media.qsample.default_sample`).
    sample: int | None = None


@dataclass(frozen=True)
class Profile:
    """One output recipe."""

    name: str
    kind: str = "mp4"
    #: Target short side in pixels (the height of a landscape picture, the width of a
    #: portrait one); sources smaller than this keep their own size (never upscaled).
    height: int = 720
    video_codec: str = "libx264"
    #: x264 preset and constant rate factor: quality-targeted, so bit rate follows content.
    preset: str = "veryfast"
    crf: int = 23
    #: Cap on the video bit rate (kbit/s) so a noisy source cannot blow up the file.
    maxrate_kbps: int = 5000
    audio_codec: str = "aac"
    audio_bitrate_kbps: int = 128
    #: Move the moov atom to the front so browsers start playing before the download ends.
    faststart: bool = True
    #: Poster frame position as a fraction of the duration.
    poster_at: float = 0.1
    poster_height: int = 720
    #: "always" re-encodes; "auto" remuxes an input that already meets the profile.
    reencode: str = "always"
    #: Ladder profiles: the rungs (highest first) and the segment duration in seconds.
    rungs: tuple[Rung, ...] = field(default_factory=tuple)
    segment_s: int = 4
    #: Measured quality in the manifest (``[name.quality] measure = true``).
    quality: Quality = field(default_factory=Quality)

    @property
    def codec(self) -> str:
        """The video codec family: ``hevc`` for libx265 (kept HDR), else ``h264``."""
        return "hevc" if self.video_codec == "libx265" else "h264"


_FIELD_TYPES: dict[str, type] = {
    "kind": str, "height": int, "video_codec": str, "preset": str, "crf": int,
    "maxrate_kbps": int, "audio_codec": str, "audio_bitrate_kbps": int,
    "faststart": bool, "poster_at": float, "poster_height": int, "reencode": str,
    "rungs": list, "segment_s": int, "quality": dict,
}  # fmt: skip
#: H.264 everywhere; HEVC (Main10, HDR kept, fMP4 segments) for HLS ladders.
_CODECS = ("libx264", "libx265")
_PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"}


def _bad(source: str, name: str, key: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"{source}: profile [{name}] field {key!r}: {why}")


def _quality(source: str, name: str, table: dict[str, Any]) -> Quality:
    """The ``quality`` sub-table: ``measure`` (bool), ``subsample`` (1 to 100 frames) and
    ``sample`` (frames scored, 0 to 10000; 0: all)."""
    for key in table:
        if key not in ("measure", "subsample", "sample"):
            raise _bad(source, name, f"quality.{key}",
                       "unknown field (known: measure, subsample, sample)")  # fmt: skip
    measure, subsample = table.get("measure", False), table.get("subsample", 5)
    sample = table.get("sample")
    if not isinstance(measure, bool):
        raise _bad(source, name, "quality.measure", f"expected true or false, got {measure!r}")
    if not isinstance(subsample, int) or isinstance(subsample, bool) or not 1 <= subsample <= 100:
        raise _bad(source, name, "quality.subsample", f"must be 1 to 100, got {subsample!r}")
    if sample is not None and (
        not isinstance(sample, int) or isinstance(sample, bool) or not 0 <= sample <= 10_000
    ):
        raise _bad(source, name, "quality.sample", f"must be 0 to 10000, got {sample!r}")
    return Quality(measure, subsample, sample)


def parse_profile(name: str, table: dict[str, Any], source: str) -> Profile:
    """Check one TOML table and build its :class:`Profile`; errors name the file and field."""
    known = {f.name for f in fields(Profile)} - {"name"}
    for key, value in table.items():
        if key not in known:
            raise _bad(source, name, key, f"unknown field (known: {', '.join(sorted(known))})")
        want = _FIELD_TYPES[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise _bad(source, name, key, f"expected {want.__name__}, got {value!r}")
    values = dict(table)
    if values.get("kind", "mp4") not in KINDS:
        raise _bad(source, name, "kind", f"{values['kind']!r} is not one of {', '.join(KINDS)}")
    if values.get("reencode", "always") not in ("auto", "always"):
        raise _bad(source, name, "reencode", "must be 'auto' or 'always'")
    if values.get("preset", "veryfast") not in _PRESETS:
        raise _bad(source, name, "preset", f"{values['preset']!r} is not an x264 preset")
    for key in ("height", "maxrate_kbps", "audio_bitrate_kbps", "segment_s", "poster_height"):
        if key in values and values[key] <= 0:
            raise _bad(source, name, key, "must be positive")
    codec, kind = values.get("video_codec", "libx264"), values.get("kind", "mp4")
    if codec not in _CODECS:
        raise _bad(source, name, "video_codec", f"{codec!r} is not one of {', '.join(_CODECS)}")
    if codec == "libx265" and kind != "hls":
        raise _bad(source, name, "video_codec", "libx265 (HEVC) is for hls profiles only")
    if not 0 <= values.get("crf", 23) <= 51:
        raise _bad(source, name, "crf", "must be between 0 and 51")
    rungs = []
    for i, rung in enumerate(values.pop("rungs", [])):
        if not isinstance(rung, dict) or set(rung) != {"height", "video_kbps"}:
            raise _bad(source, name, f"rungs[{i}]", "needs exactly height and video_kbps")
        if not all(isinstance(v, int) and v > 0 for v in rung.values()):
            raise _bad(source, name, f"rungs[{i}]", "height and video_kbps must be positive")
        rungs.append(Rung(rung["height"], rung["video_kbps"]))
    if kind in ("hls", "dash") and not rungs:
        raise _bad(source, name, "rungs", f"a {kind} profile needs at least one rung")
    rungs.sort(key=lambda r: -r.height)
    if "quality" in values:
        values["quality"] = _quality(source, name, values["quality"])
    return Profile(name=name, rungs=tuple(rungs), **values)


def load_file(path: Path) -> dict[str, Profile]:
    """All profiles of one TOML file."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None
    profiles = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: {name!r} must be a table ([{name}])")
        profiles[name] = parse_profile(name, table, str(path))
    return profiles


@lru_cache(maxsize=4)
def load_profiles(extra_dir: str = "") -> dict[str, Profile]:
    """Shipped profiles, then those of ``extra_dir`` (same name: the user's wins)."""
    profiles = load_file(SHIPPED)
    if extra_dir:
        for path in sorted(Path(extra_dir).glob("*.toml")):
            profiles.update(load_file(path))
    return profiles


def all_profiles(profiles_dir: str = "") -> dict[str, Profile]:
    """The shipped profiles and those of ``profiles_dir`` (callers pass settings.profiles_dir)."""
    return load_profiles(profiles_dir)


def get_profile(name: str, profiles_dir: str = "") -> Profile:
    """The profile called ``name``, or :class:`UnknownProfile` listing the ones that exist.

    ``profiles_dir`` is ``settings.profiles_dir``: "" knows the shipped profiles only.
    """
    profiles = all_profiles(profiles_dir)
    try:
        return profiles[name]
    except KeyError:
        known = ", ".join(sorted(profiles))
        raise UnknownProfile(f"unknown profile {name!r} (known: {known})") from None
