"""The learned state of a model and its training data, as an artifact stores them.

:class:`Encoder` turns a model's learned attributes and the serving view of its training
``Dataset`` into JSON descriptors (for ``model.json``), numeric arrays (for ``arrays.npz``)
and Arrow tables (one Parquet file each); :class:`Decoder` rebuilds the values from them.
Hyper-parameters travel as plain JSON (:func:`encode_params`, :func:`decode_params`).
:mod:`recommend.artifact` describes the format and does the file work: writing, checksums,
reading ``model.json`` and finding the model class.
"""

from __future__ import annotations

import contextlib
import math
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset, Features
from recommend.data.idmap import IdMap
from recommend.data.validation import ReferenceReport
from recommend.data.weighting import Weighting
from recommend.errors import ArtifactError, one_line
from recommend.models.base import Factors, History, Recommender
from recommend.schema import COURSES, EVENT_PROGRESS, SERVING_MEMBER_COLUMNS, Columns

__all__ = [
    "MAX_TABLE_EXPANSION",
    "TABLE_SLACK",
    "Decoder",
    "Encoder",
    "NpzArrays",
    "check_npy_header",
    "decode_params",
    "encode_dataset",
    "encode_params",
    "is_plain_json",
    "learned_attributes",
    "open_npz",
    "read_npy",
    "read_parquet",
]

C = Columns

# The serving view of the training data: which columns of each table survive. Member
# attributes (birth year, gender, occupation, skills, district...) never do.
_MEMBER_COLUMNS = SERVING_MEMBER_COLUMNS
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


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def learned_attributes(model: Recommender) -> dict[str, Any]:
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


def encode_params(model: Recommender) -> tuple[dict[str, Any], list[str]]:
    """Hyper-parameters as JSON; tuples (restored on load) are listed separately."""
    out: dict[str, Any] = {}
    tuples: list[str] = []
    for key, value in model.get_params().items():
        if isinstance(value, np.generic):
            value = value.item()
        if type(value) is tuple:
            tuples.append(key)
            value = list(value)
        if not is_plain_json(value):
            raise ArtifactError(
                f"cannot save {type(model).__name__}: parameter {key}={value!r} is not a JSON "
                "value (numbers must be finite; use str, int, float, bool, None, lists and "
                "dicts with str keys)"
            )
        out[key] = value
    return out, tuples


