"""Benchmarks: ``python -m bench`` runs the suite, ``python -m bench NAME`` one of them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

#: Where full runs keep their figures (committed: the README quotes them).
RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(quick: bool) -> Path:
    """Full runs write under bench/results/; smoke runs (--quick) into a scratch folder, so
    CI never overwrites measured figures, while the suite can still build its table."""
    path = Path(tempfile.gettempdir()) / "mediaapp-bench-quick" if quick else RESULTS
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_result(name: str, data: Any, quick: bool) -> Path:
    """Write one benchmark's figures as ``<name>.json``; return the path."""
    path = results_dir(quick) / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class LineTail:
    """Counts the lines appended to a growing file, reading only what is new (by offset)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = Path(path), 0, 0

    def poll(self) -> int:
        """Read what was appended since the last call; return the lines seen so far."""
        if self.path.exists():
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            self.offset += len(chunk)
            self.lines += chunk.count(b"\n")
        return self.lines
