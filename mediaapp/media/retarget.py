"""A per-title ladder whose full encode missed a rung's target: encoded once more, lower.

The search predicts the full encode from a few short samples. A source whose samples are
easier than the rest (a static opening, then motion under grain) scores below the target on
the whole. Then each rung that missed gets the CRF the search's own slope says closes the gap
(with the search's headroom), the ladder is encoded again and scored again, and the
manifest's ``pertitle`` keeps what the first encode gave (``first``). Once only: a rung that
misses again is reported (``met``), not chased. A rung already at ``crf_min`` or at its bit-rate
cap can go no lower for a better score: it is left, and ``retarget`` says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediaapp.media import packaging, pertitle, phases, quality
from mediaapp.media.command import ProgressCallback
from mediaapp.media.context import JobContext
from mediaapp.media.crfsearch import lowered
from mediaapp.media.outputs import Work
from mediaapp.media.profiles import PerTitle

#: A rung whose measured bit rate is this share of its cap or more is at the cap: a lower CRF
#: would buy no better picture there (an HLS rung's rate counts its audio as well).
AT_CAP = 0.95


def corrections(record: dict[str, Any], pt: PerTitle) -> dict[int, int]:
    """The new CRF of each kept rung whose full encode scored below its target, by short
    side; a rung that cannot go lower gets the reason in ``retarget`` instead."""
    crfs = {}
    for r in record["rungs"]:
        vmaf = r.get("full_vmaf")
        if r["dropped"] or vmaf is None or vmaf >= r["target_vmaf"]:
            continue
        if r["crf"] <= pt.crf_min:
            r["retarget"] = f"at crf_min {pt.crf_min}: not encoded again"
        elif (r.get("bit_rate") or 0) >= AT_CAP * r["cap_kbps"] * 1000:
            r["retarget"] = f"at its cap ({r['cap_kbps']} kbit/s): not encoded again"
        else:
            trials = {t["crf"]: t["vmaf"] for t in r["trials"]}
            gap = r["target_vmaf"] + record["headroom"] - vmaf
            crfs[r["short"]] = lowered(trials, r["crf"], gap, pt)
    return crfs


def once(work: Work, ctx: JobContext, record: dict[str, Any],
         on_progress: ProgressCallback | None, strategy: str) -> JobContext:  # fmt: skip
    """Score the ladder ``work`` holds; if a rung missed its target and can go lower, encode
    the ladder again at the corrected CRFs (its first outputs replaced). The job's context
    as the outputs now stand."""
    with phases.phase("quality"):
        quality.score_outputs(work, ctx)
    pertitle.finish(record, work.outputs)
    crfs = corrections(record, ctx.profile.pertitle)
    if not crfs:
        return ctx
    for r in record["rungs"]:
        if r["short"] in crfs:
            first = {k: r[k] for k in ("crf", "full_vmaf", "bytes", "bit_rate")}
            r |= {"first": first, "crf": crfs[r["short"]]}
    record["reencoded"] = sorted(crfs, reverse=True)
    ctx = pertitle.resolved(ctx, record)
    package = ctx.out_dir / ctx.profile.kind  # replaced as a whole by the new encode
    work.outputs = [o for o in work.outputs if not Path(o.path).is_relative_to(package)]
    packaging.encode_ladder(work, ctx, on_progress, strategy)
    return ctx
