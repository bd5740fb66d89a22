"""Language tags (languages.py): ISO 639-2 codes to the shortest BCP 47 tag, RFC 5646 syntax
checked, and never metadata text in a playlist attribute."""

from __future__ import annotations

import pytest

from mediaapp.media import languages

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("tag", "want"),
    [("eng", "en"), ("dan", "da"), ("cze", "cs"), ("ces", "cs"), ("fin", "fi"), ("heb", "he"),
     ("pt-BR", "pt-BR"), ("pt-br", "pt-BR"), ("zh-hant-tw", "zh-Hant-TW"), ("sr-Latn", "sr-Latn"),
     ("es-419", "es-419"), ("de-CH-1996", "de-CH-1996"), ("en-US-x-Twain", "en-US-x-twain"),
     ("fil", "fil"), ("und", None), ("mul", None), (None, None), ("", None)],
)  # fmt: skip
def test_a_track_language_becomes_its_shortest_bcp47_tag(tag: str | None, want: str | None) -> None:
    assert languages.bcp47(tag) == want


@pytest.mark.parametrize(
    "text",
    ['en",URI="evil', "x\nEXT", "en\n", "english", "e", "en_US", "en--US", "zh-Hant-TW-",
     "a" * 70, "en-" + "-".join(["abcde"] * 20)],
)  # fmt: skip
def test_what_is_not_a_tag_never_reaches_a_playlist(text: str) -> None:
    assert not languages.is_tag(text) and languages.bcp47(text) is None
