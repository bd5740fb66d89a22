"""Real dependency failures for tests: a private redis-server to stop and start, a small
tmpfs to fill, a Celery app pointed at them. Never the shared Redis on 6379."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mediaapp.settings import Settings

#: The ``mediaapp`` command of this checkout (the venv's script may belong to another one).
MEDIAAPP = [sys.executable, "-m", "mediaapp"]


def free_port() -> int:
    """A TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of our own on a free port, no persistence: stop() is a real outage."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def own_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (we are root here), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``path`` until ``leave_bytes`` are free; return the filler."""
    filler = path / "filler"
    free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    try:
        with open(filler, "wb") as fh:
            fh.write(b"\0" * max(free - leave_bytes, 0))
    except OSError as exc:  # an encode wrote meanwhile: the disk is full, which is the point
        if exc.errno != errno.ENOSPC:
            raise
    return filler


def app_for(**overrides: Any) -> Any:
    """A Celery app like the workers' but with some settings changed (another backend)."""
    from mediaapp.jobs.app import create_app

    env = {k: v for k, v in os.environ.items() if k.startswith("MEDIAAPP_")}
    env.update({f"MEDIAAPP_{k.upper()}": str(v) for k, v in overrides.items()})
    return create_app(Settings.from_env(env))
