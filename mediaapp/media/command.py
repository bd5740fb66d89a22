"""The one boundary that runs ffmpeg (the ffmpeg-normalize pattern).

It finds the binary, logs the exact command line (``shlex.join``), captures stderr, turns
``-progress`` output into callbacks, enforces a timeout by killing the whole process group,
and raises one error type (:class:`~mediaapp.errors.FFmpegError`) carrying the command, the
exit code and the stderr tail. Nothing else in mediaapp starts an ffmpeg process.

Commands are built with ``ffmpeg-python``; :func:`input_file` is the only way inputs are made,
so every input is an absolute ``file:`` URL restricted to the ``file`` protocol: a name starting
with ``-`` can never be read as an option and ``concat:``/``http:`` can never be reached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg

from mediaapp import defaults
from mediaapp.errors import (
    ConfigurationError,
    EncoderFault,
    FFmpegError,
    FFmpegKilled,
    FFmpegStalled,
    FFmpegTimeout,
    OutOfSpace,
)
from mediaapp.media import hardware
from mediaapp.media.ffprogress import ProgressCallback, parse_progress_block
from mediaapp.media.phases import timed
from mediaapp.media.probe import SAFE_FORMATS

log = logging.getLogger(__name__)

#: Options every command gets: no stdin, no banner, machine-readable progress on stdout.
_COMMON_OPTS = ("-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1")


@dataclass(frozen=True)
class Limits:
    """What an ffmpeg run may use: which binary, how long, how many pixels and threads.

    Built from the settings by the caller (:meth:`from_settings`); the defaults are the
    documented ones, so a caller without settings gets exactly what a fresh install does.
    """

    binary: str = ""  # empty: PATH, then the imageio-ffmpeg binary
    timeout_s: float = defaults.FFMPEG_TIMEOUT_S
    stall_timeout_s: float = defaults.STALL_TIMEOUT_S
    max_pixels: int = defaults.MAX_PIXELS
    threads: int = 0  # 0: ffmpeg chooses

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits a :class:`~mediaapp.settings.Settings` asks for."""
        return cls(
            binary=settings.ffmpeg,
            timeout_s=settings.ffmpeg_timeout_s,
            stall_timeout_s=settings.stall_timeout_s,
            max_pixels=settings.max_pixels,
            threads=settings.ffmpeg_threads,
        )


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class RunResult:
    """A finished ffmpeg command."""

    cmd: str
    elapsed_s: float
    stderr_tail: str


@lru_cache(maxsize=4)
def _find_binary(configured: str) -> str:
    if configured:
        found = shutil.which(configured)
        if not found:
            raise ConfigurationError(f"MEDIAAPP_FFMPEG={configured!r} is not an executable")
        return found
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigurationError("no ffmpeg on PATH and imageio-ffmpeg is not installed") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffmpeg_binary(limits: Limits = DEFAULT_LIMITS) -> str:
    """The ffmpeg to run: ``MEDIAAPP_FFMPEG``, else ``PATH``, else the imageio-ffmpeg wheel's."""
    return _find_binary(limits.binary)


