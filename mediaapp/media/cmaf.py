"""Multi-codec ladders: the variants (one per rung and codec), their encoder options, the
ffmpeg graphs that encode them into CMAF (fMP4) segments, and their ``CODECS`` strings.

Every variant is video only, in its own folder (``0_1080p-h264/``: ``init.mp4``,
``seg_000.m4s``..., and an HLS media playlist over them); the audio is one more folder
(``audio/``) shared by every variant. HLS and DASH then describe the same files
(:mod:`mediaapp.media.cmafpack`). Keyframes are forced every ``segment_s`` in every codec,
so segments line up across codecs and rungs.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import ffmpeg

from mediaapp import defaults
from mediaapp.errors import NotMedia
from mediaapp.media import colour, command, hdr, renditions
from mediaapp.media.colour import Colour
from mediaapp.media.probe import ProbeResult
from mediaapp.media.profiles import Profile
from mediaapp.media.renditions import PlannedRung

#: The shared audio rendition's folder.
AUDIO = "audio"
PLAYLIST = "index.m3u8"


@dataclass(frozen=True)
class Variant:
    """One rung in one codec."""

    rung: PlannedRung
    codec: str
    video_kbps: int

    @property
    def name(self) -> str:
        """Its folder (``0_1080p-hevc``)."""
        return f"{self.rung.name}-{self.codec}"

    def colour_mode(self, info: ProbeResult) -> str:
        """The rendition mode of :mod:`hdr` for this source: HEVC (Main10) and AV1 (10-bit)
        keep an HDR source's HDR, H.264 tone-maps it."""
        return hdr.mode(info.colour, self.codec)


def plan_variants(info: ProbeResult, profile: Profile, codec: str | None = None) -> list[Variant]:
    """Every variant for this source (or ``codec``'s): H.264 first, highest rung first.

    The rungs are :func:`renditions.plan_rungs`'; each takes the codecs of the profile rung
    of its height (a source below the lowest rung: the lowest rung's)."""
    by_height = {r.height: r for r in profile.rungs}
    variants = []
    for want in profile.codecs:
        for rung in renditions.plan_rungs(info, profile):
            own = by_height.get(rung.short, profile.rungs[-1])
            if want in profile.rung_codecs(own) and codec in (None, want):
                factor = defaults.CODEC_KBPS_FACTOR
                kbps = round(rung.video_kbps * factor[want] / factor[profile.codec])
                variants.append(Variant(rung, want, max(1, kbps)))
    return variants


def video_options(variant: Variant, info: ProbeResult, profile: Profile) -> dict[str, Any]:
    """Encoder options of a variant: the ladder's own for H.264 and HEVC (no B-frames, forced
    keyframes, HEVC Main10), and SVT-AV1's equivalents (VBR: it takes no maxrate without
    CRF; closed GOPs; its preset from the x264 one's name; 10-bit HDR from an HDR source)."""
    rung = dataclasses.replace(variant.rung, video_kbps=variant.video_kbps)
    if variant.codec != "av1":
        encoder = defaults.LADDER_ENCODERS[variant.codec]
        return renditions.video_options(
            rung, info, dataclasses.replace(profile, video_codec=encoder)
        )
    gop = renditions.gop_frames(info, profile)
    return {
        "vcodec": defaults.LADDER_ENCODERS["av1"],
        "b:v": f"{variant.video_kbps}k",
        "preset": defaults.SVTAV1_PRESETS[profile.preset],
        "g": gop,
        "force_key_frames": f"expr:gte(t,n_forced*{profile.segment_s})",
        "svtav1-params": hdr.SVTAV1_BASE,
        "pix_fmt": "yuv420p",
    } | hdr.encoder_options(variant.colour_mode(info), info.colour)


def hls_options(folder: Path, profile: Profile) -> dict[str, Any]:
    """The HLS muxer writing CMAF: fMP4 segments, an init segment, no mux delay."""
    return renditions.hls_options(folder, profile, fmp4=True)


def _audio_output(audio: Any, folder: Path, info: ProbeResult, profile: Profile) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    return ffmpeg.output(
        renditions.aligned_audio(audio),
        command.output_target(folder / PLAYLIST),
        acodec="aac",
        ac=renditions.audio_channels(info),
        **{"b:a": f"{profile.audio_bitrate_kbps}k"},
        **hls_options(folder, profile),
    )


