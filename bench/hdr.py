"""HDR: what tone-mapping and HEVC Main10 cost, against the same job on an SDR source.

    python -m bench hdr [--reps 3] [--quick]

Two clips of the same content (testsrc2 and a tone, 1280x720, 4 s; ``--quick``: 320x240,
2 s, 1 rep): SDR H.264, and the same picture converted to 10-bit HDR10 HEVC (PQ, BT.2020,
mastering display and MaxCLL). Measured alternately in one run, median of ``--reps``:

* whole jobs (probe, encodes, previews, verification with the colour read back): ``web`` on
  the SDR clip (baseline) and on the HDR10 clip (tone-mapped to BT.709); ``hls`` (H.264,
  tone-mapped) and ``hls-hdr10`` (HEVC Main10, HDR10 kept) on the HDR10 clip;
* the tone-map alone: the web MP4's one ffmpeg command on the HDR10 clip with and without
  the tone-map (the graph an HDR source got before: same decode, same encode).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import write_result


def main(argv: list[str]) -> int:
    """Measure and print the table; write JSON under bench/results/ (hdr.json)."""
    parser = argparse.ArgumentParser(prog="python -m bench hdr")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 320x240 2 s, 1 rep")
    args = parser.parse_args(argv)
    size, seconds, reps = ("1280x720", 4, args.reps) if not args.quick else ("320x240", 2, 1)
    work = Path(tempfile.mkdtemp(prefix="mediaapp-hdr-"))
    media = work / "media"
    media.mkdir()
    os.environ.update(MEDIAAPP_MEDIA_ROOT=str(media), MEDIAAPP_DATA_DIR=str(work / "data"))
    from mediaapp.media import command, mp4, steps
    from mediaapp.media.probe import probe
    from mediaapp.media.profiles import get_profile
    from mediaapp.settings import get_settings
    from tests.media_sources import generate, generate_hdr

    sdr = generate(media, "sdr.mp4", size=size, seconds=seconds)
    pq = generate_hdr(media, "pq.mp4", size=size, seconds=seconds)
    settings = get_settings()
    jobs = {
        "web, SDR source (baseline)": (sdr, "web"),
        "web, HDR10 source, tone-mapped": (pq, "web"),
        "hls, HDR10 source, tone-mapped H.264": (pq, "hls"),
        "hls-hdr10, HDR10 source, HEVC Main10": (pq, "hls-hdr10"),
    }
    info, web = probe(media / pq), get_profile("web")
    untreated = dataclasses.replace(info, streams=[dataclasses.replace(s, colour=None)
                                                   for s in info.streams])  # fmt: skip
    encodes = {"web encode, HDR10, no tone-map (before)": untreated,
               "web encode, HDR10, tone-mapped": info}  # fmt: skip
    times: dict[str, list[float]] = {label: [] for label in [*jobs, *encodes]}
    for rep in range(reps):
        for i, (label, (name, profile)) in enumerate(jobs.items()):
            started = time.perf_counter()
            steps.run(f"hdr{rep}-{i}", name, profile, settings)
            times[label].append(time.perf_counter() - started)
        for label, probed in encodes.items():
            stream = mp4.web_stream(media / pq, work / "web.mp4", probed, web, settings)
            times[label].append(command.run(stream).elapsed_s)
    sdr_web, h264, before = (
        "web, SDR source (baseline)", "hls, HDR10 source, tone-mapped H.264",
        "web encode, HDR10, no tone-map (before)",
    )  # fmt: skip
    against = {
        "hls-hdr10, HDR10 source, HEVC Main10": h264,
        "web encode, HDR10, tone-mapped": before,
    }
    rows = []
    for label, values in times.items():
        base = against.get(label, sdr_web if label in jobs else before)
        rows.append({"job": label, "median_s": round(statistics.median(values), 3),
                     "ratio": round(statistics.median(values) / statistics.median(times[base]), 3),
                     "against": base})  # fmt: skip
    print(f"HDR jobs on a {size} {seconds} s clip, median of {reps}")
    for row in rows:
        print(f"  {row['job']:<40} {row['median_s']:>7.3f} s  {row['ratio']:>6.3f}x"
              f"  (of {row['against']})")  # fmt: skip
    write_result("hdr", {"size": size, "seconds": seconds, "reps": reps, "rows": rows},
                 args.quick)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return 0
