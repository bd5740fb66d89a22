"""docker-compose.yml: valid against the Compose spec, and every app service's command runs here
(no Docker engine on these machines: the commands are run directly against the local RabbitMQ)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .conftest import BIN, RABBIT_URL, REDIS_URL, REPO, Proc, child_env, queue_depth
from .test_flower import free_port, get

COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
APP_SERVICES = ("worker-video", "worker-default", "audit", "flower")
_VAR = re.compile(r"\$\{([A-Z_]+)(?::[?-][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.unit
def test_compose_file_is_valid_against_the_spec() -> None:
    import jsonschema

    if not SCHEMA.is_file():
        pytest.fail(f"Compose schema missing at {SCHEMA}")
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(compose())


@pytest.mark.unit
def test_compose_shape_and_secrets() -> None:
    services = compose()["services"]
    assert set(APP_SERVICES) <= services.keys() and {"rabbitmq", "redis"} <= services.keys()
    assert {services[s]["image"] for s in APP_SERVICES} == {"mediaapp:latest"}
    assert all(services[s]["build"] == "." for s in APP_SERVICES)
    major = int(services["rabbitmq"]["image"].split(":")[1].split(".")[0])
    assert major >= 4, "keep RabbitMQ on a current release"
    text = COMPOSE.read_text()
    assert "guest" not in text, "no default credentials in the compose file"
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASS", "USER")):
                assert _VAR.fullmatch(str(value)), f"{name}.{key} must come from the environment"
    assert services["worker-video"]["command"][:6] == [
        "celery",
        "-A",
        "mediaapp",
        "worker",
        "-Q",
        "video_queue",
    ]
    assert "audit_queue" not in json.dumps(services["worker-default"]["command"])


def interpolate(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env[m.group(1)], value)


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_app_service_command_runs_here(
    service: str, spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    spec = compose()["services"][service]
    secrets = {"FLOWER_USER": "ops", "FLOWER_PASSWORD": "pw-from-env"}
    env = child_env(
        MEDIAAPP_BROKER_URL=RABBIT_URL,
        MEDIAAPP_RESULT_BACKEND=REDIS_URL,
        MEDIAAPP_DATA_DIR=str(tmp_path / "data"),
        MEDIAAPP_AUDIT_LOG=str(tmp_path / "data" / "audit.jsonl"),
        **{
            k: interpolate(str(v), secrets)
            for k, v in spec["environment"].items()
            if k.startswith("FLOWER_")
        },
    )
    cmd = [interpolate(part, secrets) for part in spec["command"]]
    port = free_port()
    if service == "flower":
        cmd[cmd.index("--port") + 1] = str(port)
    cmd[0] = str(BIN / cmd[0])  # the venv's celery / mediaapp, exactly as the image has them
    proc = spawn(cmd, env, service)
    if service.startswith("worker"):
        node = cmd[cmd.index("-n") + 1].replace("%h", socket.gethostname())
        proc.wait_for("ready.", timeout=60)
        ping = subprocess.run(
            [str(BIN / "celery"), "-A", "mediaapp", "inspect", "ping", "-d", node, "-t", "10"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "pong" in ping.stdout, ping.stdout + ping.stderr
        queue = cmd[cmd.index("-Q") + 1]
        assert queue_depth(RABBIT_URL, queue)[1] == 1
    elif service == "audit":
        proc.wait_for("audit consumer ready", timeout=30)
        time.sleep(1)
        assert proc.alive() and queue_depth(RABBIT_URL, "audit_queue")[1] == 1
    else:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(f"{base}/api/workers", auth=None)[0] == 401:
                    break
            except OSError:
                time.sleep(0.3)
        assert get(f"{base}/api/workers", auth=None)[0] == 401
        assert get(f"{base}/api/workers", auth=("ops", "pw-from-env"))[0] == 200
        assert "pw-from-env" not in " ".join(cmd) and os.environ.get("FLOWER_PASSWORD") is None
