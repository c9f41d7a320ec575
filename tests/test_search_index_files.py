"""Loading a saved search index: forged and damaged files give ArtifactError, never more.

A forger can rewrite any file and its entry in ``search_index.json`` (checksums detect
accidents, not attackers); ``SearchIndex.load`` must still refuse what does not fit
together, read only the files the manifest lists, and never let a raw exception out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import tiny_courses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend import store
from recommend.errors import ArtifactError, RecommendError
from recommend.search import SearchIndex
from recommend.search.index import MANIFEST

FILES = (
    "params.index.json",
    "vocab.index.json",
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
    "course_ids.npy",
    MANIFEST,
)


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(tiny_courses())


@pytest.fixture
def saved(index: SearchIndex, tmp_path: Path) -> Path:
    index.save(tmp_path / "idx")
    return tmp_path / "idx"


def _relist(root: Path, name: str) -> None:
    """Record ``name``'s new checksum in the manifest, as a forger would."""
    meta = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    meta["files"][name] = store.file_entry(root / name)
    (root / MANIFEST).write_text(json.dumps(meta), encoding="utf-8")


def _edit_json(root: Path, name: str, edit: Callable[[Any], Any]) -> None:
    path = root / name
    path.write_text(
        json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8"
    )
    _relist(root, name)


def _with(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {**d, key: value}


def _same_results(a: SearchIndex, b: SearchIndex) -> None:
    for text in ("党章 学习", "理论", "l1"):
        qa, qb = a.parse(text), b.parse(text)
        np.testing.assert_array_equal(a.top(qa, 16)[0], b.top(qb, 16)[0])
        np.testing.assert_array_equal(a.top(qa, 16)[1], b.top(qb, 16)[1])


def test_round_trip_reads_through_the_checked_loader(index: SearchIndex, saved: Path) -> None:
    again = SearchIndex.load(saved)
    assert again.course_ids.tolist() == index.course_ids.tolist()
    _same_results(index, again)


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("params.index.json", _with("backend", "numba"), None),  # ignored: numpy scoring
        ("params.index.json", _with("surprise", 1), None),  # unknown settings are ignored
        ("params.index.json", _with("k1", "1.2"), "invalid k1"),
        ("params.index.json", _with("method", "bm25l"), "invalid method"),
        ("params.index.json", _with("num_docs", 10**9), "num_docs"),
        ("params.index.json", lambda d: [d], "not a JSON object"),
        ("vocab.index.json", lambda d: {**d, "新词": 10**6}, "ids 0 .. n-1"),
        ("vocab.index.json", lambda d: {k: str(v) for k, v in d.items()}, "ids 0 .. n-1"),
        ("vocab.index.json", lambda d: list(d), "ids 0 .. n-1"),
        (MANIFEST, _with("n_docs", 17), "n_docs"),
        (MANIFEST, _with("vocabulary", 3), "words"),
        (MANIFEST, _with("weights", {"bogus": 1.0}), "blend weight"),
        (MANIFEST, _with("weights", [1, 2]), "weights"),
        (MANIFEST, _with("params", "lucene"), "params"),
    ],
)
def test_forged_json_files(
    index: SearchIndex,
    saved: Path,
    name: str,
    edit: Callable[[Any], Any],
    message: str | None,
) -> None:
    if name == MANIFEST:
        path = saved / MANIFEST
        path.write_text(json.dumps(edit(json.loads(path.read_text("utf-8")))), "utf-8")
    else:
        _edit_json(saved, name, edit)
    if message is None:
        _same_results(index, SearchIndex.load(saved))
        return
    with pytest.raises(ArtifactError, match=message):
        SearchIndex.load(saved)


@pytest.mark.parametrize(
    ("name", "forge", "message"),
    [
        ("indices.csc.index.npy", lambda a: a + 1000, "beyond n_docs"),
        ("indices.csc.index.npy", lambda a: -a - 1, "beyond n_docs"),
        ("indptr.csc.index.npy", lambda a: a[::-1].copy(), "out of order"),
        ("indptr.csc.index.npy", lambda a: a[:-1].copy(), "do not match"),
        ("data.csc.index.npy", lambda a: a.astype(np.float64), "do not match"),
        ("data.csc.index.npy", lambda a: np.full_like(a, np.nan), "non-finite"),
        ("course_ids.npy", lambda a: a[:-1].copy(), "n_docs"),
        ("course_ids.npy", lambda a: a.reshape(2, -1), "n_docs"),
    ],
)
def test_forged_arrays(
    saved: Path, name: str, forge: Callable[[np.ndarray], np.ndarray], message: str
) -> None:
    path = saved / name
    np.save(path, forge(np.load(path)), allow_pickle=False)
    _relist(saved, name)
    with pytest.raises(ArtifactError, match=message):
        SearchIndex.load(saved)


def test_array_header_claiming_a_huge_array(saved: Path) -> None:
    path = saved / "data.csc.index.npy"
    raw = path.read_bytes()
    header = raw[: raw.index(b"\n") + 1]
    forged = header.replace(b"(", b"(100000000000, ", 1)[: len(header) - 1]
    forged = forged.ljust(len(header) - 1, b" ") + b"\n"
    path.write_bytes(forged + raw[len(header) :])
    _relist(saved, "data.csc.index.npy")
    with pytest.raises(ArtifactError, match="header claims"):
        SearchIndex.load(saved)


def test_only_listed_files_are_read(saved: Path) -> None:
    meta = json.loads((saved / MANIFEST).read_text(encoding="utf-8"))
    del meta["files"]["vocab.index.json"]
    (saved / MANIFEST).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"does not list \['vocab.index.json'\]"):
        SearchIndex.load(saved)


# --------------------------------------------------------------------------------------------
# Fuzzing: random byte flips and truncations of every file
# --------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 150


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(FILES),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
    truncate=st.booleans(),
)
def test_fuzzed_index_loads_identically_or_raises_our_error(
    index: SearchIndex,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    where: float,
    mask: int,
    truncate: bool,
) -> None:
    root = tmp_path_factory.mktemp("fuzz") / "idx"
    index.save(root)
    path = root / name
    raw = bytearray(path.read_bytes())
    at = int(where * len(raw))
    if truncate:
        del raw[at:]
    else:
        raw[at] ^= mask
    path.write_bytes(bytes(raw))
    try:
        again = SearchIndex.load(root)
    except RecommendError as err:
        assert "\n" not in str(err), "one-line messages"
        return
    _same_results(index, again)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _nodes(item, (*path, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "lucene", "bm25l", "numba", "float32", "int64", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["sha256", "bytes", "k1", "title"]), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from([MANIFEST, "params.index.json", "vocab.index.json"]),
    pick=st.integers(0, 10**6),
    new=JSON_VALUES,
)
def test_edited_index_json_loads_or_raises_only_our_error(
    index: SearchIndex,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    pick: int,
    new: Any,
) -> None:
    """Any node of the index's JSON files replaced (checksums recomputed, as a forger
    would): a library error, or an index that answers queries."""
    root = tmp_path_factory.mktemp("edited") / "idx"
    index.save(root)
    content = json.loads((root / name).read_text(encoding="utf-8"))
    nodes = _nodes(content)
    edited = _replace(content, nodes[pick % len(nodes)], new)
    (root / name).write_text(json.dumps(edited), encoding="utf-8")
    if name != MANIFEST:
        _relist(root, name)
    try:
        again = SearchIndex.load(root)
    except RecommendError as err:
        assert "\n" not in str(err), "one-line messages"
        return
    again.top(again.parse("党章 学习"), 5)
