"""The batch job's output folder: one job at a time, only its own files removed, manifests
checked before a resume trusts them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import RandomFactors

from recommend.batch import MANIFEST, folder, run_batch
from recommend.cli import main
from recommend.errors import ConfigError


def _listing(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


# ------------------------------------------------------------------------- one job at a time


def test_a_second_job_on_the_folder_is_refused_while_the_first_runs(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs in two threads: while the first writes, the second (the same job, or
    another one with overwrite) is refused and touches nothing; the first completes."""
    out = tmp_path / "out"
    reference = run_batch(model, tmp_path / "ref", n=5, chunk_size=200, progress=False)
    writing, go = threading.Event(), threading.Event()
    write = folder.write_chunk

    def slow(*args: object, **kwargs: object) -> object:
        writing.set()
        assert go.wait(60)
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(folder, "write_chunk", slow)
    results: list[object] = []
    first = threading.Thread(
        target=lambda: results.append(
            run_batch(model, out, n=5, chunk_size=200, model_version="v", progress=False)
        )
    )
    first.start()
    try:
        assert writing.wait(60)
        before = _listing(out)
        for args in ({"n": 5}, {"n": 6, "overwrite": True}):
            with pytest.raises(ConfigError, match="in use by another batch job"):
                run_batch(model, out, chunk_size=200, model_version="v", progress=False, **args)
        assert _listing(out) == before
    finally:
        go.set()
        first.join(60)
    assert len(results) == 1
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and len(manifest["chunks"]) == 3
    for got, ref in zip(results[0].files, reference.files, strict=True):  # type: ignore[attr-defined]
        assert got.name == ref.name
    # The lock is released with the job: the same job runs again (and resumes).
    again = run_batch(model, out, n=5, chunk_size=200, model_version="v", progress=False)
    assert again.resumed_chunks == 3


_HOLDER = """
import sys, time
from pathlib import Path
from recommend.batch import folder, run_batch

started, go = Path(sys.argv[3]), Path(sys.argv[4])
write = folder.write_chunk

def slow(*args, **kwargs):
    started.touch()
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return write(*args, **kwargs)

folder.write_chunk = slow
run_batch(sys.argv[1], sys.argv[2], n=3, chunk_size=2000, progress=False)
"""


