"""Tests of recommend.artifact against forged files: memory bombs and inconsistent sizes.

Each test edits a saved artifact the way an attacker would (recomputing the checksums in
``model.json``, which only detect accidents) and expects an ``ArtifactError`` naming the
file before anything large is allocated.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from helpers import FixedFactors, make_tiny_dataset, tiny_courses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend import artifact_codec, store
from recommend.artifact import (
    ARRAYS,
    KEY_ENV,
    MODEL_JSON,
    SIGNATURE,
    artifact_info,
    copy_artifact,
    load,
    save,
)
from recommend.data.dataset import Dataset
from recommend.errors import ArtifactError, ConfigError, RecommendError
from recommend.models.base import Recommender


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save(FixedFactors().fit(make_tiny_dataset()), tmp_path / "model")


class WithSimilarity(FixedFactors):
    """``FixedFactors`` plus a sparse course similarity and a text array as learned state."""

    name = "fixed_with_similarity"

    def _fit(self, dataset: Dataset) -> None:
        super()._fit(dataset)
        self.similarity_ = sp.identity(dataset.n_courses, dtype=np.float32, format="csr")
        self.labels_ = np.array(["党员教育", "理论学习", ""], dtype=object)


@pytest.fixture
def saved_extra(tmp_path: Path) -> Path:
    return save(WithSimilarity().fit(make_tiny_dataset()), tmp_path / "extra")


def _meta(root: Path) -> dict[str, Any]:
    return json.loads((root / MODEL_JSON).read_text(encoding="utf-8"))


def _write_meta(root: Path, meta: dict[str, Any]) -> None:
    (root / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")


def _rechecksum(root: Path, name: str) -> None:
    """Record ``name``'s new size and checksum in model.json, as a forger would."""
    meta = _meta(root)
    meta["files"][name] = {
        "sha256": store.sha256(root / name),
        "bytes": (root / name).stat().st_size,
    }
    _write_meta(root, meta)


def _rewrite_npz(
    root: Path, replace: dict[str, bytes], *, deflate: frozenset[str] = frozenset()
) -> None:
    """Rewrite arrays.npz with some entries' raw .npy bytes replaced (some compressed)."""
    file = root / ARRAYS
    with zipfile.ZipFile(file) as zf:
        entries = {info.filename: zf.read(info) for info in zf.infolist()}
    for key, raw in replace.items():
        entries[f"{key}.npy"] = raw
    with zipfile.ZipFile(file, "w") as zf:
        for name, raw in entries.items():
            method = (
                zipfile.ZIP_DEFLATED if name.removesuffix(".npy") in deflate else zipfile.ZIP_STORED
            )
            zf.writestr(name, raw, compress_type=method)
    _rechecksum(root, ARRAYS)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _state_key(root: Path, attribute: str) -> str:
    return str(_meta(root)["state"][attribute]["key"])


# --------------------------------------------------------------------------------------------
# Memory bombs
# --------------------------------------------------------------------------------------------


def test_compressed_array_entry_is_refused(saved: Path) -> None:
    # 64 MB of zeros deflate to ~64 kB: the archive grows little, the load would not.
    key = _state_key(saved, "member_factors_")
    big = np.zeros((2_000_000, 8), dtype=np.float32)
    _rewrite_npz(saved, {key: _npy(big)}, deflate=frozenset({key}))
    assert (saved / ARRAYS).stat().st_size < 1_000_000
    with pytest.raises(ArtifactError, match=rf"{ARRAYS}.*{key}.*compressed"):
        load(saved)


def test_array_header_claiming_more_than_the_entry_holds_is_refused(saved: Path) -> None:
    key = _state_key(saved, "member_factors_")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)}
    )
    _rewrite_npz(saved, {key: header.getvalue() + b"\0" * 64})
    with pytest.raises(ArtifactError, match=rf"{key}.*header claims.*100000000000"):
        load(saved)


