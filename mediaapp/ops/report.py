"""``mediaapp report JOB_ID``: one HTML page about a finished job.

Self-contained except for the media it shows: images are embedded as data URIs, the
``<video>`` element plays the MP4 rendition beside the page (``report.html`` is written into the
job's output directory), and the timeline comes from the audit log.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path
from typing import Any

from mediaapp.errors import InvalidInput
from mediaapp.media.outputs import job_dir, load_manifest
from mediaapp.ops.audit import job_trail
from mediaapp.settings import Settings


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def timeline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audit records as timeline rows: offset from the first, gap since the previous, who."""
    rows = []
    first = prev = None
    for r in records:
        ts = datetime.fromisoformat(r["ts"])
        first = first or ts
        body = r.get("body") or {}
        rows.append(
            {
                "at_s": round((ts - first).total_seconds(), 3),
                "gap_s": round((ts - prev).total_seconds(), 3) if prev else 0.0,
                "kind": r["kind"],
                "name": r.get("name"),
                "host": body.get("hostname", ""),
                "redelivered": bool(r.get("redelivered") or body.get("redelivered")),
                "detail": _detail(r, body),
            }
        )
        prev = ts
    return rows


def _detail(record: dict[str, Any], body: dict[str, Any]) -> str:
    parts = []
    if record["kind"] == "event" and body.get("task"):
        parts.append(str(body["task"]))  # which step the event is about
    if body.get("runtime_s") is not None:
        parts.append(f"ran {body['runtime_s']} s")
    if body.get("retries"):
        parts.append(f"retry {body['retries']}")
    if body.get("state"):
        parts.append(str(body["state"]))
    if body.get("error"):
        parts.append(f"{body['error'].get('type')}: {body['error'].get('message')}")
    if record["kind"] == "task":
        parts.append(f"input {record.get('kwargs', {}).get('name')!r}")
    return "; ".join(parts)


def quality_cell(output: dict[str, Any]) -> str:
    """A rendition's measured quality in one line ("" when its profile measured none)."""
    q = output.get("quality")
    if not q:
        return ""
    return (
        f"VMAF {q['vmaf_mean']:.1f} (p5 {q['vmaf_p5']:.1f}, min {q['vmaf_min']:.1f}), "
        f"PSNR {q['psnr_mean']:.1f} dB, SSIM {q['ssim_mean']:.4f}; "
        f"{q['frames_scored']}{sampled(q)}, 1 in {q['subsample']}, {q['model']}"
    )


def pertitle_table(manifest: dict[str, Any]) -> str:
    """A per-title job's search, one row a rung: target, CRF, trials, VMAF, kept or why not."""
    record = manifest.get("pertitle")
    if not record:
        return ""
    e = html.escape

    def trials(rung: dict[str, Any]) -> str:
        return ", ".join(f"{t['crf']}: {t['vmaf']:.1f}" for t in rung["trials"])

    def verdict(rung: dict[str, Any]) -> str:
        said = rung["dropped"] or ("met" if rung.get("met") else "below target")
        if first := rung.get("first"):  # encoded again lower (retarget.py)
            said += f"; first at CRF {first['crf']}: VMAF {first['full_vmaf']:.1f}"
        return said + (f"; {rung['retarget']}" if rung.get("retarget") else "")

    rows = "".join(
        f"<tr><td>{e(r['rung'])}</td><td>{r['target_vmaf']:g}</td><td>{r['crf']}</td>"
        f"<td>{e(trials(r))}</td>"
        f"<td>{r['sample_vmaf']:.1f}</td><td>{_one_decimal(r.get('full_vmaf'))}</td>"
        f"<td>{e(verdict(r))}</td></tr>"
        for r in record["rungs"]
    )
    tried = sum(len(r["trials"]) for r in record["rungs"])
    rounds = record["rounds"]
    return (
        f"<h2>Per-title search</h2><p>{len(record['samples'])} samples, {rounds} "
        f"round{'s' * (rounds != 1)}, {record['trial_encodes']} trial encodes for "
        f"{tried} trials over the samples (any other cached)</p>"
        '<table id="pertitle"><tr><th>rung</th><th>target VMAF</th><th>CRF</th>'
        "<th>trials (CRF: VMAF)</th><th>samples' VMAF</th><th>full VMAF</th><th></th></tr>"
        f"{rows}</table>"
    )


