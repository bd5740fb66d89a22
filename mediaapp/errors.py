"""The one error tree of mediaapp (kombu ``exceptions.py`` style).

Each class says in ``retryable`` whether doing the same thing again may succeed, and in
``exit_code`` what the CLI exits with. Every error is rebuilt from its message alone, so it
survives Celery's JSON result serializer and comes back to the client with its own type.
"""

from __future__ import annotations

import re
from typing import Any

#: Longest error message kept, in characters: a message quoting a 10 MiB file name must not
#: become a 10 MiB result, event and audit line.
MAX_MESSAGE_CHARS = 2000


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


class MediaError(Exception):
    """Base of every error mediaapp raises on purpose."""

    retryable = False
    exit_code = 1
    #: Short machine-readable name written into job results and the audit log.
    code = "media_error"

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(clip(str(message), MAX_MESSAGE_CHARS), *args)

    def to_dict(self) -> dict[str, object]:
        """The error as it appears in a job result and an audit record."""
        return {"type": type(self).__name__, "code": self.code, "message": str(self)}


class ConfigurationError(MediaError):
    """A setting, profile name or binary is missing or wrong; fix the configuration."""

    exit_code = 78  # EX_CONFIG
    code = "configuration"


class InvalidInput(MediaError):
    """The input can never be processed as asked; retrying will not help."""

    exit_code = 65  # EX_DATAERR
    code = "invalid_input"


class InputNotFound(InvalidInput):
    """The input file does not exist (or is not a regular file)."""

    code = "not_found"


class InputOutsideRoot(InvalidInput):
    """The input path resolves outside the media root (``..``, absolute path, symlink, URL)."""

    code = "outside_media_root"


class EmptyInput(InvalidInput):
    """The input file has zero bytes."""

    code = "empty"


class NotMedia(InvalidInput):
    """The input is not a media file ffmpeg can open, or has no stream the profile needs."""

    code = "not_media"


class ColourMismatch(InvalidInput):
    """An output's colour tags are not what its rendition promises (an HDR-tagged SDR file,
    a tone-mapped rung not tagged BT.709, an HDR10 rung without its static metadata): the
    same encode would come out the same, so it is not retried."""

    code = "colour_mismatch"


class LimitExceeded(InvalidInput):
    """The input is over a configured limit (size, duration, pixels, streams)."""

    code = "limit_exceeded"


class UnknownProfile(InvalidInput):
    """The job names a profile that does not exist."""

    code = "unknown_profile"


class TransientError(MediaError):
    """Something outside the input failed (disk, broker, a killed process); worth retrying."""

    retryable = True
    exit_code = 75  # EX_TEMPFAIL
    code = "transient"


class OutOfSpace(TransientError):
    """A disk is (or would be) full: the outputs' file system, or the audit log's."""

    code = "out_of_space"


class ServiceUnavailable(TransientError):
    """A service we depend on (broker, result backend) cannot be reached right now."""

    code = "service_unavailable"


class BrokerUnavailable(ServiceUnavailable):
    """RabbitMQ (or the configured broker) refused or dropped the connection."""

    code = "broker_unavailable"


class BackendUnavailable(ServiceUnavailable):
    """The result backend (Redis) cannot be reached, for longer than we wait."""

    code = "backend_unavailable"


class QueueInUse(TransientError):
    """A queue to migrate still has consumers: stop its workers, then migrate."""

    code = "queue_in_use"


class FFmpegError(MediaError):
    """ffmpeg exited with an error: a verdict on the input or the command, not worth a retry.

    Carries the command line, exit code and the tail of stderr. What is worth a retry (a
    kill, a timeout, a stall) is an :class:`FFmpegKilled`, which is also a TransientError.
    """

    code = "ffmpeg"

    def __init__(
        self, message: str, *, cmd: str = "", returncode: int | None = None, stderr: str = ""
    ) -> None:
        super().__init__(message)
        self.cmd = cmd
        self.returncode = returncode
        self.stderr = stderr

    def to_dict(self) -> dict[str, object]:
        """The error with the command, exit code and stderr tail that explain it."""
        return {
            **super().to_dict(),
            "cmd": self.cmd,
            "returncode": self.returncode,
            "stderr": self.stderr,
        }


class FFmpegKilled(FFmpegError, TransientError):
    """ffmpeg was killed by a signal (the OOM killer, an operator): the machine, not the
    input, so retryable like every TransientError."""

    code = "ffmpeg_killed"


class FFmpegTimeout(FFmpegKilled):
    """An ffmpeg command ran past its time limit and was killed (load on the machine)."""

    code = "ffmpeg_timeout"


class FFmpegStalled(FFmpegKilled):
    """An ffmpeg command stopped reporting progress and was killed (a hung decoder, a dead disk)."""

    code = "ffmpeg_stalled"


class EncoderFault(FFmpegError, TransientError):
    """A hardware encoder failed as hardware does (out of memory, device lost, no device,
    driver not loaded): the worker stops using it and the step runs again in software.
    Rebuilt from its message alone (``hardware encoder <name> failed: ...``)."""

    code = "encoder_fault"

    def __init__(self, message: str, *, encoder: str = "", reason: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        named = re.match(r"hardware encoder (\S+) failed: (.*)", str(message), re.S)
        self.encoder = encoder or (named[1] if named else "")
        self.reason = reason or (named[2] if named else str(message))

    def to_dict(self) -> dict[str, object]:
        """The error with the encoder it names."""
        return {**super().to_dict(), "encoder": self.encoder, "reason": self.reason}


class JobCancelled(MediaError):
    """The job was cancelled on request; its running ffmpeg was killed, partial outputs removed."""

    exit_code = 130
    code = "cancelled"


class JobFailed(MediaError):
    """Client side: the job ended in failure; the message says which step, input and reason."""

    code = "job_failed"


class JobTimeout(MediaError):
    """Client side: the job did not finish within the time the caller was ready to wait."""

    exit_code = 124
    code = "job_timeout"


class PoisonMessage(MediaError):
    """A task message was delivered too many times, every attempt dying with its worker."""

    exit_code = 65
    code = "poison_message"


class StorageUnavailable(TransientError):
    """The object store did not answer, or an upload or download broke off; worth retrying."""

    code = "storage_unavailable"


class StorageCorrupt(TransientError):
    """What came back from the store is not what was sent (size or SHA-256); retrying may
    fetch or send it whole."""

    code = "storage_corrupt"
