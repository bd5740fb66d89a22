"""What a video rendition does with its source's colour, and the proof that it did it.

One mode per (source colour, output codec):

* ``sdr``: an SDR source into H.264; the graph and the tags are exactly what they always were.
* ``tonemap``: a PQ or HLG source into H.264, which players take as BT.709 SDR: without a
  tone-map the picture comes out washed out. The operator is **Hable** (filmic, keeps
  highlight detail; ``desat=0`` keeps saturated highlights instead of greying them) at a
  nominal peak of 100 cd/m², through linear light in BT.709 primaries (:data:`TONEMAP_CHAIN`); the
  HDR side data is dropped so that no SDR file claims a mastering display.
* ``hevc-sdr``: an SDR source into HEVC Main10: never tagged HDR.
* ``hevc-pq`` / ``hevc-hlg``: an HDR source into HEVC Main10, keeping its transfer, BT.2020,
  and the static metadata (mastering display, content light level) carried over to x265.
* ``av1-pq`` / ``av1-hlg``: the same in 10-bit AV1 (SVT-AV1 writes the static metadata as
  metadata OBUs). An SDR source's AV1 is ``sdr``: 8-bit, its command as it always was.

:func:`verify` reads every output back and raises :class:`ColourMismatch` when its tags say
otherwise. Dolby Vision sources are detected (``Colour.dolby_vision``); their RPUs are dropped,
outputs keep the HDR10-compatible base layer only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediaapp.errors import ColourMismatch
from mediaapp.media import colour, phases
from mediaapp.media.colour import HLG, PQ, Colour
from mediaapp.media.inputs import scale_square

SDR, TONEMAP, HEVC_SDR, HEVC_PQ, HEVC_HLG = "sdr", "tonemap", "hevc-sdr", "hevc-pq", "hevc-hlg"
AV1_PQ, AV1_HLG = "av1-pq", "av1-hlg"
HEVC_MODES = (HEVC_SDR, HEVC_PQ, HEVC_HLG)
#: The modes keeping an HDR source's HDR, and the transfer each is tagged with.
KEEPS_HDR = {HEVC_PQ: PQ, HEVC_HLG: HLG, AV1_PQ: PQ, AV1_HLG: HLG}
#: The modes whose outputs are 10-bit (HEVC is Main10 even from an SDR source).
TEN_BIT = (*HEVC_MODES, AV1_PQ, AV1_HLG)
#: HDR side data an output must not inherit from its source's frames (libx264 and libx265
#: write a frame's mastering display and light level as SEI messages of their own).
_HDR_SIDE_DATA = ("MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL", "DOVI_RPU_BUFFER",
                  "DOVI_METADATA")  # fmt: skip
#: HDR to BT.709 SDR: linear light (100 cd/m² nominal peak), BT.709 primaries, Hable, then
#: the BT.709 transfer and matrix in limited range, 8-bit 4:2:0.
TONEMAP_CHAIN: tuple[tuple[str, dict[str, Any]], ...] = (
    ("zscale", {"t": "linear", "npl": 100}),
    ("format", {"pix_fmts": "gbrpf32le"}),
    ("zscale", {"p": "bt709"}),
    ("tonemap", {"tonemap": "hable", "desat": 0}),
    ("zscale", {"t": "bt709", "m": "bt709", "r": "tv"}),
    ("format", {"pix_fmts": "yuv420p"}),
)
_BT709 = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709"}
#: x265 for segmented delivery: closed GOPs, keyframes only where forced, quiet stderr.
_X265_BASE = "log-level=error:open-gop=0:scenecut=0"
#: SVT-AV1 for segmented delivery: closed GOPs (key frames, not intra refresh), no scene cuts.
SVTAV1_BASE = "irefresh-type=2:scd=0"


def mode(source: Colour | None, codec: str) -> str:
    """The rendition's mode for a source of colour ``source`` encoded as ``codec``."""
    hdr = source is not None and source.is_hdr
    hlg = source is not None and source.transfer == HLG
    if codec == "hevc":
        if not hdr:
            return HEVC_SDR
        return HEVC_HLG if hlg else HEVC_PQ
    if codec == "av1" and hdr:
        return AV1_HLG if hlg else AV1_PQ
    return TONEMAP if hdr else SDR


