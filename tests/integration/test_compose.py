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
from urllib.parse import urlsplit

import pytest
import yaml

from ..conftest import BIN, RABBIT_URL, REDIS_URL, REPO, Proc, child_env, queue_depth
from ..e2e.test_flower import free_port, get

COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
APP_SERVICES = ("worker-video", "worker-default", "audit", "flower")
#: Compose interpolation: ``$$`` (a literal ``$``), ``${NAME}``, ``${NAME:?msg}``,
#: ``${NAME?msg}``, ``${NAME:-default}``, ``${NAME-default}``.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}")
_SECRET_KEY = re.compile(r"PASS|USER|SECRET|TOKEN|KEY", re.IGNORECASE)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """What ``docker compose`` does to a value; a missing required variable raises KeyError."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.groups()
        current = env.get(name)
        unset_or_empty = current is None or (current == "" and op and op.startswith(":"))
        if op and op.endswith("?") and unset_or_empty:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and unset_or_empty:
            return arg
        if current is None:
            raise KeyError(name)
        return current

    return _VAR.sub(one, value)


def only_references(value: str) -> bool:
    """True when every character of ``value`` comes from ``${...}`` references."""
    return bool(value) and _VAR.sub("", value) == ""


def _split_userinfo(userinfo: str) -> list[str]:
    """``user:password`` of a URL, split on the ``:`` outside ``${...}`` references."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(userinfo):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == ":" and depth == 0:
            parts.append(userinfo[start:i])
            start = i + 1
    return [*parts, userinfo[start:]]


@pytest.mark.unit
def test_interpolate_follows_compose_rules() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert interpolate("${A}:${A:?need A}@h/$${A}", env) == "x:x@h/${A}"
    assert interpolate("${B:-dflt}|${EMPTY:-d2}|${EMPTY-d3}", env) == "dflt|d2|"
    with pytest.raises(KeyError, match="need B"):
        interpolate("${B:?need B}", env)
    with pytest.raises(KeyError):
        interpolate("${EMPTY:?set it}", env)
    assert _split_userinfo("${U:?set U}:${P:?set P}") == ["${U:?set U}", "${P:?set P}"]
    assert not only_references("${U}x") and only_references("${U}${P}")


@pytest.mark.unit
def test_compose_file_is_valid_against_the_spec() -> None:
    import jsonschema

    if not SCHEMA.is_file():
        pytest.fail(f"Compose schema missing at {SCHEMA} (CI has ../shared beside the clone)")
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(compose())


@pytest.mark.unit
def test_compose_shape_and_secrets() -> None:
    services = compose()["services"]
    assert set(APP_SERVICES) <= services.keys() and {"rabbitmq", "redis"} <= services.keys()
    # One image for every app service, built from the Dockerfile.
    assert {services[s]["image"] for s in APP_SERVICES} == {"mediaapp:latest"}
    assert {json.dumps(services[s]["build"]) for s in APP_SERVICES} == {json.dumps(".")}
    for s in APP_SERVICES:
        deps = services[s]["depends_on"]
        assert {d: deps[d]["condition"] for d in deps} == {
            "rabbitmq": "service_healthy",
            "redis": "service_healthy",
            "s3": "service_healthy",
        }, s
        assert isinstance(services[s]["command"], list), f"{s}: exec form, not a shell string"
    major = int(services["rabbitmq"]["image"].split(":")[1].split(".")[0])
    assert major >= 4, "keep RabbitMQ on a current release"
    assert "guest" not in COMPOSE.read_text(), "no default credentials in the compose file"
    # No literal secret anywhere: names that look secret, and the user:password of any URL,
    # are ${VAR} references only (and required ones: no `:-default` fallback to a password).
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if _SECRET_KEY.search(key):
                assert only_references(text), f"{name}.{key} must come from the environment"
                assert ":-" not in text, f"{name}.{key}: no default for a credential"
            userinfo = urlsplit(text).netloc.rpartition("@")[0] if "://" in text else ""
            if userinfo:
                assert ":-" not in userinfo, f"{name}.{key}: no default for a credential"
                assert all(only_references(part) for part in _split_userinfo(userinfo)), (
                    f"{name}.{key}: the user and password of a URL must be ${{VAR}} references"
                )
    assert services["worker-video"]["command"][:6] == [
        "celery",
        "-A",
        "mediaapp",
        "worker",
        "-Q",
        "video_queue",
    ]
    assert "audit_queue" not in json.dumps(services["worker-default"]["command"])
    # Flower: login required, but the password never on a command line (`ps` shows those):
    # `mediaapp flower` hands FLOWER_USER/FLOWER_PASSWORD to Flower through its environment.
    flower = services["flower"]
    assert flower["command"][:2] == ["mediaapp", "flower"]
    assert not any("PASSWORD" in part for part in flower["command"])
    assert {"FLOWER_USER", "FLOWER_PASSWORD"} <= flower["environment"].keys()


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_app_service_command_runs_here(
    service: str, spawn: Callable[..., Proc], clean_queues: None, tmp_path: Path
) -> None:
    spec = compose()["services"][service]
    secrets = {"FLOWER_USER": "ops", "FLOWER_PASSWORD": "pw-from-env"}
    broker = os.environ.get("MEDIAAPP_BROKER_URL") or RABBIT_URL
    (tmp_path / "media").mkdir()
    env = child_env(
        MEDIAAPP_BROKER_URL=broker,
        MEDIAAPP_RESULT_BACKEND=os.environ.get("MEDIAAPP_RESULT_BACKEND") or REDIS_URL,
        MEDIAAPP_DATA_DIR=str(tmp_path / "data"),
        MEDIAAPP_MEDIA_ROOT=str(tmp_path / "media"),
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
        assert queue_depth(broker, queue)[1] == 1
    elif service == "audit":
        proc.wait_for("audit consumer ready", timeout=30)
        time.sleep(3)
        assert proc.alive(), proc.text()[-3000:]
        assert queue_depth(broker, "audit_queue")[1] == 1
    else:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(f"{base}/api/workers", auth=None)[0] == 401:
                    break
            except OSError:
                time.sleep(0.3)
        assert get(f"{base}/api/workers", auth=None)[0] == 401, proc.text()[-3000:]
        assert get(f"{base}/api/workers", auth=("ops", "pw-from-env"))[0] == 200
        assert get(f"{base}/api/workers", auth=("ops", "wrong"))[0] == 401
        assert "pw-from-env" not in " ".join(cmd) and os.environ.get("FLOWER_PASSWORD") is None
