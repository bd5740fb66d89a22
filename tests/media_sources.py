"""Small generated sources for the packaging and player tests (cached in the media root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediaapp.media import command


def generate(
    media_root: Path,
    name: str,
    *,
    size: str = "640x360",
    seconds: float = 3,
    rate: float = 30,
    gop: int | None = None,
    audio: bool = True,
    rotate: int = 0,
) -> str:
    """testsrc2 (+ a sine tone): H.264/AAC; ``rotate`` adds display-matrix rotation."""
    path = media_root / name
    if path.exists():
        return name
    tmp = path.with_name(f".gen-{name}")
    video = f"testsrc2=size={size}:rate={rate}:duration={seconds}"
    args = [command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-g", str(gop)] if gop else []
    command.run([*args, "-f", "mp4", "-y", str(tmp)])
    if rotate:
        rotated = path.with_name(f".rot-{name}")
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error",
                    "-display_rotation", str(rotate), "-i", str(tmp), "-c", "copy", "-y",
                    str(rotated)])  # fmt: skip
        tmp.unlink()
        tmp = rotated
    tmp.rename(path)
    return name


def generate_with(media_root: Path, name: str, *args: str) -> str:
    """``ffmpeg args name`` once (cached): sources whose timing is the point of the test
    (a start offset, a late stream, sparse keyframes), their format from the name."""
    path = media_root / name
    if not path.exists():
        tmp = path.with_name(f".gen-{name}")
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", *args,
                     "-f", {".mkv": "matroska", ".ts": "mpegts"}.get(path.suffix, path.suffix[1:]),
                     "-y", str(tmp)])  # fmt: skip
        tmp.rename(path)
    return name


#: A mastering display (BT.2020 primaries, D65, 1000 / 0.0001 cd/m²) and light level (MaxCLL
#: 1000, MaxFALL 400) in x265's units: what the HDR10 clip carries and outputs must keep.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
MAX_CLL = "1000,400"


def generate_hdr(
    media_root: Path,
    name: str,
    *,
    transfer: str = "smpte2084",
    size: str = "320x240",
    seconds: float = 2,
    gop: int | None = None,
    container_only: bool = False,
    atc: bool = False,
    primaries: str = "bt2020",
) -> str:
    """A 10-bit HEVC clip (+ a sine tone) from testsrc2, converted by zscale from BT.709 to
    BT.2020 and ``transfer`` (smpte2084: HDR10 with mastering display and light level in the
    SEI; arib-std-b67: HLG, no static metadata), tagged as such; ``gop``: a keyframe every
    ``gop`` frames (chunk boundaries); ``container_only``: tagged in the MP4's ``colr`` box
    only, the bitstream's VUI saying "unspecified" (so do its decoded frames); ``atc``: HLG
    signalled the backward-compatible broadcast way, the VUI and the MP4 saying bt2020-10 and
    an alternative transfer characteristics SEI saying arib-std-b67; ``primaries``: other
    than BT.2020 (bt709: PQ in BT.709 primaries)."""
    path = media_root / name
    if path.exists():
        return name
    tmp = path.with_name(f".gen-{name}")
    convert = (f"format=gbrpf32le,zscale=tin=bt709:min=gbr:pin=bt709:rin=full:t={transfer}"
               f":p={primaries}:m=bt2020nc:r=tv:npl=100,format=yuv420p10le")  # fmt: skip
    tagged = "bt2020-10" if atc else transfer
    convert += f",setparams=color_trc={tagged}" if atc else ""
    params = f"log-level=error:colorprim={primaries}:transfer={tagged}:colormatrix=bt2020nc"
    params += ":atc-sei=18" if atc else ""
    params += f":keyint={gop}:min-keyint={gop}:scenecut=0" if gop else ""
    if transfer == "smpte2084":
        params += f":hdr10=1:repeat-headers=1:master-display={MASTER_DISPLAY}:max-cll={MAX_CLL}"
    command.run([
        command.ffmpeg_binary(), "-nostdin", "-v", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
        "-vf", convert, "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
        "-tag:v", "hvc1", "-x265-params", params, "-color_primaries", primaries,
        "-color_trc", tagged, "-colorspace", "bt2020nc", "-c:a", "aac", "-f", "mp4", "-y",
        str(tmp),
    ])  # fmt: skip
    if container_only:
        vui = "hevc_metadata=colour_primaries=2:transfer_characteristics=2:matrix_coefficients=2"
        retagged = path.with_name(f".vui-{name}")
        command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(tmp),
                     "-c", "copy", "-bsf:v", vui, "-y", str(retagged)])  # fmt: skip
        tmp.unlink()
        tmp = retagged
    tmp.rename(path)
    return name


#: Per-title sources (lavfi graphs), as bench/pertitle.py's: an easy one, slides (a new still
#: picture every 2 s, exact copies between); the same slides seen by a camera (light temporal
#: sensor noise); and a hard one, moving pictures under strong temporal noise (grain).
EASY = "testsrc2=size={size}:rate=0.5,fps=30"
EASY_CAMERA = "testsrc2=size={size}:rate=0.5,fps=30,noise=alls=3:allf=t"
HARD = "testsrc2=size={size}:rate=30,noise=alls=12:allf=t+u"


def generate_graph(
    media_root: Path, name: str, graph: str, *, size: str = "480x270", seconds: float = 4,
    gop: int = 30,
) -> str:  # fmt: skip
    """``graph`` (``{size}`` filled in) as near-lossless H.264 (CRF 8, a keyframe every
    ``gop`` frames, so the chunk split can cut samples anywhere), no audio."""
    path = media_root / name
    if path.exists():
        return name
    tmp = path.with_name(f".gen-{name}")
    command.run([command.ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi",
                 "-i", graph.format(size=size), "-t", str(seconds), "-c:v", "libx264",
                 "-preset", "ultrafast", "-crf", "8", "-g", str(gop), "-pix_fmt", "yuv420p",
                 "-f", "mp4", "-y", str(tmp)])  # fmt: skip
    tmp.rename(path)
    return name


def settings_with_profiles(tmp_path: Path, media_root: Path, name: str, toml: str) -> Any:
    """Settings of a media test whose profiles (``toml``) live in a folder of its own."""
    from mediaapp.settings import Settings

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / f"{name}.toml").write_text(toml)
    return Settings(data_dir=tmp_path / "data", media_root=media_root, ffmpeg_threads=1,
                    profiles_dir=str(tmp_path / "profiles"))  # fmt: skip
