"""The colour of a video stream: transfer, primaries, matrix, bit depth and HDR side data.

Read with PyAV, like the rest of the probe (the wheel ships no ffprobe): the tags come from
the stream's codec parameters, the static HDR metadata (SMPTE ST 2086 mastering display,
CTA-861.3 content light level) and Dolby Vision RPUs from the side data of the first decoded
frame, where the decoders put the SEI messages the bitstream carries. Names are ffmpeg's
(what ``ffprobe`` prints as ``color_transfer``, ``color_primaries``, ``color_space``).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import av

from mediaapp.errors import NotMedia

#: ffmpeg's enum values (libavutil/pixfmt.h) to its names; 2 ("unspecified") is absent.
TRANSFERS = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67",
}  # fmt: skip
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020",
             11: "smpte431", 12: "smpte432"}  # fmt: skip
MATRICES = {0: "gbr", 1: "bt709", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc",
            10: "bt2020c"}  # fmt: skip
PQ = "smpte2084"
HLG = "arib-std-b67"
#: Codec tags of Dolby Vision tracks in MP4 (the configuration record's own box is not exposed).
_DOVI_TAGS = {"dvh1", "dvhe", "dva1", "dvav", "dav1"}


@dataclass(frozen=True)
class Mastering:
    """The mastering display (SMPTE ST 2086): CIE 1931 xy of the primaries and white point,
    luminance in cd/m²."""

    red: tuple[float, float]
    green: tuple[float, float]
    blue: tuple[float, float]
    white_point: tuple[float, float]
    max_luminance: float
    min_luminance: float

    def x265(self) -> str:
        """x265's ``master-display``: chromaticities in 0.00002, luminance in 0.0001 cd/m²."""

        def xy(p: tuple[float, float]) -> str:
            return f"({round(p[0] * 50000)},{round(p[1] * 50000)})"

        return (
            f"G{xy(self.green)}B{xy(self.blue)}R{xy(self.red)}WP{xy(self.white_point)}"
            f"L({round(self.max_luminance * 10000)},{round(self.min_luminance * 10000)})"
        )

    def svtav1(self) -> str:
        """SVT-AV1's ``mastering-display``: x265's layout, in plain chromaticities and cd/m²."""

        def xy(p: tuple[float, float]) -> str:
            return f"({p[0]:.5f},{p[1]:.5f})"

        return (
            f"G{xy(self.green)}B{xy(self.blue)}R{xy(self.red)}WP{xy(self.white_point)}"
            f"L({self.max_luminance:.4f},{self.min_luminance:.4f})"
        )

    def matches(self, other: Mastering) -> bool:
        """The same display, to the precision the bitstreams store it in: HEVC's SEI in steps
        of 0.00002 and 0.0001 cd/m², AV1's metadata OBU in fixed point (0.16 chromaticities,
        24.8 and 18.14 luminance) that comes back as 0.67999 for 0.68."""
        ours = (*self.red, *self.green, *self.blue, *self.white_point)
        theirs = (*other.red, *other.green, *other.blue, *other.white_point)
        return (
            all(abs(a - b) <= 5e-5 for a, b in zip(ours, theirs, strict=True))
            and math.isclose(self.max_luminance, other.max_luminance, rel_tol=1e-3)
            and math.isclose(self.min_luminance, other.min_luminance, abs_tol=1e-4)
        )


@dataclass(frozen=True)
class ContentLight:
    """Content light level (CTA-861.3), in cd/m²."""

    max_cll: int
    max_fall: int