def reads_source(source: Colour | None) -> bool:
    """Whether :func:`picture` needs the source's colour: an HDR source (the tone-map's input
    tags), or any whose frames carry HDR side data (dropped from an SDR rendition)."""
    return source is not None and bool(
        source.is_hdr or source.mastering or source.content_light or source.dolby_vision
    )


def drop_hdr_side_data(video: Any) -> Any:
    """The frames without mastering display, light level or Dolby Vision side data."""
    for kind in _HDR_SIDE_DATA:
        video = video.filter("sidedata", mode="delete", type=kind)
    return video


def source_tags(source: Colour | None) -> dict[str, str]:
    """zscale's input tags for an HDR ``source``, as the probe read them: its frames may say
    nothing (PQ tagged only in the container, or a transfer without primaries and matrix),
    and zscale has no path from "unspecified" (ffmpeg fails). Unstated primaries and matrix
    of PQ or HLG are BT.2020's."""
    if source is None or not source.is_hdr or source.transfer is None:
        return {}
    primaries = source.primaries or "bt2020"
    return {"tin": source.transfer, "pin": primaries, "min": source.matrix or "bt2020nc",
            "p": primaries}  # fmt: skip


def tonemap(video: Any, source: Colour | None = None) -> Any:
    """``video`` (PQ or HLG, any size) tone-mapped to 8-bit BT.709 SDR (:data:`TONEMAP_CHAIN`),
    read as ``source``'s colour (:func:`source_tags`) when given."""
    video = drop_hdr_side_data(video)
    for i, (name, options) in enumerate(TONEMAP_CHAIN):
        video = video.filter(name, **(source_tags(source) if i == 0 else {}), **options)
    return video


def picture(
    video: Any, width: int, height: int, rendition_mode: str, source: Colour | None = None
) -> Any:
    """Scaled to ``width`` x ``height`` with square pixels, in the mode's colour: scaled
    before the tone-map, which then works on the rung's pixels, not the source's (whose
    colour is ``source``); HDR side data dropped from an SDR rendition of a source with any
    (an SDR source's command otherwise unchanged); 10-bit for HEVC and HDR AV1, an HDR source
    in primaries other than BT.2020 converted to them (HDR10 and HLG rungs are tagged BT.2020)."""
    if rendition_mode == SDR:
        scaled = scale_square(video, width, height)
        return drop_hdr_side_data(scaled) if reads_source(source) else scaled
    if rendition_mode == TONEMAP:
        return tonemap(video.filter("scale", width, height).filter("setsar", 1), source)
    if rendition_mode != HEVC_SDR and source is not None and source.primaries not in (
        None, "bt2020",
    ):  # fmt: skip
        video = video.filter("zscale", **{**source_tags(source), "p": "bt2020", "m": "bt2020nc"})
    scaled = scale_square(video, width, height, "yuv420p10le")
    return drop_hdr_side_data(scaled) if rendition_mode == HEVC_SDR else scaled


def encoder_options(rendition_mode: str, source: Colour | None) -> dict[str, Any]:
    """The encoder's colour options: none for ``sdr`` (unchanged), BT.709 tags for a
    tone-mapped rung, 10-bit AV1 or HEVC Main10 with the transfer and static metadata for the
    rest."""
    if rendition_mode == SDR:
        return {}
    if rendition_mode == TONEMAP:
        return dict(_BT709)
    if rendition_mode in (AV1_PQ, AV1_HLG):
        return _svtav1_options(KEEPS_HDR[rendition_mode], source)
    params = [_X265_BASE]
    tags: dict[str, Any] = {}
    if rendition_mode in (HEVC_PQ, HEVC_HLG):
        transfer = KEEPS_HDR[rendition_mode]
        params.append("repeat-headers=1:colorprim=bt2020:colormatrix=bt2020nc")
        params.append(f"transfer={transfer}")
        if rendition_mode == HEVC_PQ:
            params.append("hdr10=1")
        if source is not None and source.mastering is not None:
            params.append(f"master-display={source.mastering.x265()}")
        if source is not None and source.content_light is not None:
            light = source.content_light
            params.append(f"max-cll={light.max_cll},{light.max_fall}")
        tags = _bt2020(transfer)
    return {
        "pix_fmt": "yuv420p10le",
        "profile:v": "main10",
        "tag:v": "hvc1",
        "forced-idr": 1,
        "x265-params": ":".join(params),
        **tags,
    }


