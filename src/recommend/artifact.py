"""Saving and loading fitted models as safe, self-describing directories.

A model artifact is a directory::

    model.json          what the model is: format and library version, model type and
                        hyper-parameters, data fingerprint, creation time, the size and
                        SHA-256 of every other file, and a description of the learned state
    arrays.npz          every numeric array: factors, biases, similarity and history
                        matrices (sparse matrices as their CSR/CSC parts), string arrays as
                        UTF-8 bytes + offsets
    member_ids.parquet  id maps (one ``id`` column, ``int64`` or ``large_string``); when
    course_ids.parquet  fold-in grew the model's maps, the training data's are stored
                        next to them as ``dataset.member_ids.parquet``
    courses.parquet     the serving view of the training data (see below)
    members.parquet
    orgs.parquet
    completed.parquet
    <attr>.parquet      tables a model keeps as learned state (e.g. segment aggregates)
    <part>/             a part saved with the model, e.g. ``search_index/`` (see below)

Nothing is pickled: arrays are read with ``allow_pickle=False`` and tables through Arrow, so
loading an artifact never executes code from it. The model class is looked up by name among
the ``Recommender`` subclasses of the installed library; the artifact only supplies data.

Learned state is collected generically: every public instance attribute ending in ``_``
(scikit-learn style) is saved according to its type; attributes with a leading underscore
are caches and are not saved. A model that keeps something of another type fails to save
with an ``ArtifactError`` naming the attribute. :mod:`recommend.artifact_codec` encodes and
decodes that state; this module writes, checks and reads the files.

The training ``Dataset`` is not stored. ``dataset_`` becomes a *serving view* with what
serving needs and nothing personal: the interaction matrix, id maps, the courses table, the
members table reduced to ``member_id`` and ``org_id`` (branch-compulsory courses are pinned
by branch), the orgs tree (``org_id``, ``parent_id``, ``kind``), one row per completed
(member, course) pair with the time of its last completion, the weighting, ``now`` and the
training data's fingerprint.

Other parts can travel with the model (a search index, say): ``save(model, path,
name=part)`` asks each part (any :class:`ArtifactPart`) to write itself into the
subdirectory ``name/`` and records what it returns (e.g. the checksum of the part's own
manifest) under ``name`` in ``model.json``. ``load`` does not read parts: it records each one
it finds as a :class:`SavedPart` in the model's serving cache, where the code that owns the
part finds it (:func:`saved_part`) when it first needs it.

Writes are atomic: everything is written and fsynced into a temporary directory next to the
target, which is then renamed into place, so a reader never sees a half-written artifact
(see :mod:`recommend.store`).

Checksums detect accidents, not attackers. Loading therefore also bounds memory by what is
on disk (array entries must be stored uncompressed, ``.npy`` headers and Parquet sizes are
checked against the files, sizes claimed in ``model.json`` against each other and against
the id maps) and turns anything malformed into an ``ArtifactError``. With a key configured
(``key=`` or ``RECOMMEND_ARTIFACT_KEY``), ``save`` also writes ``model.json.sig``, an
HMAC-SHA256 of ``model.json``, and ``load`` refuses an artifact without a matching one.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
import logging
import math
import os
import pkgutil
import re
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recommend import store
from recommend.artifact_codec import (
    Decoder,
    Encoder,
    decode_params,
    encode_dataset,
    encode_params,
    is_plain_json,
    learned_attributes,
    open_npz,
)
from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.errors import (
    ArtifactError,
    ConfigError,
    NotFittedError,
    RecommendError,
    one_line,
)
from recommend.models.base import History, Recommender, keep_across_catalogues
from recommend.version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KEY_ENV",
    "SIGNATURE",
    "ArtifactPart",
    "SavedPart",
    "artifact_info",
    "artifact_key",
    "copy_artifact",
    "load",
    "part_key",
    "save",
    "saved_part",
]

log = logging.getLogger(__name__)

#: Value of the ``format`` field of ``model.json``.
FORMAT = "recommend-model"
#: The newest artifact format this library reads and the one it writes.
FORMAT_VERSION = 1

MODEL_JSON = "model.json"
ARRAYS = "arrays.npz"
#: Environment variable holding the key that signs artifacts (see :func:`artifact_key`).
KEY_ENV = "RECOMMEND_ARTIFACT_KEY"
#: The file holding the HMAC-SHA256 of ``model.json`` in a signed artifact.
SIGNATURE = "model.json.sig"
_SIGNATURE_ALGORITHM = "hmac-sha256"
_MIN_KEY_BYTES = 16
_MAX_SIGNATURE_BYTES = 4096
# Top-level entries of model.json that describe the model itself; any other entry holding a
# JSON object describes a part saved with it, in the subdirectory of the same name.
_META_KEYS = frozenset(
    {
        "format",
        "format_version",
        "library_version",
        "created_at",
        "model",
        "data",
        "files",
        "state",
        "dataset",
    }
)
_PART_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

_ATTR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")
_NO_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip entry time: same state, same arrays.npz bytes
# What reading files that passed their checksums but do not match model.json can raise.
_MALFORMED = (
    RecommendError,
    LookupError,
    TypeError,
    ValueError,
    OSError,
    zipfile.BadZipFile,
    pa.ArrowException,
    RecursionError,
    EOFError,
    AttributeError,  # a descriptor of the wrong JSON type (a list where an object belongs)
    OverflowError,
)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@runtime_checkable
class ArtifactPart(Protocol):
    """Something saved with a model in a subdirectory of its artifact (a search index...).

    ``save(path)`` writes the part as the new directory ``path`` (checking its own files,
    ideally through a manifest of their checksums) and returns a JSON object that
    ``model.json`` records under the part's name, e.g. the ``sha256`` and ``bytes`` of that
    manifest, so that the part can be checked against the model it was saved with.
    ``recommend.search.SearchIndex`` is one.
    """

    def save(self, path: Path) -> Mapping[str, Any]:
        """Write the part as the directory ``path``; return its entry for ``model.json``."""
        ...


@dataclass(frozen=True)
class SavedPart:
    """A part found in a loaded artifact, not read yet.

    Attributes
    ----------
    name : str
        The part's name (the keyword it was saved under).
    path : Path
        Its directory in the artifact.
    entry : Mapping
        What ``model.json`` records for it (what the part's ``save`` returned), to check
        the part against when it is read.
    """

    name: str
    path: Path
    entry: Mapping[str, Any]


_PART_KEY = "artifact_part:"
# The parts of the artifact a model was loaded from stay found when ingestion adds courses.
keep_across_catalogues(_PART_KEY)


def part_key(name: str) -> str:
    """The key under which ``load`` records the part ``name`` in a model's serving cache."""
    return f"{_PART_KEY}{name}"


def saved_part(model: Recommender, name: str) -> SavedPart | None:
    """The part ``name`` of the artifact ``model`` was loaded from, or ``None``.

    Parameters
    ----------
    model
        A fitted model (``None`` is returned for one that was not loaded from an artifact,
        or whose artifact holds no such part).
    name
        The part's name, e.g. ``"search_index"``.
    """
    found = model.cache_entry(part_key(name))
    return found if isinstance(found, SavedPart) else None


def save(
    model: Recommender,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    key: str | bytes | None = None,
    **parts: ArtifactPart | None,
) -> Path:
    """Save a fitted model as an artifact directory.

    Parameters
    ----------
    model
        A fitted ``Recommender``.
    path
        The directory to create. Its parent is created if needed.
    overwrite
        Replace an existing artifact at ``path``. A directory that is not a model artifact
        is never replaced.
    key
        Sign the artifact with this key (see :func:`artifact_key`; by default the key in
        the environment variable ``RECOMMEND_ARTIFACT_KEY``, if set): ``model.json.sig``
        then holds the HMAC-SHA256 of ``model.json``, which holds the SHA-256 of every
        other file, and ``load`` with the same key accepts nothing else.
    **parts
        Parts saved with the model, each in the subdirectory of its name (see
        :class:`ArtifactPart`); ``None`` values are skipped. E.g. ``search_index=index``
        (a ``recommend.search.SearchIndex``) saves the index in ``search_index/``, and
        ``recommend.search.search`` uses it for the loaded model.

    Returns
    -------
    Path
        The artifact directory.

    Raises
    ------
    NotFittedError
        The model has not been fitted.
    ArtifactError
        ``path`` exists (and ``overwrite`` is false), a hyper-parameter is not a JSON value,
        a learned attribute has a type an artifact cannot hold (the message names it), or a
        part has an invalid name, is not an ``ArtifactPart`` or cannot be written. Nothing
        is left on disk in that case.
    """
    if not isinstance(model, Recommender):
        raise ArtifactError(f"save expects a recommend model, got {type(model).__name__}")
    if not model.is_fitted:
        raise NotFittedError(
            f"{type(model).__name__} is not fitted: call fit(dataset) before saving it"
        )
    target = Path(path)
    secret = artifact_key(key)
    store.check_replaceable(target, overwrite=overwrite, marker=MODEL_JSON, what="model artifact")
    # Encode everything before touching the disk: an unsaveable model leaves no trace.
    meta, arrays, tables = _encode_model(model)
    given = _check_parts(parts)
    try:
        with store.staged_dir(target, overwrite=overwrite) as tmp:
            files = {ARRAYS: _write_npz(tmp / ARRAYS, arrays)}
            for name, table in tables.items():
                files[name] = _write_parquet(tmp / name, table)
            meta["files"] = dict(sorted(files.items()))
            for name, part in given.items():
                meta[name] = _save_part(name, part, tmp / name)
            store.write_json(tmp / MODEL_JSON, meta, allow_nan=False)
            if secret is not None:
                _write_signature(tmp, secret)
    except ArtifactError:
        raise
    except OSError as exc:
        raise ArtifactError(
            f"could not write the model artifact {target}: {one_line(exc)}"
        ) from exc
    size = sum(f["bytes"] for f in meta["files"].values())
    log.info("saved %s to %s (%.1f MB)", meta["model"]["type"], target, size / 1e6)
    return target


def load(path: str | os.PathLike[str], *, key: str | bytes | None = None) -> Recommender:
    """Load a model saved with ``save``; it recommends exactly as the saved one did.

    Every file is checked against the size and SHA-256 recorded in ``model.json`` before it
    is read. Arrays are read with ``allow_pickle=False``: no code from the artifact runs.
    Parts saved with the model are not read: each is recorded in the model's serving cache
    as a :class:`SavedPart` (see :func:`saved_part`), for the code that uses it.

    Parameters
    ----------
    path
        The artifact directory.
    key
        The signing key (see :func:`artifact_key`; by default ``RECOMMEND_ARTIFACT_KEY``
        from the environment, if set). With a key, an artifact that is unsigned or signed
        with another key is refused. Without one, signatures are not checked: the artifact
        must then come from a trusted store.

    Returns
    -------
    Recommender
        The fitted model; ``dataset_`` is the serving view of its training data.

    Raises
    ------
    ArtifactError
        The directory or ``model.json`` is missing or unreadable, the artifact has a newer
        format than this library reads, a file is missing, a symbolic link, truncated or
        fails its checksum, a size it claims does not match the others or its files, the
        signature is missing or wrong (with a key), or the model type is unknown. The
        message says which.
    """
    root = Path(path)
    meta = _read_meta(root, artifact_key(key))
    verified = store.verify_files(root, meta["files"], listing=MODEL_JSON, required=ARRAYS)
    bad = [name for name in meta["state"] if not _ATTR_NAME.fullmatch(name)]
    if bad:
        # Only learned-state names (public, ending in "_") may be set on the model.
        raise ArtifactError(f"{root}/{MODEL_JSON} names invalid attributes {bad}")
    parts = _part_entries(root, meta)
    cls = _resolve_class(meta["model"])
    params = decode_params(meta["model"])
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{root}: cannot create {cls.__name__} from the saved parameters {params}: "
            f"{one_line(exc)}"
        ) from exc
    try:
        with open_npz(root / ARRAYS) as npz:
            decoder = Decoder(root, verified, npz, npz_name=ARRAYS)
            state = {name: decoder.decode(desc, name) for name, desc in meta["state"].items()}
            dataset = decoder.dataset(meta["dataset"]) if meta.get("dataset") else None
            largest = max((math.prod(npz.shape(key)) for key in npz.entries), default=0)
        _restore(model, state, dataset, root)
        _check_sizes(model, meta, dataset, decoder.free_dims, largest, root)
    except ArtifactError:
        raise
    except _MALFORMED as exc:
        raise ArtifactError(
            f"{root} is malformed: {type(exc).__name__}: {one_line(exc)}; model.json does not "
            "match the files it describes (was it edited by hand?)"
        ) from exc
    for name, entry in parts.items():
        model.set_cache_entry(part_key(name), SavedPart(name, root / name, entry))
    log.info("loaded %s from %s", cls.__name__, root)
    return model