def test_archive_directory_claiming_more_than_the_file_is_refused(saved: Path) -> None:
    file = saved / ARRAYS
    data = bytearray(file.read_bytes())
    # The central directory's uncompressed and compressed sizes of the first entry.
    cd = data.rfind(b"PK\x01\x02")
    first = data.find(b"PK\x01\x02")
    assert first <= cd
    data[first + 20 : first + 28] = (10**8).to_bytes(4, "little") * 2
    file.write_bytes(bytes(data))
    _rechecksum(saved, ARRAYS)
    with pytest.raises(ArtifactError, match=rf"{ARRAYS}: its entries claim .* forged"):
        load(saved)


def test_sparse_matrix_claiming_huge_dimension_is_refused(saved: Path) -> None:
    # The training matrix is stored once and described twice (history_ and the dataset).
    meta = _meta(saved)
    descriptors = [meta["dataset"]["interactions"], meta["state"]["history_"]["base"]]
    assert descriptors[0] == descriptors[1]
    for desc in descriptors:
        desc["shape"][1] = 200_000_000
    _write_meta(saved, meta)
    with pytest.raises(ArtifactError, match=r"200000000"):
        load(saved)


def test_learned_sparse_matrix_claiming_huge_dimension_is_refused(saved_extra: Path) -> None:
    meta = _meta(saved_extra)
    meta["state"]["similarity_"]["shape"][1] = 200_000_000
    _write_meta(saved_extra, meta)
    with pytest.raises(ArtifactError, match=r"'similarity_' claims a dimension of 200000000"):
        load(saved_extra)


@pytest.mark.parametrize(
    "forge",
    [
        lambda offsets: offsets[::-1].copy(),
        lambda offsets: offsets + 1,
        lambda offsets: offsets[:-1].copy(),
    ],
)
def test_text_array_with_forged_offsets_is_refused(
    saved_extra: Path, forge: Callable[[np.ndarray], np.ndarray]
) -> None:
    key = f"{_state_key(saved_extra, 'labels_')}.offsets"
    with zipfile.ZipFile(saved_extra / ARRAYS) as zf:
        offsets = np.load(io.BytesIO(zf.read(f"{key}.npy")))
    _rewrite_npz(saved_extra, {key: _npy(forge(offsets))})
    with pytest.raises(ArtifactError, match=r"text array 'labels_' does not match"):
        load(saved_extra)


def test_data_section_must_match_the_id_maps(saved: Path) -> None:
    meta = _meta(saved)
    meta["data"]["courses"] = 200_000_000
    _write_meta(saved, meta)
    with pytest.raises(ArtifactError, match=r"200000000 courses"):
        load(saved)


def test_factors_must_match_the_id_maps(saved: Path) -> None:
    key = _state_key(saved, "course_factors_")
    with zipfile.ZipFile(saved / ARRAYS) as zf:
        courses = np.load(io.BytesIO(zf.read(f"{key}.npy")))
    _rewrite_npz(saved, {key: _npy(courses[:-1])})
    with pytest.raises(ArtifactError, match=r"factors have .* course rows"):
        load(saved)


def test_id_map_with_other_row_count_is_refused(saved: Path) -> None:
    name = "course_ids.parquet"
    ids = pq.read_table(saved / name).column("id").to_pylist()
    pq.write_table(
        pa.table({"id": pa.array([*ids, "extra"], type=pa.large_string())}), saved / name
    )
    _rechecksum(saved, name)
    with pytest.raises(ArtifactError, match=rf"{name} holds {len(ids) + 1} rows"):
        load(saved)


def test_parquet_table_expanding_far_beyond_its_size_is_refused(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifact_codec, "TABLE_SLACK", 0)
    name = "members.parquet"
    members = pq.read_table(saved / name).to_pandas()
    bomb = members.iloc[np.zeros(300_000, dtype=np.int64)].reset_index(drop=True)
    pq.write_table(
        pa.Table.from_pandas(bomb, preserve_index=False), saved / name, compression="zstd"
    )
    _rechecksum(saved, name)
    assert (saved / name).stat().st_size < 50_000
    with pytest.raises(ArtifactError, match=rf"{name}.*decompression bomb"):
        load(saved)


