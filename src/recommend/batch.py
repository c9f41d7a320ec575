"""The batch job: every member's menu, precomputed into files (and a SQL table) to serve.

A platform precomputes menus nightly and serves them from a table. :func:`run_batch` writes
the menus of all members (or of a given list) chunk by chunk into a directory::

    OUT/
        _manifest.json        the job (model version, n, members digest, options, chunk
                              size, format), when it was generated, and every finished
                              chunk with its row count, routes, size and SHA-256
        part-00000.parquet    the menus of members 0 .. chunk_size-1 (in job order)
        part-00001.parquet    ...

Every row is ``member_id, course_id, score, rank, reason, route, model_version,
generated_at``: ids only, nothing personal.

Never losing or corrupting output, and why each step is there:

- A chunk is written to a hidden temporary file in ``OUT``, fsynced, then renamed into
  place, and only then recorded in the manifest (itself replaced atomically). A reader of
  the manifest therefore only ever sees whole files.
- A job that stops half-way (killed, out of memory, machine restart) resumes when started
  again with the same arguments: chunks recorded in the manifest whose file still matches
  its size and checksum are kept, the rest are computed again, leftover temporary files are
  removed. ``generated_at`` is fixed when the job first starts and kept in the manifest, so
  a resumed job writes exactly the bytes an uninterrupted one would have.
- A restart with other arguments (another model, ``n``, member list, options, chunk size
  or format) refuses to mix outputs with a :class:`~recommend.errors.ConfigError`, unless
  ``overwrite=True``, which first removes the previous job's files (only files this module
  writes: parts, manifest, temporary files).
- The SQL load (optional) runs after all chunks exist, in one transaction that empties the
  table and inserts every chunk, so readers see either the previous snapshot or the new
  one. Running it again is harmless.

Speed: for a factor model the members of a chunk with a history go through the shared
top-k kernel in one call (``model.topk`` on all cores, history and compulsory pins masked),
and compulsory pins are computed vectorised over the chunk. Members without history (of a
model that does not place them by their own features) share one menu per distinct
attribute row, computed once per job: their cold-start scores (the member menu's routes)
go through the kernel with the same pins and filters. Everything else (models without
factors, ``with_reasons=True``) goes through :func:`recommend.menu.member_menu` with the
same options, so all paths produce the same menus. Rows stay numpy arrays until the Arrow
table is built column by column (ids gathered by index from Arrow arrays, no Python object
per row), and a helper thread completes and writes chunk i while the kernel ranks chunk
i + 1, so compression and IO overlap the GEMM.

``model_version``: for an artifact directory, the first 16 hex digits of the SHA-256 of its
``model.json`` (which records the checksum of every other file of the artifact, so any
change to the model changes it). For a model object, the caller's ``model_version`` or, by
default, a hash of the model type, its parameters and its training data's fingerprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.menu import (
    ROUTE_PERSONAL,
    ROUTES,
    Rows,
    cold_scorers,
    history_rows,
    matrix_rows,
    member_menu,
    menu_state,
)
from recommend.models.base import Recommender
from recommend.schema import Columns
from recommend.topk import rank_keys, topk_scores

__all__ = [
    "BATCH_COLUMNS",
    "MODEL_RESOLVERS",
    "BatchResult",
    "resolve_model",
    "run_batch",
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
_FORMAT = "recommend-batch"
_FORMAT_VERSION = 1
_TMP_PREFIX = ".tmp-"
# Members without history scored at once for their cold-start menus (bounds the dense
# (members x courses) score block to about 80 MB at 20k courses; each call has a fixed
# cost of a few milliseconds for grouping members by route).
_COLD_CHUNK = 1024
_PART = "part-{:05d}.{}"

Format = Literal["parquet", "csv"]
Exclude = Literal["seen", "completed", "none"]

#: URI scheme -> function returning ``(model, model_version)`` for a model reference such as
#: ``s3://...``. ``models:/`` and ``runs:/`` URIs are read from the MLflow registry
#: (``recommend.serving.load_registered``) unless a resolver here takes them over.
MODEL_RESOLVERS: dict[str, Callable[[str], tuple[Recommender, str]]] = {}


@dataclass(frozen=True)
class BatchResult:
    """What a batch job wrote.

    Attributes
    ----------
    path : Path
        The output directory.
    files : list of Path
        The chunk files, in member order.
    members, rows : int
        Members served and rows written (over all chunks, resumed ones included).
    routes : dict
        Members per route (``personal``, ``cold_segment``, ...).
    seconds : float
        Wall time of this run.
    resumed_chunks : int
        Chunks found finished from an earlier run and kept.
    model_version, generated_at : str
        As written in every row.
    sql_rows : int or None
        Rows loaded into the SQL table, ``None`` when no SQL target was given.
    """

    path: Path
    files: list[Path]
    members: int
    rows: int
    routes: dict[str, int]
    seconds: float
    resumed_chunks: int
    model_version: str
    generated_at: str
    sql_rows: int | None = None
    chunks: int = field(default=0)


# ============================================================================ public API


def run_batch(
    model: Recommender | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    n: int = 20,
    members: Sequence[Any] | np.ndarray | pd.Series | str | os.PathLike[str] | None = None,
    chunk_size: int = 20_000,
    format: Format = "parquet",
    sql: str | None = None,
    table: str | None = None,
    with_reasons: bool = False,
    exclude: Exclude = "seen",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    pin_compulsory: bool = True,
    max_pins: int | None = None,
    model_version: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BatchResult:
    """Write every member's menu to ``out`` (partitioned Parquet or CSV), optionally to SQL.

    Parameters
    ----------
    model
        A fitted ``Recommender``, or an artifact directory (see :func:`resolve_model`).
    out
        Output directory; created if needed. See the module docstring for its layout.
    n
        Courses per member.
    members
        Member ids to serve, in this order (duplicates dropped); a file with one id per line
        (``.txt``) or a ``member_id`` column (``.csv``/``.parquet``); ``None``: every member
        known to the model. Members unknown to the model get a cold-start menu.
    chunk_size
        Members per output file. Memory grows with it (about 2 KB per member at n=20),
        not with the number of members.
    format
        ``"parquet"`` (default) or ``"csv"``.
    sql, table
        SQLAlchemy URL (``sqlite:///menus.db``, ``postgresql://...``) and table name: after
        the files, the table is replaced by the job's rows in one transaction.
    with_reasons
        Fill ``reason`` (slower: every member then takes the per-member menu path).
    exclude, channel, max_minutes, only_published, now, pin_compulsory, max_pins
        As in :func:`recommend.menu.member_menu`.
    model_version
        Written in every row; derived from the model when ``None`` (see the module docs).
    overwrite
        Replace the output of an earlier job with other arguments instead of refusing.
    progress
        Show a progress bar (members/s and ETA) on stderr.

    Returns
    -------
    BatchResult

    Raises
    ------
    ConfigError
        An option is invalid, ``out`` holds another job's output (without ``overwrite``)
        or files this job did not write, or the model reference cannot be resolved.
    ArtifactError
        The artifact directory is missing or damaged.
    """
    start = time.perf_counter()
    if isinstance(model, Recommender):
        version = model_version or _object_version(model)
    else:
        model, resolved = resolve_model(model)
        version = model_version or resolved
    model.check_fitted()
    n = _positive_int(n, "n")
    chunk_size = _positive_int(chunk_size, "chunk_size")
    if format not in ("parquet", "csv"):
        raise ConfigError(f"format={format!r}; expected 'parquet' or 'csv'")
    if (sql is None) != (table is None):
        raise ConfigError(
            "sql and table go together: give both (--sql URL --table NAME) or neither"
        )
    ids = _member_list(model, members)
    options = {
        "exclude": exclude,
        "channel": channel,
        "max_minutes": max_minutes,
        "only_published": bool(only_published),
        "now": None if now is None else str(pd.Timestamp(now)),
        "pin_compulsory": bool(pin_compulsory),
        "max_pins": max_pins,
        "with_reasons": bool(with_reasons),
    }
    job = {
        "model_version": version,
        "n": n,
        "members": int(ids.size),
        "members_sha256": _digest(ids),
        "chunk_size": chunk_size,
        "format": format,
        "options": options,
    }
    menu_options = dict(options, now=now)
    # Validates the options once, up front, rather than in the first chunk.
    member_menu(model, ids[:0], n=n, **menu_options)

    root = Path(out)
    manifest = _open_job(root, job, overwrite)
    n_chunks = -(-ids.size // chunk_size)
    manifest["n_chunks"] = n_chunks
    done = _finished_chunks(root, manifest)
    manifest["chunks"] = {str(i): done[i] for i in sorted(done)}
    _write_json(root / MANIFEST, manifest)
    generated_at = pd.Timestamp(manifest["generated_at"])
    resumed = len(done)
    if resumed:
        logger.info("resuming %s: %d of %d chunks already written", root, resumed, n_chunks)

    writer = _ChunkWriter(model, n, menu_options, version, generated_at, format)
    bar = _progress(ids.size, progress)
    # Chunk i is completed and written in a helper thread while the kernel ranks chunk
    # i + 1, so that the serial parts (cold-start menus, Arrow table, compression, fsync)
    # overlap the GEMM. At most one chunk waits to be written: memory stays bounded.
    pending: tuple[int, int, Future[dict[str, Any]]] | None = None

    def record(i: int, members: int, future: Future[dict[str, Any]]) -> None:
        # The manifest names a chunk only once its file is complete and in place.
        entry = future.result()
        entry["members"] = members
        manifest["chunks"][str(i)] = entry
        _write_json(root / MANIFEST, manifest)
        bar.update(members)

    io = ThreadPoolExecutor(1, thread_name_prefix="recommend-batch-write")
    try:
        bar.update(sum(int(c["members"]) for c in done.values()))
        for i in range(n_chunks):
            if i in done:
                continue
            part = ids[i * chunk_size : (i + 1) * chunk_size]
            # Every member of the model, in its order: their indices need no lookup.
            known = (
                None
                if members is not None
                else np.arange(i * chunk_size, i * chunk_size + part.size)
            )
            ranked = writer.rank(part, known)
            if pending is not None:
                record(*pending)
            pending = (i, int(part.size), io.submit(writer.write, root, i, ranked))
        if pending is not None:
            record(*pending)
            pending = None
    finally:
        if pending is not None:
            wait([pending[2]])  # a write in flight finishes before its leftovers go
        io.shutdown()
        bar.close()
        _remove_temporaries(root)

    manifest["complete"] = True
    _write_json(root / MANIFEST, manifest)
    entries = [manifest["chunks"][str(i)] for i in range(n_chunks)]
    files = [root / e["file"] for e in entries]
    routes: dict[str, int] = {}
    for e in entries:
        for route, count in e["routes"].items():
            routes[route] = routes.get(route, 0) + int(count)
    rows = sum(int(e["rows"]) for e in entries)

    sql_rows = None
    if sql is not None and table is not None:
        sql_rows = _load_sql(sql, table, files, format)
        manifest["sql"] = {
            "table": table,
            "rows": sql_rows,
        }  # never the URL: it may hold a password
        _write_json(root / MANIFEST, manifest)

    took = time.perf_counter() - start
    logger.info(
        "batch done: %d members, %d rows, %d files in %s, routes %s, %.1f s (%d chunks resumed)",
        ids.size,
        rows,
        len(files),
        root,
        routes,
        took,
        resumed,
    )
    return BatchResult(
        path=root,
        files=files,
        members=int(ids.size),
        rows=rows,
        routes=routes,
        seconds=took,
        resumed_chunks=resumed,
        model_version=version,
        generated_at=manifest["generated_at"],
        sql_rows=sql_rows,
        chunks=n_chunks,
    )


def resolve_model(ref: str | os.PathLike[str]) -> tuple[Recommender, str]:
    """Load the model a reference names and its ``model_version``.

    Parameters
    ----------
    ref
        An artifact directory, or a URI whose scheme has a resolver in
        :data:`MODEL_RESOLVERS` (registry URIs such as ``models:/NAME@champion``).

    Returns
    -------
    (Recommender, str)
        The model and its version (see the module docstring).

    Raises
    ------
    ConfigError
        A URI whose scheme has no resolver.
    ArtifactError
        The directory is not a valid artifact.
    """
    text = os.fspath(ref)
    scheme, sep, _ = text.partition(":")
    if sep and scheme in MODEL_RESOLVERS:
        return MODEL_RESOLVERS[scheme](text)
    if text.startswith(("models:/", "runs:/")):
        from recommend.registry import load_registered

        return load_registered(text)
    if sep and len(scheme) > 1 and "://" in text:
        raise ConfigError(
            f"{text!r}: unknown model URI scheme {scheme!r}; pass a model artifact directory "
            "(written by `recommend train --out DIR` or recommend.save) or a registry URI "
            "(models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model)"
        )
    from recommend.artifact import MODEL_JSON, load

    root = Path(text)
    model = load(root)
    try:
        raw = (root / MODEL_JSON).read_bytes()
    except OSError as err:  # removed between load and here
        raise ArtifactError(f"{root}: cannot read {MODEL_JSON}: {err}") from err
    return model, hashlib.sha256(raw).hexdigest()[:16]


# ============================================================================ the job


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _object_version(model: Recommender) -> str:
    ds = model.dataset_
    payload = {
        "type": type(model).__name__,
        "params": model.get_params(),
        "fingerprint": ds.fingerprint() if ds is not None else None,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _member_list(model: Recommender, members: Any) -> np.ndarray:
    """The job's member ids as a 1-d array (int64 or object), duplicates dropped."""
    known = model.member_ids_.external_ids
    if members is None:
        return np.asarray(known)
    if isinstance(members, str | os.PathLike):
        members = _read_members(Path(members), integer=known.dtype.kind in "iu")
    series = pd.Series(
        members if isinstance(members, np.ndarray | pd.Series | pd.Index) else list(members)
    )
    if series.isna().any():
        raise DataError(f"members holds {int(series.isna().sum())} missing ids")
    before = len(series)
    series = series.drop_duplicates()
    if len(series) < before:
        logger.info("members: dropped %d duplicate ids", before - len(series))
    integer = series.dtype.kind in "iu"
    return series.to_numpy(dtype=np.int64 if integer else object)


def _read_members(path: Path, integer: bool) -> list[Any] | pd.Series:
    if not path.is_file():
        raise DataError(f"members file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, dtype=str)
        if C.MEMBER not in frame.columns:
            raise DataError(
                f"members file {path} has no {C.MEMBER} column; columns: {list(frame.columns)}"
            )
        values = frame[C.MEMBER]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        values = pd.Series([line.strip() for line in lines if line.strip()], dtype=object)
    if integer and values.dtype.kind not in "iu":
        # The model's ids are integers: text ids must be too, or none would match.
        try:
            return values.astype(np.int64)
        except (TypeError, ValueError):
            raise DataError(
                f"members file {path}: the model's member ids are integers but the file holds "
                "other values"
            ) from None
    return values


def _digest(ids: np.ndarray) -> str:
    h = hashlib.sha256(str(ids.dtype.kind in "iu").encode())
    for lo in range(0, ids.size, 1 << 16):
        h.update("\x1f".join(map(str, ids[lo : lo + (1 << 16)].tolist())).encode())
        h.update(b"\x1e")
    return h.hexdigest()


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="member",
        unit_scale=True,
        desc="batch",
        disable=not enabled,
        smoothing=0.1,
    )


# ============================================================================ the menus


@dataclass(frozen=True)
class _MenuRows:
    """Output rows as arrays: member position in the chunk, course index, score, rank
    (1-based), route code (into ``ROUTES``) and reason (``None``: all empty)."""

    pos: np.ndarray
    course: np.ndarray
    score: np.ndarray
    rank: np.ndarray
    route: np.ndarray
    reason: np.ndarray | None

    @classmethod
    def concat(cls, parts: list[_MenuRows]) -> _MenuRows:
        """Parts merged into member order (each part is ordered by member, then rank)."""
        if len(parts) == 1:
            return parts[0]
        pos = np.concatenate([p.pos for p in parts])
        order = np.argsort(pos, kind="stable")
        reason = None
        if any(p.reason is not None for p in parts):
            reason = np.concatenate(
                [np.full(p.pos.size, "", object) if p.reason is None else p.reason for p in parts]
            )[order]
        return cls(
            pos[order],
            np.concatenate([p.course for p in parts])[order],
            np.concatenate([p.score for p in parts])[order],
            np.concatenate([p.rank for p in parts])[order],
            np.concatenate([p.route for p in parts])[order],
            reason,
        )


@dataclass(frozen=True)
class _Ranked:
    """A chunk after the kernel: its members, the menus found so far, and the members
    (positions) whose menus come from the cold-start cache."""

    ids: np.ndarray
    idx: np.ndarray
    parts: list[_MenuRows]
    cold: np.ndarray


class _ChunkWriter:
    """Menus of a chunk of members, as output rows and files.

    A chunk goes through two stages. :meth:`rank` (the job's thread) runs the top-k kernel
    for the members with a history (and the member menu where the fast path does not
    apply). :meth:`write` (a helper thread, while the next chunk is ranked) adds the
    cold-start menus, builds the Arrow table straight from the arrays (ids gathered by
    index from Arrow arrays, no Python objects per row) and writes the file.
    """

    def __init__(
        self,
        model: Recommender,
        n: int,
        options: dict[str, Any],
        version: str,
        generated_at: pd.Timestamp,
        format: str,
    ) -> None:
        self.model = model
        self.n = n
        self.options = options
        self.format = format
        self.state = menu_state(model)
        self.filter = self.state.filter(
            options["channel"],
            options["max_minutes"],
            options["now"] if options["only_published"] else False,
        )
        # The fast path reproduces the menu without reasons and without diversity for
        # members with a history of a factor model; reasons need the per-member path.
        self.side = model.course_vectors()
        self.fast = self.side is not None and not options["with_reasons"]
        self.course_index = pd.Index(self.state.course_ext)
        self.course_ids = _arrow_ids(self.state.course_ext)
        self.routes = pa.array(ROUTES, pa.large_string())
        self.route_index = pd.Index(ROUTES)
        self.version = pa.array([version], pa.large_string())
        self.stamp = generated_at.value // 1000  # microseconds
        self._codes: np.ndarray | None = None
        # Cold-start menus by attribute code (see _cold), kept for the whole job: members
        # who share an attribute row share a menu, whichever chunk they are in.
        self._cold_menus: dict[int, _MenuRows] = {}

    # ------------------------------------------------------------------ stage 1
    def rank(self, ids: np.ndarray, idx: np.ndarray | None = None) -> _Ranked:
        """The kernel's part of the menus of members ``ids`` (in that order); ``idx``:
        their model indices when the caller knows them (-1: unknown)."""
        model = self.model
        if idx is None:
            idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
        seen = history_rows(model.history_, idx)
        has_history = seen.counts > 0
        personal = has_history if self.fast else np.zeros(ids.size, dtype=bool)
        parts = []
        if personal.any():
            pos = np.flatnonzero(personal)
            parts.append(self._personal(pos, idx[pos], seen.take(pos)))
        # Members without history of a model that does not score them from their own
        # features get a menu that depends on their attributes only: one menu per
        # distinct attribute row, copied to the members who share it.
        alike = ~has_history & (not getattr(model, "uses_features", False))
        rest = ~personal & ~alike
        if rest.any():
            pos = np.flatnonzero(rest)
            parts.append(self._menus(pos, ids[pos]))
        return _Ranked(ids, idx, parts, np.flatnonzero(alike))

    # ------------------------------------------------------------------ stage 2
    def write(self, root: Path, i: int, ranked: _Ranked) -> dict[str, Any]:
        """Complete chunk ``i``'s menus and write its file; returns its manifest entry."""
        parts = list(ranked.parts)
        if ranked.cold.size:
            parts.append(self._cold(ranked.cold, ranked.idx, ranked.ids))
        rows = _MenuRows.concat(parts) if parts else _MenuRows.concat([self._no_rows()])
        table = self._table(ranked.ids, rows)
        # Members per route, each member counted once (by their first row).
        first = np.ones(rows.pos.size, dtype=bool)
        first[1:] = rows.pos[1:] != rows.pos[:-1]
        counts = np.bincount(rows.route[first], minlength=len(ROUTES))
        routes = {
            ROUTES[r]: int(counts[r]) for r in np.argsort(-counts, kind="stable") if counts[r]
        }
        return _write_chunk(root, i, table, self.format, routes)

    def _no_rows(self) -> _MenuRows:
        empty = np.empty(0, np.int64)
        return _MenuRows(
            empty, empty, np.empty(0, np.float32), np.empty(0, np.int32), np.empty(0, np.int8), None
        )

    def _table(self, ids: np.ndarray, rows: _MenuRows) -> pa.Table:
        """The output table, built column by column from the arrays."""
        n_rows = rows.pos.size
        zeros = pa.array(np.zeros(n_rows, dtype=np.int32))
        # Repeated values as dictionary arrays (indices into the chunk's members, the
        # catalogue, the routes): Parquet writes their dictionary pages as they are instead
        # of materialising every string and hashing it again; files are written without the
        # Arrow schema, so readers get plain string/int columns either way.
        as_dict = pa.DictionaryArray.from_arrays
        if rows.reason is None:
            reason = as_dict(zeros, pa.array([""], pa.large_string()))
        else:
            reason = pa.array(rows.reason, pa.large_string())
        columns = [
            as_dict(pa.array(rows.pos.astype(np.int32, copy=False)), _arrow_ids(ids)),
            as_dict(pa.array(rows.course.astype(np.int32, copy=False)), self.course_ids),
            pa.array(rows.score.astype(np.float32, copy=False)),
            pa.array(rows.rank.astype(np.int32, copy=False)),
            reason,
            as_dict(pa.array(rows.route.astype(np.int32, copy=False)), self.routes),
            as_dict(zeros, self.version),
            pa.array(np.full(n_rows, self.stamp, np.int64), pa.timestamp("us", tz="UTC")),
        ]
        return pa.Table.from_arrays(columns, names=list(BATCH_COLUMNS))

    # ------------------------------------------------------------------ the routes
    def _menus(self, pos: np.ndarray, ids: np.ndarray) -> _MenuRows:
        """Rows of the member menus of ``ids`` (at chunk positions ``pos``)."""
        frame = member_menu(self.model, ids, n=self.n, **self.options)
        at = pd.Index(ids).get_indexer(frame[C.MEMBER])
        reason = frame[C.REASON].to_numpy(dtype=object) if self.options["with_reasons"] else None
        return _MenuRows(
            pos[at],
            self.course_index.get_indexer(frame[C.COURSE]).astype(np.int64),
            frame[C.SCORE].to_numpy(dtype=np.float32),
            frame[C.RANK].to_numpy(dtype=np.int32),
            self.route_index.get_indexer(frame[C.ROUTE]).astype(np.int8),
            reason,
        )

    def _cold(self, pos: np.ndarray, idx: np.ndarray, ids: np.ndarray) -> _MenuRows:
        """Rows of members without history: the menu of their attribute row (computed for
        the first member seen with that row, then reused)."""
        key = self._attribute_codes()
        own = idx[pos]
        inside = (own >= 0) & (own < key.size)
        codes = np.full(pos.size, -1, dtype=np.int64)  # unknown: no attributes at all
        codes[inside] = key[own[inside]]
        unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        cache = self._cold_menus
        new = np.array([c not in cache for c in unique.tolist()], dtype=bool)
        if new.any():
            reps = pos[first[new]]
            if self.options["with_reasons"]:
                got = self._menus(np.arange(reps.size), ids[reps])
            else:
                got = self._cold_menus_of(idx[reps])
            bounds = np.searchsorted(got.pos, np.arange(reps.size + 1))
            for r, code in enumerate(unique[new].tolist()):
                lo, hi = bounds[r], bounds[r + 1]
                cache[code] = _MenuRows(
                    got.pos[lo:hi],
                    got.course[lo:hi],
                    got.score[lo:hi],
                    got.rank[lo:hi],
                    got.route[lo:hi],
                    None if got.reason is None else got.reason[lo:hi],
                )
        menus = [cache[c] for c in unique.tolist()]
        lengths = np.array([m.pos.size for m in menus], dtype=np.int64)[inverse]
        # Each member's rows: their code's menu, in member order.
        starts = np.cumsum([0] + [m.pos.size for m in menus])[:-1][inverse]
        offsets = np.cumsum(lengths) - lengths
        take = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
        reason = None
        if self.options["with_reasons"]:
            reason = np.concatenate([m.reason for m in menus])[take]  # type: ignore[misc]
        return _MenuRows(
            np.repeat(pos, lengths),
            np.concatenate([m.course for m in menus])[take],
            np.concatenate([m.score for m in menus])[take],
            np.concatenate([m.rank for m in menus])[take],
            np.concatenate([m.route for m in menus])[take],
            reason,
        )

    def _cold_menus_of(self, idx: np.ndarray) -> _MenuRows:
        """Menus of members without history (model indices, -1: unknown) as the member
        menu makes them, vectorised: their cold-start scores through the kernel, with the
        pins and filters of :meth:`_personal`. Positions are ``0..len(idx) - 1``."""
        parts = []
        for lo in range(0, idx.size, _COLD_CHUNK):
            part = idx[lo : lo + _COLD_CHUNK]
            for where, scorer in cold_scorers(self.model, self.state, part):
                dense, routes = scorer(where)
                codes = self.route_index.get_indexer(routes).astype(np.int8)
                seen = history_rows(self.model.history_, part[where])
                got = self._personal(lo + where, part[where], seen, dense, codes)
                parts.append(got)
        return _MenuRows.concat(parts) if parts else _MenuRows.concat([self._no_rows()])

    def _attribute_codes(self) -> np.ndarray:
        """Per training member, a code of their attribute row (all but ``member_id``)."""
        if self._codes is None:
            ds = self.model.dataset_
            members = ds.members if ds is not None else None
            if members is None:
                self._codes = np.empty(0, dtype=np.int64)
            else:
                attrs = members.drop(columns=[C.MEMBER]).astype(str)
                hashed = pd.util.hash_pandas_object(attrs, index=False).to_numpy()
                # Code 0 onwards; -1 is kept for members the table does not describe.
                self._codes = pd.factorize(hashed)[0].astype(np.int64)
        return self._codes

    def _personal(
        self,
        pos: np.ndarray,
        idx: np.ndarray,
        seen: Rows,
        dense: np.ndarray | None = None,
        routes: np.ndarray | None = None,
    ) -> _MenuRows:
        """Menus through one kernel call: of members with a history of a factor model, or
        of any members whose ``dense`` (m, n_courses) float32 scores are given (cold-start
        scores, with each member's route code in ``routes``)."""
        model, state, filt, n = self.model, self.state, self.filter, self.n
        m, n_courses = idx.size, state.n_courses
        exclude = self.options["exclude"]
        if exclude == "seen":
            rows = seen
        elif exclude == "completed":
            rows = matrix_rows(state.completed(), idx)
        else:
            rows = None
        pin_rows, pin_cols, pin_scores, pin_counts = self._pins_of(idx, dense)
        # Pinned courses are masked in the kernel like seen ones: what it returns then
        # fills the places the pins leave, exactly as the menu's "n + pins, minus pins".
        mask_rows = [pin_rows]
        mask_cols = [pin_cols]
        if rows is not None:
            mask_rows.append(np.repeat(np.arange(m, dtype=np.int64), rows.counts))
            mask_cols.append(rows.indices.astype(np.int64))
        r, c = np.concatenate(mask_rows), np.concatenate(mask_cols)
        mask = sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=(m, n_courses))
        allow = forbid = None
        if filt.selective:
            allow = filt.allow
        elif filt.blocked is not None and filt.blocked.size:
            forbid = filt.blocked
        k = min(n, n_courses)
        if dense is None:
            top = model.topk(idx, k, exclude=mask, forbid=forbid, allow=allow)
        else:
            if forbid is not None:
                # The scores are this chunk's own: a few blocked courses are cheaper set to
                # -inf (never selected) than gathered away from every row by the kernel.
                dense[:, forbid] = -np.inf
                forbid = None
            top = topk_scores(
                lambda rows: dense[rows[0] : rows[-1] + 1],  # contiguous: a view
                np.arange(m),
                n_courses,
                k,
                exclude=mask,
                forbid=forbid,
                allow=allow,
            )

        # Each member: their pins (ranks 1..p), then the kernel's best n - p.
        slot = np.arange(top.k)[None, :]
        keep = (top.indices >= 0) & (slot < (n - pin_counts)[:, None])
        k_rows = np.broadcast_to(np.arange(m)[:, None], top.indices.shape)[keep]
        k_rank = (slot + pin_counts[:, None])[keep]
        pin_first = np.arange(pin_rows.size) - np.repeat(
            np.cumsum(pin_counts) - pin_counts, pin_counts
        )
        all_rows = np.concatenate((pin_rows, k_rows))
        all_rank = np.concatenate((pin_first, k_rank))
        courses = np.concatenate((pin_cols, top.indices[keep].astype(np.int64)))
        scores = np.concatenate((pin_scores, top.scores[keep]))
        # Ranks of a member are 0..len - 1 without gaps (pins, then the kernel's prefix):
        # each row's place in member-then-rank order is its member's start plus its rank.
        lengths = np.bincount(all_rows, minlength=m)
        order = np.empty(all_rows.size, dtype=np.int64)
        order[(np.cumsum(lengths) - lengths)[all_rows] + all_rank] = np.arange(all_rows.size)
        return _MenuRows(
            pos[all_rows[order]],
            courses[order],
            scores[order].astype(np.float32),
            (all_rank[order] + 1).astype(np.int32),
            np.full(order.size, ROUTES.index(ROUTE_PERSONAL), dtype=np.int8)
            if routes is None
            else routes[all_rows[order]],
            None,
        )

    def _pins_of(
        self, idx: np.ndarray, dense: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compulsory pins of members ``idx``, vectorised over the chunk; scored by the
        factors, or read from ``dense`` (m, n_courses) scores when given.

        Returns (row, course, score, count per member): rows ascending, within a row best
        score first and ties by course index, at most ``max_pins`` per member.
        """
        m = idx.size
        none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
        if not self.options["pin_compulsory"] or self.options["max_pins"] == 0:
            return (*none, np.zeros(m, np.int64))
        rows, cols = self._pin_candidates(idx)
        if rows.size == 0:
            return (*none, np.zeros(m, np.int64))
        if dense is not None:
            scores = dense[rows, cols].astype(np.float32)
        else:
            assert self.side is not None
            courses, bias = self.side
            # One gather per side (member rows repeat, one per candidate).
            members = np.asarray(self.model.member_vectors(idx[rows]), dtype=np.float32)
            scores = np.einsum("ij,ij->i", members, courses.take(cols, axis=0), dtype=np.float32)
            if bias is not None:
                scores = scores + bias[cols]
            scores = scores.astype(np.float32)
        # Rows ascending, then best score first, ties by course: the rank of each
        # (score, course) key, combined with the row, orders them as a three-key lexsort
        # would, in two plain sorts that take half its time.
        keys = rank_keys(scores, cols)
        ranks = np.empty(keys.size, dtype=np.int64)
        ranks[np.argsort(keys)] = np.arange(keys.size)
        order = np.argsort(rows * keys.size + ranks)
        rows, cols, scores = rows[order], cols[order], scores[order]
        counts = np.bincount(rows, minlength=m)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        limit = (
            self.n if self.options["max_pins"] is None else min(self.n, self.options["max_pins"])
        )
        keep = (np.arange(rows.size) - first) < limit
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
        return rows, cols, scores, np.bincount(rows, minlength=m).astype(np.int64)

    def _pin_candidates(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, course) of every pin candidate: branch compulsory, allowed, not completed."""
        state, filt = self.state, self.filter
        got = state.compulsory_table().rows(idx)
        rows = np.repeat(np.arange(idx.size, dtype=np.int64), got.counts)
        cols = got.indices.astype(np.int64)
        if filt.mask is not None and cols.size:
            ok = filt.mask[cols]
            rows, cols = rows[ok], cols[ok]
        if cols.size:
            done = matrix_rows(state.completed(), idx)
            if done.indices.size:
                n_courses = np.int64(state.n_courses)
                done_keys = np.repeat(np.arange(idx.size, dtype=np.int64), done.counts) * n_courses
                done_keys += done.indices.astype(np.int64)
                done_keys.sort()  # usually sorted already (rows ascending, sorted indices)
                keys = rows * n_courses + cols
                at = np.minimum(np.searchsorted(done_keys, keys), done_keys.size - 1)
                ok = done_keys[at] != keys
                rows, cols = rows[ok], cols[ok]
        return rows, cols


def _arrow_ids(ids: np.ndarray) -> pa.Array:
    """Ids as an Arrow array: int64 for integer ids, large_string for text (as pandas'
    ``str`` columns are written)."""
    if ids.dtype.kind in "iu":
        return pa.array(ids.astype(np.int64, copy=False), pa.int64())
    return pa.array(ids, pa.large_string())


# ============================================================================ files


def _open_job(root: Path, job: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The manifest to continue: the existing one of the same job, or a new one."""
    path = root / MANIFEST
    # Compare the job as its manifest stores it (JSON): a tuple of channels is a list there,
    # a numpy number a plain one, so the same arguments always match.
    job = json.loads(json.dumps(job, default=str))
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{path} is unreadable ({err}); remove {root} or pick another --out"
            ) from err
        if old.get("format") != _FORMAT:
            raise ConfigError(f"{path} is not a batch manifest; pick another --out")
        if old.get("job") == job:
            # Until every chunk is checked and written again, the job is not complete.
            return {**old, "complete": False}
        if not overwrite:
            changed = sorted(
                k
                for k in set(job) | set(old.get("job", {}))
                if job.get(k) != old.get("job", {}).get(k)
            )
            raise ConfigError(
                f"{root} holds the output of a batch job with other arguments (differs in "
                f"{', '.join(changed)}); its rows must not be mixed with this job's: pass "
                "overwrite=True (--overwrite) to replace it, or choose another output folder"
            )
        _remove_job_files(root)
    elif root.exists():
        if not root.is_dir():
            raise ConfigError(f"{root} exists and is not a directory")
        strangers = [p.name for p in root.iterdir() if not _ours(p.name)]
        if strangers:
            raise ConfigError(
                f"{root} holds files that are not batch output ({strangers[:3]}); pick an empty "
                "or new output folder"
            )
        _remove_job_files(root)
    root.mkdir(parents=True, exist_ok=True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "job": job,
        "generated_at": now.isoformat(),
        "columns": list(BATCH_COLUMNS),
        "complete": False,
        "chunks": {},
    }


def _ours(name: str) -> bool:
    return name == MANIFEST or name.startswith(_TMP_PREFIX) or name.startswith("part-")


def _remove_job_files(root: Path) -> None:
    for p in root.iterdir():
        if _ours(p.name) and p.is_file():
            p.unlink()


def _remove_temporaries(root: Path) -> None:
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(_TMP_PREFIX):
                p.unlink(missing_ok=True)


def _finished_chunks(root: Path, manifest: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Chunks of the manifest whose files are intact; stray files are removed."""
    _remove_temporaries(root)
    done: dict[int, dict[str, Any]] = {}
    for key, entry in manifest.get("chunks", {}).items():
        file = root / entry["file"]
        if (
            file.is_file()
            and file.stat().st_size == entry["bytes"]
            and _sha256(file) == entry["sha256"]
        ):
            done[int(key)] = entry
        else:
            logger.warning(
                "batch: chunk %s (%s) is damaged or missing: writing it again", key, file
            )
    listed = {e["file"] for e in done.values()}
    for p in root.iterdir():
        # Written but not recorded before the job stopped: computed again.
        if p.name.startswith("part-") and p.name not in listed:
            p.unlink()
    return done


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain values (what CSV and SQL writers expect)."""
    columns = [
        col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
        for col in (table.column(i) for i in range(table.num_columns))
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _write_chunk(
    root: Path, i: int, table: pa.Table, format: str, routes: dict[str, int]
) -> dict[str, Any]:
    name = _PART.format(i, format)
    tmp = root / f"{_TMP_PREFIX}{name}"
    try:
        if format == "parquet":
            # Scores are nearly all distinct: a dictionary for them only costs time (the
            # writer gives up on it after building it) and space; split into byte streams
            # they compress to about 70%. Statistics (min/max per page and row group) serve
            # readers that filter on a column, e.g. one member's menu, and are left out for
            # course ids and reasons: every row group spans the catalogue, so they would
            # select nothing, and they are half of the writing time.
            dictionary = [name for name in table.column_names if name != C.SCORE]
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
            frame = _decoded(table).to_pandas()
            frame.to_csv(tmp, index=False, encoding="utf-8", date_format="%Y-%m-%dT%H:%M:%S%z")
        _fsync(tmp)
        os.replace(tmp, root / name)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(root)
    file = root / name
    return {
        "file": name,
        "rows": table.num_rows,
        "routes": routes,
        "bytes": file.stat().st_size,
        "sha256": _sha256(file),
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(_TMP_PREFIX + path.name)
    tmp.write_text(json.dumps(content, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Directories cannot be fsynced everywhere (Windows).
    with contextlib.suppress(OSError):
        _fsync(path)


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ============================================================================ SQL


def _load_sql(url: str, table: str, files: list[Path], format: str) -> int:
    """Replace ``table``'s rows by the job's, in one transaction; returns rows inserted."""
    try:
        import sqlalchemy as sa
    except ImportError as err:  # pragma: no cover - sqlalchemy comes with mlflow
        raise ConfigError("writing to SQL needs sqlalchemy: pip install sqlalchemy") from err
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as err:
        raise ConfigError(f"cannot use the SQL URL given with --sql: {err}") from err
    rows = 0
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table(table):
                quoted = conn.dialect.identifier_preparer.quote(table)
                conn.execute(sa.text(f"DELETE FROM {quoted}"))
            for file in files:
                frame = pd.read_parquet(file) if format == "parquet" else _read_csv_part(file)
                frame.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
                rows += len(frame)
    finally:
        engine.dispose()
    logger.info("batch: loaded %d rows into SQL table %s", rows, table)
    return rows


def _read_csv_part(file: Path) -> pd.DataFrame:
    frame = pd.read_csv(file, keep_default_na=False, dtype={C.MEMBER: str, C.COURSE: str})
    frame["generated_at"] = pd.to_datetime(frame["generated_at"], utc=True)
    return frame
