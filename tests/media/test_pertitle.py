"""Per-title ladders (issue 16): the CRF search on samples of an easy and a hard source, the
full encode against its target, rungs that add nothing dropped, and the trial cache that makes
a resubmission free. Media tier: real ffmpeg on 4 s 480x270 sources, no broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediaapp.errors import StorageCorrupt
from mediaapp.media import chunking, command, pertitle, renditions, steps
from mediaapp.media.context import JobContext
from mediaapp.media.outputs import load_manifest
from mediaapp.ops.report import render, write_report
from mediaapp.settings import Settings

from ..media_sources import EASY, HARD, generate_graph, generate_hdr, settings_with_profiles

pytestmark = pytest.mark.media
#: Clean even seconds, heavy grain in the odd ones: both samples (the first second of each
#: 2 s chunk) are clean, so they promise more than the whole source gives.
MIXED = "testsrc2=size={size}:rate=30,noise=alls=30:allf=t+u:enable='gte(mod(t,2),1)'"
RUNGS = "[{ height = 270, video_kbps = 3000, target_vmaf = 94 },\n" \
        " { height = 180, video_kbps = 2000, target_vmaf = 90 }]"  # fmt: skip
PROFILES = f"""
[pt]
kind = "hls"
segment_s = 2
rungs = {RUNGS}
pertitle = {{ samples = 2, sample_s = 1.0, max_trials = 4, subsample = 3 }}

[pt-dash]
kind = "dash"
segment_s = 2
rungs = {RUNGS}
pertitle = {{ samples = 2, sample_s = 1.0, max_trials = 3, subsample = 3 }}

[pt-margin]
kind = "hls"
segment_s = 2
rungs = [{{ height = 270, video_kbps = 3000, target_vmaf = 92 }},
         {{ height = 180, video_kbps = 2000, target_vmaf = 92 }}]
pertitle = {{ samples = 2, sample_s = 1.0, max_trials = 3, margin = 5.0, subsample = 3 }}
"""


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return settings_with_profiles(tmp_path, media_root, "pertitle", PROFILES)


@pytest.fixture
def easy(media_root: Path) -> str:
    return generate_graph(media_root, "pt-easy.mp4", EASY)


@pytest.fixture
def hard(media_root: Path) -> str:
    return generate_graph(media_root, "pt-hard.mp4", HARD)


def by_rung(manifest: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The manifest's per-title record of each rung, by short side."""
    return {r["short"]: r for r in manifest["pertitle"]["rungs"]}


def test_the_hard_source_gets_lower_crfs_and_every_rung_meets_its_target(
    settings: Settings, easy: str, hard: str
) -> None:
    runs = {name: steps.run(f"pt-{name}", src, "pt", settings)
            for name, src in (("easy", easy), ("hard", hard))}  # fmt: skip
    for name, manifest in runs.items():
        record = manifest["pertitle"]
        assert record["model"] == "vmaf_v0.6.1" and record["tolerance"] == 2.0
        samples = record["samples"]
        assert len(samples) == 2 and all(s["duration_s"] <= 1.0 for s in samples)
        videos = [o for o in manifest["outputs"] if o["kind"] == "hls-rendition"]
        assert [v["height"] for v in videos] == [270, 180], (name, record)
        for rung in record["rungs"]:
            assert rung["dropped"] is None, (name, rung)
            assert 1 <= len(rung["trials"]) <= 4
            assert rung["crf"] in [t["crf"] for t in rung["trials"]]
            assert rung["reached_on_samples"] and rung["sample_vmaf"] >= rung["target_vmaf"]
            # The search's answer holds on the whole source, within the tolerance.
            assert rung["met"] and rung["full_vmaf"] >= rung["target_vmaf"] - 2.0, (name, rung)
            video = next(v for v in videos if v["height"] == rung["height"])
            assert rung["full_vmaf"] == video["quality"]["vmaf_mean"]
            assert rung["bytes"] == video["size"]
        # The full encode ran at the chosen CRFs, capped at the rung's video_kbps.
        chosen = [r["crf"] for r in record["rungs"]]
        ladder = next(c for c in manifest["commands"] if "index.m3u8" in c)
        for crf, cap in zip(chosen, (3000, 2000), strict=True):
            assert f"-crf:v {crf} " in ladder and f"-maxrate:v {cap}k" in ladder
    easy_rungs, hard_rungs = by_rung(runs["easy"]), by_rung(runs["hard"])
    for short in (270, 180):
        assert hard_rungs[short]["crf"] < easy_rungs[short]["crf"], (easy_rungs, hard_rungs)
    easy_bytes = sum(r["bytes"] for r in easy_rungs.values())
    assert easy_bytes * 3 < sum(r["bytes"] for r in hard_rungs.values())


