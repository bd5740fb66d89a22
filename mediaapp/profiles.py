"""Named transcoding profiles.

A profile is plain data: what a user asks for by name (``--profile web``). The ffmpeg
arguments are derived from it in :mod:`mediaapp.pipeline`, never written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaapp.errors import UnknownProfile


@dataclass(frozen=True)
class Profile:
    """One output recipe."""

    name: str
    #: Target height in pixels; sources smaller than this keep their own size (never upscaled).
    height: int
    video_codec: str = "libx264"
    #: x264 preset and constant rate factor: quality-targeted, so bit rate follows content.
    preset: str = "veryfast"
    crf: int = 23
    #: Cap on the video bit rate (kbit/s) so a noisy source cannot blow up the file.
    maxrate_kbps: int = 5000
    audio_codec: str = "aac"
    audio_bitrate_kbps: int = 128
    container: str = "mp4"
    #: Move the moov atom to the front so browsers start playing before the download ends.
    faststart: bool = True
    #: Poster frame position as a fraction of the duration.
    poster_at: float = 0.1
    poster_height: int = 720


PROFILES: dict[str, Profile] = {
    "web": Profile(name="web", height=720),
    "web-1080": Profile(name="web-1080", height=1080, maxrate_kbps=8000),
    "web-480": Profile(name="web-480", height=480, maxrate_kbps=2000),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``, or :class:`UnknownProfile` listing the ones that exist."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfile(f"unknown profile {name!r} (known: {known})") from None