def _one_decimal(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def sampled(q: dict[str, Any]) -> str:
    """Say " of N frames in K windows" when the score is a sample (not the whole duration)."""
    windows = q.get("windows") or []
    if not windows or not q.get("frames_total"):
        return " frames"
    return f" of {q['frames_total']} frames in {len(windows)} window{'s' * (len(windows) > 1)}"


def render(manifest: dict[str, Any], trail: list[dict[str, Any]], directory: Path) -> str:
    """The report page as HTML text."""
    e = html.escape
    outputs = manifest["outputs"]
    video = next((o for o in outputs if o["kind"] == "video"), None)
    images = [o for o in outputs if o["kind"] in ("poster", "sprite")]
    rows = "".join(
        f"<tr><td>{e(o['kind'])}</td><td>{e(Path(o['path']).name)}</td>"
        f"<td>{o.get('width')}x{o.get('height')}</td><td>{e(str(o.get('codec')))}</td>"
        f"<td>{(o.get('bit_rate') or 0) // 1000} kbit/s</td><td>{o['size']:,} B</td>"
        f"<td>{o['duration_s']:.3f} s</td><td>{e(quality_cell(o))}</td></tr>"
        for o in outputs
    )
    pictures = "".join(
        f'<figure><img alt="{e(o["kind"])}" src="{_data_uri(Path(o["path"]), "image/jpeg")}">'
        f"<figcaption>{e(o['kind'])}</figcaption></figure>"
        for o in images
        if Path(o["path"]).is_file()
    )
    player = (
        f'<video id="rendition" controls preload="auto" width="{video["width"]}" '
        f'src="{e(Path(video["path"]).relative_to(directory).as_posix())}"></video>'
        if video
        else "<p>no video rendition</p>"
    )
    steps = "".join(
        f"<tr><td>+{t['at_s']:.3f} s</td><td>{e(t['kind'])}</td><td>{e(str(t['name']))}</td>"
        f"<td>{e(t['host'])}</td><td>{'redelivered' if t['redelivered'] else ''}</td>"
        f"<td>{e(t['detail'])}</td></tr>"
        for t in timeline(trail)
    )
    commands = "".join(f"<li><code>{e(c)}</code></li>" for c in manifest.get("commands", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>mediaapp job {e(manifest["job_id"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }} img {{ max-width: 32em; }}
code {{ font-size: .85em; word-break: break-all; }}
</style></head><body>
<h1>Job {e(manifest["job_id"])}</h1>
<p>Input <b>{e(manifest["input"])}</b>, profile <b>{e(manifest["profile"])}</b>,
ffmpeg {e(manifest.get("ffmpeg_version", "?"))}, encode {manifest.get("encode_s")} s,
job {manifest.get("elapsed_s")} s.</p>
{pictures}
<h2>Play</h2>
{player}
<h2>Renditions</h2>
<table id="renditions"><tr><th>kind</th><th>file</th><th>resolution</th><th>codec</th>
<th>bit rate</th><th>size</th><th>duration</th><th>quality</th></tr>{rows}</table>
{pertitle_table(manifest)}
<h2>Timeline</h2>
<table id="timeline"><tr><th>at</th><th>kind</th><th>what</th><th>host</th><th></th>
<th>detail</th></tr>{steps}</table>
<h2>Commands</h2><ol>{commands}</ol>
</body></html>
"""


def write_report(job_id: str, settings: Settings, audit_log: Path | None = None) -> Path:
    """Write ``report.html`` into the job's output directory and return its path."""
    manifest = load_manifest(job_id, settings)
    if manifest is None:
        raise InvalidInput(f"job {job_id} has no complete manifest under {settings.output_root}")
    directory = job_dir(job_id, settings)
    trail = job_trail(audit_log or settings.audit_log, job_id)
    path = directory / "report.html"
    path.write_text(render(manifest, trail, directory))
    return path
