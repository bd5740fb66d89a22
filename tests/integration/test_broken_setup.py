"""The CLI against a broken set-up: one line naming the service, its URL without the
password and what to check, the README's exit code (75 transient, 78 configuration, 65 bad
input), within a few seconds; never a traceback."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import RABBIT_URL, Proc, child_env
from ..outages import MEDIAAPP, free_port

pytestmark = pytest.mark.integration


def run(*args: str, **env: str) -> tuple[int, str, float]:
    started = time.monotonic()
    out = subprocess.run([*MEDIAAPP, *args], env=child_env(**env), capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    return out.returncode, (out.stdout + out.stderr).strip(), time.monotonic() - started


def one_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("amqp://guest:Pw-s3cret@127.0.0.1:{port}//", 75, ["RabbitMQ", "not reachable",
                                                          "MEDIAAPP_BROKER_URL"]),
        ("amqp://guest:Pw-s3cret@127.0.0.1:5672//", 78, ["RabbitMQ", "login", "password"]),
        ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost", 78, ["vhost", "no-such-vhost"]),
    ],
    ids=["port-closed", "wrong-password", "unknown-vhost"],
)  # fmt: skip
def test_broker_set_up_errors(url: str, code: int, words: list[str], rabbitmq: str) -> None:
    url = url.format(port=free_port())
    for command in (["queues"], ["submit", "clip.mp4"], ["status", "some-job"]):
        env = {"MEDIAAPP_BROKER_URL": url}
        rc, text, took = run(*command, **env)
        if command[0] == "status":  # status needs only the result backend: it works
            assert rc == 0, text
            continue
        line = one_line(text)
        assert rc == code, (command, text)
        assert all(w in line for w in words), line
        assert "Pw-s3cret" not in line and "127.0.0.1" in line
        assert took < 30, f"{command} took {took:.1f} s (no retry loop)"


def test_redis_down(rabbitmq: str) -> None:
    url = f"redis://:Pw-s3cret@127.0.0.1:{free_port()}/0"
    for command in (["status", "some-job"], ["submit", "clip.mp4"], ["cancel", "some-job"]):
        rc, text, took = run(*command, MEDIAAPP_RESULT_BACKEND=url)
        line = one_line(text)
        assert rc == 75, (command, text)
        assert "Redis" in line and "MEDIAAPP_RESULT_BACKEND" in line and "Pw-s3cret" not in line
        assert took < 30, f"{command} took {took:.1f} s (no retry loop)"


@pytest.mark.e2e
def test_refused_input_under_submit_wait_exits_65(video_worker: Proc, media_root: Path) -> None:
    (media_root / "notes.mp4").write_text("not a video at all\n" * 100)
    rc, text, _ = run("submit", "notes.mp4", "--wait", "--timeout", "60",
                      MEDIAAPP_BROKER_URL=RABBIT_URL)  # fmt: skip
    assert rc == 65, text
    assert "NotMedia" in text and "Traceback" not in text
