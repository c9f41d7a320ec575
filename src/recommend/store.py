"""Atomic, checksummed file I/O shared by every writer of the library.

Model artifacts, search indexes, batch jobs and the simulated platform write files the same
way: into a temporary file or directory next to the target, flushed to disk, then renamed
into place, so that a reader sees the old content or the new one, never a half-written
file. A directory's files are described by a *listing*, ``{name: {"sha256": ..., "bytes":
...}}``, against which they are checked before anything reads them.

A writer that must be the only one in a directory for a while (the batch job in its output
folder) holds an exclusive lock on a file in it (:func:`exclusive_lock`).

This module is a leaf: it imports only the standard library, ``filelock`` and
:mod:`recommend.errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import filelock

from recommend.errors import ArtifactError, RecommendError

__all__ = [
    "TMP_PREFIX",
    "FileEntry",
    "check_replaceable",
    "exclusive_lock",
    "file_entry",
    "fsync_dir",
    "fsync_file",
    "is_safe_name",
    "is_staged_name",
    "make_staging_dir",
    "parse_json",
    "publish_dir",
    "publish_file",
    "read_json",
    "sha256",
    "staged_dir",
    "staged_file",
    "verify_files",
    "write_json",
]

#: Name prefix of the temporary files this module writes next to their target.
TMP_PREFIX = ".tmp-"

# The random suffix of a temporary file written by staged_file.
_STAGED_SUFFIX = re.compile(r"\.[0-9a-f]{12}")

# A listed file lives directly in its directory: no separators, no "..", no hidden files.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

PathLike = str | os.PathLike[str]
ErrorClass = type[RecommendError]


class FileEntry(TypedDict):
    """A file's entry in a listing: its SHA-256 (hex) and its size in bytes."""

    sha256: str
    bytes: int


# --------------------------------------------------------------------------------------------
# Flushing and hashing
# --------------------------------------------------------------------------------------------


def fsync_file(path: PathLike) -> None:
    """Flush a written file's content to disk.

    Parameters
    ----------
    path
        A regular file.

    Raises
    ------
    OSError
        The file cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: PathLike) -> None:
    """Flush a directory's entries (files created or renamed in it) to disk.

    Some platforms and file systems cannot open or fsync a directory (Windows); there the
    call does nothing, as the files themselves are flushed by :func:`fsync_file`.

    Parameters
    ----------
    path
        A directory.
    """
    with contextlib.suppress(OSError):
        fsync_file(path)


def sha256(path: PathLike) -> str:
    """The SHA-256 of a file's content, as 64 lower-case hex digits (read in blocks)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_entry(path: PathLike) -> FileEntry:
    """Flush a finished file to disk and describe it for a listing.

    Returns
    -------
    FileEntry
        ``{"sha256": ..., "bytes": ...}`` of the file.
    """
    fsync_file(path)
    return {"sha256": sha256(path), "bytes": Path(path).stat().st_size}


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def publish_file(src: PathLike, dst: PathLike) -> None:
    """Move a finished file into place atomically and record the rename on disk.

    ``src`` must be on the same file system as ``dst`` (e.g. in the same directory or in a
    staging directory next to it): readers of ``dst`` see the old file or the new one.
    """
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


@contextlib.contextmanager
def staged_file(path: PathLike, *, prefix: str = TMP_PREFIX) -> Iterator[Path]:
    """Write a file atomically: a temporary path to write to, published on success.

    The temporary file is in the same directory as ``path`` and named ``prefix + name +
    "." + random``; when the ``with`` block ends normally it is flushed, renamed over
    ``path`` and the directory flushed. When the block raises, it is removed and ``path``
    is left as it was.

    Parameters
    ----------
    path
        The file to write (its directory must exist).
    prefix
        Name prefix of the temporary file, so that a writer can recognise and remove what
        an interrupted process left behind.

    Yields
    ------
    Path
        Where to write the content (it does not exist yet).
    """
    target = Path(path)
    # Named as is_staged_name recognises it.
    tmp = target.with_name(f"{prefix}{target.name}.{uuid.uuid4().hex[:12]}")
    try:
        yield tmp
        fsync_file(tmp)
        publish_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def is_staged_name(name: str, target: str, *, prefix: str = TMP_PREFIX) -> bool:
    """True for the name of a temporary file :func:`staged_file` writes for ``target`` (a
    file name, with the same ``prefix``), e.g. ``.tmp-model.json.0123456789ab``.

    A writer that cleans up after an interrupted run removes exactly these, never a file
    that merely starts with the prefix.
    """
    head = f"{prefix}{target}"
    return name.startswith(head) and _STAGED_SUFFIX.fullmatch(name[len(head) :]) is not None


