"""The notes a member reads about their search, as catalogue messages (keys ``note.*`` in
``resources/messages.toml``), built in one place and rendered in the request's language."""

from __future__ import annotations

from collections.abc import Sequence

from recommend.messages import ListText, Message

__all__ = [
    "filtered_out",
    "menu_instead",
    "no_course_has",
    "nothing_to_search",
    "read_as_initials",
    "related_instead",
    "searched_as",
    "some_words_unknown",
    "truncated",
]


def _words(words: Sequence[str]) -> ListText:
    return ListText(tuple(str(w) for w in words))


def truncated(max_chars: int, length: int) -> Message:
    """A long query cut to its first ``max_chars`` characters."""
    return Message.of("note.query_truncated", kept=max_chars, total=length)


def nothing_to_search() -> Message:
    """The query has only stop words or punctuation."""
    return Message("note.query_stop_words")


def no_course_has(words: Sequence[str]) -> Message:
    """No word of the query is in any course."""
    return Message.of("note.query_no_course", words=_words(words))


def some_words_unknown(words: Sequence[str]) -> Message:
    """Some words of the query are in no course (the others were searched)."""
    return Message.of("note.query_not_found", words=_words(words))


def filtered_out() -> Message:
    """Courses match, but none passes the filters asked for."""
    return Message("note.search_filtered")


def searched_as(text: str) -> Message:
    """What was searched instead of what was typed (pinyin, a typo corrected)."""
    return Message.of("note.search_searched_as", text=text)


def read_as_initials(letters: Sequence[str]) -> Message:
    """Letters read as the initials of pinyin syllables."""
    return Message.of("note.search_initials", letters=_words(letters))


def related_instead(unknown: Sequence[str], related: Sequence[str]) -> Message:
    """Words no course has, searched through their related words."""
    return Message.of("note.search_related", words=_words(unknown), related=_words(related))


def menu_instead(typed: str, channel: str | None) -> Message:
    """Nothing matched: the member's own recommendations (within a channel) instead."""
    if channel:
        return Message.of("note.search_menu_channel", typed=typed, channel=channel)
    return Message.of("note.search_menu", typed=typed)