def _svtav1_options(transfer: str, source: Colour | None) -> dict[str, Any]:
    """10-bit SVT-AV1 tagged BT.2020 and ``transfer``, the source's static metadata passed
    explicitly: ffmpeg's wrapper would copy it from the frames, but only while every filter
    of the graph keeps their side data. No Dolby Vision RPUs (its ``auto`` would write a
    source's): the HDR10-compatible base layer only, as the module promises."""
    params = [SVTAV1_BASE]
    if source is not None and source.mastering is not None:
        params.append(f"mastering-display={source.mastering.svtav1()}")
    if source is not None and source.content_light is not None:
        light = source.content_light
        params.append(f"content-light={light.max_cll},{light.max_fall}")
    return {"pix_fmt": "yuv420p10le", "svtav1-params": ":".join(params), "dolbyvision": 0,
            **_bt2020(transfer)}  # fmt: skip


def _bt2020(transfer: str) -> dict[str, str]:
    """An HDR rung's stream tags (HEVC and AV1 alike): BT.2020 with ``transfer``."""
    return {"color_primaries": "bt2020", "color_trc": transfer, "colorspace": "bt2020nc"}


def problems(found: Colour, rendition_mode: str, source: Colour | None) -> list[str]:
    """What is wrong with an output's colour for its mode (empty: nothing)."""
    wrong: list[str] = []
    if rendition_mode in (SDR, HEVC_SDR):
        if found.is_hdr or found.mastering or found.content_light:
            wrong.append(f"an SDR output tagged HDR ({found.transfer})")
    elif rendition_mode == TONEMAP:
        tags = (found.transfer, found.primaries, found.matrix)
        if tags != ("bt709",) * 3:
            wrong.append(f"tone-mapped but tagged {'/'.join(map(str, tags))}, not bt709")
        if found.mastering or found.content_light or found.dolby_vision:
            wrong.append("tone-mapped but carries HDR side data")
    else:
        transfer = KEEPS_HDR[rendition_mode]
        tags = (found.transfer, found.primaries, found.matrix)
        if tags != (transfer, "bt2020", "bt2020nc"):
            wrong.append(f"tagged {'/'.join(map(str, tags))}, not {transfer}/bt2020/bt2020nc")
        want = source.mastering if source else None
        if want is not None and (found.mastering is None or not found.mastering.matches(want)):
            wrong.append(f"mastering display {found.mastering} is not the source's {want}")
        light = source.content_light if source else None
        if light is not None and found.content_light != light:
            wrong.append(f"content light {found.content_light} is not the source's {light}")
    if rendition_mode in TEN_BIT and found.bit_depth != 10:
        wrong.append(f"{found.bit_depth}-bit, not 10-bit")
    if rendition_mode == TONEMAP and found.bit_depth != 8:
        wrong.append(f"{found.bit_depth}-bit, not 8-bit")
    return wrong


@phases.timed("verify")
def verify(
    path: Path, rendition_mode: str, source: Colour | None, name: str, init: Path | None = None
) -> Colour:
    """Read an output's colour back (its first frame) and raise :class:`ColourMismatch` if it
    is not what ``rendition_mode`` promises; the colour found, for the manifest."""
    return check(colour.read(path, init), rendition_mode, source, name)


def check(found: Colour, rendition_mode: str, source: Colour | None, name: str) -> Colour:
    """:func:`verify` of a colour already read back (with the rest of an output's facts)."""
    wrong = problems(found, rendition_mode, source)
    if wrong:
        raise ColourMismatch(f"output {name}: {'; '.join(wrong)} ({rendition_mode} rendition)")
    return found