def write_json(
    path: PathLike,
    content: Any,
    *,
    indent: int = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    allow_nan: bool = True,
) -> None:
    """Write ``content`` as UTF-8 JSON (non-ASCII text kept as is), atomically.

    Parameters
    ----------
    path
        The file to write; replaced atomically if it exists (see :func:`staged_file`).
    content
        A JSON value.
    indent, sort_keys, default, allow_nan
        As in :func:`json.dumps`; the text ends with a newline.

    Raises
    ------
    TypeError, ValueError
        ``content`` is not JSON (nothing is written).
    OSError
        The file cannot be written.
    """
    text = json.dumps(
        content,
        indent=indent,
        sort_keys=sort_keys,
        default=default,
        allow_nan=allow_nan,
        ensure_ascii=False,
    )
    with staged_file(path) as tmp, open(tmp, "x", encoding="utf-8") as fh:
        fh.write(text + "\n")


def read_json(path: PathLike, *, error: ErrorClass = ArtifactError) -> Any:
    """The JSON content of a file this library wrote.

    Parameters
    ----------
    path
        The file.
    error
        The exception class raised for content that is not JSON.

    Raises
    ------
    error
        The file is not UTF-8 JSON (truncated or corrupted) or is nested too deeply to
        parse; the message names it.
    OSError
        The file cannot be read.
    """
    file = Path(path)
    return parse_json(file.read_bytes(), file, error=error)


def parse_json(data: bytes, source: PathLike, *, error: ErrorClass = ArtifactError) -> Any:
    """The JSON value in ``data``, the content of the file ``source`` (named in messages).

    Raises
    ------
    error
        ``data`` is not UTF-8 JSON (truncated or corrupted) or is nested too deeply to
        parse.
    """
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{source} is not valid JSON ({exc}): truncated or corrupted") from exc
    except RecursionError:
        raise error(f"{source} is nested too deeply to be a file this library wrote") from None


