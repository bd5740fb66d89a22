"""One job's facts, gathered once: who, what input, which profile, what the probe found.

The job's first step builds a :class:`JobContext` from its probe; every later step and every
fan-out task (rungs, chunks) gets it in its arguments (:meth:`JobContext.to_dict`) instead of
probing the input again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediaapp.errors import InvalidInput
from mediaapp.media.command import Limits
from mediaapp.media.inputs import check_subtitles, inspect, resolve_input, safe_stem
from mediaapp.media.outputs import job_dir
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile, get_profile
from mediaapp.settings import Settings
from mediaapp.storage import staging
from mediaapp.storage.urls import is_url


@dataclass(frozen=True)
class JobContext:
    """What every step of one job needs; ``settings`` are the running process's own."""

    job_id: str
    name: str  # the input, relative to the media root
    profile: Profile
    source: ProbeResult
    settings: Settings
    #: Subtitle files given with the job: ``{"path", "language"}``, paths in the media root.
    subtitles: tuple[dict[str, str | None], ...] = ()

    @classmethod
    def open(
        cls,
        job_id: str,
        name: str,
        profile: str,
        settings: Settings,
        subtitles: Any = None,
    ) -> JobContext:
        """Resolve, probe and validate the input: the one probe of the job (its later steps
        get this context in their message)."""
        chosen = get_profile(profile, settings.profiles_dir)
        _, info = inspect(name, settings, needs_video=chosen.kind != "audio")
        sidecars = check_subtitles(subtitles, settings)
        job_dir(job_id, settings)  # refuse an unsafe job id before anything is written
        return cls(job_id, name, chosen, info, settings, sidecars)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, carried in the arguments of the job's later steps."""
        return {
            "job_id": self.job_id,
            "input": self.name,
            "profile": self.profile.name,
            "source": self.source.to_dict(),
            **({"subtitles": list(self.subtitles)} if self.subtitles else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], settings: Settings) -> JobContext:
        """Back from :meth:`to_dict` in a later step: the input is confined and resolved again
        (cheap, no probe) and must still be the file that was probed."""
        name = data["input"]
        source = ProbeResult.from_dict(data["source"])
        profile = get_profile(data["profile"], settings.profiles_dir)
        subtitles = tuple(data.get("subtitles", ()))  # checked in the first step
        if is_url(name):  # staged when a step reads it (ctx.src), not before
            return cls(data["job_id"], name, profile, source, settings, subtitles)
        path = resolve_input(name, settings)
        size = path.stat().st_size
        if str(path) != source.path or size != source.size:
            raise InvalidInput(
                f"{name!r}: changed while the job ran ({size} bytes, probed {source.size})"
            )
        return cls(data["job_id"], name, profile, source, settings, subtitles)

    @property
    def src(self) -> Path:
        """The input file (resolved inside the media root, or staged from its URL)."""
        if is_url(self.name):
            return staging.stage_input(self.name, self.settings, expect_size=self.source.size)
        return Path(self.source.path)

    @property
    def out_dir(self) -> Path:
        """Where the job's outputs and manifest go."""
        return job_dir(self.job_id, self.settings)

    @property
    def stem(self) -> str:
        """The stem of the job's output file names."""
        return safe_stem(self.name)

    @property
    def limits(self) -> Limits:
        """What the job's ffmpeg commands may use."""
        return Limits.from_settings(self.settings)
