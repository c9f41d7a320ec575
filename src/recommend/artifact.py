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
with an ``ArtifactError`` naming the attribute.

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
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import os
import pkgutil
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recommend import store
from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset, Features
from recommend.data.idmap import IdMap
from recommend.data.validation import ReferenceReport
from recommend.data.weighting import Weighting
from recommend.errors import ArtifactError, NotFittedError, RecommendError
from recommend.models.base import Factors, History, Recommender
from recommend.schema import COURSES, Columns
from recommend.version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArtifactPart",
    "SavedPart",
    "artifact_info",
    "load",
    "part_key",
    "save",
    "saved_part",
]

log = logging.getLogger(__name__)
C = Columns

#: Value of the ``format`` field of ``model.json``.
FORMAT = "recommend-model"
#: The newest artifact format this library reads and the one it writes.
FORMAT_VERSION = 1

MODEL_JSON = "model.json"
ARRAYS = "arrays.npz"
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

# The serving view of the training data: which columns of each table survive. Member
# attributes (birth year, gender, occupation, skills, district...) never do.
_MEMBER_COLUMNS = (C.MEMBER, C.ORG)
_ORG_COLUMNS = (C.ORG, C.PARENT, C.ORG_KIND)
_COURSE_COLUMNS = tuple(COURSES.columns)
_COMPLETE = "complete"
_VIEW_TABLES = ("courses", "members", "orgs", "completed")

# One-hot member features with these prefixes describe a person (see
# ``Dataset.member_features``); a per-member matrix of them must not leave the training job.
_PERSONAL_FEATURE_PREFIXES = (
    "age_band=",
    f"{C.GENDER}=",
    f"{C.BIRTH_YEAR}=",
    f"{C.OCCUPATION}=",
    f"{C.DISTRICT}=",
    f"{C.SKILLS}=",
    f"{C.MOBILE}=",
    f"{C.JOINED_AT}=",
)

# Dataclasses whose fields are saved one by one; only these are rebuilt on load.
_DATACLASSES: dict[str, type] = {"Factors": Factors, "Features": Features}

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


def part_key(name: str) -> str:
    """The key under which ``load`` records the part ``name`` in a model's serving cache."""
    return f"artifact_part:{name}"


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
    except ArtifactError:
        raise
    except OSError as exc:
        raise ArtifactError(f"could not write the model artifact {target}: {exc}") from exc
    size = sum(f["bytes"] for f in meta["files"].values())
    log.info("saved %s to %s (%.1f MB)", meta["model"]["type"], target, size / 1e6)
    return target


def load(path: str | os.PathLike[str]) -> Recommender:
    """Load a model saved with ``save``; it recommends exactly as the saved one did.

    Every file is checked against the size and SHA-256 recorded in ``model.json`` before it
    is read. Arrays are read with ``allow_pickle=False``: no code from the artifact runs.
    Parts saved with the model are not read: each is recorded in the model's serving cache
    as a :class:`SavedPart` (see :func:`saved_part`), for the code that uses it.

    Parameters
    ----------
    path
        The artifact directory.

    Returns
    -------
    Recommender
        The fitted model; ``dataset_`` is the serving view of its training data.

    Raises
    ------
    ArtifactError
        The directory or ``model.json`` is missing or unreadable, the artifact has a newer
        format than this library reads, a file is missing, truncated or fails its checksum,
        or the model type is unknown. The message says which.
    """
    root = Path(path)
    meta = _read_meta(root)
    verified = store.verify_files(root, meta["files"], listing=MODEL_JSON, required=ARRAYS)
    bad = [name for name in meta["state"] if not _ATTR_NAME.fullmatch(name)]
    if bad:
        # Only learned-state names (public, ending in "_") may be set on the model.
        raise ArtifactError(f"{root}/{MODEL_JSON} names invalid attributes {bad}")
    parts = _part_entries(root, meta)
    cls = _resolve_class(meta["model"])
    params = _decode_params(meta["model"])
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{root}: cannot create {cls.__name__} from the saved parameters {params}: {exc}"
        ) from exc
    try:
        with np.load(root / ARRAYS, allow_pickle=False) as npz:
            decoder = _Decoder(root, verified, npz)
            state = {name: decoder.decode(desc, name) for name, desc in meta["state"].items()}
            dataset = decoder.dataset(meta["dataset"]) if meta.get("dataset") else None
    except ArtifactError:
        raise
    except _MALFORMED as exc:
        raise ArtifactError(
            f"{root} is malformed: {type(exc).__name__}: {exc}; model.json does not match "
            "the files it describes (was it edited by hand?)"
        ) from exc
    _restore(model, state, dataset, root)
    for name, entry in parts.items():
        model.set_cache_entry(part_key(name), SavedPart(name, root / name, entry))
    log.info("loaded %s from %s", cls.__name__, root)
    return model