@dataclass(frozen=True)
class Colour:
    """What a video stream says about its colour; None where it says nothing."""

    transfer: str | None
    primaries: str | None
    matrix: str | None
    bit_depth: int | None
    mastering: Mastering | None = None
    content_light: ContentLight | None = None
    dolby_vision: bool = False

    @property
    def is_hdr(self) -> bool:
        """PQ (HDR10, Dolby Vision's base layer) or HLG: a transfer SDR screens cannot show."""
        return self.transfer in (PQ, HLG)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (probe results, manifests), with ``is_hdr`` spelled out."""
        return {**asdict(self), "is_hdr": self.is_hdr}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Colour:
        """Back from :meth:`to_dict`."""
        values = {k: v for k, v in data.items() if k != "is_hdr"}
        if values.get("mastering"):
            m = values["mastering"]
            values["mastering"] = Mastering(
                tuple(m["red"]), tuple(m["green"]), tuple(m["blue"]), tuple(m["white_point"]),
                m["max_luminance"], m["min_luminance"],
            )  # fmt: skip
        if values.get("content_light"):
            values["content_light"] = ContentLight(**values["content_light"])
        return cls(**values)


def cicp(tags: Colour) -> dict[str, int | None]:
    """The CICP code points (ITU-T H.273) of ``tags``' primaries, transfer and matrix, by the
    names DASH's descriptors give them (in that order: the AV1 CODECS string's too); None
    where a tag is not given or not one of the tables above."""
    found = (("ColourPrimaries", PRIMARIES, tags.primaries),
             ("TransferCharacteristics", TRANSFERS, tags.transfer),
             ("MatrixCoefficients", MATRICES, tags.matrix))  # fmt: skip
    return {name: next((k for k, v in table.items() if v == tag), None)
            for name, table, tag in found}  # fmt: skip


def of_stream(stream: Any) -> Colour:
    """The tags of a PyAV video stream (no decode: the codec parameters only)."""
    ctx = stream.codec_context
    fmt = getattr(ctx, "format", None)
    bits = max((c.bits for c in fmt.components), default=0) if fmt is not None else 0
    tag = str(getattr(ctx, "codec_tag", "") or "")
    return Colour(
        transfer=TRANSFERS.get(ctx.color_trc),
        primaries=PRIMARIES.get(ctx.color_primaries),
        matrix=MATRICES.get(ctx.colorspace),
        bit_depth=bits or None,
        dolby_vision=tag in _DOVI_TAGS,
    )


def with_frame(colour: Colour, frame: Any) -> Colour:
    """``colour`` completed from a decoded frame: its tags where the stream had none, and the
    HDR side data. A frame's PQ or HLG wins over the stream's transfer: the decoder applies
    an alternative transfer characteristics SEI (broadcast HLG says bt2020-10 in the VUI for
    SDR screens), and ffmpeg's filters and encoders will see the frame's."""
    mastering, light, dovi = None, None, colour.dolby_vision
    transfer = TRANSFERS.get(frame.color_trc)
    if transfer not in (PQ, HLG):
        transfer = colour.transfer or transfer
    for data in frame.side_data:
        kind = data.type.name
        if kind == "MASTERING_DISPLAY_METADATA":
            mastering = _mastering(bytes(data))
        elif kind == "CONTENT_LIGHT_LEVEL":
            light = ContentLight(*struct.unpack_from("<II", bytes(data)))
        elif kind.startswith("DOVI_"):
            dovi = True
    return replace(
        colour,
        transfer=transfer,
        primaries=colour.primaries or PRIMARIES.get(frame.color_primaries),
        matrix=colour.matrix or MATRICES.get(frame.colorspace),
        mastering=mastering,
        content_light=light,
        dolby_vision=dovi,
    )


def _mastering(raw: bytes) -> Mastering | None:
    """``AVMasteringDisplayMetadata``: 10 rationals (r, g, b, white point, min, max), then
    has_primaries and has_luminance."""
    if len(raw) < 88:
        return None
    ints = struct.unpack_from("<20i2i", raw)
    q = [ints[i] / ints[i + 1] if ints[i + 1] else 0.0 for i in range(0, 20, 2)]
    if not (ints[20] and ints[21]):
        return None  # a half-filled record: x265 needs both or neither

    def xy(i: int) -> tuple[float, float]:
        return round(q[i], 5), round(q[i + 1], 5)

    return Mastering(xy(0), xy(2), xy(4), xy(6), round(q[9], 4), round(q[8], 4))


def read(path: Path, init: Path | None = None) -> Colour:
    """The colour of a file's first video stream and first frame; ``init`` is an fMP4
    initialisation segment read before ``path`` (an HLS or DASH media segment)."""
    source: Any = str(path)
    if init is not None:
        source = io.BytesIO(init.read_bytes() + Path(path).read_bytes())
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise NotMedia(f"{Path(path).name}: no video stream to read the colour of")
            stream = container.streams.video[0]
            colour = of_stream(stream)
            frame = next(container.decode(stream), None)
    except av.error.FFmpegError as exc:
        raise NotMedia(f"{Path(path).name}: cannot be read for its colour ({exc})") from None
    return colour if frame is None else with_frame(colour, frame)