def test_a_job_in_another_process_holds_the_folder(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job in another process holds the folder: the command line refuses a second job
    with one line and exit code 2, deleting nothing; the first job completes."""
    out, started, go = tmp_path / "menus", tmp_path / "started", tmp_path / "go"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(artifact), str(out), str(started), str(go)]
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.exists(), "the first job did not start"
        before = _listing(out)
        argv = ["batch", "--model", str(artifact), "--out", str(out), "--n", "3", "--quiet"]
        for extra in ([], ["--overwrite", "--chunk-size", "100"]):
            assert main([*argv, *extra]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "is in use by another batch job" in err[0]
        assert _listing(out) == before
    finally:
        go.touch()
        assert holder.wait(120) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and len(manifest["chunks"]) == 3


# ------------------------------------------------------------------------- foreign files


def test_a_folder_with_other_files_is_refused_and_left_as_it_is(
    model: RandomFactors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    (out / "part-time-rota.xlsx").write_bytes(b"rota")
    (out / ".tmp-draft.txt").write_bytes(b"draft")
    before = _listing(out)
    with pytest.raises(ConfigError, match="not the output of a batch job"):
        run_batch(model, out, progress=False)
    with pytest.raises(ConfigError, match="not the output of a batch job"):
        run_batch(model, out, progress=False, overwrite=True)
    assert _listing(out) == before
    model_dir = tmp_path / "no-model"
    assert main(["batch", "--model", str(model_dir), "--out", str(out), "--quiet"]) == 2
    assert _listing(out) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_files_of_no_job_in_a_job_folder_are_never_removed(
    model: RandomFactors, tmp_path: Path, overwrite: bool
) -> None:
    """Files dropped into a job's folder whose names only look like the job's (a prefix,
    another number of digits, another format) survive a resume and an overwrite."""
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    theirs = [
        "part-time-rota.xlsx",
        ".tmp-draft.txt",
        "part-1.parquet",
        "part-00001.parquet.bak",
        "part-00001.xlsx",
        ".tmp-part-00001.parquet.txt",
        "_manifest.json.orig",
    ]
    for name in theirs:
        (out / name).write_bytes(name.encode())
    change = {"n": 6, "overwrite": True} if overwrite else {}
    result = run_batch(model, out, **{"n": 5, "chunk_size": 200, **change}, progress=False)
    assert result.resumed_chunks == (0 if overwrite else 3)
    for name in theirs:
        assert (out / name).read_bytes() == name.encode()


# ------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize(
    "name",
    [
        "../elsewhere/part-00000.parquet",
        "/tmp/part-00000.parquet",
        "sub/part-00000.parquet",
        "part-00001.parquet",
        "part-00000.csv",
        "part-0.parquet",
        "part-00000.parquet ",
        None,
    ],
)
def test_a_chunk_entry_naming_another_file_refuses_the_resume(
    model: RandomFactors, tmp_path: Path, name: str | None
) -> None:
    """An entry edited to name a file outside the folder (or another chunk's): the resume is
    refused, even with the manifest's checksum made to match; nothing is deleted or read."""
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(out / "part-00000.parquet", elsewhere / "part-00000.parquet")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["chunks"]["0"]["file"] = name
    folder.write_manifest(out, manifest)
    before, outside = _listing(out), _listing(elsewhere)
    with pytest.raises(ConfigError, match=r"chunk 0 names the file .* not 'part-00000.parquet'"):
        run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert _listing(out) == before and _listing(elsewhere) == outside
    # The same edit by hand (checksum not updated) fails the manifest's checksum.
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["chunks"]["0"]["file"] = "part-00000.parquet"
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ConfigError, match="checksum does not match"):
        run_batch(model, out, n=5, chunk_size=200, progress=False)
    # overwrite=True writes the job again, in the folder only.
    result = run_batch(model, out, n=5, chunk_size=200, progress=False, overwrite=True)
    assert result.resumed_chunks == 0 and _listing(elsewhere) == outside


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("members", 199, "invalid members"),
        ("rows", 10**9, "invalid rows"),
        ("rows", -1, "invalid rows"),
        ("bytes", "12", "invalid bytes"),
        ("sha256", "../x", "invalid sha256"),
        ("routes", {"personal": 1}, "invalid routes"),
        ("routes", {"nowhere": 200}, "invalid routes"),
    ],
)
def test_chunk_entries_that_do_not_fit_the_job_refuse_the_resume(
    model: RandomFactors, tmp_path: Path, field: str, value: object, match: str
) -> None:
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["chunks"]["1"][field] = value
    folder.write_manifest(out, manifest)
    with pytest.raises(ConfigError, match=f"chunk 1: {match}"):
        run_batch(model, out, n=5, chunk_size=200, progress=False)


def test_chunk_numbers_outside_the_job_refuse_the_resume(
    model: RandomFactors, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    for key in ("3", "01", "-1", "x"):
        edited = json.loads(json.dumps(manifest))
        edited["chunks"][key] = edited["chunks"]["0"]
        folder.write_manifest(out, edited)
        with pytest.raises(ConfigError, match="chunk number"):
            run_batch(model, out, n=5, chunk_size=200, progress=False)


def test_a_manifest_without_checksum_from_the_first_format_resumes(
    model: RandomFactors, tmp_path: Path
) -> None:
    """Manifests of format 1 (written before manifests carried a checksum) resume; their
    chunk names are checked all the same."""
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["checksum"]
    manifest["format_version"] = 1
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    again = run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert again.resumed_chunks == 3
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format_version"] == 2 and "checksum" in manifest
    del manifest["checksum"]
    manifest["format_version"] = 1
    manifest["chunks"]["2"]["file"] = "../part-00002.parquet"
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ConfigError, match="chunk 2 names the file"):
        run_batch(model, out, n=5, chunk_size=200, progress=False)


@pytest.mark.parametrize("name", ["part-00001.parquet", MANIFEST])
def test_a_folder_in_place_of_a_job_file_is_refused_not_removed(
    model: RandomFactors, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    run_batch(model, out, n=5, chunk_size=200, progress=False)
    (out / name).unlink()
    (out / name).mkdir()
    (out / name / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match="folder"):
        run_batch(model, out, n=5, chunk_size=200, progress=False, overwrite=True)
    assert (out / name / "mine.txt").read_text() == "mine"


def test_another_tools_manifest_is_never_removed(model: RandomFactors, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text('{"format": "another-tool", "files": []}', encoding="utf-8")
    before = _listing(out)
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="is not a batch manifest"):
            run_batch(model, out, progress=False, overwrite=overwrite)
    assert _listing(out) == before