# --------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def exclusive_lock(
    path: PathLike, *, busy: str, error: ErrorClass = ArtifactError
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block, or refuse at once.

    The lock is an operating-system lock on the file (``flock`` where available, through
    the ``filelock`` library), held by this open file: another process, or another thread
    of this one, cannot take it until the block ends, and a process that dies releases it.
    The file is created if needed and left in place afterwards (removing it would let two
    writers lock two different files of the same name).

    Parameters
    ----------
    path
        The lock file (its directory must exist).
    busy
        The message of the error raised when another holder has the lock.
    error
        The exception class raised.

    Raises
    ------
    error
        The lock is held by someone else (``busy``), or the lock file cannot be created or
        opened (the message names it).
    """
    lock = filelock.FileLock(os.fspath(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise error(busy) from None
    except OSError as exc:
        raise error(f"cannot create or open the lock file {path}: {exc}") from exc
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------------------------


def make_staging_dir(target: PathLike) -> Path:
    """A new, empty temporary directory next to ``target`` to build it in.

    Named ``.<target name>.<random>.tmp`` in ``target``'s parent (created if needed), so
    that :func:`publish_dir` can rename it into place; readable by others like an ordinary
    directory.
    """
    dest = Path(target)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    return tmp


def publish_dir(
    tmp: PathLike, target: PathLike, *, overwrite: bool = False, error: ErrorClass = ArtifactError
) -> None:
    """Rename a finished staging directory into place.

    With ``overwrite``, an existing ``target`` is moved aside first and removed after the
    new directory is in place (two renames: readers see the old directory or the new one,
    for a moment none, never a mix); if the second rename fails, the old one is put back.

    Parameters
    ----------
    tmp
        The finished directory, from :func:`make_staging_dir`. Its files should already be
        flushed (:func:`file_entry`, :func:`fsync_file`).
    target
        Where it goes.
    overwrite
        Replace an existing ``target``.
    error
        The exception class raised when ``target`` appeared while ``tmp`` was written.

    Raises
    ------
    error
        ``target`` exists and ``overwrite`` is false.
    OSError
        A rename failed.
    """
    tmp, target = Path(tmp), Path(target)
    fsync_dir(tmp)
    if overwrite and target.exists():
        aside = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
        os.rename(target, aside)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if target.exists():
                raise error(
                    f"{target} appeared while it was being written; "
                    "pass overwrite=True (--overwrite) to replace it"
                ) from exc
            raise
    fsync_dir(target.parent)


def check_replaceable(
    target: PathLike,
    *,
    overwrite: bool,
    marker: str,
    what: str,
    error: ErrorClass = ArtifactError,
) -> None:
    """Refuse to write a directory over ``target`` unless it may be replaced.

    Parameters
    ----------
    target
        Where the directory will go.
    overwrite
        Whether the caller asked to replace an existing directory.
    marker
        A file that identifies a directory of the kind written (e.g. ``model.json``): a
        non-empty directory without it is never replaced.
    what
        What the directory is, for messages (e.g. ``"model artifact"``).
    error
        The exception class raised.

    Raises
    ------
    error
        ``target`` exists and is not a directory, exists and ``overwrite`` is false, or is
        a non-empty directory without ``marker``.
    """
    dest = Path(target)
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise error(f"{dest} exists and is not a directory; choose another path")
    if not overwrite:
        raise error(f"{dest} already exists; pass overwrite=True (--overwrite) to replace it")
    if any(dest.iterdir()) and not (dest / marker).is_file():
        raise error(f"refusing to replace {dest}: it is not a {what} (no {marker})")


@contextlib.contextmanager
def staged_dir(
    target: PathLike, *, overwrite: bool = False, error: ErrorClass = ArtifactError
) -> Iterator[Path]:
    """Build a directory atomically: a staging directory, published on success.

    When the ``with`` block ends normally the staging directory is renamed into place
    (:func:`publish_dir`); whatever happens, nothing of it is left behind.

    Parameters
    ----------
    target, overwrite, error
        As in :func:`publish_dir`.

    Yields
    ------
    Path
        The empty staging directory to write the files into.
    """
    tmp = make_staging_dir(target)
    try:
        yield tmp
        publish_dir(tmp, target, overwrite=overwrite, error=error)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------


def is_safe_name(name: object) -> bool:
    """True for a plain file name a listing may hold: letters, digits, ``_``, ``.`` and
    ``-``, not starting with ``.``, ``_`` or ``-`` (so no path separators and no ``..``)."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def verify_files(
    root: PathLike,
    files: Mapping[str, Any],
    *,
    listing: str,
    required: str | None = None,
    error: ErrorClass = ArtifactError,
) -> frozenset[str]:
    """Check every file of a listing before it is read: name, type, size and checksum.

    Parameters
    ----------
    root
        The directory holding the files.
    files
        The listing, ``{name: {"sha256": hex, "bytes": int}}``.
    listing
        Name of the file in ``root`` the listing comes from (e.g. ``model.json``); named in
        messages, and never itself listed.
    required
        A file the listing must hold.
    error
        The exception class raised.

    Returns
    -------
    frozenset of str
        The names of the verified files.

    Raises
    ------
    error
        The listing lacks ``required``, names a file unsafely (e.g. ``../x``), has an entry
        that is not ``{"sha256", "bytes"}``, or a file is missing, a symbolic link, not a
        regular file, truncated, of another size, or fails its checksum. The message names
        the file.
    """
    root = Path(root)
    if required is not None and required not in files:
        raise error(f"{root}/{listing} lists no {required}")
    for name, entry in files.items():
        if not is_safe_name(name) or name == listing:
            raise error(f"{root}/{listing} lists an invalid file name {name!r}")
        valid = isinstance(entry, dict) and type(entry.get("bytes")) is int
        if not valid or not isinstance(entry.get("sha256"), str):
            raise error(f"{root}/{listing}: invalid entry for {name}: {entry!r}")
        _verify_file(root, name, entry, listing, error)
    return frozenset(files)


def _verify_file(
    root: Path, name: str, entry: Mapping[str, Any], listing: str, error: ErrorClass
) -> None:
    file = root / name
    if file.is_symlink():
        raise error(
            f"{name} in {root} is a symbolic link (listed in {listing}); files of this "
            "library are never links: replace it with the file itself"
        )
    if not file.is_file():
        if file.exists():
            raise error(f"{name} in {root} is not a regular file (listed in {listing})")
        raise error(f"{name} is missing from {root} (listed in {listing})")
    size, expected = file.stat().st_size, entry["bytes"]
    if size < expected:
        raise error(
            f"{name} in {root} is truncated: {size} of {expected} bytes (an interrupted "
            "copy or download?)"
        )
    if size != expected:
        raise error(
            f"{name} in {root} has {size} bytes, expected {expected}: the file was "
            "changed after it was written"
        )
    if sha256(file) != entry["sha256"]:
        raise error(
            f"{name} in {root} fails its checksum (sha256 differs from {listing}): "
            "the file was modified or corrupted after it was written"
        )
