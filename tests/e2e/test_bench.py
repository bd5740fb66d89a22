"""Benchmarks run in CI only in smoke mode: they must work, how fast is not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ..conftest import RABBIT_URL, REDIS_URL, REPO, child_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BROKER = ["--broker", RABBIT_URL, "--backend", REDIS_URL]


def smoke(name: str, *extra: str) -> str:
    """Run ``python -m bench NAME --quick`` (the whole suite without NAME); return its output."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", *([name] if name else []), "--quick", *extra],
        env=child_env(), cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    return out.stdout


def test_suite_smoke_prints_and_writes_every_row(rabbitmq: str) -> None:
    printed = smoke("", *BROKER)  # python -m bench --quick: the whole suite
    table = Path(tempfile.gettempdir()) / "mediaapp-bench-quick" / "suite.md"
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ")][1:]
    assert {r.split(" | ")[0].strip("| ") for r in rows} == {
        "pipeline overhead", "many small jobs", "HLS ladder", "dispatch, complete audit",
        "audit consumer", "chunked scaling", "cold start", "object storage", "S3 staging",
        "memory", "measured quality", "fair share", "multi-codec ladder",
        "per-title ladder", "per-title search cost", "per-title resubmission",
    }  # fmt: skip
    assert all(float(r.split(" | ")[4].rstrip("x")) > 0 for r in rows)
    assert "lines 1000" in printed and "2 workers, chunked" in printed
    scaling = json.loads((table.parent / "scaling.json").read_text())["rows"]
    assert [r["processes"] for r in scaling] == [1, 1, 2]  # chunks really ran in 2 workers


def test_quality_smoke_scores_only_the_measured_copy() -> None:
    printed = smoke("quality")
    rows = json.loads((Path(tempfile.gettempdir()) / "mediaapp-bench-quick" / "quality.json")
                      .read_text())  # fmt: skip
    assert [r["profile"] for r in rows] == ["hls", "web"] and "ratio" in printed
    for r in rows:
        assert r["ratio"] > 0 and r["renditions"] >= 1
        assert all(0 <= v <= 100 for v in r["vmaf_means"])
        assert 0 < r["frames_scored"] < r["frames_total"] and r["windows"]  # a sample, said so


def test_pertitle_smoke_compares_with_the_fixed_ladder() -> None:
    printed = smoke("pertitle")
    data = json.loads((Path(tempfile.gettempdir()) / "mediaapp-bench-quick" / "pertitle.json")
                      .read_text())  # fmt: skip
    assert set(data["sources"]) == {"easy", "easy-camera", "hard"} and "matched" in printed
    for source in data["sources"].values():
        fixed, pt, again = source["fixed"], source["pertitle"], source["resubmitted"]
        assert fixed["bytes"] > 0 and pt["bytes"] > 0 and pt["trial_encodes"] > 0
        assert again["trial_encodes"] == 0 and again["bytes"] == pt["bytes"]  # cached search
        assert all(0 < v <= 100 for v in [*fixed["vmaf"].values(), *pt["vmaf"].values()])
    for easy in ("easy", "easy-camera"):  # the target judged on each easy source
        matched = data["sources"][easy]["matched"]
        assert matched["bytes_ratio"] > 0 and isinstance(matched["target"]["met"], bool)
    assert "note" in data["sources"]["easy"]["matched"]["target"]  # why: the VMAF ceiling


def test_soak_smoke(rabbitmq: str) -> None:
    last = smoke("soak", *BROKER).strip().splitlines()[-1]  # progress lines come first
    figures = dict(kv.split("=", 1) for kv in last.split())
    for zero in ("lost", "duplicate_effects", "audit_records_missing", "torn_lines"):
        assert figures[zero] == "0", last
    assert json.loads(figures["faults"]).get("worker_sigkill", 0) >= 1, last
