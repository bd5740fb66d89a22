"""Benchmarks run in CI only in smoke mode: they must work, how fast is not asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import RABBIT_URL, REDIS_URL, REPO, child_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BROKER = ["--broker", RABBIT_URL, "--backend", REDIS_URL]


def smoke(name: str, *extra: str) -> str:
    """Run ``python -m bench NAME --quick``; return what it printed."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick", *extra],
        env=child_env(), cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def test_overhead_benchmark_smoke(rabbitmq: str) -> None:
    ratio = re.search(r"(\d+\.\d+)x", smoke("overhead", *BROKER))
    assert ratio and float(ratio.group(1)) > 0


def test_soak_smoke(rabbitmq: str) -> None:
    figures = dict(kv.split("=") for kv in smoke("soak", *BROKER).split())
    assert figures["lost"] == "0" and figures["duplicates"] == "0" and figures["audit_gaps"] == "0"
    assert int(figures["kills"]) >= 1


def test_ladder_benchmark_smoke() -> None:
    printed = smoke("ladder")
    assert printed.count("x\n") == 4 and "1.000x" in printed


def test_dispatch_benchmark_smoke(rabbitmq: str) -> None:
    printed = smoke("dispatch", *BROKER)
    assert "plain Celery" in printed and "complete audit" in printed


def test_audit_rate_benchmark_smoke(rabbitmq: str) -> None:
    printed = smoke("audit", "--broker", RABBIT_URL)
    assert "lines 1000" in printed