def test_a_resubmission_runs_no_trial_encode(
    settings: Settings, hard: str, ffmpeg_calls: list[str]
) -> None:
    """Trials are cached by the samples' content hash: the same source again, as a new job,
    encodes nothing before its ladder (counted at the ffmpeg call)."""
    calls = ffmpeg_calls
    first = steps.run("pt-cache-1", hard, "pt-dash", settings)
    trial_encodes = [c for c in calls if "/.pertitle/trial-" in c and "libx264" in c]
    assert trial_encodes and first["pertitle"]["trial_encodes"] > 0
    # A trial is scored on VMAF alone (no PSNR nor SSIM, which it never used), one thread.
    trial_scores = [c for c in calls if "/.pertitle/trial-" in c and "libvmaf" in c]
    assert trial_scores and not [c for c in trial_scores if "psnr" in c or "ssim" in c]
    assert all("n_threads=1" in c for c in trial_scores)
    calls.clear()
    second = steps.run("pt-cache-2", hard, "pt-dash", settings)
    assert not [c for c in calls if "/.pertitle/" in c and ("libx264" in c or "libvmaf" in c)]
    assert second["pertitle"]["trial_encodes"] == 0
    assert all(t["cached"] for r in second["pertitle"]["rungs"] for t in r["trials"])
    assert [r["crf"] for r in second["pertitle"]["rungs"]] == [
        r["crf"] for r in first["pertitle"]["rungs"]
    ]
    assert all(len(r["trials"]) <= 3 for r in first["pertitle"]["rungs"])
    reps = [o for o in second["outputs"] if o["kind"] == "dash-representation"]
    assert [r["height"] for r in reps] == [270, 180] and all("quality" in r for r in reps)


def test_a_rung_that_adds_nothing_is_dropped_and_the_manifest_says_why(
    settings: Settings, easy: str
) -> None:
    manifest = steps.run("pt-drop", easy, "pt-margin", settings)
    top, low = manifest["pertitle"]["rungs"]
    # Same target on both: the 270p rung scores within 5 VMAF of the 180p one at more bits.
    assert top["dropped"] and "within 5.0 of 1_180p" in top["dropped"], top
    assert low["dropped"] is None and low["met"]
    assert "full_vmaf" not in top
    master = Path(next(o["path"] for o in manifest["outputs"] if o["kind"] == "hls-master"))
    variants = renditions.parse_master(master.read_text())
    assert [v["RESOLUTION"] for v in variants] == ["320x180"]
    assert not (master.parent / pertitle.WORK_DIR).exists()
    assert not (settings.output_root / "pt-drop" / pertitle.WORK_DIR).exists()
    page = render(manifest, [], settings.output_root / "pt-drop")  # the report page
    table = page.split('<table id="pertitle">')[1].split("</table>")[0]
    assert "within 5.0 of 1_180p" in table and "met" in table


