"""The pure parts of captions.py: timestamps, SRT/WebVTT cues and their checks, segment windows,
the master playlist's SUBTITLES group (issue 16); language tags: test_languages.py."""

from __future__ import annotations

import time

import pytest

from mediaapp import defaults
from mediaapp.errors import InvalidInput, LimitExceeded
from mediaapp.media import captions
from mediaapp.media.captions import Cue, Track

MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=320x240,CODECS="avc1.64000d"\n0_240p/index.m3u8\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=2,RESOLUTION=640x480,CODECS="avc1.64001e"\n1_480p/index.m3u8\n'
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:01,500", 1.5), ("01:02:03.004", 3723.004), ("02:03.250", 123.25)],
)
def test_parse_time(text: str, seconds: float) -> None:
    assert captions.parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1:2:3", "00:61:00.000", "abc", "00:00:01.5"])
def test_parse_time_refuses_what_is_not_a_timestamp(text: str) -> None:
    with pytest.raises(InvalidInput):
        captions.parse_time(text)


def test_srt_and_vtt_give_the_same_cues() -> None:
    srt = (
        "1\r\n00:00:01,000 --> 00:00:02,000\r\nOne\r\n\r\n"
        "2\r\n00:00:03,000 --> 00:00:04,500\r\nTwo\r\nlines\r\n"
    )
    vtt = "WEBVTT\n\nNOTE a comment\n\n00:01.000 --> 00:02.000 align:start\nOne\n\n" \
          "cue-2\n00:03.000 --> 00:04.500\nTwo\nlines\n"  # fmt: skip
    want = [Cue(1.0, 2.0, "One"), Cue(3.0, 4.5, "Two\nlines")]
    assert captions.parse_cues(srt, "a.srt") == want
    assert captions.parse_cues(vtt, "a.vtt") == want


def test_cues_are_clipped_to_the_source_and_made_webvtt_safe() -> None:
    cues = captions.parse_cues("00:00:09,000 --> 00:00:12,000\nend --> here\n", "x", 10.0)
    assert cues == [Cue(9.0, 10.0, "end -> here")]


@pytest.mark.parametrize("text", ["a ---> b", "---->", "-->-->", "<!-- x --->", "a -- > b"])
def test_no_arrow_is_left_in_a_cue_text(text: str) -> None:
    """``-->`` in a cue's text ends it for a WebVTT parser; a run of dashes must not leave one."""
    (cue,) = captions.parse_cues(f"00:00:01,000 --> 00:00:02,000\n{text}\n", "x")
    assert "-->" not in cue.text and cue.text.replace("-", "") == text.replace("-", "")


def test_ass_override_blocks_in_srt_text_are_dropped() -> None:
    """As ffmpeg drops them from an embedded SubRip track: a browser would show ``{\\an8}``."""
    srt = "1\n00:00:01,000 --> 00:00:02,000\n{\\an8}Top {\\i1}line{\\i0}\n-{\\b1}->{x}\n"
    assert captions.parse_cues(srt, "x") == [Cue(1.0, 2.0, "Top line\n->{x}")]


@pytest.mark.parametrize("late", ["00:00:10,500 --> 00:00:11,500", "00:00:10,000 --> 00:00:10,800"])
def test_a_cue_starting_in_the_grace_second_past_the_end_is_dropped(late: str) -> None:
    """Cut at the source's end it would end when or before it starts: a cue our own parser,
    and players, refuse."""
    cues = captions.parse_cues(f"00:00:09,000 --> 00:00:09,500\nlast\n\n{late}\nlate\n", "x", 10.0)
    assert cues == [Cue(9.0, 9.5, "last")]


@pytest.mark.parametrize(
    "text",
    [
        "00:00:02,000 --> 00:00:01,000\nbackwards\n",  # ends before it starts
        "00:00:02,000 --> 00:00:02,000\nzero\n",  # no length
        "00:01:00,000 --> 00:01:01,000\nlate\n",  # after the 10 s source's end
        "00:00:01,000 --> soon\nbad\n",  # not a time
        "just some text\n\nand more\n",  # no cues at all
    ],
)
def test_broken_timing_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        captions.parse_cues(text, "x.srt", 10.0)