def encode_stream(
    src: Path,
    out_dir: Path,
    info: ProbeResult,
    profile: Profile,
    variants: list[Variant],
    *,
    audio: bool,
) -> Any:
    """One ffmpeg process: decode once, ``split`` into ``variants`` (and the audio rendition
    when ``audio``), each into its own folder of ``out_dir``."""
    inp = command.input_file(src)
    video = inp.video.filter("fps", renditions.frame_rate(info))
    branches = video.filter_multi_output("split", len(variants)) if len(variants) > 1 else None
    outputs = []
    for i, v in enumerate(variants):
        folder = out_dir / v.name
        folder.mkdir(parents=True, exist_ok=True)
        branch = branches.stream(i) if branches is not None else video
        picture = hdr.picture(branch, v.rung.width, v.rung.height, v.colour_mode(info), info.colour)
        outputs.append(
            ffmpeg.output(
                picture,
                command.output_target(folder / PLAYLIST),
                an=None,
                **video_options(v, info, profile),
                **hls_options(folder, profile),
            )
        )
    if audio and info.audio is not None:
        outputs.append(_audio_output(inp.audio, out_dir / AUDIO, info, profile))
    return ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]


def copy_stream(joined: Path, folder: Path, profile: Profile) -> Any:
    """A variant (or the audio) packaged from its already encoded track: copy, no encode."""
    folder.mkdir(parents=True, exist_ok=True)
    return ffmpeg.output(
        command.input_file(joined),
        command.output_target(folder / PLAYLIST),
        c="copy",
        **hls_options(folder, profile),
    )


def _av1_codec(av1c: bytes, tags: Colour | None = None, full_range: bool = False) -> str:
    """``av01.<profile>.<level><tier>.<bit depth>`` from the ``av1C`` record (AV1-ISOBMFF 2.3.3);
    of an HDR stream (``tags``), the long form with its colour (monochrome, chroma subsampling
    and position, CICP primaries, transfer, matrix, full range): the short one means BT.709."""
    if len(av1c) < 4 or av1c[0] != 0x81:
        raise NotMedia("AV1 stream without an av1C configuration record")
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    depth = (12 if av1c[2] & 0x20 else 10) if av1c[2] & 0x40 else 8
    codecs = f"av01.{profile}.{level:02d}{tier}.{depth:02d}"
    if tags is None or not tags.is_hdr:
        return codecs
    flags = av1c[2]
    chroma = f"{flags >> 3 & 1}{flags >> 2 & 1}{flags & 3}"
    codes = colour.cicp(tags).values()  # an unknown one: 2, "unspecified"
    cicp = ".".join(f"{2 if c is None else c:02d}" for c in codes)
    return f"{codecs}.{flags >> 4 & 1}.{chroma}.{cicp}.{int(full_range)}"


@dataclass(frozen=True)
class Measured:
    """What a variant's first segment holds, read back."""

    codecs: str  # its CODECS string
    codec: str  # the decoder's name (h264, hevc, av1)
    profile: str | None
    width: int
    height: int
    fps: float | None


def measure(init: Path, segment: Path, tags: Colour | None = None) -> Measured:
    """Codec, profile, size and rate of a variant, from its init and first media segment; the
    CODECS string from the configuration record its encoder wrote: ``avc1.PPCCLL`` (avcC),
    ``hvc1...`` (hvcC), ``av01...`` (av1C, with its colour ``tags`` when HDR)."""
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "first.mp4"
        whole.write_bytes(init.read_bytes() + segment.read_bytes())
        with av.open(str(whole)) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate
            name, record = stream.codec.name, bytes(ctx.extradata or b"")
            found = (ctx.profile, ctx.width, ctx.height, float(rate) if rate else None)
            full_range = ctx.color_range == 2  # AVCOL_RANGE_JPEG
    if name == "h264":
        if len(record) < 4 or record[0] != 1:
            raise NotMedia("H.264 stream without an avcC configuration record")
        codecs = f"avc1.{record[1:4].hex()}"
    elif name == "hevc":
        codecs = renditions.hevc_codec(record)
    elif name in ("av1", "libdav1d", "libaom-av1"):
        name, codecs = "av1", _av1_codec(record, tags, full_range)
    else:
        raise NotMedia(f"a variant in {name}, not H.264, HEVC or AV1")
    return Measured(codecs, name, *found)
