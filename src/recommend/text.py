"""Tokenisation of Chinese/English course text, shared by features and search.

Uses ``jieba`` with a shipped dictionary of party-building terms (三会一课, 两学一做,
主题党日, 党史学习教育 ...) so that they stay whole words.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from importlib import resources
from typing import Any

__all__ = ["domain_terms", "get_tokenizer", "is_token", "tokenize"]

_lock = threading.Lock()
_tokenizer: Any = None
# Single characters and punctuation carry little signal for matching courses.
_KEEP = re.compile(r"[\w\u4e00-\u9fff]{2,}|[a-z0-9]+|[\u4e00-\u9fff]")
_STOP_WORDS = "的 了 和 与 及 在 是 为 对 把 被 从 中 上 下 之 等 怎么 如何 什么 一个 我们 你 我 他"
_STOP = frozenset(_STOP_WORDS.split()) | {"the", "a", "an", "of", "and", "or", "to", "in", "for"}


def domain_terms() -> list[str]:
    """The party-building terms of the shipped segmentation dictionary."""
    text = resources.files("recommend.resources").joinpath("party_terms.txt").read_text("utf-8")
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def get_tokenizer() -> Any:
    """The shared ``jieba.Tokenizer`` with the party-building terms, built on first use.

    Its ``lcut`` segments text and its ``FREQ`` is the word-frequency dictionary.
    """
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            import jieba

            logging.getLogger("jieba").setLevel(logging.WARNING)
            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            for term in domain_terms():
                tok.add_word(term, freq=2_000_000)
            tok.initialize()
            _tokenizer = tok
        return _tokenizer


def is_token(word: str) -> bool:
    """True when a segmented, stripped, lower-cased word is kept as a token: not empty, not
    a stop word, and made of word characters (no punctuation or spaces)."""
    return bool(word) and word not in _STOP and _KEEP.fullmatch(word) is not None


def tokenize(text: str | None) -> list[str]:
    """Lower-cased tokens of ``text``: words (domain terms kept whole), no stop words."""
    if not text:
        return []
    tok = get_tokenizer()
    out = []
    for word in tok.lcut(str(text).lower()):
        word = word.strip()
        if is_token(word):
            out.append(word)
    return out


def tokenize_all(texts: Iterable[str | None]) -> list[list[str]]:
    """``tokenize`` over many texts."""
    return [tokenize(t) for t in texts]
