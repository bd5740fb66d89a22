"""Benchmarks run in CI only in smoke mode: they must work, how fast is not asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import RABBIT_URL, REDIS_URL, REPO, child_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_overhead_benchmark_smoke(rabbitmq: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "overhead",
            "--quick",
            "--broker",
            RABBIT_URL,
            "--backend",
            REDIS_URL,
        ],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ratio = re.search(r"(\d+\.\d+)x", out.stdout)
    assert ratio and float(ratio.group(1)) > 0, out.stdout


def test_soak_smoke(rabbitmq: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "soak",
            "--quick",
            "--broker",
            RABBIT_URL,
            "--backend",
            REDIS_URL,
        ],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    figures = dict(kv.split("=") for kv in out.stdout.split())
    assert figures["lost"] == "0" and figures["duplicates"] == "0" and figures["audit_gaps"] == "0"
    assert int(figures["kills"]) >= 1


def test_ladder_benchmark_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "ladder", "--quick"],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("x\n") == 4 and "1.000x" in out.stdout
