"""Flower as operators use it: login required, tasks with progress and results, history kept."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from mediaapp.errors import ConfigurationError
from mediaapp.jobs.client import submit
from mediaapp.ops.cli import main
from mediaapp.ops.flower import flower_invocation
from mediaapp.settings import Settings

from ..conftest import RABBIT_VHOST, Proc, child_env, worker_cmd
from ..outages import MEDIAAPP

AUTH = ("ops", "s3cret-flower")


@pytest.mark.unit
def test_flower_never_starts_without_a_login(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigurationError, match="FLOWER_USER"):
        flower_invocation(Settings(), {}, port=5555, address="127.0.0.1")
    assert main(["flower"]) == 78
    assert "login" in capsys.readouterr().err


@pytest.mark.unit
def test_flower_secrets_stay_off_the_command_line() -> None:
    settings = Settings(broker_url="amqp://bob:brokerpw@10.0.0.5:5672//")
    cmd, env = flower_invocation(
        settings, {"FLOWER_USER": "u", "FLOWER_PASSWORD": "pw"}, port=1, address="0.0.0.0"
    )
    assert not any("pw" in part for part in cmd)
    assert env["FLOWER_BASIC_AUTH"] == "u:pw"
    assert env["FLOWER_BROKER_API"] == "http://bob:brokerpw@10.0.0.5:15672/api/"
    assert "--persistent=True" in cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, auth: tuple[str, str] | None = AUTH) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def start_flower(spawn: Callable[..., Proc], port: int, data: Path) -> Proc:
    env = child_env(FLOWER_USER=AUTH[0], FLOWER_PASSWORD=AUTH[1], MEDIAAPP_DATA_DIR=str(data))
    proc = spawn([*MEDIAAPP, "flower", "--port", str(port)], env, "flower")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(f"http://127.0.0.1:{port}/api/workers", auth=None)[0] == 401:
                break
        except OSError:
            pass
        time.sleep(0.3)
    else:
        raise AssertionError(proc.text()[-2000:])
    # Answering HTTP is not consuming events: a task-sent event published before Flower's
    # event receiver has its celeryev.* queue is lost to it (the job then never shows as
    # queued). Wait for that queue to have its consumer, as the broker sees it.
    while time.monotonic() < deadline:
        if event_consumers() > 0:
            return proc
        time.sleep(0.3)
    raise AssertionError("Flower's event receiver never consumed: " + proc.text()[-2000:])


def event_consumers() -> int:
    """Consumers of celeryev.* queues in the test vhost (RabbitMQ management API)."""
    vhost = urllib.parse.quote(RABBIT_VHOST, safe="")
    url = f"http://127.0.0.1:15672/api/queues/{vhost}?columns=name,consumers"
    status, body = get(url, auth=("guest", "guest"))
    queues = json.loads(body) if status == 200 else []
    return sum(q.get("consumers", 0) for q in queues if q["name"].startswith("celeryev"))


@pytest.mark.integration
@pytest.mark.e2e
def test_flower_shows_jobs_and_keeps_history(
    spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    port = free_port()
    flower = start_flower(spawn, port, tmp_path)
    base = f"http://127.0.0.1:{port}"
    job = submit("clip.mp4")  # no worker yet: the job's first step is queued
    queued: dict = {}
    for _ in range(100):  # task-sent events make queued jobs visible
        status, body = get(f"{base}/api/tasks")
        tasks = json.loads(body) if status == 200 else {}
        queued = tasks.get(job.id, {})
        if queued.get("state"):
            break
        time.sleep(0.3)
    assert queued.get("state") == "PENDING", (queued, list(tasks))
    cmd, _ = worker_cmd("video_queue", "-c", "1")
    spawn(cmd, name="worker")
    job.wait(timeout=90)
    assert get(f"{base}/api/tasks", auth=None)[0] == 401  # the API is behind the login too
    task: dict = {}
    for _ in range(100):
        status, body = get(f"{base}/api/tasks")
        task = json.loads(body).get(job.id, {}) if status == 200 else {}
        if task.get("state") == "SUCCESS":
            break
        time.sleep(0.3)
    assert task.get("state") == "SUCCESS", task
    assert task["name"] == "video.transcode" and "clip.mp4" in task["kwargs"]
    assert job.id in task["kwargs"]
    status, page = get(f"{base}/tasks")
    assert status == 200 and "guest:guest" not in page
    for open_page in ("/metrics", "/healthcheck"):  # Flower leaves these open: not ours
        assert get(f"{base}{open_page}", auth=None)[0] == 401, open_page
        assert get(f"{base}{open_page}", auth=("ops", "wrong"))[0] == 401, open_page
        assert get(f"{base}{open_page}")[0] == 200, open_page
    status, broker = get(f"{base}/broker")  # queue lengths from the management API
    assert status == 200 and "video_queue" in broker and "default_queue" in broker
    depths = subprocess.run(
        [*MEDIAAPP, "queues", "--json"], env=child_env(), capture_output=True, text=True
    )
    shown = json.loads(depths.stdout)
    assert {"audit_queue", "dead_letter_queue"} <= shown.keys()
    assert shown["video_queue"]["consumers"] == 1
    # History survives a restart (persistent state in the data dir).
    flower.stop()
    time.sleep(1)
    start_flower(spawn, port, tmp_path)
    status, body = get(f"{base}/api/tasks")
    assert job.id in json.loads(body)


@pytest.mark.integration
@pytest.mark.e2e
def test_flower_shows_progress_of_a_running_step(
    spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path, media_root: Path
) -> None:
    from ..conftest import long_clip

    port = free_port()
    start_flower(spawn, port, tmp_path)
    cmd, _ = worker_cmd("video_queue", "-c", "1")
    spawn(cmd, name="worker")
    job = submit(long_clip(media_root))
    seen: dict = {}
    states = []
    for _ in range(200):
        status, body = get(f"http://127.0.0.1:{port}/api/task/info/{job.id}")
        seen = json.loads(body) if status == 200 else {}
        states.append((status, seen.get("state"), job.status()))
        if seen.get("state") == "PROGRESS" and "%" in str(seen.get("result")):
            break
        time.sleep(0.2)
    assert seen.get("state") == "PROGRESS", states
    percent = float(seen["result"].split()[1].rstrip("%"))
    assert 0 < percent < 100 and seen["result"].startswith("transcode ")
    job.cancel()
