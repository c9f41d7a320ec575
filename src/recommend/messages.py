"""The message catalogue: every word members and organisers read, in one place.

Reasons on menus, notes of search and group menus, the organiser report and its figures
take their text from here, Simplified Chinese by default (``lang="zh"``) and English on
request (``lang="en"``). Logs, exceptions and column names stay English and do not come
from the catalogue.

The templates live in ``recommend/resources/messages.toml`` (one table per language, one
key per text, ``{name}`` placeholders). A platform replaces any of them with its own
wording, once at start-up::

    import recommend as rc

    rc.set_messages({"reason.compulsory": "支部必学课"})            # Chinese by default
    rc.set_messages({"reason.compulsory": "required"}, lang="en")
    rc.load_messages("our_wording.toml")  # same shape as messages.toml: [zh] / [en]
    rc.reset_messages()                   # back to the library's wording

An override is checked when it is set: an unknown key, a template that drops a
placeholder of the template it replaces or uses one the key does not have in any
language, or a malformed template raises :class:`~recommend.errors.ConfigError`. (The
English reasons leave out some details the Chinese ones give, such as why now and the
segment's name; an English override may add them, e.g.
``{"reason.short": "{reason}; fits in {minutes} min"}``.)
Overrides are process-wide and replaced atomically, so serving threads read either the
old or the new wording, never a mix.
"""

from __future__ import annotations

import difflib
import os
import string
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from recommend.errors import ConfigError

__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "Lang",
    "ListText",
    "Message",
    "check_lang",
    "join_list",
    "load_messages",
    "message_keys",
    "render",
    "reset_messages",
    "set_messages",
    "template",
    "texts",
    "value_label",
    "value_message",
]

Lang = Literal["zh", "en"]
#: Languages the catalogue holds, the default first.
LANGS: tuple[str, ...] = ("zh", "en")
#: What every ``lang`` parameter defaults to.
DEFAULT_LANG: Lang = "zh"

_LOCK = threading.Lock()
# Per language, the platform's overrides; replaced as a whole, never mutated in place.
_overrides: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
# Rendered texts of the current wording, per language: a message repeats across requests
# (a menu's reasons), so it is rendered once. Replaced by a new empty dict when the
# wording changes or the cache is full (a reader holding the old one is unaffected).
_MAX_CACHED = 1 << 16
_texts: dict[str, dict[Message, str]] = {lang: {} for lang in LANGS}


@cache
def _defaults() -> dict[str, dict[str, str]]:
    text = resources.files("recommend.resources").joinpath("messages.toml").read_text("utf-8")
    data = tomllib.loads(text)
    out = {lang: {str(k): str(v) for k, v in data[lang].items()} for lang in LANGS}
    missing = set(out[LANGS[0]]) ^ set(out[LANGS[1]])
    if missing:  # a packaging mistake, caught by the tests
        raise ConfigError(f"messages.toml: keys not in every language: {sorted(missing)}")
    return out


def check_lang(lang: object) -> Lang:
    """``lang`` if the catalogue has it, else a ``ConfigError`` naming the choices."""
    if lang == "zh":
        return "zh"
    if lang == "en":
        return "en"
    raise ConfigError(f"lang={lang!r}; expected one of {list(LANGS)}")


def message_keys() -> tuple[str, ...]:
    """Every key of the catalogue, sorted."""
    return tuple(sorted(_defaults()[DEFAULT_LANG]))


def _fields(text: str, where: str) -> frozenset[str]:
    """The placeholder names of a template (``ConfigError`` if it is malformed)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: malformed template {text!r} ({exc})") from exc
    names = set()
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(
                f"{where}: placeholder {{{name}}} in {text!r}; expected a plain name such as "
                "{title}"
            )
        names.add(name)
    return frozenset(names)


def _checked(overrides: Mapping[str, object], lang: str, origin: str) -> dict[str, str]:
    defaults = _defaults()[lang]
    out: dict[str, str] = {}
    for key, value in overrides.items():
        if key not in defaults:
            close = difflib.get_close_matches(str(key), defaults, n=3)
            hint = f"; did you mean {close}?" if close else "; see recommend.message_keys()"
            raise ConfigError(f"{origin}: unknown message key {key!r}{hint}")
        if not isinstance(value, str) or value == "":
            raise ConfigError(f"{origin}: {key!r} must be a non-empty string, got {value!r}")
        want = _fields(defaults[key], key)
        known = frozenset().union(*(_fields(_defaults()[lg][key], key) for lg in LANGS))
        got = _fields(value, f"{origin}: {key!r}")
        if not want <= got <= known:
            missing, extra = sorted(want - got), sorted(got - known)
            parts = []
            if missing:
                parts.append("lacks placeholder(s) " + ", ".join(f"{{{m}}}" for m in missing))
            if extra:
                parts.append("has unknown placeholder(s) " + ", ".join(f"{{{e}}}" for e in extra))
            raise ConfigError(
                f"{origin}: template for {key!r} {' and '.join(parts)}; the default is "
                f"{defaults[key]!r}"
            )
        out[key] = value
    return out


def set_messages(overrides: Mapping[str, str], lang: str = DEFAULT_LANG) -> None:
    """Replace some templates of ``lang`` with the platform's own wording.

    Parameters
    ----------
    overrides
        ``{key: template}``; keys from :func:`message_keys`, each template with every
        placeholder of the one it replaces (and possibly others the key has in another
        language). Added to earlier overrides.
    lang
        The language the templates are in.

    Raises
    ------
    ConfigError
        An unknown key or language, a non-string or empty template, a placeholder
        dropped or unknown, or a malformed template. Nothing is changed then.
    """
    lang = check_lang(lang)
    checked = _checked(overrides, lang, "set_messages")
    global _overrides
    with _LOCK:
        merged = {**_overrides, lang: {**_overrides[lang], **checked}}
        _overrides = merged
        _forget_texts()


def load_messages(path: str | os.PathLike[str]) -> None:
    """Overrides from a TOML file with one table per language (``[zh]``, ``[en]``) of
    ``"key" = "template"`` lines, like the library's own ``messages.toml``.

    Every table is checked before any is applied (see :func:`set_messages`).
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the messages file {file}: {exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file} is not a UTF-8 TOML file: {exc}") from exc
    strange = sorted(set(data) - set(LANGS))
    if strange:
        raise ConfigError(f"{file}: tables {strange}; expected some of {list(LANGS)}")
    checked = {}
    for lang, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: [{lang}] must be a table of key = template lines")
        checked[lang] = _checked(table, lang, f"{file} [{lang}]")
    for lang, table in checked.items():
        set_messages(table, lang)


