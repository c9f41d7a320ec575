"""Resuming a batch job: finished chunks kept as they are (not ranked or written again),
damaged ones written again, other jobs' output never mixed in."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from helpers import RandomFactors

from recommend.batch import MANIFEST, chunks, folder, run_batch
from recommend.errors import ConfigError
from recommend.schema import CHANNELS


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


def _files(out: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every chunk file's bytes, inode and modification time (ns)."""
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(out.glob("part-*"))
    }


class _Spy:
    """Counts the members ChunkWriter.rank and folder.write_chunk are called with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ranked: list[int] = []
        self.written: list[int] = []
        rank, write = chunks.ChunkWriter.rank, folder.write_chunk

        def spy_rank(writer: chunks.ChunkWriter, ids: object, *args: object) -> object:
            self.ranked.append(len(ids))  # type: ignore[arg-type]
            return rank(writer, ids, *args)  # type: ignore[arg-type]

        def spy_write(root: Path, i: int, *args: object) -> object:
            self.written.append(i)
            return write(root, i, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(chunks.ChunkWriter, "rank", spy_rank)
        monkeypatch.setattr(folder, "write_chunk", spy_write)


def test_rerun_keeps_finished_chunks_byte_for_byte(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished job run again ranks nothing and writes no chunk: every file keeps its
    bytes, its inode and its modification time."""
    out = tmp_path / "out"
    first = run_batch(model, out, n=5, chunk_size=200, progress=False)
    before = _files(out)
    assert len(before) == 3
    spy = _Spy(monkeypatch)
    again = run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert again.resumed_chunks == 3 and again.rows == first.rows
    assert spy.ranked == [] and spy.written == []
    assert _files(out) == before


