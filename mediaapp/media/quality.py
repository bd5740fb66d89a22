"""Measured quality: every video rendition of a job scored against its source (VMAF, PSNR, SSIM).

One ffmpeg process per job. The source is resampled to the output frame rate as the encode
was, split, and scaled to each rendition's size with the same scaler
(:func:`~mediaapp.media.inputs.scale_square`); libvmaf then compares each rendition with its
copy, PSNR and SSIM in the same pass. Usually on a sample: a few windows, each input sought
to each (:func:`sampled_stream`, windows planned in :mod:`~mediaapp.media.qsample`), as the
decodes of whole inputs cost more than a quality figure may; else the whole duration, one
frame in ``subsample`` (:func:`score_stream`: both sides from 0, ``setpts=PTS-STARTPTS``).
Either way both sides are on the same frame grid (``fps``), so frame n meets frame n.

libvmaf writes per-frame scores to a JSON log; the figures kept in the manifest are pooled
here (libvmaf pools no percentile, and p5 is what tells a bad scene inside a good mean).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import Any

import ffmpeg

from mediaapp import defaults
from mediaapp.errors import FFmpegError, FFmpegKilled, NotMedia
from mediaapp.media import command, hdr, qsample, renditions
from mediaapp.media.context import JobContext
from mediaapp.media.inputs import scale_square
from mediaapp.media.outputs import OutputEntry, Work

log = logging.getLogger(__name__)

#: libvmaf's built-in default model (no model file to ship), named so the figures say what
#: they are: VMAF scores from another model are not comparable.
MODEL = "vmaf_v0.6.1"
#: Bytes ffmpeg reads to find a rendition's streams (our own files: the first packets say
#: all). Its default (5 MB, decoding frames of an MPEG-TS segment to guess its frame rate)
#: was a third of the CPU of reading a short window.
RENDITION_PROBE_BYTES = 32768
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
    #: Frames of the rendition on the output grid, and the windows scored (first frame, frame
    #: count); no windows: the whole duration was scored (one frame in ``subsample``).
    frames_total: int = 0
    windows: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return {**asdict(self), "windows": [list(w) for w in self.windows]}


@dataclass(frozen=True)
class Target:
    """A rendition to score: the files that hold it, in order, and its picture size."""

    files: tuple[Path, ...]
    width: int
    height: int
    #: Segmented renditions: each segment's nominal start (seconds from the first frame), and
    #: how many of ``files`` come before the segments (a DASH init segment).
    starts_s: tuple[float, ...] = ()
    head: int = 0
    #: The encode's :func:`~mediaapp.media.hdr.mode`: tone-mapped, its reference is too,
    colour: str = hdr.SDR  # read as the source's probed colour (hdr.source_tags)
    lead: int = 0  # frames before the source's first (qsample.lead_frames): skipped
    source: hdr.Colour | None = None


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


def vmaf_mean(data: dict[str, Any]) -> float:
    """The VMAF mean of a libvmaf JSON log scored without PSNR and SSIM (a per-title trial);
    :class:`NotMedia` if no frame was scored."""
    vmaf = [
        float(f["metrics"]["vmaf"])
        for f in data.get("frames", [])
        if "vmaf" in f.get("metrics", {})
    ]
    if not vmaf:
        raise NotMedia("libvmaf scored 0 frames: nothing to measure")
    return round(fmean(vmaf), 3)


def _scored_frames(video: Any, subsample: int) -> Any:
    """Only the frames libvmaf reads: each scored frame and the one before it (its motion
    feature compares the two), so 3 frames in 5 are never scaled nor handed to libvmaf."""
    if subsample <= 2:
        return video
    return video.filter("select", f"not(mod(n,{subsample}))+eq(mod(n,{subsample}),{subsample - 1})")


@dataclass(frozen=True)
class Read:
    """How one input is read for one window: its files, where to seek (seconds after the
    container's start; 0: from the start), how long to read (seconds), and what to add to
    its timestamps (kept as demuxed: ``-copyts``) to count from its first video frame."""

    files: tuple[Path, ...]
    ss: float
    span_s: float
    shift_s: float
    probe_bytes: int | None = None


def source_reads(src: Path, start: qsample.VideoStart, windows: Sequence[qsample.Window],
                 fps: float) -> list[Read]:  # fmt: skip
    """The source sought to the keyframe each window follows (so nothing before it decodes)."""
    reads = []
    for w in windows:
        ss = math.ceil((start.offset_s + w.seek_s) * 1e6) / 1e6 if w.seek_s > 0 else 0.0
        span = (w.start + w.frames + 2) / fps - w.seek_s
        reads.append(Read((src,), ss, span, -start.first_s))
    return reads


def target_reads(target: Target, windows: Sequence[qsample.Window], fps: float) -> list[Read]:
    """A rendition read for each window: a single file sought half a frame before the window;
    a segmented one from the segment the window starts in (a keyframe), without a seek. A
    segment starts on the first frame at or after its nominal start: a frame of margin."""
    head = target.files[: target.head]
    segments = target.files[target.head :]
    first = qsample.video_start([*head, segments[0]])
    reads = []
    lead = target.lead / fps
    for w in windows:
        at, end = (w.start - 0.5) / fps + lead, (w.start + w.frames + 2) / fps + lead
        if not target.starts_s:
            ss = first.offset_s + at if w.start + target.lead > 0 else 0.0
            reads.append(Read(target.files, ss, end - max(at, 0.0), -first.first_s - lead,
                              RENDITION_PROBE_BYTES))  # fmt: skip
            continue
        starts = target.starts_s
        i = max((k for k, t in enumerate(starts) if t <= at - 1 / fps), default=0)
        last = max(i + 1, sum(t < end for t in starts))
        files = (*head, *segments[i:last])
        span = end - starts[i] + 1 / fps
        reads.append(Read(files, 0.0, span, -first.first_s - lead, RENDITION_PROBE_BYTES))
    return reads


def _window_chain(read: Read, window: qsample.Window, fps: float, subsample: int) -> Any:
    """One window of one input, on the output grid with frame numbers as timestamps (for
    both sides alike, whatever their seeks did), only the frames libvmaf reads (each scored
    frame and the one before it)."""
    options: dict[str, Any] = {"t": f"{read.span_s:.6f}", "threads": 1}
    if read.ss > 0:
        options["ss"] = f"{read.ss:.6f}"
    if read.probe_bytes:
        options["probesize"] = read.probe_bytes
    video = (
        command.segments_input(read.files, **options)
        .video.filter("setpts", f"PTS{read.shift_s:+.6f}/TB")
        .filter("fps", fps)
        .filter("trim", start_pts=window.start, end_pts=window.start + window.frames)
    )
    if subsample <= 2:  # every frame: scored, or the previous of one
        return video
    if window.first:  # a lone scored frame first, then (previous, scored) pairs
        return _scored_frames(video, subsample)
    return video.filter("select", f"lt(mod(n,{subsample}),2)")


def _windows(reads: Sequence[Read], windows: Sequence[qsample.Window], fps: float,
             subsample: int) -> Any:  # fmt: skip
    """All the windows of one input, in order, their timestamps kept."""
    chains = [_window_chain(r, w, fps, subsample) for r, w in zip(reads, windows, strict=True)]
    if len(chains) == 1:
        return chains[0]
    return ffmpeg.filter(chains, "interleave", nb_inputs=len(chains))


def sampled_stream(
    src: Path, fps: float, targets: Sequence[Target], logs: Sequence[Path], subsample: int,
    windows: Sequence[qsample.Window], source: qsample.VideoStart, threads: int = 2,
) -> Any:  # fmt: skip
    """Like :func:`score_stream`, on ``windows`` only: each input is read once per window
    (:func:`source_reads`, :func:`target_reads`). Both sides keep their timestamps, counted
    from their first video frame on the output grid, so libvmaf pairs frame n with frame n
    whatever a seek did; the source is split and scaled only on the frames scored.
    """
    reference = _windows(source_reads(src, source, windows, fps), windows, fps, subsample)
    branches = reference.filter_multi_output("split", len(targets))
    outputs = []
    for i, (target, log) in enumerate(zip(targets, logs, strict=True)):
        reads = target_reads(target, windows, fps)
        distorted = _windows(reads, windows, fps, subsample).filter("format", "yuv420p")
        scaled = _reference(branches.stream(i), target)
        outputs.append(_libvmaf(distorted, scaled, log, subsample, threads))
    return ffmpeg.merge_outputs(*outputs).global_args("-copyts")


def _reference(video: Any, target: Target) -> Any:
    """The source as the rendition should look: scaled to its size, tone-mapped if it was."""
    if target.colour == hdr.TONEMAP:
        return hdr.picture(video, target.width, target.height, hdr.TONEMAP, target.source)
    return scale_square(video, target.width, target.height)


def _libvmaf(distorted: Any, reference: Any, log: Path, subsample: int, threads: int,
             extra: bool = True) -> Any:  # fmt: skip
    """libvmaf (PSNR and SSIM in the same pass, unless not ``extra``) writing ``log``, to a
    null output."""
    features = {"feature": "name=psnr|name=float_ssim"} if extra else {}
    scored = ffmpeg.filter(
        [distorted, reference],  # distorted first
        "libvmaf",
        model=f"version={MODEL}",
        **features,
        n_subsample=min(subsample, 2),
        n_threads=threads,
        log_fmt="json",
        log_path=str(log),
        shortest=1,  # a rendition a frame short is not scored against a repeated frame
    )
    return scored.output("-", f="null")


def score_stream(
    src: Path, fps: float, targets: Sequence[Target], logs: Sequence[Path], subsample: int,
    threads: int = 2, extra: bool = True,
) -> Any:  # fmt: skip
    """The ffmpeg graph that scores every target against ``src``, one JSON log each (VMAF
    only, without PSNR and SSIM, unless ``extra``).

    Frame ``k * subsample`` of both sides is scored (``n_subsample`` over the kept pairs).
    """
    reference = _scored_frames(command.input_file(src).video.filter("fps", fps), subsample)
    branches = reference.filter_multi_output("split", len(targets))
    outputs = []
    for i, (target, log) in enumerate(zip(targets, logs, strict=True)):
        scaled = _reference(branches.stream(i), target)
        video = command.segments_input(target.files).video.filter("setpts", "PTS-STARTPTS")
        video = video.filter("fps", fps)
        if target.lead:  # copies of the source's first frame first: not the source's frames
            video = video.filter("trim", start_frame=target.lead).filter("setpts", "PTS-STARTPTS")
        distorted = _scored_frames(video, subsample).filter("format", "yuv420p")
        reference = scaled.filter("setpts", "PTS-STARTPTS")
        outputs.append(_libvmaf(distorted, reference, log, subsample, threads, extra))
    return ffmpeg.merge_outputs(*outputs)


def score(
    work: Work, src: Path, fps: float, targets: Sequence[Target], subsample: int,
    threads: int = 2, duration_s: float | None = None,
    windows: Sequence[qsample.Window] = (), source: qsample.VideoStart | None = None,
) -> list[Score]:  # fmt: skip
    """Score ``targets`` against ``src`` in one ffmpeg run (accounted in ``work``): on
    ``windows`` only when given (:func:`sampled_stream`, one frame in 2 there), else, or if
    a window's seek found nothing to score, the whole duration (one in ``subsample``)."""
    with tempfile.TemporaryDirectory(prefix="mediaapp-vmaf-") as tmp:
        logs = [Path(tmp) / f"{i}.json" for i in range(len(targets))]
        if windows:
            start = source or qsample.video_start([src])
            pairs = min(subsample, 2)
            # libvmaf's thread pool costs more than it saves on a few frames (measured: one
            # thread, 15 % less CPU and no more wall time than two).
            stream = sampled_stream(src, fps, targets, logs, pairs, windows, start, threads=1)
            try:
                return _run(work, stream, logs, pairs, windows, duration_s)
            except FFmpegKilled:
                raise  # timed out, stalled or cancelled: not a seek's fault
            except (FFmpegError, NotMedia) as exc:
                log.warning("sampled quality scoring failed (%s): scoring the whole duration", exc)
        stream = score_stream(src, fps, targets, logs, subsample, threads)
        return _run(work, stream, logs, subsample, (), duration_s)


def _run(work: Work, stream: Any, logs: Sequence[Path], subsample: int,
         windows: Sequence[qsample.Window], duration_s: float | None) -> list[Score]:  # fmt: skip
    """Run a scoring graph and pool its logs, each with the windows it read."""
    work.run(stream, duration_s=duration_s)
    spans = tuple((w.start, w.frames) for w in windows)
    return [
        replace(parse_log(json.loads(path.read_text()), subsample), windows=spans) for path in logs
    ]


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


def rendition_target(entry: OutputEntry, index: int, segment_s: float) -> Target:
    """A video entry as a :class:`Target`, with its segments' nominal starts (an HLS
    playlist's durations; DASH fragments are one ``segment_s`` each)."""
    files = tuple(rendition_files(entry, index))
    size = (entry.width or 0, entry.height or 0)
    if entry.kind == "hls-rendition":
        durations = [d for d, _ in renditions.media_playlist(Path(entry.path))]
        head = 1 if renditions.init_segment(Path(entry.path)) else 0  # first in files
        return Target(files, *size, qsample.segment_starts(durations), head)
    if entry.kind == "dash-representation":
        return Target(files, *size, tuple(k * segment_s for k in range(len(files) - 1)), 1)
    return Target(files, *size)


def score_outputs(work: Work, ctx: JobContext) -> None:
    """Add ``quality`` to every video rendition in ``work`` when the profile asks for it:
    on ``quality.sample`` frames in a few windows when the source seeks by an index and its
    keyframes spread them, else on the whole duration."""
    wanted = ctx.profile.quality
    entries = [e for e in work.outputs if e.kind in VIDEO_KINDS and "quality" not in e.extra]
    if not wanted.measure or not entries:
        return
    fps, video = renditions.frame_rate(ctx.source), ctx.source.video
    start_s = (video.start_s if video else None) or 0.0  # the video after the container starts
    targets, representation = [], 0  # DASH representations are numbered in order
    for e in entries:
        target = rendition_target(e, representation, ctx.profile.segment_s)
        mode = hdr.mode(ctx.source.colour, e.codec or "h264")
        lead = qsample.lead_frames(target.files[: target.head + 1], start_s, fps)
        targets.append(replace(target, colour=mode, source=ctx.source.colour, lead=lead))
        representation += e.kind == "dash-representation"
    # The video's duration, not audio running on past it; a still image is one frame.
    total = max(1, round(((video and video.duration_s) or ctx.source.duration_s or 0) * fps))
    windows: list[qsample.Window] = []
    source, subsample = None, wanted.subsample
    sample = wanted.sample
    if sample is None:
        sample = qsample.default_sample(ctx.source.duration_s or 0)
    if 0 < sample < math.ceil(total / subsample):  # else the sample is everything
        source = qsample.video_start([ctx.src], keyframes=True)
        if source.format in qsample.SEEKABLE:
            # In a window every frame decoded is used: (previous, scored) pairs, one in 2.
            windows = qsample.plan(total, fps, source.keyframes_s, sample,
                                   defaults.QUALITY_WINDOWS, min(subsample, 2))  # fmt: skip
            if len(windows) == 1 and min(defaults.QUALITY_WINDOWS, sample) > 1:
                # One keyframe: all windows in the first frames, not the rest (VMAF 77 for 92).
                windows, source = [], None
    scores = score(work, ctx.src, fps, targets, subsample, threads=ctx.settings.ffmpeg_threads or 2,
                   duration_s=ctx.source.duration_s, windows=windows, source=source)  # fmt: skip
    for entry, result in zip(entries, scores, strict=True):
        entry.extra["quality"] = replace(result, frames_total=total).to_dict()
