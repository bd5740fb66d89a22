"""``mediaapp`` command line. Errors become a message and an exit code here, in one place."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mediaapp.errors import MediaError
from mediaapp.settings import get_settings

console = Console(stderr=True)


def _out() -> Console:
    """Console for tables on stdout: full width when piped (no ellipsis in logs and tests)."""
    return Console(width=None if sys.stdout.isatty() else 200)


@click.group()
def cli() -> None:
    """Distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg."""


@cli.command()
@click.argument("path", required=False)
@click.option("--profile", default=None, help="Transcoding profile (default: web).")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), help="A JSON job spec.")
@click.option("--wait/--no-wait", default=False, help="Wait for the manifest, with progress.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def submit(
    path: str | None,
    profile: str | None,
    spec: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit PATH (inside the media root), or the job in --spec, for transcoding."""
    from mediaapp.client import submit as submit_job

    job_spec = json.loads(Path(spec).read_text()) if spec else {}
    path = path or job_spec.get("file")
    if not path:
        raise click.UsageError("give a PATH or a --spec with a 'file'")
    job = submit_job(path, profile=profile or job_spec.get("profile") or "web")
    click.echo(job.id)
    if wait:
        manifest = wait_with_progress(job, timeout)
        print_manifest(manifest, as_json=as_json)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """Print a job's state (and its manifest when done)."""
    from mediaapp.client import Job

    job = Job(job_id)
    state = job.status()
    click.echo(f"{job_id} {state}")
    if state == "SUCCESS":
        print_manifest(job.wait(timeout=1), as_json=as_json)
        return
    if state == "FAILURE":
        click.echo(f"error: {job.error!r}")
    if as_json:
        click.echo(json.dumps({"state": state, "progress": job.progress, "steps": job.steps()}))
    else:
        print_steps(job)


@cli.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job: queued steps dropped, running ffmpeg killed, partial outputs removed."""
    from mediaapp.client import Job

    Job(job_id).cancel()
    click.echo(f"cancel requested for {job_id}")


@cli.command()
@click.option("--job", "job_id", help="Print this job's audit trail instead of consuming.")
@click.option("--follow", is_flag=True, help="Tail the audit log live instead of consuming.")
@click.option("--batch", type=int, default=None, help="Lines per fsync.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics here.")
def audit(job_id: str | None, follow: bool, batch: int | None, metrics_port: int | None) -> None:
    """Run the audit consumer (audit_queue → MEDIAAPP_AUDIT_LOG), or print a job's trail."""
    settings = get_settings()
    if job_id:
        from mediaapp.audit import job_trail

        print_trail(job_trail(settings.audit_log, job_id))
        return
    if follow:
        follow_log(settings.audit_log)
        return
    from mediaapp.audit import serve

    console.print(f"audit consumer: {settings.broker_url.split('@')[-1]} → {settings.audit_log}")
    serve(batch_lines=batch, metrics_port=metrics_port)


@cli.group()
def dlq() -> None:
    """Inspect and re-submit dead-lettered messages (RabbitMQ)."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(as_json: bool) -> None:
    """List dead letters with the reason, the original routing key and the error."""
    from mediaapp.celery import app
    from mediaapp.dlq import list_dead

    dead = list_dead(app)
    for d in dead:
        if as_json:
            click.echo(json.dumps(d.to_dict()))
        else:
            click.echo(
                f"{d.task_id}  {d.task}  key={d.routing_key}  reason={d.reason}  "
                f"input={d.input!r}  error={d.error}"
            )
    if not as_json:
        click.echo(f"{len(dead)} dead letter(s)")


@dlq.command("retry")
@click.argument("task_id")
def dlq_retry(task_id: str) -> None:
    """Re-submit the dead letter of TASK_ID to its original routing key."""
    from mediaapp.celery import app
    from mediaapp.dlq import retry_dead

    info = retry_dead(app, task_id)
    if info is None:
        raise click.ClickException(f"no dead letter for task {task_id}")
    click.echo(f"re-submitted {task_id} ({info.task}) with routing key {info.routing_key}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def queues(as_json: bool) -> None:
    """Depth and consumers of every queue, audit and dead letters included."""
    from mediaapp.celery import app
    from mediaapp.routing import TOPOLOGY, declare_topology

    rows = {}
    with app.connection_for_write() as conn:
        declare_topology(conn)
        for q in TOPOLOGY:
            _, messages, consumers = q(conn.default_channel).queue_declare(passive=True)
            rows[q.name] = {"messages": messages, "consumers": consumers}
    if as_json:
        click.echo(json.dumps(rows))
        return
    for name, row in rows.items():
        click.echo(f"{name:<20} {row['messages']:>8} messages  {row['consumers']:>3} consumers")


@cli.command()
def declare() -> None:
    """Declare the exchange, queues and bindings on the broker (idempotent)."""
    from mediaapp.celery import app
    from mediaapp.routing import TOPOLOGY, declare_topology

    with app.connection_for_write() as conn:
        declare_topology(conn)
    click.echo("declared: " + ", ".join(f"{q.name} ({q.routing_key})" for q in TOPOLOGY))


@cli.command()
@click.argument("file", required=False)
@click.option("--profile", default="web", show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True)
@click.option("--figures", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the timings as JSON to this file.")  # fmt: skip
def demo(file: str | None, profile: str, timeout: float, figures: Path | None) -> None:
    """Start a worker and the audit consumer, transcode a sample, print the results, stop."""
    from mediaapp.demo import run_demo

    result = run_demo(Path(file) if file else None, profile=profile, timeout=timeout)
    if figures is not None:
        figures.write_text(json.dumps(result, indent=2) + "\n")


@cli.command()
@click.option("--port", type=int, default=None, help="Port (default 5555).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
def flower(port: int | None, address: str) -> None:
    """Start Flower: login required, persistent history, broker queue lengths."""
    from mediaapp import defaults
    from mediaapp.flower import exec_flower

    exec_flower(get_settings(), port=port or defaults.FLOWER_PORT, address=address)


@cli.command()
@click.argument("job_id")
def report(job_id: str) -> None:
    """Write an HTML report of a finished job (poster, player, renditions, timeline)."""
    from mediaapp.report import write_report

    click.echo(write_report(job_id, get_settings()))


@cli.command("settings")
def show_settings() -> None:
    """Print the settings this process resolved from the environment."""
    from dataclasses import asdict

    click.echo(json.dumps(asdict(get_settings()), indent=2, default=str))


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


def print_trail(records: list[dict[str, Any]]) -> None:
    """A job's story: when (from the first record), the gap, what, where, and details."""
    from mediaapp.report import timeline

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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning a MediaError into its message and exit code."""
    try:
        cli.main(args=argv, prog_name="mediaapp", standalone_mode=False)
    except MediaError as exc:
        console.print(f"[red]error[/red] ({type(exc).__name__}): {exc}")
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