def is_plain_json(value: object) -> bool:
    """True when ``value`` survives a JSON round trip with its exact types."""
    # Exact types: subclasses (numpy scalars, IntEnum...) would come back as their base.
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if isinstance(value, float):
        return kind is float and math.isfinite(value)
    if isinstance(value, list):
        return kind is list and all(is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return kind is dict and all(type(k) is str and is_plain_json(v) for k, v in value.items())
    return False


class Encoder:
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
        if is_plain_json(value):
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
        if hist.completed:
            # Folded-in completions, one run of course indices per member (CSR-like).
            members = np.array(sorted(hist.completed), dtype=np.int64)
            runs = [np.asarray(hist.completed[int(m)], dtype=np.int64) for m in members]
            offsets = np.zeros(len(runs) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([r.size for r in runs])
            courses = np.concatenate(runs) if runs else np.empty(0, np.int64)
            desc["completed_index"] = self.array(members, f"{path}.completed_index")
            desc["completed_offsets"] = self.array(offsets, f"{path}.completed_offsets")
            desc["completed_courses"] = self.array(courses, f"{path}.completed_courses")
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
            if not is_plain_json(value.name):
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


def encode_dataset(ds: Dataset, enc: Encoder) -> dict[str, Any]:
    """The serving view of a training dataset (see :mod:`recommend.artifact`)."""
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
    # filters need, without the member's event log. Pairs started (a ``progress`` event)
    # and never completed follow, one row each with the last progress: what a menu's
    # continue-learning entries need (see ``recommend.engine.continuing``).
    done = done.sort_values([MEMBER_IDX, COURSE_IDX, C.TIMESTAMP], kind="stable").drop_duplicates(
        [MEMBER_IDX, COURSE_IDX], keep="last"
    )
    started = ev.loc[ev[C.EVENT] == EVENT_PROGRESS, columns]
    if len(started):
        started = started.sort_values(
            [MEMBER_IDX, COURSE_IDX, C.TIMESTAMP], kind="stable"
        ).drop_duplicates([MEMBER_IDX, COURSE_IDX], keep="last")
        n_courses = np.int64(len(ds.course_ids))
        done_keys = done[MEMBER_IDX].to_numpy(np.int64) * n_courses + done[COURSE_IDX].to_numpy(
            np.int64
        )
        keys = started[MEMBER_IDX].to_numpy(np.int64) * n_courses + started[COURSE_IDX].to_numpy(
            np.int64
        )
        started = started.loc[~np.isin(keys, done_keys)]
        done = pd.concat([done, started], ignore_index=True)
    done = done.reset_index(drop=True)
    view["completed"] = enc.table(done, "completed", "dataset.completed", reserved=True)
    return view


# --------------------------------------------------------------------------------------------
# Reading files with bounded memory
# --------------------------------------------------------------------------------------------

#: A Parquet table of an artifact may take at most this many times its size on disk in
#: memory once read (the library's own tables take 3-10 times), plus :data:`TABLE_SLACK`.
MAX_TABLE_EXPANSION = 64
TABLE_SLACK = 16 << 20


def check_npy_header(fh: IO[bytes], size: int, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read a ``.npy`` header from ``fh`` and check it against the ``size`` bytes it heads.

    The array the header claims must fill the rest of the ``size`` bytes exactly, so that
    reading it allocates no more than the file holds; object arrays (pickles) are refused.

    Parameters
    ----------
    fh
        Positioned at the start of the ``.npy`` data; left after the header.
    size
        Bytes of the ``.npy`` data (header included).
    where
        The file (or archive entry), for messages.

    Returns
    -------
    (shape, dtype)
        What the header declares.

    Raises
    ------
    ArtifactError
        The header is not a ``.npy`` header, declares an object dtype, or an array of
        another size than the data holds.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError, OverflowError) as exc:
        raise ArtifactError(f"{where} is not a valid .npy array: {one_line(exc)}") from exc
    if dtype.hasobject:
        raise ArtifactError(f"{where} is not plain data: it holds Python objects (a pickle)")
    count = math.prod(int(n) for n in shape)
    claimed, held = count * dtype.itemsize, size - fh.tell()
    if claimed != held:
        raise ArtifactError(
            f"{where}: its header claims an array of shape {tuple(shape)} and dtype {dtype} "
            f"({claimed} bytes) but holds {held} bytes (a forged or damaged header)"
        )
    return tuple(int(n) for n in shape), dtype


def read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file, its header checked against its size first (see
    :func:`check_npy_header`); never unpickles.

    Raises
    ------
    ArtifactError
        The file is not a plain ``.npy`` array of the size it claims.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        check_npy_header(fh, size, str(path))
        fh.seek(0)
        try:
            return np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArtifactError(f"{path} is not a valid .npy array: {one_line(exc)}") from exc


class NpzArrays:
    """The arrays of an ``.npz`` archive, read one at a time with bounded memory.

    Only uncompressed (stored) entries are accepted, as :mod:`recommend.artifact` writes
    them: an entry's array then occupies exactly its bytes in the archive, which the header
    of each ``.npy`` is checked against before anything is allocated. A compressed entry
    could expand without bound and is refused.
    """

    def __init__(self, archive: zipfile.ZipFile, where: str, size: int) -> None:
        self.archive = archive
        self.where = where
        self.entries: dict[str, zipfile.ZipInfo] = {}
        stored = 0
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise ArtifactError(
                    f"{where}: entry {info.filename!r} is compressed; artifact arrays are "
                    "stored uncompressed (a compressed entry could expand without bound)"
                )
            if key in self.entries or not info.filename.endswith(".npy"):
                raise ArtifactError(f"{where}: unexpected or repeated entry {info.filename!r}")
            stored += info.file_size
            self.entries[key] = info
        if stored > size:
            raise ArtifactError(
                f"{where}: its entries claim {stored} bytes, more than the {size} bytes of "
                "the file (a forged archive directory)"
            )

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape entry ``key`` declares (its header checked, its data not read)."""
        info = self.entries[key]
        with self.archive.open(info) as fh:
            return check_npy_header(fh, info.file_size, f"{self.where} entry {key!r}")[0]

    def __getitem__(self, key: str) -> np.ndarray:
        info = self.entries[key]  # KeyError for a missing array
        where = f"{self.where} entry {key!r}"
        with self.archive.open(info) as fh:
            check_npy_header(fh, info.file_size, where)
        with self.archive.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)


@contextlib.contextmanager
def open_npz(path: Path) -> Iterator[NpzArrays]:
    """Open an ``.npz`` archive written by :mod:`recommend.artifact` (see :class:`NpzArrays`).

    Raises
    ------
    ArtifactError
        The file is not a zip archive, or an entry is compressed or forged.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise ArtifactError(f"{path} is not a valid .npz archive: {one_line(exc)}") from exc
    with archive:
        yield NpzArrays(archive, str(path), path.stat().st_size)


def read_parquet(path: Path, *, rows: int | None = None) -> pa.Table:
    """A Parquet table of an artifact, read with bounded memory.

    The footer's row count must match ``rows`` (when given), and the table may take at most
    :data:`MAX_TABLE_EXPANSION` times its size on disk in memory: the footer's claims are
    checked first, then each row group as it is decompressed, so a small file that would
    expand into gigabytes is stopped at the first row group past the bound.

    Raises
    ------
    ArtifactError
        The file is not Parquet, has another number of rows than expected, or expands past
        the bound. The message names the file.
    """
    limit = MAX_TABLE_EXPANSION * path.stat().st_size + TABLE_SLACK
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        if rows is not None and meta.num_rows != rows:
            raise ArtifactError(
                f"{path} holds {meta.num_rows} rows where model.json says {rows} (hand-edited?)"
            )
        claimed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        # A value takes at least a byte once read, whatever its encoding on disk.
        claimed = max(claimed, meta.num_rows * max(meta.num_columns, 1))
        if claimed > limit:
            raise ArtifactError(
                f"{path} claims {claimed} bytes once decompressed, more than {limit} "
                f"({MAX_TABLE_EXPANSION} times its size on disk): refused as a decompression bomb"
            )
        groups, used = [], 0
        for i in range(meta.num_row_groups):
            group = pf.read_row_group(i)
            used += group.nbytes
            if used > limit:
                raise ArtifactError(
                    f"{path} expands past {limit} bytes in memory ({MAX_TABLE_EXPANSION} times "
                    "its size on disk): refused as a decompression bomb"
                )
            groups.append(group)
        return pa.concat_tables(groups) if groups else pf.schema_arrow.empty_table()
    except ArtifactError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError) as exc:
        raise ArtifactError(f"{path} is not a valid Parquet table: {one_line(exc)}") from exc


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_params(model: Mapping[str, Any]) -> dict[str, Any]:
    params = model.get("params", {})
    if not isinstance(params, dict):
        raise ArtifactError(f"model.json: params must be an object, got {params!r}")
    params = dict(params)
    for key in model.get("tuple_params", []):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    return params


class Decoder:
    """Rebuilds values from descriptors; objects stored once are shared again.

    Parameters
    ----------
    root
        The artifact directory; tables are read from its files.
    verified
        Names of the files whose checksums were checked: only these are read.
    npz
        The open ``arrays.npz`` (read with ``allow_pickle=False``).
    npz_name
        Its file name, for error messages.
    """

    def __init__(self, root: Path, verified: frozenset[str], npz: Any, *, npz_name: str) -> None:
        self.root = root
        self.verified = verified
        self.npz = npz
        self.npz_name = npz_name
        self.cache: dict[tuple[str, str], Any] = {}
        #: Dimensions of sparse matrices that no stored array bounds (the columns of a CSR
        #: matrix, say), as (attribute path, size): checked once the id maps are known.
        self.free_dims: list[tuple[str, int]] = []

    def get(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self.npz[key])
        except KeyError:
            raise ArtifactError(f"{self.npz_name} in {self.root} lacks the array {key!r}") from None
        except ValueError as exc:
            # allow_pickle=False refuses object arrays: someone put pickled data in.
            raise ArtifactError(
                f"{self.npz_name} entry {key!r} is not plain data: {one_line(exc)}"
            ) from exc

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
        shape = tuple(desc["shape"])
        valid = (
            offsets.ndim == 1
            and offsets.dtype.kind in "iu"
            and len(offsets) >= 1
            and offsets[0] == 0
            and offsets[-1] == len(data)
            and bool((np.diff(offsets) >= 0).all())
            and all(type(n) is int and n >= 0 for n in shape)
            and math.prod(shape) == len(offsets) - 1
        )
        if not valid:
            raise ArtifactError(
                f"{self.npz_name} in {self.root}: the text array {desc['key']!r} does not match "
                f"its offsets or its shape {list(shape)} (hand-edited?)"
            )
        out = np.empty(len(offsets) - 1, dtype=object)
        for i in range(len(out)):
            out[i] = data[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogatepass")
        return out.reshape(desc["shape"])

    def sparse(self, desc: Mapping[str, Any]) -> Any:
        key, shape, fmt = desc["key"], tuple(desc["shape"]), desc["format"]
        if len(shape) != 2 or not all(type(n) is int and n >= 0 for n in shape):
            raise ArtifactError(f"model.json: sparse matrix {key!r} has an invalid shape {shape}")
        free = {"csr": (1,), "csc": (0,)}.get(desc["layout"], (0, 1))
        self.free_dims.extend((key, shape[axis]) for axis in free)
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
        n = desc.get("n")
        if type(n) is not int:
            raise ArtifactError(f"model.json: id map {desc.get('file')!r} has no valid size n")
        column = read_parquet(self.file(desc["file"]), rows=n).column("id")
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
        completed: dict[int, np.ndarray] = {}
        if "completed_index" in desc:
            members = self.decode(desc["completed_index"], f"{path}.completed_index")
            offsets = self.decode(desc["completed_offsets"], f"{path}.completed_offsets")
            courses = self.decode(desc["completed_courses"], f"{path}.completed_courses")
            n_courses = base.shape[1]
            ok = (
                members.ndim == offsets.ndim == courses.ndim == 1
                and members.dtype.kind == offsets.dtype.kind == courses.dtype.kind == "i"
                and offsets.size == members.size + 1
                and offsets.size > 0
                and offsets[0] == 0
                and offsets[-1] == courses.size
                and bool((np.diff(offsets) >= 0).all())
                and bool(((courses >= 0) & (courses < n_courses)).all())
                and set(members.tolist()) <= set(extra)
            )
            if not ok:
                raise ArtifactError(
                    f"{self.root}: {path}.completed does not describe folded-in completions "
                    f"of known members over {n_courses} courses (hand-edited?)"
                )
            completed = {
                int(m): courses[offsets[n] : offsets[n + 1]].astype(np.int64)
                for n, m in enumerate(members)
            }
        return History(base, extra, completed)

    def frame(self, desc: Mapping[str, Any]) -> pd.DataFrame | pd.Series:
        table = self.table(desc)
        if desc["kind"] == "series":
            return table["values"].rename(desc.get("name"))
        return table

    def table(self, desc: Mapping[str, Any]) -> pd.DataFrame:
        table = read_parquet(self.file(desc["file"]))
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