def reset_messages() -> None:
    """Drop every override: the library's own wording again."""
    global _overrides
    with _LOCK:
        _overrides = {lang: {} for lang in LANGS}
        _forget_texts()


def _forget_texts() -> None:
    """Drop the rendered texts (under ``_LOCK``): the wording changed."""
    global _texts
    _texts = {lang: {} for lang in LANGS}


def template(key: str, lang: str = DEFAULT_LANG) -> str:
    """The template of ``key`` in ``lang`` (the platform's override if it set one)."""
    lang = check_lang(lang)
    found = _overrides[lang].get(key)
    if found is not None:
        return found
    try:
        return _defaults()[lang][key]
    except KeyError:
        raise ConfigError(f"unknown message key {key!r}") from None


def render(key: str, lang: str = DEFAULT_LANG, **params: object) -> str:
    """The text of ``key`` in ``lang`` with its placeholders filled from ``params``."""
    text = template(key, lang)
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"message {key!r}: cannot fill {text!r} from {params} ({exc})") from exc


def value_label(kind: str, value: object, lang: str = DEFAULT_LANG) -> str:
    """A data value as readers know it (``occupation`` ``retired`` -> 退休); values the
    catalogue does not name (channel names, districts, org ids) as they are."""
    key = f"value.{kind}.{value}"
    if key in _defaults()[check_lang(lang)]:
        return template(key, lang)
    return str(value)


def join_list(items: list[str] | tuple[str, ...], lang: str = DEFAULT_LANG) -> str:
    """Items as one list in ``lang`` (、 between Chinese items, ", " between English ones)."""
    return template("list.separator", lang).join(str(i) for i in items)


def value_message(kind: str, value: object) -> Message | str:
    """A data value as a message when the catalogue names it (rendered in the reader's
    language later), else the value as it is."""
    key = f"value.{kind}.{value}"
    return Message(key) if key in _defaults()[DEFAULT_LANG] else str(value)


def texts(messages: Iterable[Message], lang: str = DEFAULT_LANG) -> list[str]:
    """Each message rendered in ``lang``, as :meth:`Message.text` renders it, in one pass
    (a menu's reasons: the same few messages again and again)."""
    lang = lang if lang in _texts else check_lang(lang)
    found_text = _texts[lang].get
    out = []
    for message in messages:
        text = found_text(message)
        out.append(text if text is not None else _rendered(message, lang))
    return out


def _rendered(message: Message, lang: str) -> str:
    """``message`` in ``lang`` (checked), from the cache of the current wording."""
    cache = _texts[lang]
    found = cache.get(message)
    if found is not None:
        return found
    params = {
        k: v.text(lang) if isinstance(v, Message | ListText) else v for k, v in message.params
    }
    text = render(message.key, lang, **params)
    if len(cache) >= _MAX_CACHED:
        cache = _texts[lang] = {}
    cache[message] = text
    return text


@dataclass(frozen=True)
class ListText:
    """Items shown as one list, joined the way ``lang`` writes lists when rendered."""

    items: tuple[str, ...]

    def text(self, lang: str = DEFAULT_LANG) -> str:
        return join_list(self.items, lang)


@dataclass(frozen=True, init=False)
class Message:
    """A text to show, kept as its key and parameters until it is rendered in the
    reader's language (``str()`` gives English, for logs)."""

    key: str
    params: tuple[tuple[str, object], ...] = ()

    def __init__(self, key: str, params: tuple[tuple[str, object], ...] = ()) -> None:
        # Written to the instance dict directly (frozen: no attribute is ever assigned
        # after this): menus build a message per row, so construction is kept cheap.
        fields = self.__dict__
        fields["key"] = key
        fields["params"] = params

    def __hash__(self) -> int:
        # Computed once per message: messages key the caches of rendered texts and nest
        # (a reason inside "new" inside "fits in N minutes").
        fields = self.__dict__
        try:
            found: int = fields["_hash"]
        except KeyError:
            found = fields["_hash"] = hash((self.key, self.params))
        return found

    def __getstate__(self) -> dict[str, object]:
        # Without the remembered hash: string hashes differ between processes.
        return {"key": self.key, "params": self.params}

    @classmethod
    def of(cls, key: str, **params: object) -> Message:
        return cls(key, tuple(sorted(params.items())))

    def text(self, lang: str = DEFAULT_LANG) -> str:
        """The message rendered in ``lang`` (parameters that are messages too); the same
        message is rendered once while the wording stays the same (a menu's reasons repeat
        across requests)."""
        return _rendered(self, lang if lang in _texts else check_lang(lang))

    def __str__(self) -> str:
        return self.text("en")
