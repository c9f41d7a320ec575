"""A batch job's output folder: the lock, the manifest, the chunk files and what may be removed.

The folder holds the job's files and nothing else of the library::

    OUT/
        .batch.lock           held (an operating-system lock) while a job runs in OUT
        _manifest.json        the job, when it was generated, every finished chunk
        part-00000.parquet    chunk 0 (``part-NNNNN.parquet`` or ``.csv``)
        ...

Only one job runs in a folder at a time: a second one is refused with a
:class:`~recommend.errors.ConfigError` while the first holds the lock (a job that dies
releases it). The job removes only files of its exact name patterns: chunk files
``part-NNNNN.<format>``, its temporary files (``.tmp-part-NNNNN.<format>`` and the
manifest's ``.tmp-_manifest.json.<12 hex digits>``) and the manifest; any other file is
left alone, and a new job refuses a folder that holds one.

The manifest is checked before anything in it is used: its own SHA-256 (over the rest of
its content) must match, every chunk entry must name the chunk's file exactly
(``part-00003.parquet`` for chunk 3 of a Parquet job, never a path), and its counts must
fit the job. A manifest that fails refuses the resume with a ``ConfigError`` naming the
problem; ``overwrite=True`` starts the job again instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recommend import csvsafe, store
from recommend.engine import ROUTES
from recommend.errors import ConfigError
from recommend.schema import Columns

__all__ = [
    "BATCH_COLUMNS",
    "LOCK",
    "MANIFEST",
    "finished_chunks",
    "is_part",
    "is_temporary",
    "job_lock",
    "open_job",
    "part_name",
    "remove_temporaries",
    "write_chunk",
    "write_manifest",
]

logger = logging.getLogger(__name__)
C = Columns

#: Columns of the batch output, in order.
BATCH_COLUMNS = (
    C.MEMBER,
    C.COURSE,
    C.SCORE,
    C.RANK,
    C.REASON,
    C.ROUTE,
    "model_version",
    "generated_at",
)

MANIFEST = "_manifest.json"
LOCK = ".batch.lock"
_FORMAT = "recommend-batch"
# 2: the manifest carries its own checksum. Version 1 manifests (without one) resume.
_FORMAT_VERSION = 2
_CHECKSUM = "checksum"
_PART = re.compile(r"part-(\d{5,})\.(parquet|csv)")
_TMP_PART = re.compile(re.escape(store.TMP_PREFIX) + _PART.pattern)
_SHA256 = re.compile(r"[0-9a-f]{64}")


# ============================================================================ names


def part_name(i: int, format: str) -> str:
    """The file name of chunk ``i`` of a job writing ``format``: ``part-00003.parquet``."""
    return f"part-{i:05d}.{format}"


def is_part(name: str, format: str | None = None, n_chunks: int | None = None) -> bool:
    """True for a chunk file name exactly as :func:`part_name` writes it (of ``format`` and
    below ``n_chunks`` when given)."""
    m = _PART.fullmatch(name)
    if m is None or part_name(int(m[1]), m[2]) != name:
        return False
    return (format is None or m[2] == format) and (n_chunks is None or int(m[1]) < n_chunks)


def is_temporary(name: str) -> bool:
    """True for a temporary file a job writes (a chunk or the manifest being written)."""
    if any(
        store.is_staged_name(name, target)
        for target in (MANIFEST, compulsory_name("parquet"), compulsory_name("csv"))
    ):
        return True
    m = _TMP_PART.fullmatch(name)
    return m is not None and is_part(name.removeprefix(store.TMP_PREFIX))


def compulsory_name(format: str) -> str:
    """The file of the members' compulsory courses still to study, ``_compulsory.parquet``
    (a leading _: readers of the folder as one data set, such as pandas, skip it)."""
    return f"_compulsory.{format}"


def _job_file(name: str) -> bool:
    """A file a batch job writes and may remove (the lock is never removed)."""
    return (
        name == MANIFEST
        or is_temporary(name)
        or is_part(name)
        or name in (compulsory_name("parquet"), compulsory_name("csv"))
    )


# ============================================================================ the lock


@contextlib.contextmanager
def job_lock(root: Path) -> Iterator[None]:
    """Hold the folder's lock for the ``with`` block (creating ``root`` if needed).

    Raises
    ------
    ConfigError
        ``root`` is not a directory, holds files of no batch job (checked before the lock
        file is created in it), or another job holds the lock.
    """
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise ConfigError(f"{root} exists and is not a directory; choose another --out")
        if not (root / MANIFEST).exists():
            _refuse_strangers(root)
        elif _foreign(root / MANIFEST):
            raise _NotOurs(
                f"{root / MANIFEST} is not a batch manifest; choose another output folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    busy = (
        f"{root} is in use by another batch job (it holds {root / LOCK}); wait until it "
        "finishes, or choose another output folder"
    )
    with store.exclusive_lock(root / LOCK, busy=busy, error=ConfigError):
        yield


def _refuse_strangers(root: Path) -> None:
    """Refuse a folder without a manifest that holds anything but the lock and temporaries."""
    strangers = sorted(
        p.name for p in root.iterdir() if not (p.name == LOCK or is_temporary(p.name))
    )
    if strangers:
        raise ConfigError(
            f"{root} holds files that are not the output of a batch job ({strangers[:3]}"
            f"{', ...' if len(strangers) > 3 else ''}; no {MANIFEST} describes them): pick "
            "an empty or new output folder"
        )


# ============================================================================ the manifest


def open_job(root: Path, job: dict[str, Any], n_chunks: int, overwrite: bool) -> dict[str, Any]:
    """The manifest to continue in ``root`` (whose lock the caller holds): the existing one of
    the same job, checked, or a new one.

    Parameters
    ----------
    root
        The output folder.
    job
        What identifies the job (compared as JSON with the manifest's).
    n_chunks
        Chunks of the job.
    overwrite
        Replace another job's output, or a manifest that fails its checks.

    Raises
    ------
    ConfigError
        The folder holds another job's output or a damaged manifest (without
        ``overwrite``), or files of no batch job and no manifest.
    """
    path = root / MANIFEST
    # Compare the job as its manifest stores it (JSON): a tuple of channels is a list there,
    # a numpy number a plain one, so the same arguments always match.
    job = json.loads(json.dumps(job, default=str))
    if path.exists() or path.is_symlink():
        try:
            old = _read_manifest(path)
            same = old["job"] == job
            if same:
                _check_chunks(path, old["chunks"], job, n_chunks)
        except _NotOurs:
            raise  # never removed, even with overwrite
        except ConfigError:
            if not overwrite:
                raise
            logger.warning("batch: %s fails its checks: starting the job again", path)
            same = False
        else:
            if not same and not overwrite:
                raise ConfigError(
                    f"{root} holds the output of a batch job with other arguments (differs "
                    f"in {', '.join(_changed(job, old['job']))}); its rows must not be mixed "
                    "with this job's: pass overwrite=True (--overwrite) to replace it, or "
                    "choose another output folder"
                )
        if same:
            # Until every chunk is checked and written again, the job is not complete.
            return {**old, "n_chunks": n_chunks, "complete": False}
        _remove_job_files(root)
    else:
        _refuse_strangers(root)
        _remove_job_files(root)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "job": job,
        "generated_at": now.isoformat(),
        "columns": list(BATCH_COLUMNS),
        "complete": False,
        "n_chunks": n_chunks,
        "chunks": {},
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write the job's manifest atomically, with its checksum."""
    content = json.loads(json.dumps(manifest, default=str))
    content.pop(_CHECKSUM, None)
    content["format_version"] = _FORMAT_VERSION
    content[_CHECKSUM] = _digest(content)
    store.write_json(root / MANIFEST, content, indent=1)


