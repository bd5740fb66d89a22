"""What this host's ffmpeg can really encode: listed by ``-encoders``, then proven.

A listed encoder is not a working one: the bundled ffmpeg lists ``h264_nvenc`` on a machine
without a GPU, and a worker trusting the list would take HEVC or NVENC work and fail every
job. So each candidate of :data:`~mediaapp.defaults.CAPABILITY_ENCODERS` gets a one-frame test
encode (lavfi ``testsrc``, tiny, ``-f null -``) through :func:`command.run`; only those that
finish are proven. The result is cached per process (per ffmpeg binary): a worker detects
once, at start-up.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from mediaapp import defaults
from mediaapp.errors import FFmpegError
from mediaapp.media import command

log = logging.getLogger(__name__)

#: Extra options a family needs before it can encode at all: VAAPI takes frames from a
#: device, so its test uploads them there (and fails with the device's own reason).
_FAMILY_OPTIONS = {
    "vaapi": [
        "-init_hw_device",
        "vaapi=va",
        "-filter_hw_device",
        "va",
        "-vf",
        "format=nv12,hwupload",
    ],
}
_LISTED = re.compile(r"^\s*V\S*\s+(\S+)\s", re.MULTILINE)


@dataclass(frozen=True)
class Trial:
    """One candidate encoder and the outcome of its test encode."""

    encoder: str
    codec: str
    hardware: bool
    proven: bool
    reason: str = ""  # why it was refused; "" when proven
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "codec": self.codec, "hardware": self.hardware,
                "proven": self.proven, "reason": self.reason, "seconds": self.seconds}  # fmt: skip


@dataclass(frozen=True)
class Capabilities:
    """Per codec, the encoders this worker proved (and may use), and why the others were refused.

    ``claimed`` is the operator's narrowing (``MEDIAAPP_CAPABILITIES``), ``dropped`` what it
    claimed that failed its test: dropped, never offered.
    """

    ffmpeg: str
    trials: tuple[Trial, ...]
    claimed: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    def _allowed(self, trial: Trial) -> bool:
        if not trial.proven:
            return False
        return not self.claimed or trial.codec in self.claimed or trial.encoder in self.claimed

    def encoders(self) -> dict[str, dict[str, list[str]]]:
        """codec → {"software": [...], "hardware": [...]}, the proven and allowed encoders."""
        found: dict[str, dict[str, list[str]]] = {}
        for trial in self.trials:
            if self._allowed(trial):
                kinds = found.setdefault(trial.codec, {"software": [], "hardware": []})
                kinds["hardware" if trial.hardware else "software"].append(trial.encoder)
        return found

    @property
    def codecs(self) -> tuple[str, ...]:
        """The codecs this worker offers, in the order of CAPABILITY_ENCODERS."""
        offered = self.encoders()
        return tuple(c for c in defaults.CAPABILITY_ENCODERS if c in offered)

    def refused(self) -> dict[str, str]:
        """encoder → the reason its test failed (or that ffmpeg does not list it)."""
        return {t.encoder: t.reason for t in self.trials if not t.proven}

    def narrow(self, claims: Iterable[str]) -> Capabilities:
        """Keep only the claimed codecs/encoders; a claim that failed its test is logged and
        dropped (a fleet shares one setting, and a host without the GPU still serves the rest)."""
        claimed = tuple(claims)
        dropped = []
        for claim in claimed:
            matching = [t for t in self.trials if claim in (t.codec, t.encoder)]
            if not any(t.proven for t in matching):
                why = "; ".join(f"{t.encoder}: {t.reason}" for t in matching) or "unknown"
                log.warning("MEDIAAPP_CAPABILITIES claims %s, which failed its test (%s): dropped",
                            claim, why)  # fmt: skip
                dropped.append(claim)
        return replace(self, claimed=claimed, dropped=tuple(dropped))

    def to_dict(self) -> dict[str, Any]:
        """The worker.capabilities event's payload."""
        return {
            "codecs": list(self.codecs),
            "encoders": self.encoders(),
            "refused": self.refused(),
            "claimed": list(self.claimed),
            "dropped": list(self.dropped),
            "ffmpeg": self.ffmpeg,
        }