def artifact_info(
    path: str | os.PathLike[str], *, verify: bool = True, key: str | bytes | None = None
) -> dict[str, Any]:
    """What an artifact holds, without loading the model.

    Parameters
    ----------
    path
        The artifact directory.
    verify
        Also check every file's size and checksum (reads the whole artifact), and the
        signature when a key is configured (``key``, or ``RECOMMEND_ARTIFACT_KEY``).
    key
        As in :func:`load`.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``library_version``, ``created_at``, ``model``
        (``type``, ``name``, ``module``, ``params``), ``data`` (``fingerprint``,
        ``members``, ``courses``, ``now``), ``files`` (name -> ``sha256``, ``bytes``),
        ``path``, and the entry of every part saved with the model under its name (e.g.
        ``search_index``), and ``signed`` (whether it holds a signature).

    Raises
    ------
    ArtifactError
        As ``load`` does.
    """
    root = Path(path)
    meta = _read_meta(root, artifact_key(key) if verify else None)
    if verify:
        store.verify_files(root, meta["files"], listing=MODEL_JSON, required=ARRAYS)
    keys = ("format", "format_version", "library_version", "created_at", "model", "data")
    info = {key: meta.get(key) for key in keys}
    info.update(_part_entries(root, meta))
    info["files"] = meta["files"]
    info["path"] = str(root)
    info["signed"] = (root / SIGNATURE).is_file()
    return info