def _digest(content: dict[str, Any]) -> str:
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _damaged(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{path}: {what}; the manifest was edited or corrupted: pass overwrite=True "
        "(--overwrite) to write the job again, or choose another output folder"
    )


def _foreign(path: Path) -> bool:
    """True for a readable JSON file that is not a batch manifest (checked again, with
    everything else, under the lock)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return not isinstance(content, dict) or content.get("format") != _FORMAT


class _NotOurs(ConfigError):
    """A ``_manifest.json`` that is no batch manifest (another tool's JSON) or cannot be
    read: refused, and left alone even with ``overwrite``."""


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``, its structure and checksum checked."""
    if not path.is_file() or path.is_symlink():
        raise _damaged(path, "not a regular file")
    try:
        content = store.read_json(path, error=ConfigError)
    except OSError as err:
        raise _NotOurs(f"{path} is unreadable ({err}); choose another output folder") from err
    except RecursionError:
        raise _damaged(path, "nested too deeply") from None
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        raise _NotOurs(f"{path} is not a batch manifest; choose another output folder")
    version = content.get("format_version")
    if type(version) is not int or version < 1:
        raise _damaged(path, f"invalid format_version {version!r}")
    if version > _FORMAT_VERSION:
        raise ConfigError(
            f"{path} was written by a newer version of recommend (format {version}); "
            "upgrade, or choose another output folder"
        )
    # Format 2 has a checksum; format 1 has none (a checksum there is an edit too).
    checksum = content.pop(_CHECKSUM, None)
    expected = _digest(content) if version >= 2 else None
    if checksum != expected:
        raise _damaged(path, "its checksum does not match its content")
    if not isinstance(content.get("job"), dict):
        raise _damaged(path, "no job description")
    if not isinstance(content.get("chunks"), dict):
        raise _damaged(path, "no chunk list")
    stamp = content.get("generated_at")
    try:
        valid = isinstance(stamp, str) and pd.Timestamp(stamp).tzinfo is not None
    except (ValueError, TypeError, OverflowError):
        valid = False
    if not valid:
        raise _damaged(path, f"invalid generated_at {stamp!r}")
    return content


def _changed(job: dict[str, Any], old: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(job) | set(old) if job.get(k) != old.get(k))


def _check_chunks(path: Path, chunks: dict[str, Any], job: dict[str, Any], n_chunks: int) -> None:
    """Every chunk entry of the manifest of ``job``: its file name exactly the chunk's, its
    counts what the job's chunk holds."""
    members, size = int(job["members"]), int(job["chunk_size"])
    for key, entry in chunks.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            raise _damaged(path, f"invalid chunk number {key!r}")
        i = int(key)
        if str(i) != key or i >= n_chunks:
            raise _damaged(path, f"chunk number {key!r} is not one of 0..{n_chunks - 1}")
        if not isinstance(entry, dict):
            raise _damaged(path, f"chunk {key}: invalid entry {entry!r}")
        expected = part_name(i, job["format"])
        if entry.get("file") != expected:
            raise _damaged(
                path,
                f"chunk {key} names the file {entry.get('file')!r}, not {expected!r} (chunk "
                "files are plain names in the output folder)",
            )
        count = min(size, members - i * size)
        routes = entry.get("routes")
        checks = {
            "members": entry.get("members") == count,
            "rows": _count(entry.get("rows")) and entry["rows"] <= count * int(job["n"]),
            "bytes": _count(entry.get("bytes")),
            "sha256": isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"]),
            "routes": isinstance(routes, dict)
            and all(r in ROUTES and _count(v) for r, v in routes.items())
            and sum(routes.values()) == count,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise _damaged(path, f"chunk {key}: invalid {', '.join(bad)}")


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


# ============================================================================ the chunks


def finished_chunks(root: Path, manifest: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Chunks of the (checked) manifest whose files are intact: a regular file of the size
    and SHA-256 recorded. Temporary files and chunk files of the job that the manifest does
    not name as intact (written but not recorded before a stop, or damaged) are removed."""
    remove_temporaries(root)
    done: dict[int, dict[str, Any]] = {}
    for key, entry in manifest["chunks"].items():
        file = root / entry["file"]
        if _intact(file, entry):
            done[int(key)] = entry
        else:
            logger.warning(
                "batch: chunk %s (%s) is damaged or missing: writing it again", key, file
            )
    listed = {e["file"] for e in done.values()}
    format, n_chunks = manifest["job"]["format"], manifest["n_chunks"]
    strangers = 0
    for p in root.iterdir():
        if is_part(p.name, format, n_chunks):
            if p.name not in listed:
                _unlink(p)
        elif p.name not in (MANIFEST, LOCK):
            strangers += 1
    if strangers:
        logger.warning(
            "batch: %s holds %d file(s) of no batch job: left as they are", root, strangers
        )
    return done


def _intact(file: Path, entry: dict[str, Any]) -> bool:
    try:
        info = os.lstat(file)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_size == entry["bytes"]
        and store.sha256(file) == entry["sha256"]
    )


def remove_temporaries(root: Path) -> None:
    """Remove the temporary files a job (this one, or one that stopped) left in ``root``."""
    if root.is_dir():
        for p in root.iterdir():
            if is_temporary(p.name):
                p.unlink(missing_ok=True)


def _remove_job_files(root: Path) -> None:
    """Remove an earlier job's files (by their exact names; never the lock)."""
    for p in root.iterdir():
        if _job_file(p.name):
            _unlink(p)


def _unlink(path: Path) -> None:
    """Remove a file of the job (a link itself, not its target); a folder of that name is
    refused, not removed."""
    if path.is_dir() and not path.is_symlink():
        raise ConfigError(
            f"{path} is a folder where the batch job writes a file; move it away or choose "
            "another output folder"
        )
    path.unlink(missing_ok=True)


def decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain values (what CSV and SQL writers expect)."""
    columns = [
        col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
        for col in (table.column(i) for i in range(table.num_columns))
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def write_chunk(
    root: Path, i: int, table: pa.Table, format: str, routes: dict[str, int]
) -> dict[str, Any]:
    """Write chunk ``i``'s rows to its file atomically; returns its manifest entry (without
    ``members``)."""
    name = part_name(i, format)
    tmp = root / f"{store.TMP_PREFIX}{name}"
    try:
        if format == "parquet":
            # Scores are nearly all distinct: a dictionary for them only costs time (the
            # writer gives up on it after building it) and space; split into byte streams
            # they compress to about 70%. Statistics (min/max per page and row group) serve
            # readers that filter on a column, e.g. one member's menu, and are left out for
            # course ids and reasons: every row group spans the catalogue, so they would
            # select nothing, and they are half of the writing time.
            dictionary = [c for c in table.column_names if c != C.SCORE]
            statistics = [c for c in table.column_names if c not in (C.COURSE, C.REASON)]
            pq.write_table(
                table,
                tmp,
                compression="zstd",
                use_dictionary=dictionary,
                use_byte_stream_split=[C.SCORE],
                write_statistics=statistics,
                store_schema=False,
            )
        else:
            # Text that a spreadsheet would run as a formula is written escaped.
            frame = decoded(table).to_pandas()
            csvsafe.write_csv(
                frame, tmp, index=False, encoding="utf-8", date_format="%Y-%m-%dT%H:%M:%S%z"
            )
        store.fsync_file(tmp)
        os.replace(tmp, root / name)
    finally:
        tmp.unlink(missing_ok=True)
    store.fsync_dir(root)
    file = root / name
    return {
        "file": name,
        "rows": table.num_rows,
        "routes": routes,
        "bytes": file.stat().st_size,
        "sha256": store.sha256(file),
    }
