"""Chinese text utilities shared by features and search: normalisation, pinyin, tokens.

- ``normalize``: how text is compared — full-width to half-width and compatibility forms
  (Unicode NFKC), traditional to simplified characters (OpenCC ``t2s``), lower case.
- ``pinyin`` / ``initials``: the full pinyin (``shehuibaoxian``) and the initials
  (``shbx``) of a word, as members type them with a pinyin input method (``pypinyin``;
  ü is typed ``v``).
- ``tokenize``: words of a text with ``jieba`` and a shipped dictionary of party-building
  terms (三会一课, 两学一做, 主题党日, 党史学习教育 ...) so that they stay whole words.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "domain_terms",
    "get_tokenizer",
    "has_han",
    "initials",
    "is_token",
    "normalize",
    "pinyin",
    "stop_words",
    "syllables",
    "tokenize",
]

_lock = threading.Lock()
_tokenizer: Any = None
_converter: Any = None
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SPACES = re.compile(r"\s+")
# Single characters and punctuation carry little signal for matching courses.
_KEEP = re.compile(r"[\w\u4e00-\u9fff]{2,}|[a-z0-9]+|[\u4e00-\u9fff]")
_STOP_WORDS = "的 了 和 与 及 在 是 为 对 把 被 从 中 上 下 之 等 怎么 如何 什么 一个 我们 你 我 他"
_STOP = frozenset(_STOP_WORDS.split()) | {"the", "a", "an", "of", "and", "or", "to", "in", "for"}


def stop_words() -> frozenset[str]:
    """The words left out of tokens (的, 和, 怎么, the, of ...)."""
    return _STOP


def domain_terms() -> list[str]:
    """The party-building terms of the shipped segmentation dictionary."""
    text = resources.files("recommend.resources").joinpath("party_terms.txt").read_text("utf-8")
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def _t2s() -> Any:
    """The shared OpenCC traditional-to-simplified converter, built on first use."""
    global _converter
    with _lock:
        if _converter is None:
            import opencc

            _converter = opencc.OpenCC("t2s")
        return _converter


def normalize(text: str) -> str:
    """``text`` as it is compared: NFKC (full-width letters, digits and punctuation to
    half-width), traditional characters to simplified, lower case, runs of spaces to one.

    ``normalize("黨史學習 ＥＸＣＥＬ")`` is ``"党史学习 excel"``. Every character maps to one
    character or more, so the result is never empty for a text with a letter or a
    character in it.
    """
    folded = unicodedata.normalize("NFKC", text)
    if _HAN.search(folded):
        folded = _t2s().convert(folded)
    return _SPACES.sub(" ", folded.lower()).strip()


def has_han(text: str) -> bool:
    """True when ``text`` holds at least one Chinese character."""
    return _HAN.search(text) is not None


@lru_cache(maxsize=200_000)
def syllables(word: str) -> tuple[str, ...]:
    """The pinyin syllables of a (normalised) word without tones; other characters are
    kept as they are, in runs: ``syllables("excel表格")`` is ``("excel", "biao", "ge")``."""
    from pypinyin import lazy_pinyin

    out = []
    for part in lazy_pinyin(word):
        part = part.strip().replace(" ", "")
        if part:
            out.append(part)
    return tuple(out)


def pinyin(word: str) -> str:
    """Full pinyin of a word, syllables joined: ``pinyin("社会保险") == "shehuibaoxian"``."""
    return "".join(syllables(word))


def initials(word: str) -> str:
    """First letters of the pinyin syllables: ``initials("社会保险") == "shbx"``. Runs of
    other characters count as one syllable: ``initials("excel表格") == "ebg"``."""
    return "".join(s[0] for s in syllables(word))


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
