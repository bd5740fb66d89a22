"""The steps of a multi-codec ladder spread over workers: each codec's variants are encoded
by a step of their own (routed to the workers that proved the codec, in parallel), then one
step packages them all (:mod:`mediaapp.media.cmafpack`).

    video.transcode          probe, :func:`prepare_variants`
      ├─ video.variants      av1   (encode.av1.variants → video_av1_queue)
      ├─ video.variants      hevc  (encode.hevc.variants → video_hevc_queue)
      └─ video.variants      h264 + the audio (video.variants → video_queue)
    video.package_variants   master playlist, MPD, verification: the manifest

With the ``per_rendition`` ladder strategy each (codec, rung) is a step of its own.
"""

from __future__ import annotations

import shutil
from typing import Any

from mediaapp.media import cmaf, cmafpack, steps
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import Work, clear_partials

#: The manifest's ``strategy`` of a job spread by codec (by codec and rung: per_rendition).
PER_CODEC = "per_codec"


def prepare_variants(ctx: JobContext, strategy: str) -> list[dict[str, Any]]:
    """Clear what an earlier attempt left; one ``{"codec", "index"}`` per step to run, the
    slowest codec first (so no long step starts last); ``index`` None: all the codec's rungs."""
    clear_partials(ctx.out_dir)
    shutil.rmtree(cmafpack.stage_dir(ctx), ignore_errors=True)
    variants = cmaf.plan_variants(ctx.source, ctx.profile)
    parts: list[dict[str, Any]] = []
    for codec in reversed(ctx.profile.codecs):
        indexes = [v.rung.index for v in variants if v.codec == codec]
        if strategy == "per_rendition":
            parts += [{"codec": codec, "index": i} for i in indexes]
        elif indexes:
            parts.append({"codec": codec, "index": None})
    return parts


def encode_variants(
    ctx: JobContext,
    codec: str,
    index: int | None = None,
    on_progress: steps.ProgressCallback | None = None,
) -> dict[str, Any]:
    """Encode one codec's variants (all, or rung ``index``'s) into the stage directory."""
    work = Work(ctx.limits)
    names = cmafpack.encode_codec(work, ctx, codec, index, on_progress)
    return work.report(codec=codec, index=index, variants=names)


def package_variants(ctx: JobContext, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Package the staged variants (master playlist, MPD, verification); the manifest."""
    per_rung = any(p.get("index") is not None for p in parts)
    strategy = "per_rendition" if per_rung else PER_CODEC
    return steps.package_rungs(ctx, parts, cmafpack.package_stage, strategy)
