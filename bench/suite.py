"""The whole suite: every benchmark in its own process, then one table of ratios.

    python -m bench [--quick] [--only overhead,ladder,...] [--broker URL] [--backend URL]
    python -m bench --collect     (the table again from each benchmark's last JSON, run apart)

Each benchmark measures its baseline side by side in the same run and writes its figures
as JSON; this collects them into ``suite.json`` and ``suite.md`` (under bench/results/, or a
scratch folder with --quick, the CI smoke mode that checks the suite works, not how fast).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench import results_dir

#: Order of the suite; soak is a reliability run (python -m bench soak), not a speed figure.
ORDER = ("overhead", "manyjobs", "ladder", "dispatch", "audit", "scaling", "coldstart", "storage",
         "memory", "quality", "fairshare", "multicodec", "pertitle")  # fmt: skip
#: Benchmarks that talk to RabbitMQ/Redis and take --broker/--backend.
USES_BROKER = {"overhead": 2, "manyjobs": 2, "dispatch": 2, "audit": 1, "scaling": 2, "memory": 2,
               "fairshare": 2, "multicodec": 2}  # fmt: skip


def row(
    benchmark: str, case: str, ours: str, baseline: str, ratio: float, target: str, met: Any
) -> dict[str, Any]:
    """One line of the table."""
    return {"benchmark": benchmark, "case": case, "ours": ours, "baseline": baseline,
            "ratio": ratio, "target": target, "met": met}  # fmt: skip


def _rows(name: str, d: Any) -> list[dict[str, Any]]:
    """The table rows of one benchmark's JSON."""
    if name == "overhead":
        return [row("pipeline overhead", f"web, {c['clip']}, submit → manifest",
                    f"{c['pipeline_median_s']:.3f} s",
                    f"{c['direct_ffmpeg_median_s']:.3f} s (same ffmpeg, direct)",
                    c["ratio"], c["target"].replace("<=", "≤"), c["met"])
                for c in d["cases"]]  # fmt: skip
    if name == "ladder":
        base, single, *others = d
        per = next(r for r in others if "1 worker" in r["strategy"])
        hand = f"{base['median_s']:.3f} s (hand-written ffmpeg)"
        met = single["ratio"] <= 1.03 and single["median_s"] < per["median_s"]
        cpu = f" (CPU {single['cpu_ratio']:.3f}x)" if "cpu_ratio" in single else ""
        return [row("HLS ladder", "single process (decode once, split)",
                    f"{single['median_s']:.3f} s{cpu}", hand, single["ratio"],
                    "≤ 1.03, < per rendition", met),
                row("HLS ladder", "per rendition, 1 worker", f"{per['median_s']:.3f} s", hand,
                    per["ratio"], "(comparison)", None)]  # fmt: skip
    if name == "manyjobs":
        return [row("many small jobs", f"{d['jobs']} x web {d['clip']}, {d['workers']}",
                    f"{d['ours_jobs_min']} jobs/min",
                    f"{d['direct_jobs_min']} jobs/min (same ffmpeg, 2 at a time)",
                    d["ratio"], f"≥ {d['target']}", d["met"])]  # fmt: skip
    if name == "dispatch":
        return _dispatch_rows(d)
    if name == "memory":
        return _memory_rows(d)
    if name == "audit":
        return [row("audit consumer", f"{d['messages']} messages, durable",
                    f"{d['audit_msg_s']} msg/s", f"{d['plain_msg_s']} msg/s (ack-only consumer)",
                    d["ratio"], "≥ 0.85", d["ratio"] >= 0.85)]  # fmt: skip
    if name == "scaling":
        base = f"{d['rows'][0]['median_s']:.2f} s (1 worker, not chunked)"
        return [row("chunked scaling", f"{r['run']} ({d['clip']})", f"{r['median_s']:.2f} s",
                    base, r["speedup"], f"≥ {0.85 * r['workers']:.2f} speed-up",
                    r["speedup"] >= 0.85 * r["workers"] if r["workers"] > 1 else None)
                for r in d["rows"][1:]]  # fmt: skip
    if name == "coldstart":
        return [row("cold start", "`mediaapp demo`, embedded broker",
                    f"{d['demo_wall_s']:.2f} s ({d['cold_start_s']:.2f} s not ffmpeg)",
                    f"{d['ffmpeg_direct_s']:.2f} s (its ffmpeg, direct)", d["ratio"],
                    "(measured)", None)]  # fmt: skip
    if name == "storage":
        job, st = d["job"], d["staging"]
        mb = st["mb_s"]
        size = f"{st['bytes'] / 1e6:.0f} MB"
        return [row("object storage", f"hls, {job['clip']}, s3 input + output",
                    f"{job['s3_median_s']:.2f} s", f"{job['local_median_s']:.2f} s (folders)",
                    job["ratio"], "≤ 1.10", job["ratio"] <= 1.10),
                row("S3 staging", f"download {size}, size checked (no SHA-256 known)",
                    f"{mb['down']} MB/s",
                    f"{mb['plain_down']} MB/s (boto3 download_file)", st["download_ratio"],
                    "≥ 0.9", st["download_ratio"] >= 0.9),
                row("S3 staging", f"upload {size}, multipart, CRC32/part + SHA-256",
                    f"{mb['up']} MB/s",
                    f"{mb['plain_up']} MB/s (boto3 upload_file)", st["upload_ratio"],
                    "≥ 0.9", st["upload_ratio"] >= 0.9)]  # fmt: skip
    if name == "quality":
        return [row("measured quality", f"{r['profile']}, {r['clip']}, VMAF+PSNR+SSIM on "
                    f"{r.get('frames_scored', '?')} of {r.get('frames_total', '?')} frames",
                    f"{r['measured_median_s']:.2f} s", f"{r['plain_median_s']:.2f} s (off)",
                    r["ratio"], "≤ 1.15", r["ratio"] <= 1.15)
                for r in d]  # fmt: skip
    if name == "fairshare":
        moments = len(d["fair"]["b_start_s"])
        return [row("fair share", f"tenant B's 2 jobs under A's {d['jobs']} x web {d['clip']}, "
                    f"{d['workers']}: time to start (mean of {moments} moments)",
                    f"{d['fair_start_s']:.3f} s (worst pair {d['fair_worst_s']:.3f} s; FIFO "
                    f"{d['fifo_start_s']:.3f} s; empty queue {d['empty_start_s']:.3f} s)",
                    f"{d['mean_job_s']:.3f} s (one average job)", d["ratio"], "≤ 1 job",
                    d["met"])]  # fmt: skip
    if name == "multicodec":
        return _multicodec_rows(d)
    if name == "pertitle":
        return _pertitle_rows(d)
    raise ValueError(name)


