"""Tests of recommend.store: atomic writes, checksums and verified file listings."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from recommend import store
from recommend.errors import ArtifactError, ConfigError, DataError


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _listing(root: Path, *names: str) -> dict[str, Any]:
    return {name: store.file_entry(root / name) for name in names}


@pytest.fixture
def listed(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A directory with two files and their listing."""
    root = tmp_path / "listed"
    root.mkdir()
    (root / "a.bin").write_bytes(bytes(range(256)) * 4)
    (root / "b.txt").write_text("党员教育\n", encoding="utf-8")
    return root, _listing(root, "a.bin", "b.txt")


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def test_sha256_and_file_entry(tmp_path: Path) -> None:
    file = tmp_path / "f"
    data = b"x" * 3_000_000  # more than one read block
    file.write_bytes(data)
    assert store.sha256(file) == hashlib.sha256(data).hexdigest()
    assert store.file_entry(file) == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": 3_000_000,
    }


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def test_write_json_round_trip_and_format(tmp_path: Path) -> None:
    file = tmp_path / "meta.json"
    store.write_json(file, {"b": 1, "a": "红色"}, sort_keys=True)
    text = file.read_text(encoding="utf-8")
    assert text == '{\n  "a": "红色",\n  "b": 1\n}\n'  # non-ASCII kept, newline at the end
    assert store.read_json(file) == {"a": "红色", "b": 1}
    store.write_json(file, {"when": object}, indent=1, default=lambda v: "x")
    assert json.loads(file.read_text(encoding="utf-8")) == {"when": "x"}
    assert _names(tmp_path) == ["meta.json"]


def test_write_json_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    file = tmp_path / "manifest.json"
    store.write_json(file, {"version": 1})
    with pytest.raises(ValueError, match="Out of range float"):
        store.write_json(file, {"version": float("nan")}, allow_nan=False)
    with pytest.raises(TypeError):
        store.write_json(file, {"version": object()})
    assert store.read_json(file) == {"version": 1}
    assert _names(tmp_path) == ["manifest.json"]


def test_failed_staged_file_keeps_the_old_file(tmp_path: Path) -> None:
    file = tmp_path / "data.bin"
    file.write_bytes(b"old")
    with pytest.raises(RuntimeError), store.staged_file(file) as tmp:
        tmp.write_bytes(b"half of the new")
        assert tmp.parent == tmp_path and tmp.name.startswith(store.TMP_PREFIX)
        raise RuntimeError("disk full")
    assert file.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]
    with store.staged_file(file) as tmp:
        tmp.write_bytes(b"new")
        assert file.read_bytes() == b"old"  # nothing visible before the block ends
    assert file.read_bytes() == b"new"
    assert _names(tmp_path) == ["data.bin"]


def test_interrupted_json_write_leaves_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "m.json"
    store.write_json(file, {"n": 1})

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "publish_file", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_json(file, {"n": 2})
    assert store.read_json(file) == {"n": 1}
    assert _names(tmp_path) == ["m.json"]


def test_read_json_names_a_corrupted_file(tmp_path: Path) -> None:
    file = tmp_path / "m.json"
    file.write_text('{"format": "rec', encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"m\.json is not valid JSON.*truncated"):
        store.read_json(file)
    file.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError, match="not valid JSON"):
        store.read_json(file, error=DataError)


# --------------------------------------------------------------------------------------------
# Atomic directories
# --------------------------------------------------------------------------------------------


def test_staged_dir_publishes_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out" / "index"
    with pytest.raises(RuntimeError), store.staged_dir(target) as tmp:
        (tmp / "part").write_text("half")
        assert not target.exists()
        raise RuntimeError("interrupted")
    assert not target.exists() and _names(tmp_path / "out") == []

    with store.staged_dir(target) as tmp:
        (tmp / "part").write_text("whole")
        assert tmp.parent == target.parent and tmp.name.endswith(".tmp")
    assert (target / "part").read_text() == "whole"
    assert _names(tmp_path / "out") == ["index"]
    assert target.stat().st_mode & 0o777 == 0o755  # an ordinary directory, not mkdtemp's 0o700


