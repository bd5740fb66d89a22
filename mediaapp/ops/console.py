"""Terminal output shared by the CLI and the demo: progress bars, tables, the audit trail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mediaapp.ops.report import timeline
from mediaapp.settings import get_settings

console = Console(stderr=True)


def _out() -> Console:
    """Console for tables on stdout: full width when piped (no ellipsis in logs and tests)."""
    return Console(width=None if sys.stdout.isatty() else 200)


def wait_with_progress(job: Any, timeout: float | None) -> dict[str, Any]:
    """Wait for a job, with a progress bar per step and one for the whole job."""
    columns = (
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[speed]:>6}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bars:
        overall = bars.add_task(f"job {job.id[:8]} {job.name or ''}"[:24], total=100, speed="")
        rows: dict[str, Any] = {}

        def update(meta: dict[str, Any]) -> None:
            for step in meta.get("steps", []):
                key = step["task_id"]
                if key not in rows:
                    # A queued step has no meta yet: its task id says which it is
                    # (<job>-chunk3, <job>-audio, <job>-rung1).
                    name = step.get("step") or key.removeprefix(f"{job.id}-") or "step"
                    label = f"  {name} {step.get('input') or ''}"
                    rows[key] = bars.add_task(label[:24], total=100, speed="")
                speed = f"{step['speed']:.1f}x" if step.get("speed") else ""
                bars.update(rows[key], completed=step.get("percent") or 0, speed=speed)
            bars.update(overall, completed=meta.get("percent") or 0)

        manifest: dict[str, Any] = job.wait(timeout=timeout, on_progress=update)
        for row in [*rows.values(), overall]:
            bars.update(row, completed=100)
    return manifest


def print_steps(job: Any) -> None:
    """The steps of a job and their states, as a table."""
    steps = job.steps() or [{"task_id": job.id, "state": job.status(), "percent": None}]
    table = Table(title=f"job {job.id}: {job.status()}")
    for col in ("step", "task id", "state", "progress"):
        table.add_column(col, overflow="fold")
    for step in steps:
        percent = step.get("percent")
        table.add_row(
            str(step.get("step") or "transcode"),
            step["task_id"],
            step["state"],
            "" if percent is None else f"{percent:.1f}%",
        )
    _out().print(table)


def print_manifest(manifest: dict[str, Any], *, as_json: bool = False) -> None:
    """The manifest as a table (or JSON on stdout for scripts)."""
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    table = Table(
        title=f"job {manifest['job_id']} · {manifest['input']} · {manifest['profile']}",
        caption=f"under {get_settings().output_root}",
    )
    for col in ("kind", "path", "size", "duration", "codec", "size (px)", "bit rate"):
        table.add_column(col, overflow="fold")
    for out in manifest["outputs"]:
        table.add_row(
            out["kind"],
            out.get("relpath", out["path"]),
            f"{out['size']:,} B",
            f"{out['duration_s']:.3f} s",
            out.get("codecs") or out["codec"] or "",
            f"{out['width']}x{out['height']}" if out.get("height") else "",
            f"{out['bit_rate'] // 1000} kb/s" if out.get("bit_rate") else "",
        )
    _out().print(table)
    for fell in manifest.get("fallback") or ():  # a hardware encoder failed: re-run in software
        click.echo(f"fallback: {fell['from']} -> {fell['to']} ({fell['reason']})")


def print_trail(records: list[dict[str, Any]]) -> None:
    """A job's story: when (from the first record), the gap, what, where, and details."""

    click.echo(f"audit trail ({len(records)} records)")
    for r, t in zip(records, timeline(records), strict=True):
        flags = " [redelivered]" if t["redelivered"] else ""
        flags += " [duplicate]" if r.get("duplicate") else ""
        click.echo(
            f"  +{t['at_s']:7.3f}s (+{t['gap_s']:6.3f})  {r['kind']:<8} {t['name'] or '':<16} "
            f"{t['host'] or '-':<12} {t['detail']}{flags}"
        )


def follow_log(path: Path, interval: float = 0.2) -> None:
    """Print audit records as they are appended (like ``tail -f``), until interrupted."""
    import time

    path.touch(exist_ok=True)
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        click.echo(f"following {path}", err=True)  # from here on, every new line is shown
        while True:
            line = fh.readline()
            if not line:
                time.sleep(interval)
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            click.echo(
                f"{r['ts'][11:23]} {r['kind']:<8} {r.get('name') or '':<16} "
                f"job={r.get('job_id')} task={r.get('task_id')}"
            )
