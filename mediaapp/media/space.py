"""Disk space for outputs: a check before an encode, and ENOSPC turned into OutOfSpace.

An encode that fills the disk fails late (ffmpeg's "No space left on device", exit 228)
and leaves a partial job folder on a disk that is now full for everyone. Instead: estimate
the outputs' size from the source's duration and the profile's bit rates, refuse to start
without that much free space (plus a margin), and when the disk fills anyway, remove the
job folder and raise :class:`~mediaapp.errors.OutOfSpace` (retryable: space may come back).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mediaapp import defaults
from mediaapp.errors import OutOfSpace
from mediaapp.media.command import ENOSPC_TEXT
from mediaapp.media.outputs import discard_outputs, job_dir
from mediaapp.media.profiles import Profile
from mediaapp.settings import Settings

log = logging.getLogger(__name__)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def estimate_output_bytes(profile: Profile, duration_s: float, source_bytes: int) -> int:
    """A generous estimate of a job's outputs: duration x the profile's capped bit rates."""
    if not duration_s:  # unknown duration: assume the outputs are as large as the source
        return int(source_bytes * defaults.OUTPUT_ESTIMATE_FACTOR)
    # Every codec of a rung at the rung's rate (multi-codec ladders): generous, as it should be.
    video_kbps = (sum(r.video_kbps * len(profile.rung_codecs(r)) for r in profile.rungs)
                  or profile.maxrate_kbps)  # fmt: skip
    if profile.kind in ("audio", "thumbs"):
        video_kbps = 0
    audio_kbps = profile.audio_bitrate_kbps * (2 if profile.kind == "audio" else 1)
    bits = duration_s * (video_kbps + audio_kbps) * 1000
    return int(bits / 8 * defaults.OUTPUT_ESTIMATE_FACTOR)


def check_free_space(directory: Path, needed: int) -> None:
    """Raise OutOfSpace unless ``needed`` bytes plus the margin are free under ``directory``."""
    free = free_bytes(directory)
    if free < needed + defaults.MIN_FREE_BYTES:
        raise OutOfSpace(
            f"not enough free space for the outputs in {directory}: {free // 1024**2} MiB "
            f"free, about {(needed + defaults.MIN_FREE_BYTES) // 1024**2} MiB needed; free "
            "some space (or move MEDIAAPP_OUTPUT_ROOT) and the job is retried"
        )


def is_enospc(exc: BaseException) -> bool:
    """True for a write that hit a full disk (an OSError, or ffmpeg saying so)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return ENOSPC_TEXT in str(getattr(exc, "stderr", "") or "")


@contextlib.contextmanager
def job_space(
    job_id: str, profile: Profile, settings: Settings, probed: dict[str, Any] | None
) -> Iterator[None]:
    """Check space before a job's encode; on a full disk remove its folder, raise OutOfSpace."""
    out_root = settings.output_root
    source = probed or {}
    needed = estimate_output_bytes(
        profile, float(source.get("duration_s") or 0), int(source.get("size") or 0)
    )
    check_free_space(out_root, needed)
    try:
        yield
    except OutOfSpace:
        discard_outputs(job_id, settings)
        raise
    except Exception as exc:
        if not is_enospc(exc):
            raise
        folder = job_dir(job_id, settings)
        discard_outputs(job_id, settings)
        log.error("job %s: disk full under %s; job folder removed", job_id, folder)
        raise OutOfSpace(
            f"disk full writing the outputs in {folder} ({free_bytes(out_root) // 1024} KiB "
            f"free now); the job folder was removed and the job is retried"
        ) from exc