def test_staged_dir_refuses_an_existing_target_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("old")
    with (
        pytest.raises(DataError, match="appeared while"),
        store.staged_dir(target, error=DataError),
    ):
        pass
    assert _names(target) == ["old"]
    with store.staged_dir(target, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert _names(target) == ["new"]
    assert _names(tmp_path) == ["d"]  # neither the staging nor the old directory is left


def test_failed_overwrite_puts_the_old_directory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("old")
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if str(src).endswith(".tmp"):
            raise OSError(5, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"), store.staged_dir(target, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    monkeypatch.undo()
    assert _names(target) == ["old"]
    assert _names(tmp_path) == ["d"]


def test_check_replaceable(tmp_path: Path) -> None:
    store.check_replaceable(tmp_path / "new", overwrite=False, marker="m.json", what="thing")
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep")
    with pytest.raises(ArtifactError, match="already exists; pass overwrite=True"):
        store.check_replaceable(foreign, overwrite=False, marker="m.json", what="thing")
    with pytest.raises(ArtifactError, match=r"refusing to replace .*not a thing \(no m.json\)"):
        store.check_replaceable(foreign, overwrite=True, marker="m.json", what="thing")
    (foreign / "m.json").write_text("{}")
    store.check_replaceable(foreign, overwrite=True, marker="m.json", what="thing")
    empty = tmp_path / "empty"
    empty.mkdir()
    store.check_replaceable(empty, overwrite=True, marker="m.json", what="thing")
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        store.check_replaceable(file, overwrite=True, marker="m.json", what="x", error=DataError)


# --------------------------------------------------------------------------------------------
# Verified listings
# --------------------------------------------------------------------------------------------


def test_intact_listing_verifies(listed: tuple[Path, dict[str, Any]]) -> None:
    root, files = listed
    assert store.verify_files(root, files, listing="m.json", required="a.bin") == {"a.bin", "b.txt"}


def test_tampered_file_fails_its_checksum(listed: tuple[Path, dict[str, Any]]) -> None:
    root, files = listed
    data = bytearray((root / "a.bin").read_bytes())
    data[500] ^= 0x01  # same size, one bit differs
    (root / "a.bin").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"a\.bin in .* fails its checksum.*m\.json"):
        store.verify_files(root, files, listing="m.json")


def test_truncated_and_grown_files_are_named(listed: tuple[Path, dict[str, Any]]) -> None:
    root, files = listed
    (root / "a.bin").write_bytes((root / "a.bin").read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"a\.bin in .* is truncated: 100 of 1024 bytes"):
        store.verify_files(root, files, listing="m.json")
    (root / "a.bin").write_bytes(bytes(range(256)) * 4 + b"\0")
    with pytest.raises(ArtifactError, match=r"a\.bin in .* has 1025 bytes, expected 1024"):
        store.verify_files(root, files, listing="m.json")


def test_missing_and_irregular_files_are_named(listed: tuple[Path, dict[str, Any]]) -> None:
    root, files = listed
    (root / "b.txt").unlink()
    with pytest.raises(ArtifactError, match=r"b\.txt is missing from .*listed in m\.json"):
        store.verify_files(root, files, listing="m.json")
    (root / "b.txt").mkdir()
    with pytest.raises(DataError, match=r"b\.txt in .* is not a regular file"):
        store.verify_files(root, files, listing="m.json", error=DataError)


@pytest.mark.parametrize(
    "name", ["../outside.bin", "/etc/passwd", "sub/a.bin", ".hidden", "", "m.json", "a b"]
)
def test_unsafe_names_are_refused(listed: tuple[Path, dict[str, Any]], name: str) -> None:
    root, files = listed
    # A listing that points outside its directory (or at itself) is refused before any file
    # is opened, even when the entry would match.
    (root.parent / "outside.bin").write_bytes((root / "a.bin").read_bytes())
    bad = {name: files["a.bin"], **files}
    with pytest.raises(ArtifactError, match="invalid file name"):
        store.verify_files(root, bad, listing="m.json")


def test_malformed_entries_and_required_file(listed: tuple[Path, dict[str, Any]]) -> None:
    root, files = listed
    with pytest.raises(ArtifactError, match=r"lists no c\.npz"):
        store.verify_files(root, files, listing="m.json", required="c.npz")
    for entry in ({"sha256": files["a.bin"]["sha256"]}, {"bytes": "1024", "sha256": "x"}, "x"):
        with pytest.raises(ArtifactError, match=r"invalid entry for a\.bin"):
            store.verify_files(root, {"a.bin": entry}, listing="m.json")


def test_is_safe_name() -> None:
    assert store.is_safe_name("arrays.npz") and store.is_safe_name("data.csc.index.npy")
    for name in ("..", "../x", "a/b", "a\\b", ".x", "-x", "", None, 3):
        assert not store.is_safe_name(name)


def test_exclusive_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    got: list[str] = []

    def second() -> None:
        try:
            with store.exclusive_lock(lock, busy="busy", error=ConfigError):
                got.append("acquired")
        except ConfigError as err:
            got.append(str(err))

    with store.exclusive_lock(lock, busy="busy", error=ConfigError):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
        assert got == ["busy"]
    second()
    assert got == ["busy", "acquired"] and lock.is_file()


def test_a_lock_file_that_cannot_be_created_is_the_library_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with (
        pytest.raises(ConfigError, match="cannot create or open the lock file"),
        store.exclusive_lock(tmp_path / "a-file" / ".lock", busy="busy", error=ConfigError),
    ):
        pass


def test_staged_names_are_recognised_exactly(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    with store.staged_file(target) as tmp:
        assert store.is_staged_name(tmp.name, "model.json")
        tmp.write_text("{}")
    for name in [
        ".tmp-model.json",
        ".tmp-model.json.0123456789aZ",
        ".tmp-model.json.x",
        ".tmp-draft",
    ]:
        assert not store.is_staged_name(name, "model.json")


def test_a_lock_file_replaced_by_a_symlink_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    os.symlink(victim, tmp_path / "out" / ".lock")
    with (
        pytest.raises(ConfigError, match="cannot create or open the lock file"),
        store.exclusive_lock(tmp_path / "out" / ".lock", busy="busy", error=ConfigError),
    ):
        pass
    assert victim.read_text() == "precious"
