"""``mediaapp`` command line. Errors become a message and an exit code here, in one place."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mediaapp.errors import JobFailed, MediaError
from mediaapp.ops.console import (
    console,
    follow_log,
    print_manifest,
    print_steps,
    print_trail,
    wait_with_progress,
)
from mediaapp.settings import get_settings


@click.group()
def cli() -> None:
    """Distributed media processing on Celery, Kombu, RabbitMQ and ffmpeg."""


@cli.command()
@click.argument("path", required=False)
@click.option("--profile", default=None, help="Transcoding profile (default: web).")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), help="A JSON job spec.")
@click.option("--wait/--no-wait", default=False, help="Wait for the manifest, with progress.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@click.option("--json", "as_json", is_flag=True, help="Only JSON on stdout (id on stderr).")
@click.option("--priority", type=click.IntRange(0, 9), default=None,
              help="0..9, 9 most urgent (default 5): overtakes queued lower ones.")  # fmt: skip
@click.option("--tenant", default=None,
              help="Whose job: a tenant's backlog cannot starve others (fair share).")  # fmt: skip
@click.option("--subtitles", "subtitles", multiple=True, metavar="FILE[:LANG]",
              help="A .srt/.vtt in the media root, carried as captions; repeatable.")  # fmt: skip
def submit(
    path: str | None,
    profile: str | None,
    spec: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    priority: int | None,
    tenant: str | None,
    subtitles: tuple[str, ...],
) -> None:
    """Submit PATH (inside the media root), or the job in --spec, for transcoding."""
    require(broker=True, backend=True)
    from mediaapp.jobs.client import submit as submit_job

    job_spec = json.loads(Path(spec).read_text()) if spec else {}
    path = path or job_spec.get("file")
    if not path:
        raise click.UsageError("give a PATH or a --spec with a 'file'")
    if priority is None:
        priority = job_spec.get("priority")
    given = (s.rpartition(":") if ":" in s else (s, "", "") for s in subtitles)
    sidecars = job_spec.get("subtitles") or [
        {"path": f, "language": lang or None} for f, _, lang in given
    ]
    extra: dict[str, Any] = {"subtitles": sidecars} if sidecars else {}
    if tenant or job_spec.get("tenant"):
        extra["tenant"] = tenant or job_spec.get("tenant")
    job = submit_job(path, profile=profile or job_spec.get("profile") or "web", priority=priority,
                     **extra)  # fmt: skip
    # With --json, stdout is one JSON document that scripts can parse: the id goes to stderr.
    click.echo(job.id, err=as_json)
    if wait:
        manifest = wait_with_progress(job, timeout)
        print_manifest(manifest, as_json=as_json)
    elif as_json:
        click.echo(json.dumps({"job_id": job.id}))


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def status(job_id: str, as_json: bool) -> None:
    """Print a job's state (and its manifest when done)."""
    require(backend=True)
    from mediaapp.jobs.client import Job

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
    require(broker=True, backend=True)
    from mediaapp.jobs.client import Job

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
        from mediaapp.ops.audit import job_trail

        print_trail(job_trail(settings.audit_log, job_id))
        return
    if follow:
        follow_log(settings.audit_log)
        return
    from mediaapp.ops.audit import serve

    console.print(f"audit consumer: {settings.broker_url.split('@')[-1]} → {settings.audit_log}")
    serve(batch_lines=batch, metrics_port=metrics_port)


@cli.group()
def dlq() -> None:
    """Inspect and re-submit dead-lettered messages (RabbitMQ)."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(as_json: bool) -> None:
    """List dead letters with the reason, the original routing key and the error."""
    require(broker=True, backend=True)
    from mediaapp.jobs.app import app
    from mediaapp.ops.dlq import list_dead

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
    require(broker=True)
    from mediaapp.jobs.app import app
    from mediaapp.ops.dlq import retry_dead

    info = retry_dead(app, task_id)
    if info is None:
        raise click.ClickException(f"no dead letter for task {task_id}")
    click.echo(f"re-submitted {task_id} ({info.task}) with routing key {info.routing_key}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def queues(as_json: bool) -> None:
    """Depth and consumers of every queue, audit and dead letters included; a capability
    queue holding work no live worker can do names the missing capability."""
    require(broker=True)
    from mediaapp.jobs.app import app
    from mediaapp.jobs.routing import CAPABILITY_QUEUES, TOPOLOGY, declare_topology

    codec_of = {q.name: codec for codec, q in CAPABILITY_QUEUES.items()}
    rows: dict[str, dict[str, Any]] = {}
    with app.connection_for_write() as conn:
        declare_topology(conn)
        for q in TOPOLOGY:
            _, messages, consumers = q(conn.default_channel).queue_declare(passive=True)
            rows[q.name] = {"messages": messages, "consumers": consumers}
            if q.name in codec_of and messages and not consumers:
                rows[q.name]["waiting_for"] = codec_of[q.name]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for name, row in rows.items():
        line = f"{name:<20} {row['messages']:>8} messages  {row['consumers']:>3} consumers"
        if "waiting_for" in row:
            line += f"  waiting: no live worker proved {row['waiting_for']}"
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds to wait.")
def workers(as_json: bool, timeout: float) -> None:
    """Each live worker's proven encoders, refused ones, and the queues it consumes."""
    require(broker=True)
    from mediaapp.jobs.app import app

    found: dict[str, dict] = {}
    for reply in app.control.broadcast("capabilities", reply=True, timeout=timeout) or []:
        found.update(reply)
    if as_json:
        click.echo(json.dumps(found))
        return
    for worker, caps in sorted(found.items()):
        if not caps:
            click.echo(f"{worker}: no video_queue, no encoders tested")
            continue
        offered = "; ".join(
            f"{codec}: {', '.join(kinds['software'] + kinds['hardware'])}"
            for codec, kinds in caps["encoders"].items()
        )
        click.echo(f"{worker}: {offered or 'nothing'}  queues={','.join(caps['queues'])}")
        for encoder, why in caps["refused"].items():
            click.echo(f"    refused {encoder}: {why}")
        for encoder, why in (caps.get("disabled") or {}).items():
            click.echo(f"    disabled {encoder} after a fault: {why}")
        if caps["dropped"]:
            click.echo(f"    MEDIAAPP_CAPABILITIES claims dropped: {', '.join(caps['dropped'])}")
    click.echo(f"{len(found)} worker(s)")