def listed_encoders(limits: command.Limits = command.DEFAULT_LIMITS) -> frozenset[str]:
    """The video encoders ``ffmpeg -encoders`` names."""
    return frozenset(_LISTED.findall(command.query("-encoders", limits=limits)))


def trial_args(encoder: str, binary: str) -> list[str]:
    """The one-frame test encode of ``encoder``: lavfi testsrc in, nothing out."""
    family = encoder.rsplit("_", 1)[-1]
    size = defaults.ENCODER_TEST_SIZE
    return [binary, "-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1",
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25", "-frames:v", "1",
            *_FAMILY_OPTIONS.get(family, ["-pix_fmt", "yuv420p"]),
            "-c:v", encoder, "-f", "null", "-"]  # fmt: skip


def refusal(encoder: str, stderr: str, fallback: str) -> str:
    """The line of ffmpeg's stderr that says why ``encoder`` could not open (its own log
    line, e.g. ``Cannot load libcuda.so.1``), else ``fallback``."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(f"[{encoder} @")]
    errors = [line for line in lines if re.search(r"error|cannot|failed|impossible", line, re.I)]
    pick = (own or errors or [fallback])[0]
    return re.sub(r"^\[[^]]+\]\s*", "", pick)[: defaults.MAX_QUOTE_CHARS]


def prove(encoder: str, codec: str, limits: command.Limits) -> Trial:
    """Run the test encode of one encoder; never raises."""
    hardware = encoder not in defaults.SOFTWARE_ENCODERS
    started = time.monotonic()
    try:
        command.run(trial_args(encoder, command.ffmpeg_binary(limits)),
                    timeout_s=defaults.ENCODER_TEST_TIMEOUT_S, limits=limits)  # fmt: skip
    except FFmpegError as exc:
        why = refusal(encoder, exc.stderr or "", str(exc))
        return Trial(encoder, codec, hardware, False, why, round(time.monotonic() - started, 3))
    return Trial(encoder, codec, hardware, True, "", round(time.monotonic() - started, 3))


#: Why an encoder outside the claims has no trial.
NOT_CLAIMED = "not claimed (MEDIAAPP_CAPABILITIES): not tested"


@lru_cache(maxsize=4)
def _detect(limits: command.Limits, claims: tuple[str, ...]) -> tuple[str, tuple[Trial, ...]]:
    listed = listed_encoders(limits)
    jobs = [(e, c) for c, names in defaults.CAPABILITY_ENCODERS.items() for e in names]
    tested = {e for e, c in jobs if e in listed and (not claims or {e, c} & set(claims))}
    # A few at a time: the software tests take a core for up to a second each.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {e: pool.submit(prove, e, c, limits) for e, c in jobs if e in tested}
        trials = tuple(
            futures[e].result() if e in futures
            else Trial(e, c, e not in defaults.SOFTWARE_ENCODERS, False,
                       "not listed by -encoders" if e not in listed else NOT_CLAIMED)
            for e, c in jobs
        )  # fmt: skip
    return command.ffmpeg_version(limits), trials


def detect(
    limits: command.Limits = command.DEFAULT_LIMITS, claims: Iterable[str] = ()
) -> Capabilities:
    """This process's capabilities (detected once per ffmpeg binary), narrowed by ``claims``:
    only the claimed encoders are tested (a worker's boot waits for no encoder it won't use)."""
    claimed = tuple(claims)
    version, trials = _detect(limits, claimed)
    caps = Capabilities(ffmpeg=version, trials=trials)
    return caps.narrow(claimed) if claimed else caps


def clear_cache() -> None:
    """Forget the detection (tests; a worker detects once in its life)."""
    _detect.cache_clear()
