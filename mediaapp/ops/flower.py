"""``mediaapp flower``: Flower with our defaults, the same for the CLI and docker-compose.

Login always required on every page, ``/metrics`` and ``/healthcheck`` included
(``flower_main.py``; basic auth from ``FLOWER_USER``/``FLOWER_PASSWORD``, passed to Flower
through its environment, never on a command line that ``ps`` shows), persistent state so
history survives a restart, and the RabbitMQ management API for queue lengths.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from mediaapp import defaults
from mediaapp.errors import ConfigurationError
from mediaapp.settings import Settings


def flower_invocation(
    settings: Settings, environ: dict[str, str], *, port: int, address: str
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start Flower, or ConfigurationError."""
    user, password = environ.get("FLOWER_USER"), environ.get("FLOWER_PASSWORD")
    if not user or not password:
        raise ConfigurationError(
            "Flower never runs without a login: set FLOWER_USER and FLOWER_PASSWORD"
        )
    env = {**environ, "FLOWER_BASIC_AUTH": f"{user}:{password}"}
    broker = urlsplit(settings.broker_url)
    if broker.scheme in {"amqp", "pyamqp"}:
        host = broker.hostname or "127.0.0.1"
        creds = f"{broker.username or 'guest'}:{broker.password or 'guest'}"
        env["FLOWER_BROKER_API"] = f"http://{creds}@{host}:{defaults.RABBITMQ_MANAGEMENT_PORT}/api/"
    cmd = [
        sys.executable,  # Celery's own command, with /metrics and /healthcheck locked too
        "-m",
        "mediaapp.ops.flower_main",
        "-A",
        "mediaapp",
        "flower",
        f"--port={port}",
        f"--address={address}",
        "--persistent=True",
        f"--db={settings.data_dir / 'flower.db'}",
        f"--state_save_interval={defaults.FLOWER_STATE_SAVE_MS}",
        # kwargs carry the job id, input and profile; result shows live progress: show both.
        "--tasks_columns=name,uuid,state,kwargs,result,received,runtime,worker,retries,exception",
    ]
    return cmd, env


def exec_flower(settings: Settings, *, port: int, address: str) -> None:
    """Replace this process with Flower."""
    cmd, env = flower_invocation(settings, dict(os.environ), port=port, address=address)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.execve(cmd[0], cmd, env)  # noqa: S606 - a fixed program with our own arguments
