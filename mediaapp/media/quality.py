"""Measured quality: every video rendition of a job scored against its source (VMAF, PSNR, SSIM).

One ffmpeg process per job. The source is decoded once, resampled to the output frame rate as
the encode was, split, and scaled to each rendition's size with the same scaler
(:func:`~mediaapp.media.inputs.scale_square`); libvmaf then compares each rendition with its
copy, PSNR and SSIM in the same pass, on one frame in ``subsample`` (cheap: the decodes are
the cost). Both sides start at 0 (``setpts=PTS-STARTPTS``) on the same frame grid (``fps``),
so frame n is compared with frame n whatever timebase the rendition's container has.

libvmaf writes per-frame scores to a JSON log; the figures kept in the manifest are pooled
here (libvmaf pools no percentile, and p5 is what tells a bad scene inside a good mean).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import ffmpeg

from mediaapp.errors import NotMedia
from mediaapp.media import command, renditions
from mediaapp.media.context import JobContext
from mediaapp.media.inputs import scale_square
from mediaapp.media.outputs import OutputEntry, Work

#: libvmaf's built-in default model (no model file to ship), named so the figures say what
#: they are: VMAF scores from another model are not comparable.
MODEL = "vmaf_v0.6.1"
#: Manifest entries that are a video rendition (scored); the rest (posters, playlists...) are not.
VIDEO_KINDS = ("video", "hls-rendition", "dash-representation")


@dataclass(frozen=True)
class Score:
    """One rendition's quality, as the manifest records it (``quality``)."""

    vmaf_mean: float
    vmaf_p5: float
    vmaf_min: float
    psnr_mean: float  # luma (Y) PSNR in dB, the usual single PSNR figure
    ssim_mean: float
    model: str
    frames_scored: int
    subsample: int

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A rendition to score: the files that hold it, in order, and its picture size."""

    files: tuple[Path, ...]
    width: int
    height: int


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, linear between the closest ranks (numpy's default method)."""
    if not values or not 0 <= q <= 100:
        raise ValueError(f"percentile {q} of {len(values)} values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def parse_log(data: dict[str, Any], subsample: int) -> Score:
    """The pooled figures of one libvmaf JSON log (``log_fmt=json``).

    A log without a scored frame means the rendition decoded to nothing: :class:`NotMedia`.
    """
    frames = [f.get("metrics", {}) for f in data.get("frames", [])]
    columns = {
        key: [float(m[key]) for m in frames if key in m] for key in ("vmaf", "psnr_y", "float_ssim")
    }
    if not columns["vmaf"] or len({len(c) for c in columns.values()}) != 1:
        raise NotMedia(f"libvmaf scored {len(columns['vmaf'])} frames: nothing to measure")
    vmaf = columns["vmaf"]
    return Score(
        vmaf_mean=round(fmean(vmaf), 3),
        vmaf_p5=round(percentile(vmaf, 5), 3),
        vmaf_min=round(min(vmaf), 3),
        psnr_mean=round(fmean(columns["psnr_y"]), 3),
        ssim_mean=round(fmean(columns["float_ssim"]), 5),
        model=MODEL,
        frames_scored=len(vmaf),
        subsample=subsample,
    )


def _scored_frames(video: Any, subsample: int) -> Any:
    """Only the frames libvmaf reads: each scored frame and the one before it (its motion
    feature compares the two), so 3 frames in 5 are never scaled nor handed to libvmaf."""
    if subsample <= 2:
        return video
    return video.filter("select", f"not(mod(n,{subsample}))+eq(mod(n,{subsample}),{subsample - 1})")


def score_stream(
    src: Path, fps: float, targets: Sequence[Target], logs: Sequence[Path], subsample: int,
    threads: int = 2,
) -> Any:  # fmt: skip
    """The ffmpeg graph that scores every target against ``src``, one JSON log each.

    Frame ``k * subsample`` of both sides is scored (``n_subsample`` over the kept pairs).
    """
    reference = _scored_frames(command.input_file(src).video.filter("fps", fps), subsample)
    branches = reference.filter_multi_output("split", len(targets))
    outputs = []
    for i, (target, log) in enumerate(zip(targets, logs, strict=True)):
        scaled = scale_square(branches.stream(i), target.width, target.height)
        distorted = _scored_frames(
            command.segments_input(target.files)
            .video.filter("setpts", "PTS-STARTPTS")
            .filter("fps", fps),
            subsample,
        ).filter("format", "yuv420p")
        scored = ffmpeg.filter(
            [distorted, scaled.filter("setpts", "PTS-STARTPTS")],  # distorted first
            "libvmaf",
            model=f"version={MODEL}",
            feature="name=psnr|name=float_ssim",
            n_subsample=min(subsample, 2),
            n_threads=threads,
            log_fmt="json",
            log_path=str(log),
            shortest=1,  # a rendition a frame short is not scored against a repeated frame
        )
        outputs.append(scored.output("-", f="null"))
    return ffmpeg.merge_outputs(*outputs)


def score(
    work: Work, src: Path, fps: float, targets: Sequence[Target], subsample: int,
    threads: int = 2, duration_s: float | None = None,
) -> list[Score]:  # fmt: skip
    """Score ``targets`` against ``src`` in one ffmpeg run (accounted in ``work``)."""
    with tempfile.TemporaryDirectory(prefix="mediaapp-vmaf-") as tmp:
        logs = [Path(tmp) / f"{i}.json" for i in range(len(targets))]
        work.run(score_stream(src, fps, targets, logs, subsample, threads), duration_s=duration_s)
        return [parse_log(json.loads(log.read_text()), subsample) for log in logs]


def rendition_files(entry: OutputEntry, index: int) -> list[Path]:
    """The files of one video entry, in playing order: the MP4 itself, an HLS rung's
    segments, or a DASH representation's init segment and fragments (``index``: its place
    among the job's representations, which is ffmpeg's ``stream`` number)."""
    path = Path(entry.path)
    if entry.kind == "hls-rendition":  # fMP4 (HEVC, CMAF variants): its init segment first
        init = renditions.init_segment(path)
        segments = [path.parent / name for _, name in renditions.media_playlist(path)]
        return [init, *segments] if init else segments
    if entry.kind == "dash-representation":
        fragments = sorted(path.parent.glob(f"chunk-stream{index}-*.m4s"))
        return [path.parent / f"init-stream{index}.m4s", *fragments]
    return [path]


def score_outputs(work: Work, ctx: JobContext) -> None:
    """Add ``quality`` to every video rendition in ``work`` when the profile asks for it."""
    wanted = ctx.profile.quality
    entries = [e for e in work.outputs if e.kind in VIDEO_KINDS]
    if not wanted.measure or not entries:
        return
    targets, representation = [], 0  # DASH representations are numbered in order
    for e in entries:
        files = rendition_files(e, representation)
        targets.append(Target(tuple(files), e.width or 0, e.height or 0))
        representation += e.kind == "dash-representation"
    scores = score(
        work,
        ctx.src,
        renditions.frame_rate(ctx.source),
        targets,
        wanted.subsample,
        threads=ctx.settings.ffmpeg_threads or 2,
        duration_s=ctx.source.duration_s,
    )
    for entry, result in zip(entries, scores, strict=True):
        entry.extra["quality"] = result.to_dict()