def artifact_key(key: str | bytes | None = None) -> bytes | None:
    """The key that signs and checks artifacts, or ``None`` when none is configured.

    Parameters
    ----------
    key
        The key itself (text is taken as UTF-8). ``None`` reads the environment variable
        ``RECOMMEND_ARTIFACT_KEY``; an empty or unset variable means no key.

    Raises
    ------
    ConfigError
        The key is shorter than 16 bytes (the key itself is never shown).
    """
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        source = KEY_ENV
    else:
        source = "key"
    if key is None:
        return None
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < _MIN_KEY_BYTES:
        raise ConfigError(
            f"{source}: the artifact signing key has {len(raw)} bytes; use at least "
            f"{_MIN_KEY_BYTES} (e.g. 32 random bytes as hex)"
        )
    return raw


def copy_artifact(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, key: str | bytes | None = None
) -> Path:
    """Copy exactly the files of an artifact into the new directory ``dst``.

    Copied: ``model.json``, its signature (if any), the files ``model.json`` lists and,
    for each part saved with the model, its manifest and the files that manifest lists.
    Nothing else in ``src`` is copied (notes, keys, earlier runs...), and a symbolic link
    anywhere under ``src`` is refused rather than followed. The copy is verified like
    ``load`` verifies (checksums, and the signature when a key is configured).

    Parameters
    ----------
    src
        The artifact directory.
    dst
        The directory to create (it must not exist; its parent is created if needed).
    key
        As in :func:`load`.

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    ArtifactError
        ``src`` is not a valid artifact, holds a symbolic link, or ``dst`` exists. The
        message names the file.
    """
    root, target = Path(src), Path(dst)
    if target.exists() or target.is_symlink():
        raise ArtifactError(f"{target} already exists; copy the artifact to a new directory")
    _refuse_links(root)
    meta = _read_meta(root, None)
    names = [MODEL_JSON, *meta["files"]]
    if (root / SIGNATURE).is_file():
        names.append(SIGNATURE)
    for name, entry in _part_entries(root, meta).items():
        manifest, listing = _part_listing(root / name, entry)
        names += [f"{name}/{manifest}", *(f"{name}/{file}" for file in listing)]
    try:
        for name in names:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            _copy_file(root / name, target / name)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ArtifactError(
            f"could not copy the artifact {root} to {target}: {one_line(exc)}"
        ) from exc
    try:
        artifact_info(target, verify=True, key=key)
        for name, entry in _part_entries(target, meta).items():
            _part_listing(target / name, entry)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------------------------
