"""The notes a member reads about their search, in Simplified Chinese, in one place."""

from __future__ import annotations

from collections.abc import Sequence

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


def truncated(max_chars: int, length: int) -> str:
    """A long query cut to its first ``max_chars`` characters."""
    return f"查询词过长（{length} 个字），只按前 {max_chars} 个字搜索"


def nothing_to_search() -> str:
    """The query has only stop words or punctuation."""
    return "查询词只有虚词或标点，没有可搜索的内容"


def no_course_has(words: Sequence[str]) -> str:
    """No word of the query is in any course."""
    return f"没有课程包含'{'、'.join(words)}'"


def some_words_unknown(words: Sequence[str]) -> str:
    """Some words of the query are in no course (the others were searched)."""
    return f"以下词没有课程包含，未参与搜索：{'、'.join(words)}"


def filtered_out() -> str:
    """Courses match, but none passes the filters asked for."""
    return "有课程符合查询词，但都不符合筛选条件（频道、时长或发布时间）"


def searched_as(text: str) -> str:
    """What was searched instead of what was typed (pinyin, a typo corrected)."""
    return f"已按'{text}'搜索"


def read_as_initials(letters: Sequence[str]) -> str:
    """Letters read as the initials of pinyin syllables."""
    return f"已按拼音首字母'{'、'.join(letters)}'搜索"


def related_instead(unknown: Sequence[str], related: Sequence[str]) -> str:
    """Words no course has, searched through their related words."""
    return f"没有课程包含'{'、'.join(unknown)}'，已按相关词'{'、'.join(related)}'搜索"


def menu_instead(typed: str, channel: str | None) -> str:
    """Nothing matched: the member's own recommendations (within a channel) instead."""
    where = f"“{channel}”频道里" if channel else ""
    return f"没有找到与'{typed}'相关的课程，为您推荐{where}可能感兴趣的课程"