def test_parquet_footer_understating_the_decoded_size_is_caught_while_reading(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dictionary-encoded repeats: the footer's sizes are small, the decoded text is not.
    name = "members.parquet"
    members = pq.read_table(saved / name).to_pandas()
    bomb = members.iloc[np.zeros(200_000, dtype=np.int64)].reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(bomb, preserve_index=False), saved / name)
    _rechecksum(saved, name)
    meta = pq.ParquetFile(saved / name).metadata
    footer = max(meta.row_group(0).total_byte_size, meta.num_rows * meta.num_columns)
    assert pq.read_table(saved / name).nbytes > 4 * footer
    monkeypatch.setattr(artifact_codec, "MAX_TABLE_EXPANSION", 0)
    monkeypatch.setattr(artifact_codec, "TABLE_SLACK", 2 * footer)
    with pytest.raises(ArtifactError, match=rf"{name} expands past"):
        load(saved)


def test_own_tables_stay_well_within_the_expansion_bound(saved: Path) -> None:
    for file in saved.glob("*.parquet"):
        nbytes = pq.read_table(file).nbytes
        assert nbytes <= artifact_codec.MAX_TABLE_EXPANSION * file.stat().st_size / 4, file.name


# --------------------------------------------------------------------------------------------
# Deep nesting
# --------------------------------------------------------------------------------------------


def test_deeply_nested_model_json_is_an_artifact_error(saved: Path) -> None:
    text = (saved / MODEL_JSON).read_text(encoding="utf-8")
    depth = 100_000
    nested = text.rstrip().rstrip("}") + ', "deep": ' + "[" * depth + "]" * depth + "}"
    (saved / MODEL_JSON).write_text(nested, encoding="utf-8")
    with pytest.raises(ArtifactError, match=MODEL_JSON):
        load(saved)


def test_deeply_nested_state_descriptor_is_an_artifact_error(saved: Path) -> None:
    meta = _meta(saved)
    meta["state"]["deep_"] = "DEEP"
    depth = 900  # parses as JSON, but decoding it recursively exhausts the stack
    deep = '{"kind": "list", "items": [' * depth + '{"kind": "json", "value": 1}' + "]}" * depth
    text = json.dumps(meta).replace('"DEEP"', deep)
    (saved / MODEL_JSON).write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"malformed|nested"):
        load(saved)


# --------------------------------------------------------------------------------------------
# Signed artifacts
# --------------------------------------------------------------------------------------------

KEY = "k" * 32


@pytest.fixture
def model() -> FixedFactors:
    return FixedFactors().fit(make_tiny_dataset())


def test_signed_artifact_loads_with_its_key(model: FixedFactors, tmp_path: Path) -> None:
    path = save(model, tmp_path / "m", key=KEY)
    assert (path / SIGNATURE).is_file() and artifact_info(path)["signed"]
    loaded = load(path, key=KEY)
    np.testing.assert_array_equal(loaded.score(np.arange(4)), model.score(np.arange(4)))
    load(path)  # without a key configured, signatures are not checked


