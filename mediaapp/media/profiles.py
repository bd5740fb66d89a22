"""Named transcoding profiles, loaded from TOML data files and checked on load.

The shipped profiles are in ``mediaapp/media/profiles.toml``; every ``*.toml`` file in
``MEDIAAPP_PROFILES_DIR`` (``settings.profiles_dir``, which callers pass in: this module reads
no environment) adds profiles or replaces shipped ones by name. A bad field fails loudly with
the file and the field named. The ffmpeg arguments are derived from a profile in
:mod:`mediaapp.media.mp4` and :mod:`mediaapp.media.renditions`, never written in the data.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from mediaapp.errors import ConfigurationError, UnknownProfile

SHIPPED = Path(__file__).with_name("profiles.toml")
KINDS = ("mp4", "hls", "dash", "audio", "thumbs")


@dataclass(frozen=True)
class Rung:
    """One rendition of a ladder: a bit rate, or (per-title) a VMAF target whose CRF a search
    on samples of the source finds; ``video_kbps`` then caps the rate (``crf``: the answer)."""

    height: int
    video_kbps: int
    #: The codecs of this rung (``h264``, ``hevc``, ``av1``); empty: the profile's own codec.
    codecs: tuple[str, ...] = ()
    target_vmaf: float | None = None
    crf: int | None = None


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
class PerTitle:
    """Bounds of the per-title CRF search (``[name.pertitle]``): ``samples`` windows of
    ``sample_s`` seconds, at most ``max_trials`` trial encodes a rung, CRFs within
    ``crf_min``..``crf_max`` from ``crf_start``; a rung is dropped when its VMAF is within
    ``margin`` of the rung below at a higher bit rate; the full encode must be within
    ``tolerance`` of the target; trials scored on one frame in ``subsample``."""

    samples: int = 2
    sample_s: float = 2.0
    max_trials: int = 4
    crf_start: int = 23
    crf_min: int = 16
    crf_max: int = 40
    margin: float = 1.0
    tolerance: float = 2.0
    subsample: int = 5
    #: VMAF points the samples must score above the target: what the samples may
    #: overestimate the whole source by.
    headroom: float = 0.0


#: Per-title fields: type and allowed range.
_PERTITLE = {
    "samples": (int, 1, 10), "sample_s": (float, 0.5, 30.0), "max_trials": (int, 1, 10),
    "crf_start": (int, 0, 51), "crf_min": (int, 0, 51), "crf_max": (int, 0, 51),
    "margin": (float, 0.0, 20.0), "tolerance": (float, 0.0, 20.0), "subsample": (int, 1, 10),
    "headroom": (float, 0.0, 10.0),
}  # fmt: skip


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
    #: Per-title ladders: the search's bounds (used when a rung has ``target_vmaf``).
    pertitle: PerTitle = field(default_factory=PerTitle)

    @property
    def codec(self) -> str:
        """The video codec family: ``hevc`` for libx265 (kept HDR), else ``h264``."""
        return "hevc" if self.video_codec == "libx265" else "h264"

    def rung_codecs(self, rung: Rung) -> tuple[str, ...]:
        """The codecs ``rung`` is encoded in (its own list, else the profile's codec)."""
        return rung.codecs or (self.codec,)

    @property
    def codecs(self) -> tuple[str, ...]:
        """Every codec of the ladder, H.264 first, then HEVC, then AV1."""
        used = {c for r in self.rungs for c in self.rung_codecs(r)} or {self.codec}
        return tuple(c for c in RUNG_CODECS if c in used)

    @property
    def cmaf(self) -> bool:
        """A multi-codec ladder (or AV1): CMAF segments shared by HLS and DASH
        (:mod:`mediaapp.media.cmafpack`); one-codec ladders keep their own packaging."""
        return len(self.codecs) > 1 or "av1" in self.codecs


_FIELD_TYPES: dict[str, type] = {
    "kind": str, "height": int, "video_codec": str, "preset": str, "crf": int,
    "maxrate_kbps": int, "audio_codec": str, "audio_bitrate_kbps": int,
    "faststart": bool, "poster_at": float, "poster_height": int, "reencode": str,
    "rungs": list, "segment_s": int, "quality": dict, "pertitle": dict,
}  # fmt: skip
#: H.264 everywhere; HEVC (Main10, HDR kept, fMP4 segments) for HLS ladders.
_CODECS = ("libx264", "libx265")
#: Codecs a rung may list (``codecs = ["h264", "hevc", "av1"]``), in the order variants go.
RUNG_CODECS = ("h264", "hevc", "av1")
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


def _rung_codecs(source: str, name: str, i: int, rung: Any) -> tuple[str, ...]:
    """A rung's ``codecs`` list: known codecs, each once (absent: the profile's codec)."""
    if not isinstance(rung, dict) or "codecs" not in rung:
        return ()
    codecs = rung["codecs"]
    field_name = f"rungs[{i}].codecs"
    if not isinstance(codecs, list) or not codecs:
        raise _bad(source, name, field_name, f"expected a non-empty list, got {codecs!r}")
    for codec in codecs:
        if codec not in RUNG_CODECS:
            raise _bad(source, name, field_name,
                       f"{codec!r} is not one of {', '.join(RUNG_CODECS)}")  # fmt: skip
    if len(set(codecs)) != len(codecs):
        raise _bad(source, name, field_name, f"lists a codec twice: {codecs!r}")
    return tuple(codecs)


def _check_codecs(source: str, name: str, kind: str, rungs: list[Rung], own: str) -> None:
    """A multi-codec ladder is an HLS profile (its CMAF package carries DASH too) whose lowest
    rung has H.264, so a player that only has H.264 always has a variant to play."""
    if not any(r.codecs for r in rungs):
        return
    where = next(i for i, r in enumerate(rungs) if r.codecs)
    if kind != "hls":
        raise _bad(source, name, f"rungs[{where}].codecs", "codec lists are for hls profiles only")
    used = {c for r in rungs for c in r.codecs or (own,)}
    if (len(used) > 1 or "av1" in used) and "h264" not in (rungs[-1].codecs or (own,)):
        raise _bad(source, name, f"rungs[{len(rungs) - 1}].codecs",
                   "the lowest rung of a multi-codec ladder needs h264 (for H.264-only "
                   "players)")  # fmt: skip


def _pertitle(source: str, name: str, table: dict[str, Any]) -> PerTitle:
    """The ``pertitle`` sub-table: every field typed and within its range, crf_min <= crf_max."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _PERTITLE:
            raise _bad(
                source, name, f"pertitle.{key}", f"unknown field (known: {', '.join(_PERTITLE)})"
            )
        want, low, high = _PERTITLE[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (want is int and not isinstance(value, int)) or not low <= value <= high:
            raise _bad(
                source,
                name,
                f"pertitle.{key}",
                f"must be a {want.__name__} within {low}..{high}, got {value!r}",
            )
        values[key] = want(value)
    result = PerTitle(**values)
    if result.crf_min > result.crf_max:
        raise _bad(source, name, "pertitle.crf_min", "must not be above crf_max")
    return result


def _rung(source: str, name: str, i: int, rung: Any) -> Rung:
    """One entry of ``rungs``: height and video_kbps (with target_vmaf: the cap), positive."""
    if not isinstance(rung, dict) or not {"height", "video_kbps"} <= set(rung) <= _RUNG_KEYS:
        raise _bad(
            source, name, f"rungs[{i}]", "needs height and video_kbps (and may have target_vmaf)"
        )
    if not all(isinstance(rung[k], int) and not isinstance(rung[k], bool) and rung[k] > 0
               for k in ("height", "video_kbps")):  # fmt: skip
        raise _bad(source, name, f"rungs[{i}]", "height and video_kbps must be positive")
    target = rung.get("target_vmaf")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)
                               or not 0 < target <= 100):  # fmt: skip
        why = f"must be above 0 and at most 100, got {target!r}"
        raise _bad(source, name, f"rungs[{i}].target_vmaf", why)
    return Rung(
        rung["height"], rung["video_kbps"], target_vmaf=None if target is None else float(target)
    )


_RUNG_KEYS = {"height", "video_kbps", "target_vmaf"}


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
    rungs, codec_lists = [], []
    for i, rung in enumerate(values.pop("rungs", [])):
        codec_lists.append(_rung_codecs(source, name, i, rung))
        rung = {k: v for k, v in rung.items() if k != "codecs"} if isinstance(rung, dict) else rung
        rungs.append(_rung(source, name, i, rung))
    if kind in ("hls", "dash") and not rungs:
        raise _bad(source, name, "rungs", f"a {kind} profile needs at least one rung")
    rungs = [replace(r, codecs=c) for r, c in zip(rungs, codec_lists, strict=True)]
    rungs.sort(key=lambda r: -r.height)
    _check_codecs(source, name, kind, rungs, "hevc" if codec == "libx265" else "h264")
    if "quality" in values:
        values["quality"] = _quality(source, name, values["quality"])
    if "pertitle" in values:
        values["pertitle"] = _pertitle(source, name, values["pertitle"])
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