@lru_cache(maxsize=4)
def _version(binary: str) -> str:
    out = subprocess.run(
        [binary, "-hide_banner", "-version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0].strip()


def ffmpeg_version(limits: Limits = DEFAULT_LIMITS) -> str:
    """The version string of the binary in use (recorded in every manifest)."""
    return _version(ffmpeg_binary(limits))


def query(*flags: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Stdout of an informational command (``-encoders``): no media in, nothing written."""
    args = [ffmpeg_binary(limits), "-hide_banner", *flags]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        raise FFmpegError(
            f"ffmpeg {' '.join(flags)} exited with {describe_returncode(out.returncode)}",
            cmd=shlex.join(args),
            returncode=out.returncode,
            stderr=out.stderr[-defaults.STDERR_TAIL_CHARS :],
        )
    return out.stdout


def input_file(path: Path, **options: Any) -> Any:
    """An ffmpeg-python input node for a local file, and nothing but a local file.

    Restricted three ways: the ``file`` protocol only, real media demuxers only (no playlist
    or concat demuxer that could open other files), and no decoded picture over the
    configured pixel limit (:func:`build_args` adds that to every input, so a header
    claiming 30000x30000 is refused, not allocated).
    """
    options.setdefault("protocol_whitelist", "file")
    options.setdefault("format_whitelist", SAFE_FORMATS)
    return ffmpeg.input(f"file:{Path(path).resolve()}", **options)


def concat_input(list_path: Path) -> Any:
    """An input node reading the files a concat list names (the list is always our own).

    ``safe=1`` accepts only plain relative names beside the list, so even a tampered list
    cannot reach another directory, another protocol or another demuxer.
    """

    return ffmpeg.input(
        f"file:{Path(list_path).resolve()}",
        f="concat",
        safe=1,
        protocol_whitelist="file",
        format_whitelist=f"concat,{SAFE_FORMATS}",
    )


def segments_input(paths: Sequence[Path], **options: Any) -> Any:
    """An input node reading files of our own, in order, as one byte stream (an HLS rung's
    MPEG-TS segments, a DASH representation's init segment and fragments).

    The ``concat`` protocol over ``file:`` URLs only; a name holding ``|`` (the protocol's
    separator) is refused rather than split. One file is plain :func:`input_file`.
    ``options`` are input options (``ss``, ``t``...).
    """
    if len(paths) == 1:
        return input_file(paths[0], **options)
    urls = [output_target(p) for p in paths]
    if not paths or any("|" in u for u in urls):
        raise ConfigurationError(f"cannot read {[str(p) for p in paths]} as one stream")
    return ffmpeg.input(
        "concat:" + "|".join(urls),
        protocol_whitelist="file,concat",
        format_whitelist=SAFE_FORMATS,
        **options,
    )


def output_target(path: Path) -> str:
    """An output URL that cannot be mistaken for an option or another protocol."""
    return f"file:{Path(path).resolve()}"


def build_args(stream: Any, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """The full argument vector for an ffmpeg-python stream: our common options first, and
    the pixel limit and decoder threads before every input, whoever built the graph."""
    args = ffmpeg.compile(stream, cmd=ffmpeg_binary(limits), overwrite_output=True)
    per_input = ["-max_pixels", str(limits.max_pixels)]
    if limits.threads:  # decoder threads (encoders get theirs as output options)
        per_input += ["-threads", str(limits.threads)]
    body: list[str] = []
    for arg in args[1:]:
        if arg == "-i":
            body += per_input
        body.append(arg)
    threads = limits.threads
    limit = ["-filter_threads", str(threads), "-filter_complex_threads", str(threads)]
    return [args[0], *_COMMON_OPTS, *(limit if threads else []), *body]


@timed("ffmpeg")
def run(
    stream_or_args: Any,
    *,
    duration_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    timeout_s: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> RunResult:
    """Run one ffmpeg command to completion; raise :class:`FFmpegError` if it fails.

    ``stream_or_args`` is an ffmpeg-python stream (the normal case) or a ready argument list
    from :func:`build_args`. ``duration_s`` turns progress into a percentage.
    """
    args = (
        list(stream_or_args)
        if isinstance(stream_or_args, Sequence) and not isinstance(stream_or_args, str)
        else build_args(stream_or_args, limits)
    )
    args = hardware.substitute(args)  # the step's worker may run a hardware encoder
    cmd = shlex.join(args)
    timeout = limits.timeout_s if timeout_s is None else timeout_s
    # Stall detection needs the -progress feed (every command built here has it).
    stall = limits.stall_timeout_s if "-progress" in args else None
    log.info("ffmpeg: %s", cmd)
    started = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a kill takes every child with it
    )
    tail: deque[str] = deque(maxlen=200)
    drain = threading.Thread(target=_drain_stderr, args=(proc, tail), daemon=True)
    drain.start()
    watch = _Watchdog(proc, timeout, stall)
    watch.start()
    try:
        _read_progress(proc, duration_s, on_progress, watch)
        proc.wait()
    finally:
        watch.stop()
        if proc.poll() is None:  # we are unwinding (cancelled, soft time limit, ...)
            kill_group(proc)
        drain.join(timeout=5)
    stderr_tail = "".join(tail)[-defaults.STDERR_TAIL_CHARS :]
    elapsed = time.monotonic() - started
    failure: tuple[type[FFmpegError], str] | None = None
    if watch.verdict == "timeout":
        failure = FFmpegTimeout, f"ffmpeg ran longer than {timeout:g} s and was killed"
    elif watch.verdict == "stall":
        failure = FFmpegStalled, f"ffmpeg made no progress for {stall:g} s and was killed"
    elif proc.returncode != 0:
        why = f"{describe_returncode(proc.returncode)}: {last_line(stderr_tail)}"
        killed = proc.returncode is not None and proc.returncode < 0
        failure = FFmpegKilled if killed else FFmpegError, f"ffmpeg exited with {why}"
    if failure is not None:
        if ENOSPC_TEXT in stderr_tail:
            raise out_of_space(args, stderr_tail)
        error_type, message = failure
        if (device := hardware.fault(args, stderr_tail)) and error_type is FFmpegError:
            raise EncoderFault(f"hardware encoder {device[0]} failed: {device[1]}",
                               encoder=device[0], reason=device[1], cmd=cmd,
                               returncode=proc.returncode, stderr=stderr_tail)  # fmt: skip
        raise error_type(message, cmd=cmd, returncode=proc.returncode, stderr=stderr_tail)
    hardware.record(args)
    log.debug("ffmpeg finished in %.2f s", elapsed)
    return RunResult(cmd=cmd, elapsed_s=elapsed, stderr_tail=stderr_tail)


#: What ffmpeg (the C library) says when a write hits a full disk (it then exits 228).
ENOSPC_TEXT = "No space left on device"


def out_of_space(args: Sequence[str], stderr_tail: str) -> OutOfSpace:
    """The typed error of an ffmpeg command whose output disk is full, naming the path."""
    outputs = [a.removeprefix("file:") for i, a in enumerate(args)
               if i and a.startswith("file:") and args[i - 1] != "-i"]  # fmt: skip
    where = outputs[0] if outputs else "the output"
    return OutOfSpace(f"no space left on device writing {where}: {last_line(stderr_tail)}")


def describe_returncode(code: int | None) -> str:
    """``exit code 1`` or ``signal SIGKILL``: a return code in words."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def last_line(text: str) -> str:
    """The last non-empty line of ffmpeg's stderr: usually the reason it gave up."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``proc`` and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _Watchdog(threading.Thread):
    """Kills the process group when the command runs too long or stops making progress."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float, stall: float | None) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.timeout = timeout
        self.stall = stall
        self.started = self.last_progress = time.monotonic()
        self.verdict: str | None = None
        self._stopped = threading.Event()

    def progressed(self) -> None:
        """Called for every line of the -progress feed."""
        self.last_progress = time.monotonic()

    def run(self) -> None:
        while not self._stopped.wait(0.2) and self.proc.poll() is None:
            now = time.monotonic()
            if now - self.started > self.timeout:
                self.verdict = "timeout"
            elif self.stall is not None and now - self.last_progress > self.stall:
                self.verdict = "stall"
            if self.verdict:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                return

    def stop(self) -> None:
        """End the watch (the command finished or we are unwinding)."""
        self._stopped.set()


def _drain_stderr(proc: subprocess.Popen[bytes], tail: deque[str]) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        tail.append(raw.decode("utf-8", "replace"))


def _read_progress(
    proc: subprocess.Popen[bytes],
    duration_s: float | None,
    on_progress: ProgressCallback | None,
    watch: _Watchdog,
) -> None:
    assert proc.stdout is not None
    block: dict[str, str] = {}
    for raw in proc.stdout:
        watch.progressed()
        key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
        block[key] = value
        if key == "progress":
            if on_progress is not None:
                on_progress(parse_progress_block(block, duration_s))
            block = {}