def test_resume_ranks_only_the_missing_chunk(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    before = _files(out)
    (out / "part-00001.parquet").unlink()
    spy = _Spy(monkeypatch)
    again = run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert again.resumed_chunks == 2
    assert spy.ranked == [200] and spy.written == [1]
    after = _files(out)
    for name in ("part-00000.parquet", "part-00002.parquet"):
        assert after[name] == before[name]
    assert after["part-00001.parquet"][0] == before["part-00001.parquet"][0]


def test_resume_after_a_stop_gives_the_uninterrupted_output(
    model: RandomFactors, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    full = run_batch(model, out, n=5, chunk_size=200, progress=False)
    reference = {p.name: p.read_bytes() for p in full.files}
    # As a job killed while writing chunk 2 leaves it: the manifest (written by the job)
    # knows chunks 0 and 1, chunk 2's file was renamed into place but not recorded,
    # temporary files are left.
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["chunks"]["2"]
    manifest["complete"] = False
    folder.write_manifest(out, manifest)
    (out / "part-00002.parquet").write_bytes(b"half a file")
    (out / ".tmp-part-00003.parquet").write_bytes(b"junk")
    (out / ".tmp-_manifest.json.0123456789ab").write_bytes(b"{")
    resumed = run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert resumed.resumed_chunks == 2
    written = {p.name: p.read_bytes() for p in out.glob("part-*")}
    assert written == reference
    assert sorted(p.name for p in out.iterdir()) == sorted([folder.LOCK, MANIFEST, *reference])


def test_a_failed_write_stops_the_job_cleanly_and_resumes(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are written in a helper thread while the next one is ranked: a write that
    fails stops the job with its error, the manifest names only whole chunks, and a rerun
    completes the output exactly as an uninterrupted run writes it."""
    reference = run_batch(model, tmp_path / "ref", n=5, chunk_size=100, progress=False)
    write_table = folder.pq.write_table
    calls = []

    def flaky(table: object, where: object, **options: object) -> None:
        calls.append(where)
        if len(calls) == 3:
            raise OSError("disk full")
        write_table(table, where, **options)

    out = tmp_path / "out"
    monkeypatch.setattr(folder.pq, "write_table", flaky)
    with pytest.raises(OSError, match="disk full"):
        run_batch(model, out, n=5, chunk_size=100, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["chunks"]) == ["0", "1"] and not manifest["complete"]
    assert sorted(p.name for p in out.iterdir()) == [
        folder.LOCK,
        MANIFEST,
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    monkeypatch.setattr(folder.pq, "write_table", write_table)
    resumed = run_batch(model, out, n=5, chunk_size=100, progress=False)
    assert resumed.resumed_chunks == 2
    pd.testing.assert_frame_equal(
        _read(out).drop(columns="generated_at"), _read(reference.path).drop(columns="generated_at")
    )


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_finished_chunk_is_written_again(
    model: RandomFactors, tmp_path: Path, damage: str
) -> None:
    """A truncated chunk fails its size; a chunk with one byte changed has its size and
    fails its checksum: either is written again, the other chunk is kept."""
    out = tmp_path / "out"
    full = run_batch(model, out, n=5, chunk_size=300, progress=False)
    good = full.files[0].read_bytes()
    kept = _files(out)["part-00001.parquet"]
    if damage == "truncate":
        full.files[0].write_bytes(good[:-10])
    else:
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x01
        full.files[0].write_bytes(bytes(flipped))
        assert full.files[0].stat().st_size == len(good)
    again = run_batch(model, out, n=5, chunk_size=300, progress=False)
    assert again.resumed_chunks == 1 and full.files[0].read_bytes() == good
    assert _files(out)["part-00001.parquet"] == kept


def test_a_chunk_replaced_by_a_symlink_is_written_again(
    model: RandomFactors, tmp_path: Path
) -> None:
    """A finished chunk replaced by a link to a copy of itself (same size and checksum) is
    not a chunk the job wrote: written again, the link's target left alone."""
    out = tmp_path / "out"
    full = run_batch(model, out, n=5, chunk_size=300, progress=False)
    good = full.files[0].read_bytes()
    elsewhere = tmp_path / "elsewhere.parquet"
    elsewhere.write_bytes(good)
    full.files[0].unlink()
    os.symlink(elsewhere, full.files[0])
    again = run_batch(model, out, n=5, chunk_size=300, progress=False)
    assert again.resumed_chunks == 1
    assert not full.files[0].is_symlink() and full.files[0].read_bytes() == good
    assert elsewhere.read_bytes() == good


@pytest.mark.parametrize(
    "change", [{"n": 6}, {"members": ["m00001"]}, {"model_version": "other"}, {"chunk_size": 99}]
)
def test_other_arguments_refuse_to_mix(model: RandomFactors, tmp_path: Path, change: dict) -> None:
    args = {"n": 5, "chunk_size": 200, "progress": False}
    run_batch(model, tmp_path / "out", **args)
    with pytest.raises(ConfigError, match="other arguments"):
        run_batch(model, tmp_path / "out", **{**args, **change})
    result = run_batch(model, tmp_path / "out", **{**args, **change}, overwrite=True)
    assert result.resumed_chunks == 0
    assert sorted(p.name for p in result.path.iterdir()) == sorted(
        [folder.LOCK, MANIFEST, *(p.name for p in result.files)]
    )


def test_same_job_with_a_tuple_of_channels_resumes(model: RandomFactors, tmp_path: Path) -> None:
    """Options compare as the manifest stores them: a tuple equals the list JSON gives back."""
    channels = (CHANNELS[0], CHANNELS[1])
    first = run_batch(model, tmp_path / "out", n=3, channel=channels, progress=False)
    again = run_batch(model, tmp_path / "out", n=3, channel=channels, progress=False)
    assert again.resumed_chunks == len(first.files) and again.rows == first.rows


def test_rerun_of_a_damaged_job_is_not_complete_until_done(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    first.files[1].unlink()

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise OSError("disk full")

    monkeypatch.setattr(folder, "write_chunk", broken)
    with pytest.raises(OSError, match="disk full"):
        run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    manifest = json.loads((first.path / MANIFEST).read_text())
    assert manifest["complete"] is False and "1" not in manifest["chunks"]
    monkeypatch.undo()
    again = run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    assert json.loads((first.path / MANIFEST).read_text())["complete"] is True
    assert again.resumed_chunks == len(first.files) - 1