def _multicodec_rows(d: Any) -> list[dict[str, Any]]:
    """Each way of running the ladder against the same encodes by hand, same parallelism."""
    rows, base = [], {}
    for r in d["rows"]:
        if r["target"] is None:
            base[r["strategy"].split(" (")[0]] = r
            continue
        hand = base["hand-written single ffmpeg" if "single" in r["strategy"]
                    else "hand-written, a command per codec, 2 at a time"]  # fmt: skip
        cpu = f" (CPU {r['cpu_ratio']:.3f}x)" if r.get("cpu_ratio") else ""
        rows.append(row("multi-codec ladder", f"{r['strategy'].split(', ', 1)[1]}, {d['clip']}",
                        f"{r['median_s']:.3f} s{cpu}", f"{hand['median_s']:.3f} s (by hand)",
                        r["ratio"], f"≤ {r['target']}", r["met"]))  # fmt: skip
    return rows


def _pertitle_rows(d: Any) -> list[dict[str, Any]]:
    """Per-title against the fixed ladder: bytes at equal VMAF (each easy source), targets
    (hard), cost."""
    easy, hard, clip = d["sources"]["easy"], d["sources"]["hard"], d["clip"]
    fixed, pt = easy["fixed"], hard["pertitle"]
    kept = {r["short"]: r for r in pt["rungs"] if not r["dropped"]}
    names = {"easy": "easy (noiseless slides)", "easy-camera": "easy-camera (slides, sensor noise)"}
    rows = [
        row(
            "per-title ladder",
            f"{names[source]} {clip}, targets = the fixed ladder's VMAF"
            + (" (at the VMAF ceiling: CRF 0-2)" if "note" in m.get("target", {}) else ""),
            f"{m['bytes']} B, VMAF {m['vmaf']}",
            f"{d['sources'][source]['fixed']['bytes']} B, "
            f"VMAF {d['sources'][source]['fixed']['vmaf']} (hls)",
            m["bytes_ratio"],
            "≤ 0.80, VMAF ≥ fixed per rung",
            m["bytes_ratio"] <= 0.8 and m["vmaf_not_below_fixed"],
        )
        for source in names
        if source in d["sources"]
        for m in [d["sources"][source]["matched"]]
    ]
    rows += [
        row(
            "per-title ladder",
            f"easy (slides) {clip}, hls-pertitle",
            f"{easy['pertitle']['bytes']} B, VMAF {easy['pertitle']['vmaf']}",
            f"{fixed['bytes']} B (hls)",
            easy["pertitle"]["bytes_ratio"],
            "(comparison)",
            None,
        ),
        row(
            "per-title ladder",
            f"hard (noise, motion) {clip}, hls-pertitle",
            ", ".join(
                f"{s}p VMAF {r['full_vmaf']} (target {r['target_vmaf']:g})" for s, r in kept.items()
            ),
            f"{hard['fixed']['bytes']} B, VMAF {hard['fixed']['vmaf']} (hls)",
            pt["bytes_ratio"],
            "no rung below its target",
            pt["all_targets_met"],
        ),
    ]
    for source, r in d["sources"].items():
        rows.append(
            row(
                "per-title search cost",
                f"{source} {clip}, job time, trial cache empty",
                f"{r['pertitle']['median_s']:.2f} s",
                f"{r['fixed']['median_s']:.2f} s (hls)",
                r["pertitle"]["time_ratio"],
                "≤ 1.5",
                r["pertitle"]["time_ratio"] <= 1.5,
            )
        )
        rows.append(
            row(
                "per-title resubmission",
                f"{source} {clip}, trials all cached",
                f"{r['resubmitted']['median_s']:.2f} s",
                f"{r['fixed']['median_s']:.2f} s (hls)",
                r["resubmitted"]["time_ratio"],
                "(measured)",
                None,
            )
        )
    return rows  # fmt: skip