def test_a_full_encode_below_its_target_is_encoded_once_more_at_a_lower_crf(
    settings: Settings, media_root: Path
) -> None:
    src = generate_graph(media_root, "pt-mixed.mp4", MIXED)
    manifest = steps.run("pt-mixed", src, "pt", settings)
    record = manifest["pertitle"]
    assert record["reencoded"], record
    videos = {v["height"]: v for v in manifest["outputs"] if v["kind"] == "hls-rendition"}
    assert sorted(videos) == [180, 270]
    for r in record["rungs"]:
        if r["short"] in record["reencoded"]:
            first = r["first"]  # what the samples' CRF gave on the whole source
            assert first["full_vmaf"] < r["target_vmaf"] <= r["sample_vmaf"], r
            assert r["crf"] < first["crf"] and r["full_vmaf"] > first["full_vmaf"], r
        assert r["met"] and r["full_vmaf"] >= r["target_vmaf"] - 2.0, r
        # The published rung is the second encode, scored once.
        video = videos[r["height"]]
        assert r["bytes"] == video["size"] and r["full_vmaf"] == video["quality"]["vmaf_mean"]
    ladders = [c for c in manifest["commands"] if "index.m3u8" in c]
    assert len(ladders) == 2, ladders
    assert all(f"-crf:v {r['crf']} " in ladders[1] for r in record["rungs"])
    master = Path(next(o["path"] for o in manifest["outputs"] if o["kind"] == "hls-master"))
    assert len(renditions.parse_master(master.read_text())) == 2
    page = render(manifest, [], settings.output_root / "pt-mixed")  # the report page says so
    first = next(r["first"] for r in record["rungs"] if "first" in r)
    assert f"first at CRF {first['crf']}: VMAF {first['full_vmaf']:.1f}" in page


def test_an_hdr_source_tone_mapped_is_searched_against_its_tone_mapped_samples(
    settings: Settings,
) -> None:
    """Trials of an H.264 ladder over HDR10 are tone-mapped: scored against the PQ sample they
    all made VMAF 100 (CRF 23 as CRF 31), and the search took the highest CRF it tried."""
    pq = generate_hdr(settings.media_root, "pt-pq.mp4", gop=30)
    rungs = by_rung(steps.run("pt-pq", pq, "pt", settings))
    for r in rungs.values():
        vmafs = [t["vmaf"] for t in sorted(r["trials"], key=lambda t: t["crf"])]
        assert vmafs == sorted(vmafs, reverse=True) and vmafs[0] < 99.5, r["trials"]
        assert abs(r["full_vmaf"] - r["sample_vmaf"]) < 4, r


def test_a_one_frame_source_gets_a_sane_trial_bit_rate(settings: Settings) -> None:
    """A still image as a video: the trial's one frame lasts a frame, not 0 s (its bit rate
    was its bytes over a microsecond, 33 Gbit/s in the manifest)."""
    still = "pt-still.mp4"
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=480x270:rate=30", "-frames:v", "1", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p", "-y", str(settings.media_root / still)])  # fmt: skip
    for r in by_rung(steps.run("pt-still", still, "pt", settings)).values():
        assert 0 < r["sample_kbps"] < 20_000 and all(t["kbps"] < 20_000 for t in r["trials"]), r


def test_a_sample_chunk_damaged_between_rounds_is_never_cached_under_its_hash(
    settings: Settings, hard: str
) -> None:
    """Trial tasks read the sample chunks the split left in ``.pertitle``; one torn between
    rounds was encoded and scored against itself, and the result cached under the intact
    chunk's SHA-256: every later job of the source took it. Now the trial fails, typed."""
    ctx = JobContext.open("pt-torn", hard, "pt", settings)
    state = pertitle.new_state(pertitle.pick_samples(ctx), tasks=True)
    sample = state["samples"][0]
    chunk = pertitle.work_dir(ctx.out_dir) / sample["name"]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with pytest.raises(StorageCorrupt, match="SHA-256"):
        pertitle.trial(ctx, sample, pertitle.next_probes(ctx, state))
    assert not list((chunking.cache_dir(settings) / "trials").rglob("*.json"))


@pytest.mark.parametrize("profile", ["pt", "pt-dash"])
def test_a_finished_ladder_is_found_complete_and_its_report_written(
    settings: Settings, easy: str, profile: str
) -> None:
    """A playlist's (or MPD's) entry counts the size and hash of all its files: checked
    against the playlist alone, no HLS or DASH job was ever complete on disk, so a redelivered
    per-title step encoded the ladder again and ``mediaapp report`` refused every such job."""
    job_id = f"pt-done-{profile}"
    first = steps.run(job_id, easy, profile, settings)
    assert load_manifest(job_id, settings) == first
    assert steps.run(job_id, easy, profile, settings)["created_at"] == first["created_at"]
    assert "Per-title search" in write_report(job_id, settings).read_text()