def test_key_from_the_environment_signs_and_checks(
    model: FixedFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    path = save(model, tmp_path / "m")
    assert (path / SIGNATURE).is_file()
    load(path)
    monkeypatch.setenv(KEY_ENV, "another key of enough bytes")
    with pytest.raises(ArtifactError, match="does not match"):
        load(path)


def test_unsigned_artifact_is_refused_when_a_key_is_configured(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ArtifactError, match="not signed"):
        load(saved, key=KEY)
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(ArtifactError, match="not signed"):
        load(saved)
    with pytest.raises(ArtifactError, match="not signed"):
        artifact_info(saved)


def test_tampered_weights_with_recomputed_checksums_fail_the_signature(
    model: FixedFactors, tmp_path: Path
) -> None:
    path = save(model, tmp_path / "m", key=KEY)
    key = _state_key(path, "course_factors_")
    with zipfile.ZipFile(path / ARRAYS) as zf:
        courses = np.load(io.BytesIO(zf.read(f"{key}.npy")))
    _rewrite_npz(path, {key: _npy(courses * -1)})  # checksums recomputed, as an attacker would
    load(path)  # checksums alone cannot tell
    with pytest.raises(ArtifactError, match=r"signature .* does not match"):
        load(path, key=KEY)


@pytest.mark.parametrize(
    "content",
    [b"", b"{}", b'{"algorithm": "hmac-sha256", "signature": 5}', b"\xff" * 10, b"x" * 5000],
)
def test_damaged_signature_file_is_refused(
    model: FixedFactors, tmp_path: Path, content: bytes
) -> None:
    path = save(model, tmp_path / "m", key=KEY)
    (path / SIGNATURE).write_bytes(content)
    with pytest.raises(ArtifactError, match=SIGNATURE.replace(".", r"\.") + "|signature"):
        load(path, key=KEY)


def test_short_key_is_a_config_error_that_never_shows_the_key(
    model: FixedFactors, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="at least 16") as err:
        save(model, tmp_path / "m", key="secret-short")
    assert "secret-short" not in str(err.value)
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------------------------
# Copies hold the artifact's files only; links are refused
# --------------------------------------------------------------------------------------------


def test_copy_holds_only_the_listed_files(saved: Path, tmp_path: Path) -> None:
    (saved / "notes.txt").write_text("private notes", encoding="utf-8")
    (saved / "private").mkdir()
    (saved / "private" / "id_rsa").write_text("KEY", encoding="utf-8")
    copy = copy_artifact(saved, tmp_path / "copy")
    expected = {MODEL_JSON, *_meta(saved)["files"]}
    assert {p.name for p in copy.iterdir()} == expected
    load(copy)


@pytest.mark.parametrize("where", ["notes", "arrays.npz", "private/inner"])
def test_symlink_anywhere_is_refused(saved: Path, tmp_path: Path, where: str) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_rsa").write_text("KEY", encoding="utf-8")
    if where == "arrays.npz":
        (saved / ARRAYS).rename(private / ARRAYS)
        (saved / ARRAYS).symlink_to(private / ARRAYS)
    elif where == "notes":
        (saved / "notes").symlink_to(private, target_is_directory=True)
    else:
        (saved / "private").mkdir()
        (saved / "private" / "inner").symlink_to(private / "id_rsa")
    with pytest.raises(ArtifactError, match="symbolic link"):
        copy_artifact(saved, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    if where == "arrays.npz":
        with pytest.raises(ArtifactError, match="symbolic link"):
            load(saved)


def test_copy_carries_parts_and_signature(model: FixedFactors, tmp_path: Path) -> None:
    from recommend.search import SearchIndex

    index = SearchIndex.build(tiny_courses())
    path = save(model, tmp_path / "m", key=KEY, search_index=index)
    (path / "search_index" / "stray.txt").write_text("not part of the index", encoding="utf-8")
    copy = copy_artifact(path, tmp_path / "copy", key=KEY)
    assert (copy / SIGNATURE).is_file()
    assert not (copy / "search_index" / "stray.txt").exists()
    assert sorted(p.name for p in (copy / "search_index").iterdir()) == sorted(
        p.name for p in (path / "search_index").iterdir() if p.name != "stray.txt"
    )
    SearchIndex.load(copy / "search_index", expect=_meta(copy)["search_index"])


# --------------------------------------------------------------------------------------------
# A full disk
# --------------------------------------------------------------------------------------------


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_saving_is_an_artifact_error(
    model: FixedFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pq, "write_table", _disk_full)
    with pytest.raises(ArtifactError, match="No space left on device") as err:
        save(model, tmp_path / "m")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_while_copying_is_an_artifact_error(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setattr(shutil, "copyfileobj", _disk_full)
    with pytest.raises(ArtifactError, match="No space left on device"):
        copy_artifact(saved, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


# --------------------------------------------------------------------------------------------
# Fuzzing: random byte flips and truncations of every file
# --------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 200


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FixedFactors]:
    model = FixedFactors().fit(make_tiny_dataset())
    return save(model, tmp_path_factory.mktemp("template") / "model"), model


def _same_model(a: Recommender, b: Recommender) -> None:
    members = np.arange(len(a.member_ids_))
    assert a.member_ids_ == b.member_ids_ and a.course_ids_ == b.course_ids_
    np.testing.assert_array_equal(a.score(members), b.score(members))
    assert (a.history_.base != b.history_.base).nnz == 0
    pd.testing.assert_frame_equal(a.dataset_.courses, b.dataset_.courses)
    pd.testing.assert_frame_equal(a.dataset_.members, b.dataset_.members)
    pd.testing.assert_frame_equal(a.dataset_.events, b.dataset_.events)
    assert a.get_params() == b.get_params()


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pick=st.integers(0, 10**6),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
    truncate=st.booleans(),
)
def test_fuzzed_artifact_loads_identically_or_raises_our_error(
    template: tuple[Path, FixedFactors],
    tmp_path_factory: pytest.TempPathFactory,
    pick: int,
    where: float,
    mask: int,
    truncate: bool,
) -> None:
    source, model = template
    root = tmp_path_factory.mktemp("fuzz") / "model"
    shutil.copytree(source, root)
    files = sorted(p.name for p in root.iterdir())
    path = root / files[pick % len(files)]
    raw = bytearray(path.read_bytes())
    at = int(where * len(raw))
    if truncate:
        del raw[at:]
    else:
        raw[at] ^= mask
    path.write_bytes(bytes(raw))
    try:
        loaded = load(root)
    except RecommendError as err:
        assert "\n" not in str(err), "one-line messages"
        return
    _same_model(model, loaded)


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pick=st.integers(0, 10**6),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
    truncate=st.booleans(),
)
def test_forged_artifact_loads_or_raises_only_our_error(
    template: tuple[Path, FixedFactors],
    tmp_path_factory: pytest.TempPathFactory,
    pick: int,
    where: float,
    mask: int,
    truncate: bool,
) -> None:
    """Flips and truncations with the checksums recomputed, as a forger would: the
    checks behind the checksums (headers, sizes, shapes) must hold on their own."""
    source, _ = template
    root = tmp_path_factory.mktemp("forged") / "model"
    shutil.copytree(source, root)
    files = sorted(p.name for p in root.iterdir() if p.name != MODEL_JSON)
    name = files[pick % len(files)]
    raw = bytearray((root / name).read_bytes())
    at = int(where * len(raw))
    if truncate:
        del raw[at:]
    else:
        raw[at] ^= mask
    (root / name).write_bytes(bytes(raw))
    _rechecksum(root, name)
    try:
        loaded = load(root)
    except RecommendError as err:
        assert "\n" not in str(err), "one-line messages"
        return
    loaded.score(np.arange(len(loaded.member_ids_)))


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every node of a JSON value."""
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
    | st.sampled_from(["", "csr", "csc", "coo", "array", "sparse", "idmap", "strings", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["kind", "key", "shape", "file", "n", "items"]), children, max_size=3
        )
    ),
    max_leaves=6,
)


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pick=st.integers(0, 10**6), new=JSON_VALUES)
def test_edited_model_json_loads_or_raises_only_our_error(
    template: tuple[Path, FixedFactors],
    tmp_path_factory: pytest.TempPathFactory,
    pick: int,
    new: Any,
) -> None:
    """Any node of model.json replaced by another JSON value: a library error or a model."""
    source, _ = template
    root = tmp_path_factory.mktemp("edited") / "model"
    shutil.copytree(source, root)
    meta = _meta(root)
    nodes = _nodes(meta)
    _write_meta(root, _replace(meta, nodes[pick % len(nodes)], new))
    try:
        loaded = load(root)
    except RecommendError as err:
        assert "\n" not in str(err), "one-line messages"
        return
    loaded.score(np.arange(len(loaded.member_ids_)))