# Signatures and copies
# --------------------------------------------------------------------------------------------


def _signature(secret: bytes, manifest: bytes) -> str:
    return hmac.new(secret, manifest, hashlib.sha256).hexdigest()


def _write_signature(root: Path, secret: bytes) -> None:
    manifest = (root / MODEL_JSON).read_bytes()
    content = {"algorithm": _SIGNATURE_ALGORITHM, "signature": _signature(secret, manifest)}
    store.write_json(root / SIGNATURE, content)


def _check_signature(root: Path, manifest: bytes, secret: bytes) -> None:
    """Refuse ``model.json`` unless ``model.json.sig`` holds its HMAC under ``secret``."""
    file = root / SIGNATURE
    if file.is_symlink() or not file.is_file():
        raise ArtifactError(
            f"{root} is not signed (no {SIGNATURE}) but a signing key is configured "
            f"({KEY_ENV} or key=): refusing to load an unsigned artifact"
        )
    if file.stat().st_size > _MAX_SIGNATURE_BYTES:
        raise ArtifactError(f"{file} is not a signature written by this library")
    content = store.read_json(file)
    found = content.get("signature") if isinstance(content, dict) else None
    algorithm = content.get("algorithm") if isinstance(content, dict) else None
    if algorithm != _SIGNATURE_ALGORITHM or not isinstance(found, str):
        raise ArtifactError(f"{file} is not a {_SIGNATURE_ALGORITHM} signature")
    if not hmac.compare_digest(
        found.encode("ascii", "replace"), _signature(secret, manifest).encode("ascii")
    ):
        raise ArtifactError(
            f"{root}: the signature in {SIGNATURE} does not match {MODEL_JSON} under the "
            "configured key: the artifact was modified, or signed with another key"
        )


