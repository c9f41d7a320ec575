"""Tests of recommend.artifact against forged files: memory bombs and inconsistent sizes.

Each test edits a saved artifact the way an attacker would (recomputing the checksums in
``model.json``, which only detect accidents) and expects an ``ArtifactError`` naming the
file before anything large is allocated.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FixedFactors, make_tiny_dataset

from recommend import artifact_codec, store
from recommend.artifact import ARRAYS, MODEL_JSON, load, save
from recommend.errors import ArtifactError


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save(FixedFactors().fit(make_tiny_dataset()), tmp_path / "model")


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
    with pytest.raises(ArtifactError, match=ARRAYS):
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