def _dispatch_rows(d: Any) -> list[dict[str, Any]]:
    """Ours against the mirror-only floor, the stock way and plain Celery, with broker traffic."""
    ways = d["ways"]

    def fig(w: dict[str, Any]) -> str:
        traffic = (f", {w['publish_per_task']} pub + {w['deliver_get_per_task']} deliv/task"
                   if "publish_per_task" in w else "")  # fmt: skip
        return f"{w['tasks_s']:.0f} tasks/s{traffic}"

    def whole(w: dict[str, Any]) -> bool:
        return w.get("missing", 0) == 0 and not w.get("duplicates")

    ours = ways["ours"]
    ok = whole(ours)
    case = f"{d['tasks']} trivial tasks, complete audit"
    rows = [row("dispatch, complete audit", f"{case} vs mirror-only floor", fig(ours),
                fig(ways["floor"]) + " (floor)", d["ours_over_floor"], "≥ 0.85, nothing lost",
                ok and whole(ways["floor"]) and d["ours_over_floor"] >= 0.85),
            row("dispatch, complete audit", f"{case} vs stock Celery events", fig(ours),
                fig(ways["stock"]) + " (stock)", d["ours_over_stock"], "> 1, nothing lost",
                ok and whole(ways["stock"]) and d["ours_over_stock"] > 1)]  # fmt: skip
    if "plain" in ways:  # not in the smoke mode
        rows.append(row("dispatch, complete audit", f"{case} vs plain Celery, no audit",
                        fig(ours), fig(ways["plain"]) + " (plain)", d["ours_over_plain"],
                        "(comparison)", None))  # fmt: skip
    return rows


def _memory_rows(d: Any) -> list[dict[str, Any]]:
    """Absolute figures against absolute targets (the ratio column is figure / target)."""
    t, rows = d["targets_mb"], []
    if "worker" in d:
        w = d["worker"]
        each = ", ".join(f"{k.split()[0]} {v}" for k, v in w["worker_hwm_mb"].items())
        rows += [row("memory", f"worker (main + pool child), {w['clip']}",
                     f"{w['worker_pss_peak_mb']} MB peak PSS (RSS {each}; summed "
                     f"{w['worker_peak_mb']})", f"{t['worker']} MB (target)",
                     round(w["worker_pss_peak_mb"] / t["worker"], 3),
                     f"≤ {t['worker']} MB (PSS sum, each RSS)", w["worker_met"]),
                 row("memory", f"its ffmpeg, {w['clip']}", f"{w['ffmpeg_peak_mb']} MB peak RSS",
                     f"{w['worker_pss_peak_mb']} MB (the worker's PSS)",
                     round(w["ffmpeg_peak_mb"] / max(w["worker_pss_peak_mb"], 1), 3), "(measured)",
                     None)]  # fmt: skip
    if "audit" in d:
        a = d["audit"]
        rows.append(row("memory", f"audit consumer draining {a['messages']} messages",
                        f"{a['peak_mb']} MB peak, {a['rss_at_tenth_mb']} → {a['rss_at_end_mb']}"
                        " MB (10 % → 100 %)", f"{t['audit']} MB (target)",
                        round(a["peak_mb"] / t["audit"], 3),
                        f"≤ {t['audit']} MB, growth ≤ {t['audit_flat']} MB", a["met"]))  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown (the README's Performance section quotes it)."""
    mark = {True: "yes", False: "**no**", None: ""}
    lines = ["| benchmark | case | ours | baseline (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['benchmark']} | {r['case']} | {r['ours']} | {r['baseline']} | "
              f"{r['ratio']:.3f}x | {r['target']} | {mark[r['met']]} |" for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks, print and write the table; non-zero if one of them failed."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="CI smoke mode for every benchmark")
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated subset")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: the table from each benchmark's last JSON")  # fmt: skip
    args = parser.parse_args(argv)
    chosen = [n for n in ORDER if n in args.only.split(",")]
    out = results_dir(args.quick)
    failed = []
    for name in chosen if not args.collect else ():
        cmd = [sys.executable, "-m", "bench", name, *(["--quick"] if args.quick else [])]
        cmd += ["--broker", args.broker, "--backend", args.backend][: USES_BROKER.get(name, 0) * 2]
        (out / f"{name}.json").unlink(missing_ok=True)
        started = time.monotonic()
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        code = subprocess.run(cmd, check=False).returncode
        if code != 0 or not (out / f"{name}.json").is_file():
            failed.append(name)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    rows = [row for name in chosen if (out / f"{name}.json").is_file()
            for row in _rows(name, json.loads((out / f"{name}.json").read_text()))]  # fmt: skip
    table = markdown(rows)
    print("\n" + table)
    (out / "suite.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "suite.md").write_text(table)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