def _refuse_links(root: Path) -> None:
    """Refuse a symbolic link anywhere under ``root`` (they are never followed)."""
    if not root.is_dir():
        raise ArtifactError(f"no model artifact at {root}: not a directory")
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                raise ArtifactError(
                    f"{path} is a symbolic link; an artifact holds only its own files and "
                    "links are never followed: remove the link or copy the file in its place"
                )


def _copy_file(src: Path, dst: Path) -> None:
    """Copy one regular file without following a link (``O_NOFOLLOW`` where available)."""
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    store.fsync_file(dst)


def _part_listing(folder: Path, entry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The manifest of a part saved with a model (the file whose checksum ``entry``
    records) and its verified listing of the part's other files."""
    expected = entry.get("sha256")
    candidates = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.is_symlink())
    manifest = next((p for p in candidates if store.sha256(p) == expected), None)
    if manifest is None:
        raise ArtifactError(
            f"{folder}: no manifest matching the checksum recorded in {MODEL_JSON} (the part "
            "was replaced or modified after the model was saved)"
        )
    content = store.read_json(manifest)
    listing = content.get("files") if isinstance(content, dict) else None
    if not isinstance(listing, dict):
        raise ArtifactError(f"{manifest} lists no files (hand-edited?)")
    store.verify_files(folder, listing, listing=manifest.name)
    return manifest.name, listing


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------


def _check_parts(parts: Mapping[str, Any]) -> dict[str, ArtifactPart]:
    """The parts to save (``None`` values dropped), after checking names and types."""
    out: dict[str, ArtifactPart] = {}
    for name, part in parts.items():
        if part is None:
            continue
        if not _PART_NAME.fullmatch(name) or name in _META_KEYS:
            raise ArtifactError(
                f"cannot save a part named {name!r}: part names are identifiers (letters, "
                f"digits, _) other than {sorted(_META_KEYS)}"
            )
        if not isinstance(part, ArtifactPart):
            raise ArtifactError(
                f"cannot save {name}={type(part).__name__}: a part needs a method "
                "save(path) that writes it as a directory and returns a dict for model.json"
            )
        out[name] = part
    return out


def _save_part(name: str, part: ArtifactPart, path: Path) -> dict[str, Any]:
    """Write one part and return its ``model.json`` entry (checked to be plain JSON)."""
    entry = part.save(path)
    if not isinstance(entry, Mapping) or not is_plain_json(dict(entry)):
        raise ArtifactError(
            f"the part {name} ({type(part).__name__}) returned {entry!r} from save(); "
            "expected a dict of JSON values to record in model.json"
        )
    return dict(entry)