def artifact_info(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """What an artifact holds, without loading the model.

    Parameters
    ----------
    path
        The artifact directory.
    verify
        Also check every file's size and checksum (reads the whole artifact).

    Returns
    -------
    dict
        ``format``, ``format_version``, ``library_version``, ``created_at``, ``model``
        (``type``, ``name``, ``module``, ``params``), ``data`` (``fingerprint``,
        ``members``, ``courses``, ``now``), ``files`` (name -> ``sha256``, ``bytes``),
        ``path``, and the entry of every part saved with the model under its name (e.g.
        ``search_index``).

    Raises
    ------
    ArtifactError
        As ``load`` does.
    """
    root = Path(path)
    meta = _read_meta(root)
    if verify:
        store.verify_files(root, meta["files"], listing=MODEL_JSON, required=ARRAYS)
    keys = ("format", "format_version", "library_version", "created_at", "model", "data")
    info = {key: meta.get(key) for key in keys}
    info.update(_part_entries(root, meta))
    info["files"] = meta["files"]
    info["path"] = str(root)
    return info


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
    if not isinstance(entry, Mapping) or not _is_plain_json(dict(entry)):
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
        attrs = _learned_attributes(model)

    params, tuples = _encode_params(model)
    enc = _Encoder(cls.__name__)
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
    view = _encode_dataset(dataset, enc) if dataset is not None else None

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


def _learned_attributes(model: Recommender) -> dict[str, Any]:
    """Instance attributes plus public settable properties ending in ``_`` (models may keep
    state behind a property, e.g. member vectors with an update overlay)."""
    attrs = dict(vars(model))
    for name in dir(type(model)):
        prop = getattr(type(model), name, None)
        if (
            isinstance(prop, property)
            and prop.fset is not None
            and name.endswith("_")
            and not name.startswith("_")
        ):
            attrs[name] = getattr(model, name)
    return attrs


def _encode_params(model: Recommender) -> tuple[dict[str, Any], list[str]]:
    """Hyper-parameters as JSON; tuples (restored on load) are listed separately."""
    out: dict[str, Any] = {}
    tuples: list[str] = []
    for key, value in model.get_params().items():
        if isinstance(value, np.generic):
            value = value.item()
        if type(value) is tuple:
            tuples.append(key)
            value = list(value)
        if not _is_plain_json(value):
            raise ArtifactError(
                f"cannot save {type(model).__name__}: parameter {key}={value!r} is not a JSON "
                "value (numbers must be finite; use str, int, float, bool, None, lists and "
                "dicts with str keys)"
            )
        out[key] = value
    return out, tuples


def _is_plain_json(value: object) -> bool:
    """True when ``value`` survives a JSON round trip with its exact types."""
    # Exact types: subclasses (numpy scalars, IntEnum...) would come back as their base.
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if isinstance(value, float):
        return kind is float and math.isfinite(value)
    if isinstance(value, list):
        return kind is list and all(_is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return kind is dict and all(type(k) is str and _is_plain_json(v) for k, v in value.items())
    return False


class _Encoder:
    """Turns learned state into JSON descriptors, npz entries and Parquet tables.

    Objects shared between attributes (the training matrix is both ``history_.base`` and
    ``dataset_.interactions``; the id maps are the dataset's) are stored once and shared
    again after loading.
    """

    def __init__(self, model_type: str) -> None:
        self.model_type = model_type
        self.arrays: dict[str, np.ndarray] = {}
        self.tables: dict[str, pa.Table] = {}
        self._shared: dict[int, tuple[object, dict[str, Any]]] = {}
        self._idmaps: list[tuple[IdMap, dict[str, Any]]] = []
        self._reserved = {f"{name}.parquet" for name in _VIEW_TABLES}

    def fail(self, path: str, value: object, why: str = "") -> ArtifactError:
        kind = type(value)
        return ArtifactError(
            f"cannot save {self.model_type}.{path}: {why or 'values of type'} "
            f"{kind.__module__}.{kind.__qualname__}"
            f"{'' if why else ' cannot be stored in an artifact'}; artifacts hold numpy "
            "arrays, scipy sparse matrices, IdMap, History, Features, Factors, Weighting, "
            "pandas tables and JSON values. Keep caches in private attributes (leading _) "
            "or convert the value to an array"
        )

    # ------------------------------------------------------------------ naming
    def file_name(self, stem: str, *, reserved: bool = False) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).strip("._") or "table"
        name = f"{stem}.parquet"
        n = 1
        while name in self.tables or (name in self._reserved and not reserved):
            n += 1
            name = f"{stem}-{n}.parquet"
        return name

    def array_key(self, path: str) -> str:
        key, n = path, 1
        while any(k == key or k.startswith(key + ".") for k in self.arrays):
            n += 1
            key = f"{path}-{n}"
        return key

    # ------------------------------------------------------------------ dispatch
    def encode(self, value: object, path: str) -> dict[str, Any]:
        """Descriptor of ``value`` (found at attribute path ``path``)."""
        shared = self._shared.get(id(value))
        if shared is not None and shared[0] is value:
            return shared[1]
        if _is_plain_json(value):
            return {"kind": "json", "value": value}
        if type(value) is float:
            return {"kind": "float", "value": repr(value)}  # nan, inf, -inf
        if isinstance(value, np.generic):
            return self.array(np.asarray(value), path, scalar=True)
        if isinstance(value, np.ndarray):
            desc = self.array(value, path)
        elif sp.issparse(value):
            desc = self.sparse(value, path)
        elif isinstance(value, IdMap):
            desc = self.idmap(value, path)
        elif isinstance(value, History):
            desc = self.history(value, path)
        elif type(value) in _DATACLASSES.values():
            desc = self.dataclass(value, path)
        elif isinstance(value, Weighting):
            return {"kind": "weighting", "params": value.get_params()}
        elif isinstance(value, pd.Timestamp):
            return {"kind": "timestamp", "value": value.isoformat()}
        elif isinstance(value, pd.DataFrame | pd.Series):
            desc = self.frame(value, path)
        elif type(value) is dict:  # not subclasses: a defaultdict would come back plain
            return self.mapping(value, path)
        elif isinstance(value, list | tuple) and type(value) in (list, tuple):
            items = [self.encode(v, f"{path}.{i}") for i, v in enumerate(value)]
            return {"kind": type(value).__name__, "items": items}
        else:
            raise self.fail(path, value)
        self._shared[id(value)] = (value, desc)
        return desc

    def mapping(self, value: dict[Any, Any], path: str) -> dict[str, Any]:
        keys = list(value)
        if not all(type(k) in (str, int) for k in keys):
            bad = next(k for k in keys if type(k) not in (str, int))
            raise self.fail(path, bad, "dict keys must be str or int, not")
        values = [self.encode(value[k], f"{path}.{i}") for i, k in enumerate(keys)]
        return {"kind": "dict", "keys": keys, "values": values}

    # ------------------------------------------------------------------ arrays
    def array(self, arr: np.ndarray, path: str, *, scalar: bool = False) -> dict[str, Any]:
        if arr.dtype.hasobject:
            return self.strings(arr, path)
        key = self.array_key(path)
        self.arrays[key] = arr
        return {"kind": "scalar" if scalar else "array", "key": key}

    def strings(self, arr: np.ndarray, path: str) -> dict[str, Any]:
        """An object array of ``str``: UTF-8 bytes + offsets (numpy's own string dtypes
        would drop trailing NUL characters)."""
        flat = arr.ravel().tolist()
        if not all(type(v) is str for v in flat):
            bad = next(v for v in flat if type(v) is not str)
            raise self.fail(path, bad, "object arrays may hold only str, not")
        encoded = [v.encode("utf-8", "surrogatepass") for v in flat]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        key = self.array_key(path)
        self.arrays[f"{key}.utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.arrays[f"{key}.offsets"] = offsets
        return {"kind": "strings", "key": key, "shape": list(arr.shape)}

    def sparse(self, mat: Any, path: str) -> dict[str, Any]:
        fmt = mat.format
        key = self.array_key(path)
        if fmt in ("csr", "csc"):
            self.arrays[f"{key}.data"] = mat.data
            self.arrays[f"{key}.indices"] = mat.indices
            self.arrays[f"{key}.indptr"] = mat.indptr
            layout = fmt
        else:
            coo = mat.tocoo()
            self.arrays[f"{key}.data"] = coo.data
            self.arrays[f"{key}.row"] = coo.row
            self.arrays[f"{key}.col"] = coo.col
            layout = "coo"
        return {
            "kind": "sparse",
            "key": key,
            "format": fmt,
            "layout": layout,
            "shape": [int(n) for n in mat.shape],
            "sparray": isinstance(mat, sp.sparray),
        }

    # ------------------------------------------------------------------ library types
    def idmap(self, ids: IdMap, path: str) -> dict[str, Any]:
        for other, desc in self._idmaps:
            if other is ids or other == ids:
                return desc
        values = ids.external_ids
        kind = pa.int64() if ids.is_integer else pa.large_string()
        table = pa.table({"id": pa.array(values, type=kind)})
        name = self.file_name(_stem(path))
        self.tables[name] = table
        desc = {"kind": "idmap", "file": name, "n": len(ids)}
        self._idmaps.append((ids, desc))
        return desc

    def history(self, hist: History, path: str) -> dict[str, Any]:
        desc: dict[str, Any] = {"kind": "history", "base": self.encode(hist.base, f"{path}.base")}
        if hist.extra:
            index = np.array(sorted(hist.extra), dtype=np.int64)
            rows = sp.vstack([hist.extra[int(i)] for i in index], format="csr")
            desc["extra_index"] = self.array(index, f"{path}.extra_index")
            desc["extra_rows"] = self.sparse(rows, f"{path}.extra_rows")
        return desc

    def dataclass(self, value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, Features):
            names = [str(n) for n in np.asarray(value.names).tolist()]
            personal = [n for n in names if n.startswith(_PERSONAL_FEATURE_PREFIXES)]
            if personal:
                raise ArtifactError(
                    f"cannot save {self.model_type}.{path}: it is a per-member matrix of "
                    f"personal attributes (e.g. {personal[:3]}), which artifacts never hold. "
                    "Keep member representations (features @ embeddings) as learned state "
                    "instead, or keep the features in a private attribute"
                )
        fields = {
            name: self.encode(getattr(value, name), f"{path}.{name}")
            for name in value.__dataclass_fields__
        }
        return {"kind": "dataclass", "type": type(value).__name__, "fields": fields}

    def frame(self, value: pd.DataFrame | pd.Series, path: str) -> dict[str, Any]:
        desc: dict[str, Any] = {"kind": "frame"}
        frame = value
        if isinstance(value, pd.Series):
            if not _is_plain_json(value.name):
                raise self.fail(path, value.name, "a Series name must be a JSON value, not")
            desc = {"kind": "series", "name": value.name}
            frame = value.to_frame(name="values")
        desc.update(self.table(frame, _stem(path), path))
        return desc

    def table(
        self, frame: pd.DataFrame, stem: str, path: str, *, reserved: bool = False
    ) -> dict[str, Any]:
        """Store a DataFrame as Parquet; object columns are restored as Python objects."""
        bad = [c for c in frame.columns if type(c) is not str]
        if bad:
            raise self.fail(path, bad[0], "column names must be str, not")
        try:
            table = pa.Table.from_pandas(frame, preserve_index=None)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            column = next((c for c in frame.columns if not _arrow_ok(frame[c])), "(unknown column)")
            raise ArtifactError(
                f"cannot save {self.model_type}.{path}: column {column!r} cannot be stored "
                f"as Parquet ({exc}); use numbers, text, timestamps or lists of text"
            ) from exc
        name = self.file_name(stem, reserved=reserved)
        self.tables[name] = table
        objects = [c for c in frame.columns if frame[c].dtype == object]
        return {"file": name, "object_columns": objects}


def _arrow_ok(column: pd.Series) -> bool:
    try:
        pa.array(column)
    except (pa.ArrowException, TypeError, ValueError):
        return False
    return True


def _stem(path: str) -> str:
    """File stem for an attribute path: ``member_ids_`` -> ``member_ids``."""
    return ".".join(part.rstrip("_") or part for part in path.split("."))


def _encode_dataset(ds: Dataset, enc: _Encoder) -> dict[str, Any]:
    """The serving view of a training dataset (see the module docstring)."""
    view: dict[str, Any] = {
        "interactions": enc.encode(ds.interactions, "dataset.interactions"),
        "member_ids": enc.idmap(ds.member_ids, "dataset.member_ids"),
        "course_ids": enc.idmap(ds.course_ids, "dataset.course_ids"),
        "weighting": ds.weighting.get_params(),
        "now": ds.now.isoformat(),
        "fingerprint": ds.fingerprint(),
    }

    def keep(frame: pd.DataFrame | None, columns: tuple[str, ...], name: str) -> Any:
        if frame is None:
            return None
        kept = frame[[c for c in columns if c in frame.columns]]
        return enc.table(kept, name, f"dataset.{name}", reserved=True)

    view["courses"] = keep(ds.courses, _COURSE_COLUMNS, "courses")
    view["members"] = keep(ds.members, _MEMBER_COLUMNS, "members")
    view["orgs"] = keep(ds.orgs, _ORG_COLUMNS, "orgs")

    ev = ds.events
    columns = [C.MEMBER, C.COURSE, C.EVENT, C.TIMESTAMP, MEMBER_IDX, COURSE_IDX]
    done = ev.loc[ev[C.EVENT] == _COMPLETE, columns]
    # One row per completed pair, with its last completion: what "already completed"
    # filters need, without the member's event log.
    done = (
        done.sort_values([MEMBER_IDX, COURSE_IDX, C.TIMESTAMP], kind="stable")
        .drop_duplicates([MEMBER_IDX, COURSE_IDX], keep="last")
        .reset_index(drop=True)
    )
    view["completed"] = enc.table(done, "completed", "dataset.completed", reserved=True)
    return view


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


def _read_meta(root: Path) -> dict[str, Any]:
    """Read ``model.json`` and check that this library can read the artifact."""
    if not root.is_dir():
        raise ArtifactError(f"no model artifact at {root}: not a directory")
    file = root / MODEL_JSON
    if not file.is_file():
        raise ArtifactError(
            f"{root} holds no {MODEL_JSON}: not a recommend model artifact (or its write "
            "was interrupted)"
        )
    meta = store.read_json(file)
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


def _decode_params(model: Mapping[str, Any]) -> dict[str, Any]:
    params = model.get("params", {})
    if not isinstance(params, dict):
        raise ArtifactError(f"model.json: params must be an object, got {params!r}")
    params = dict(params)
    for key in model.get("tuple_params", []):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    return params


class _Decoder:
    """Rebuilds values from descriptors; objects stored once are shared again."""

    def __init__(self, root: Path, verified: frozenset[str], npz: Any) -> None:
        self.root = root
        self.verified = verified
        self.npz = npz
        self.cache: dict[tuple[str, str], Any] = {}

    def get(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self.npz[key])
        except KeyError:
            raise ArtifactError(f"{ARRAYS} in {self.root} lacks the array {key!r}") from None
        except ValueError as exc:
            # allow_pickle=False refuses object arrays: someone put pickled data in.
            raise ArtifactError(f"{ARRAYS} entry {key!r} is not plain data: {exc}") from exc

    def file(self, name: str) -> Path:
        if name not in self.verified:
            raise ArtifactError(f"model.json refers to {name!r}, which it does not checksum")
        return self.root / name

    def decode(self, desc: Mapping[str, Any], path: str) -> Any:
        kind = desc.get("kind")
        if kind == "json":
            return desc["value"]
        if kind == "float":
            return float(desc["value"])
        if kind == "scalar":
            return self.get(desc["key"])[()]
        if kind == "array":
            return self.cached("array", desc["key"], lambda: self.get(desc["key"]))
        if kind == "strings":
            return self.cached("strings", desc["key"], lambda: self.strings(desc))
        if kind == "sparse":
            return self.cached("sparse", desc["key"], lambda: self.sparse(desc))
        if kind == "idmap":
            return self.cached("idmap", desc["file"], lambda: self.idmap(desc))
        if kind == "history":
            return self.history(desc, path)
        if kind == "dataclass":
            cls = _DATACLASSES.get(desc["type"])
            if cls is None:
                raise ArtifactError(f"{path}: unknown saved type {desc['type']!r}")
            fields = {k: self.decode(v, f"{path}.{k}") for k, v in desc["fields"].items()}
            return cls(**fields)
        if kind == "weighting":
            return Weighting.from_params(desc["params"])
        if kind == "timestamp":
            return pd.Timestamp(desc["value"])
        if kind in ("frame", "series"):
            return self.cached(kind, desc["file"], lambda: self.frame(desc))
        if kind == "dict":
            keys = desc["keys"]
            values = [self.decode(v, f"{path}.{i}") for i, v in enumerate(desc["values"])]
            return dict(zip(keys, values, strict=True))
        if kind in ("list", "tuple"):
            items = [self.decode(v, f"{path}.{i}") for i, v in enumerate(desc["items"])]
            return items if kind == "list" else tuple(items)
        raise ArtifactError(f"{path}: unknown kind of saved value {kind!r} in model.json")

    def cached(self, kind: str, key: str, build: Any) -> Any:
        if (kind, key) not in self.cache:
            self.cache[kind, key] = build()
        return self.cache[kind, key]

    def strings(self, desc: Mapping[str, Any]) -> np.ndarray:
        data = self.get(f"{desc['key']}.utf8").tobytes()
        offsets = self.get(f"{desc['key']}.offsets")
        out = np.empty(len(offsets) - 1, dtype=object)
        for i in range(len(out)):
            out[i] = data[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogatepass")
        return out.reshape(desc["shape"])

    def sparse(self, desc: Mapping[str, Any]) -> Any:
        key, shape, fmt = desc["key"], tuple(desc["shape"]), desc["format"]
        data = self.get(f"{key}.data")
        if desc["layout"] in ("csr", "csc"):
            indices, indptr = self.get(f"{key}.indices"), self.get(f"{key}.indptr")
            matrix_cls = {
                ("csr", False): sp.csr_matrix,
                ("csr", True): sp.csr_array,
                ("csc", False): sp.csc_matrix,
                ("csc", True): sp.csc_array,
            }[desc["layout"], bool(desc["sparray"])]
            mat = matrix_cls((data, indices, indptr), shape=shape)
            # scipy may narrow the index dtype; keep exactly what was saved.
            mat.indices, mat.indptr = indices, indptr
            # Out-of-range indices would make scipy's C loops read out of bounds.
            mat.check_format(full_check=True)
            return mat
        row, col = self.get(f"{key}.row"), self.get(f"{key}.col")
        coo_cls = sp.coo_array if desc["sparray"] else sp.coo_matrix
        return coo_cls((data, (row, col)), shape=shape).asformat(fmt)

    def idmap(self, desc: Mapping[str, Any]) -> IdMap:
        column = pq.read_table(self.file(desc["file"])).column("id")
        if pa.types.is_integer(column.type):
            ids = column.to_numpy().astype(np.int64, copy=False)
        else:
            ids = np.empty(len(column), dtype=object)
            ids[:] = column.to_pylist()
        return IdMap(ids)

    def history(self, desc: Mapping[str, Any], path: str) -> History:
        base = self.decode(desc["base"], f"{path}.base")
        extra: dict[int, Any] = {}
        if "extra_index" in desc:
            index = self.decode(desc["extra_index"], f"{path}.extra_index")
            rows = self.decode(desc["extra_rows"], f"{path}.extra_rows")
            extra = {int(i): rows[n : n + 1] for n, i in enumerate(index)}
        return History(base, extra)

    def frame(self, desc: Mapping[str, Any]) -> pd.DataFrame | pd.Series:
        table = self.table(desc)
        if desc["kind"] == "series":
            return table["values"].rename(desc.get("name"))
        return table

    def table(self, desc: Mapping[str, Any]) -> pd.DataFrame:
        table = pq.read_table(self.file(desc["file"]))
        frame = table.to_pandas()
        for column in desc.get("object_columns", []):
            # Arrow gives strings and lists back as pandas str dtype and numpy arrays; the
            # library's tables hold Python str (None when missing) and lists.
            frame[column] = pd.Series(table.column(column).to_pylist(), dtype=object).set_axis(
                frame.index
            )
        return frame

    def dataset(self, view: Mapping[str, Any]) -> Dataset:
        """Rebuild the serving view of the training data as a ``Dataset``."""

        def table(name: str) -> pd.DataFrame | None:
            return self.table(view[name]) if view.get(name) else None

        completed = table("completed")
        if completed is None:
            raise ArtifactError(f"{self.root}: the dataset view lacks its completed table")
        for column in (MEMBER_IDX, COURSE_IDX):
            completed[column] = completed[column].astype(np.int32)
        fingerprint = view["fingerprint"]
        return Dataset(
            interactions=self.decode(view["interactions"], "dataset.interactions"),
            member_ids=self.decode(view["member_ids"], "dataset.member_ids"),
            course_ids=self.decode(view["course_ids"], "dataset.course_ids"),
            events=completed,
            courses=table("courses"),
            members=table("members"),
            orgs=table("orgs"),
            weighting=Weighting.from_params(view["weighting"]),
            now=pd.Timestamp(view["now"]),
            report=ReferenceReport(events_in=len(completed), events_out=len(completed)),
            _meta={"fingerprint": fingerprint, "serving_view": True},
        )
