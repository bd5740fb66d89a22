"""Faults the soak injects for real: a Redis of its own to restart, a small tmpfs under the
audit log to fill and free, a plain-Kombu producer sending the same upload event twice."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server for the soak only (the shared one is never restarted), persisting with
    an fsynced append-only file: a restart keeps results, as a deployed Redis would."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                time.sleep(0.2)  # loading the append-only file
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class SmallDisk:
    """A tmpfs (root only) that can be filled to a few KiB and freed again."""

    def __init__(self, path: Path, size: str = "2m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
        )
        self.mounted = done.returncode == 0
        self.filler = path / "filler"

    def fill(self, leave: int = 12 * 1024) -> None:
        st = os.statvfs(self.path)
        with open(self.filler, "wb") as fh:
            fh.write(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)


def publish_upload_twice(broker_url: str, name: str) -> tuple[str, list[str]]:
    """Publish one ``video.upload`` event twice (a producer's retry); return its event id and
    the two message ids."""
    from kombu import Connection, Exchange

    exchange = Exchange("media_exchange", type="topic", durable=True)
    event_id = f"soak-upload-{uuid.uuid4().hex[:12]}"
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    with Connection(broker_url) as conn:
        producer = conn.Producer(serializer="json")
        for message_id in ids:
            producer.publish({"file": name, "id": event_id}, exchange=exchange,
                             routing_key="video.upload", delivery_mode=2, message_id=message_id,
                             declare=[exchange])  # fmt: skip
    return event_id, ids


def publish_burst(broker_url: str, n: int) -> list[str]:
    """Publish ``n`` plain events (audited only): traffic for the audit log; their ids."""
    from kombu import Connection, Exchange

    exchange = Exchange("media_exchange", type="topic", durable=True)
    ids = [f"soak-burst-{uuid.uuid4().hex}" for _ in range(n)]
    with Connection(broker_url) as conn:
        producer = conn.Producer(serializer="json")
        for i, message_id in enumerate(ids):
            producer.publish({"n": i, "pad": "x" * 300}, exchange=exchange,
                             routing_key="user.soak", delivery_mode=2, message_id=message_id,
                             declare=[exchange])  # fmt: skip
    return ids


def torn_lines(path: Path) -> int:
    """Lines of a JSON Lines file that do not parse, plus one if the last has no newline."""
    import json

    if not path.exists():
        return 0
    data = path.read_bytes()
    bad = 0 if not data or data.endswith(b"\n") else 1
    for line in data.splitlines():
        try:
            json.loads(line)
        except ValueError:
            bad += 1
    return bad


def count(records: list[dict[str, Any]], **match: Any) -> int:
    """Records whose fields equal every ``match``."""
    return sum(1 for r in records if all(r.get(k) == v for k, v in match.items()))