def _part_entries(root: Path, meta: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts ``model.json`` records: name -> entry (what the part's ``save`` returned)."""
    parts = {
        key: value
        for key, value in meta.items()
        if key not in _META_KEYS and isinstance(value, dict)
    }
    bad = sorted(name for name in parts if not _PART_NAME.fullmatch(name))
    if bad:
        raise ArtifactError(f"{root}/{MODEL_JSON} names invalid parts {bad} (hand-edited?)")
    return parts


def _restore(
    model: Recommender, state: dict[str, Any], dataset: Dataset | None, root: Path
) -> None:
    """Put the decoded learned state on a new model (``Recommender.restore``)."""
    core = {"member_ids_": IdMap, "course_ids_": IdMap, "history_": History}
    for name, kind in core.items():
        if not isinstance(state.get(name), kind):
            raise ArtifactError(
                f"{root}/{MODEL_JSON}: the learned attribute {name} is missing or is not a "
                f"{kind.__name__} (hand-edited?)"
            )
    rest = {name: value for name, value in state.items() if name not in core}
    model.restore(
        member_ids=state["member_ids_"],
        course_ids=state["course_ids_"],
        dataset=dataset,
        history=state["history_"],
        state=rest,
    )


def _check_sizes(
    model: Recommender,
    meta: Mapping[str, Any],
    dataset: Dataset | None,
    free_dims: list[tuple[str, int]],
    largest: int,
    root: Path,
) -> None:
    """Check the sizes the artifact claims against each other before anything serves.

    The numbers of members and courses must agree between the id maps, the history, the
    training matrix, the factors and ``model.json``; a sparse matrix may not claim a
    dimension that no stored array or id map backs (its memory would be allocated at the
    first request, not at load).
    """
    n_members, n_courses = len(model.member_ids_), len(model.course_ids_)

    def fail(what: str) -> ArtifactError:
        return ArtifactError(f"{root}/{MODEL_JSON}: {what} (hand-edited or forged artifact)")

    base = model.history_.base
    if base.shape[1] != n_courses or base.shape[0] > n_members:
        raise fail(
            f"the history matrix has shape {base.shape}, expected at most {n_members} rows "
            f"(members) and exactly {n_courses} columns (courses)"
        )
    for idx, row in model.history_.extra.items():
        if not 0 <= idx < n_members or row.shape != (1, n_courses):
            raise fail(f"a folded-in history row (member index {idx}) does not fit the id maps")
    sizes = [n_members, n_courses, largest]
    if dataset is not None:
        shape = (len(dataset.member_ids), len(dataset.course_ids))
        if dataset.interactions.shape != shape:
            raise fail(
                f"the training matrix has shape {dataset.interactions.shape}, but its id maps "
                f"hold {shape[0]} members and {shape[1]} courses"
            )
        data = meta.get("data") or {}
        if (data.get("members"), data.get("courses")) != shape:
            raise fail(
                f"data claims {data.get('members')} members and {data.get('courses')} courses, "
                f"but the training data's id maps hold {shape[0]} and {shape[1]}"
            )
        sizes += shape
    bound = max(sizes)
    for key, size in free_dims:
        if size > bound:
            raise fail(
                f"the sparse matrix {key!r} claims a dimension of {size}, larger than any id map "
                f"or stored array ({bound})"
            )
    factors = model.factors()
    if factors is not None:
        members, courses = factors.members.shape[0], factors.courses.shape[0]
        bias = factors.course_bias
        if (
            members != n_members
            or courses != n_courses
            or (bias is not None and bias.shape[0] != n_courses)
        ):
            raise fail(
                f"the factors have {members} member rows and {courses} course rows, but the id "
                f"maps hold {n_members} members and {n_courses} courses"
            )


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _encode_model(
    model: Recommender,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, pa.Table]]:
    """``model.json`` content (without ``files``), npz entries and Parquet tables."""
    cls = type(model)
    # Fold-in publishes new state under the lock: snapshot a consistent set of references.
    with model.lock:
        attrs = learned_attributes(model)

    params, tuples = encode_params(model)
    enc = Encoder(cls.__name__)
    state: dict[str, Any] = {}
    for name, value in attrs.items():
        if name.startswith("_") or name == "dataset_":
            continue
        if not name.endswith("_"):
            if name not in params:
                log.warning(
                    "%s.%s is neither a hyper-parameter nor learned state (name ending in _): "
                    "not saved",
                    cls.__name__,
                    name,
                )
            continue
        state[name] = enc.encode(value, name)

    dataset = attrs.get("dataset_")
    if dataset is not None and not isinstance(dataset, Dataset):
        raise ArtifactError(
            f"cannot save {cls.__name__}.dataset_: expected a recommend.Dataset, "
            f"got {type(dataset).__name__}"
        )
    view = encode_dataset(dataset, enc) if dataset is not None else None

    model_meta: dict[str, Any] = {
        "type": cls.__name__,
        "name": cls.name,
        "module": cls.__module__,
        "params": params,
    }
    if tuples:
        model_meta["tuple_params"] = tuples
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_meta,
        "data": (
            {
                "fingerprint": dataset.fingerprint(),
                "members": dataset.n_members,
                "courses": dataset.n_courses,
                "now": dataset.now.isoformat(),
            }
            if dataset is not None
            else None
        ),
        "files": {},
        "state": state,
        "dataset": view,
    }
    return meta, enc.arrays, enc.tables


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _write_npz(file: Path, arrays: Mapping[str, np.ndarray]) -> store.FileEntry:
    # Streamed entry by entry (no in-memory copy of large factors); allow_pickle=False makes
    # numpy refuse anything that is not plain data.
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_NO_DATE)
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[key]), allow_pickle=False)
    return store.file_entry(file)