@cli.command()
@click.option("--migrate", is_flag=True,
              help="Re-declare changed task queues, keeping their messages.")  # fmt: skip
def declare(migrate: bool) -> None:
    """Declare the exchange, queues and bindings on the broker (idempotent)."""
    require(broker=True)
    import amqp

    from mediaapp.errors import ConfigurationError
    from mediaapp.jobs.app import app
    from mediaapp.jobs.routing import TOPOLOGY, declare_topology

    with app.connection_for_write() as conn:
        if migrate:
            from mediaapp.ops.migrate import migrate as migrate_queues

            for name, kept in migrate_queues(conn).items():
                click.echo(
                    f"{name}: " + ("unchanged" if kept is None else f"migrated, {kept} kept")
                )
        try:
            declare_topology(conn)
        except amqp.exceptions.PreconditionFailed as exc:
            raise ConfigurationError(
                f"{exc}: a queue exists with other arguments; run mediaapp declare --migrate"
            ) from None
    click.echo("declared: " + ", ".join(f"{q.name} ({q.routing_key})" for q in TOPOLOGY))


@cli.command()
@click.argument("file", required=False)
@click.option("--profile", default="web", show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True)
@click.option("--figures", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the timings as JSON to this file.")  # fmt: skip
def demo(file: str | None, profile: str, timeout: float, figures: Path | None) -> None:
    """Start a worker and the audit consumer, transcode a sample, print the results, stop."""
    from mediaapp.ops.demo import run_demo

    result = run_demo(Path(file) if file else None, profile=profile, timeout=timeout)
    if figures is not None:
        figures.write_text(json.dumps(result, indent=2) + "\n")


@cli.command()
@click.option("--port", type=int, default=None, help="Port (default 5555).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to bind.")
def flower(port: int | None, address: str) -> None:
    """Start Flower: login required, persistent history, broker queue lengths."""
    from mediaapp import defaults
    from mediaapp.ops.flower import exec_flower

    exec_flower(get_settings(), port=port or defaults.FLOWER_PORT, address=address)


@cli.command()
@click.argument("job_id")
def report(job_id: str) -> None:
    """Write an HTML report of a finished job (poster, player, renditions, timeline)."""
    from mediaapp.ops.report import write_report

    click.echo(write_report(job_id, get_settings()))


@cli.command()
def gc() -> None:
    """Prune the chunk cache (size, age) and remove what killed jobs left behind."""
    from mediaapp.ops.gc import collect

    click.echo(json.dumps(collect(get_settings()), indent=2))


@cli.command("settings")
def show_settings() -> None:
    """Print the settings this process resolved from the environment."""
    click.echo(json.dumps(get_settings().model_dump(mode="json"), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning a MediaError into its message and exit code."""
    try:
        cli.main(args=argv, prog_name="mediaapp", standalone_mode=False)
    except MediaError as exc:
        return _fail(exc)
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # a broker or Redis failure after the checks: one line too
        from mediaapp.ops.services import describe

        typed = describe(exc, get_settings())
        if typed is None:
            raise
        return _fail(typed)
    return 0


def _fail(exc: MediaError) -> int:
    """Print the error on one line; exit with its code (a failed job: its cause's code, so a
    refused input under ``submit --wait`` exits 65 like any other bad input)."""
    console.print(f"[red]error[/red] ({type(exc).__name__}): {exc}", soft_wrap=True)
    cause = exc.__cause__
    if isinstance(exc, JobFailed) and isinstance(cause, MediaError):
        return cause.exit_code
    return exc.exit_code


def require(*, broker: bool = False, backend: bool = False) -> None:
    """Check the services a command needs, within seconds (services.py)."""
    from mediaapp.ops import services

    settings = get_settings()
    if broker:
        services.check_broker(settings)
    if backend:
        services.check_backend(settings)


if __name__ == "__main__":
    sys.exit(main())