def test_too_many_cues_is_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "MAX_SUBTITLE_CUES", 3)
    text = "".join(f"00:00:0{i},000 --> 00:00:0{i},500\nc{i}\n\n" for i in range(5))
    with pytest.raises(LimitExceeded):
        captions.parse_cues(text, "x.srt")


def test_decode_refuses_huge_binary_and_non_utf8() -> None:
    # No size in the reason: it sees only the bounded read (a 50 MB file said 4194305 bytes).
    with pytest.raises(LimitExceeded, match=r"^x: over the limit of \d+ bytes$"):
        captions.decode(b"a" * (defaults.MAX_SUBTITLE_BYTES + 1), "x")
    with pytest.raises(InvalidInput, match="binary"):
        captions.decode(b"WEBVTT\n\x00\x00", "x")
    with pytest.raises(InvalidInput, match="UTF-8"):
        captions.decode("Café".encode("latin-1"), "x")
    assert captions.decode("\ufeffWEBVTT".encode(), "x") == "WEBVTT"  # a BOM is fine


def test_webvtt_round_trips() -> None:
    cues = [Cue(0.5, 1.25, "Hello"), Cue(3725.0, 3726.001, "later")]
    text = captions.webvtt(cues, "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000")
    assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n")
    assert "01:02:05.000 --> 01:02:06.001" in text
    assert captions.parse_cues(text, "x") == cues


def test_a_cue_across_a_boundary_is_in_both_segments() -> None:
    cues = [Cue(1, 2, "a"), Cue(3.5, 4.5, "b"), Cue(9, 9.5, "c")]
    windows = captions.segment_cues(cues, [(0, 4), (4, 8), (8, 10)])
    assert [[c.text for c in w] for w in windows] == [["a", "b"], ["b"], ["c"]]


def test_master_gets_the_subs_group_on_every_variant() -> None:
    tracks = [
        Track("stream 2", "eng", default=False, forced=False),
        Track("stream 3", "fre", default=True, forced=True),
        Track("clip.en.srt", "en", default=True, forced=False),
        Track("stream 4", "und", default=False, forced=False),
    ]
    lines = captions.with_subtitles(MASTER, tracks).splitlines()
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert media[0] == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="en",LANGUAGE="en",DEFAULT=NO,'
        'AUTOSELECT=YES,FORCED=NO,URI="subs0/index.m3u8"'
    )
    assert [line.count("DEFAULT=YES") for line in media] == [0, 1, 0, 0]  # one default only
    assert "FORCED=YES" in media[1] and 'NAME="en 3"' in media[2]  # names unique
    assert "LANGUAGE" not in media[3]
    assert lines.index(media[-1]) < min(i for i, s in enumerate(lines) if "STREAM-INF" in s)
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 2 and all(v.endswith(',SUBTITLES="subs"') for v in variants)
    assert captions.with_subtitles(MASTER, []) == MASTER


@pytest.mark.parametrize(
    "text",
    ["\n" + " " * 4_000_000, ("\n" + " " * 1000 + "x") * 4000, "-->" * 1_300_000,
     "1\n" + "9" * 4_000_000 + " --> 1\n",
     "0:00.000 --> 0:01.000\n" + "{\\" * 2_000_000 + "\n\n0:02.000 --> soon\n"],
    ids=["whitespace", "space-runs", "arrows", "huge-number", "overrides"],
)  # fmt: skip
def test_hostile_text_at_the_size_limit_fails_fast(text: str) -> None:
    """Our parser's regexes stay linear: a file at the byte limit is refused in well under a
    second, never a hang."""
    started = time.monotonic()
    with pytest.raises(InvalidInput):
        captions.parse_cues(text, "x.srt")
    assert time.monotonic() - started < 2.0