def _write_parquet(file: Path, table: pa.Table) -> store.FileEntry:
    pq.write_table(table, file, compression="zstd")
    return store.file_entry(file)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _read_meta(root: Path, secret: bytes | None) -> dict[str, Any]:
    """Read ``model.json`` (checking its signature when ``secret`` is given) and check that
    this library can read the artifact."""
    if not root.is_dir():
        raise ArtifactError(f"no model artifact at {root}: not a directory")
    file = root / MODEL_JSON
    if file.is_symlink():
        raise ArtifactError(f"{file} is a symbolic link; an artifact holds only its own files")
    if not file.is_file():
        raise ArtifactError(
            f"{root} holds no {MODEL_JSON}: not a recommend model artifact (or its write "
            "was interrupted)"
        )
    manifest = file.read_bytes()
    if secret is not None:
        _check_signature(root, manifest, secret)
    meta = store.parse_json(manifest, file)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ArtifactError(
            f"{file} does not describe a recommend model (format={found!r}, expected {FORMAT!r})"
        )
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise ArtifactError(f"{file}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{root} has artifact format version {version}, newer than version "
            f"{FORMAT_VERSION} that recommend {__version__} reads (it was written "
            f"by recommend {meta.get('library_version')}); upgrade recommend to load it"
        )
    for key, kind in (("model", dict), ("files", dict), ("state", dict)):
        if not isinstance(meta.get(key), kind):
            raise ArtifactError(f"{file} lacks a valid {key!r} entry (hand-edited?)")
    return meta


def _model_classes() -> list[type[Recommender]]:
    """Concrete ``Recommender`` subclasses currently defined."""
    out: list[type[Recommender]] = []
    stack = list(Recommender.__subclasses__())
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if not inspect.isabstract(cls):
            out.append(cls)
    return out


def _import_model_modules(only: str | None = None) -> None:
    """Import the modules of ``recommend.models`` (or just ``only``, if it is one of them).

    Only modules of the installed library are imported, never a module the artifact names
    from elsewhere. A module that fails to import (e.g. an optional dependency missing) is
    logged and skipped: it cannot hold the model being loaded.
    """
    import recommend.models as pkg

    names = [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    if only is not None:
        names = [n for n in names if n == only]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional model must not block the others
            log.warning("could not import %s while looking for model classes: %s", name, exc)


def _resolve_class(model: Mapping[str, Any]) -> type[Recommender]:
    """The installed class an artifact's ``model`` entry names."""
    type_name, module, short = model.get("type"), model.get("module"), model.get("name")
    if not isinstance(type_name, str):
        raise ArtifactError(f"model.json names no model type (model={dict(model)!r})")

    def find() -> list[type[Recommender]]:
        found = [c for c in _model_classes() if c.__name__ == type_name]
        if len(found) > 1:
            found = [c for c in found if c.__module__ == module] or found
        if not found:
            found = [c for c in _model_classes() if c.name == short]
        return found

    found = find()
    if not found:
        if isinstance(module, str):
            _import_model_modules(only=module)
            found = find()
        if not found:
            _import_model_modules()
            found = find()
    if len(found) == 1:
        return found[0]
    if not found:
        known = sorted({c.__name__ for c in _model_classes()})
        raise ArtifactError(
            f"unknown model type {type_name!r} (module {module!r}); this recommend knows "
            f"{known}. Upgrade recommend, or import the module that defines the model first"
        )
    where = sorted(f"{c.__module__}.{c.__qualname__}" for c in found)
    raise ArtifactError(f"model type {type_name!r} is ambiguous: {where}")
