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

from recommend import store
from recommend.artifact import MODEL_JSON, load
from recommend.checks import positive_int
from recommend.engine import (
    ROUTES,
    MemberRequest,
    MenuOptions,
    MenuRows,
    cold_scorers,
    history_rows,
    menu_rows,
    rank_chunk,
    route_codes,
    serving_state,
)
from recommend.engine.options import DEFAULT_MAX_PINS, Exclude
from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.messages import DEFAULT_LANG, Lang
from recommend.models.base import Recommender
from recommend.registry import load_registered
from recommend.schema import Columns

__all__ = [
    "BATCH_COLUMNS",
    "MODEL_RESOLVERS",
    "BatchResult",
    "member_list",
    "object_version",
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
    lang: Lang = DEFAULT_LANG,
    exclude: Exclude = "seen",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    pin_compulsory: bool = True,
    max_pins: int | None = DEFAULT_MAX_PINS,
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
    lang
        Language of the reasons: ``"zh"`` (default) or ``"en"``.
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
    model, version = _resolve(model, model_version)
    chunk_size = positive_int(chunk_size, "chunk_size")
    _check_output(format, sql, table)
    options = MenuOptions(
        n=n,
        exclude=exclude,
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        pin_compulsory=pin_compulsory,
        max_pins=max_pins,
        with_reasons=with_reasons,
        lang=lang,
    )
    serving_state(model).course_filter(options)  # the catalogue's checks, before any file
    ids = member_list(model, members)
    job = _job(
        version, options, ids, chunk_size, format, channel=channel, max_minutes=max_minutes, now=now
    )

    root = Path(out)
    manifest = _open_job(root, job, overwrite)
    n_chunks = -(-ids.size // chunk_size)
    manifest["n_chunks"] = n_chunks
    done = _finished_chunks(root, manifest)
    manifest["chunks"] = {str(i): done[i] for i in sorted(done)}
    _write_json(root / MANIFEST, manifest)
    if done:
        logger.info("resuming %s: %d of %d chunks already written", root, len(done), n_chunks)

    writer = _ChunkWriter(model, options, version, pd.Timestamp(manifest["generated_at"]), format)
    # Every member of the model, in its order: their indices need no lookup.
    in_model_order = members is None
    _write_chunks(writer, root, manifest, ids, chunk_size, done, in_model_order, progress)

    manifest["complete"] = True
    _write_json(root / MANIFEST, manifest)
    entries = [manifest["chunks"][str(i)] for i in range(n_chunks)]
    files = [root / e["file"] for e in entries]
    sql_rows = None
    if sql is not None and table is not None:
        sql_rows = _load_sql(sql, table, files, format)
        # Never the URL: it may hold a password.
        manifest["sql"] = {"table": table, "rows": sql_rows}
        _write_json(root / MANIFEST, manifest)
    result = BatchResult(
        path=root,
        files=files,
        members=int(ids.size),
        rows=sum(int(e["rows"]) for e in entries),
        routes=_route_totals(entries),
        seconds=time.perf_counter() - start,
        resumed_chunks=len(done),
        model_version=version,
        generated_at=manifest["generated_at"],
        sql_rows=sql_rows,
        chunks=n_chunks,
    )
    logger.info(
        "batch done: %d members, %d rows, %d files in %s, routes %s, %.1f s (%d chunks resumed)",
        result.members,
        result.rows,
        len(files),
        root,
        result.routes,
        result.seconds,
        result.resumed_chunks,
    )
    return result


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
        return load_registered(text)
    if sep and len(scheme) > 1 and "://" in text:
        raise ConfigError(
            f"{text!r}: unknown model URI scheme {scheme!r}; pass a model artifact directory "
            "(written by `recommend train --out DIR` or recommend.save) or a registry URI "
            "(models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model)"
        )
    root = Path(text)
    model = load(root)
    try:
        raw = (root / MODEL_JSON).read_bytes()
    except OSError as err:  # removed between load and here
        raise ArtifactError(f"{root}: cannot read {MODEL_JSON}: {err}") from err
    return model, hashlib.sha256(raw).hexdigest()[:16]


# ============================================================================ the job


def _resolve(
    model: Recommender | str | os.PathLike[str], model_version: str | None
) -> tuple[Recommender, str]:
    """The fitted model and the version its rows carry."""
    if isinstance(model, Recommender):
        version = model_version or object_version(model)
    else:
        model, resolved = resolve_model(model)
        version = model_version or resolved
    model.check_fitted()
    return model, version


def _check_output(format: str, sql: str | None, table: str | None) -> None:
    if format not in ("parquet", "csv"):
        raise ConfigError(f"format={format!r}; expected 'parquet' or 'csv'")
    if (sql is None) != (table is None):
        raise ConfigError(
            "sql and table go together: give both (--sql URL --table NAME) or neither"
        )


def _job(
    version: str,
    options: MenuOptions,
    ids: np.ndarray,
    chunk_size: int,
    format: str,
    *,
    channel: Any,
    max_minutes: Any,
    now: Any,
) -> dict[str, Any]:
    """What identifies the job in its manifest (a restart with another job refuses).

    ``channel``, ``max_minutes`` and ``now`` are recorded as given, as manifests always
    recorded them.
    """
    return {
        "model_version": version,
        "n": options.n,
        "members": int(ids.size),
        "members_sha256": _digest(ids),
        "chunk_size": chunk_size,
        "format": format,
        "options": {
            "exclude": options.exclude,
            "channel": channel,
            "max_minutes": max_minutes,
            "only_published": options.only_published,
            "now": None if now is None else str(pd.Timestamp(now)),
            "pin_compulsory": options.pin_compulsory,
            "max_pins": options.max_pins,
            "with_reasons": options.with_reasons,
            # Only reasons are text: a job without them reads the same in any language.
            **({"lang": options.lang} if options.with_reasons else {}),
        },
    }


def _write_chunks(
    writer: _ChunkWriter,
    root: Path,
    manifest: dict[str, Any],
    ids: np.ndarray,
    chunk_size: int,
    done: dict[int, dict[str, Any]],
    in_model_order: bool,
    progress: bool,
) -> None:
    """Rank and write every chunk not ``done``, recording each in the manifest.

    Chunk i is completed and written in a helper thread while the kernel ranks chunk
    i + 1, so that the serial parts (cold-start menus, Arrow table, compression, fsync)
    overlap the GEMM. At most one chunk waits to be written: memory stays bounded.
    """
    n_chunks = manifest["n_chunks"]
    bar = _progress(ids.size, progress)
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
            lo = i * chunk_size
            part = ids[lo : lo + chunk_size]
            known = np.arange(lo, lo + part.size) if in_model_order else None
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


def _route_totals(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Members per route over the job's chunks."""
    routes: dict[str, int] = {}
    for e in entries:
        for route, count in e["routes"].items():
            routes[route] = routes.get(route, 0) + int(count)
    return routes


def object_version(model: Recommender) -> str:
    """A version for a model object: a hash of its type, parameters and training data's
    fingerprint (what ``model_version`` defaults to for a model that is not an artifact)."""
    ds = model.dataset_
    payload = {
        "type": type(model).__name__,
        "params": model.get_params(),
        "fingerprint": ds.fingerprint() if ds is not None else None,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def member_list(model: Recommender, members: Any) -> np.ndarray:
    """A batch job's member ids as a 1-d array (int64 or object), duplicates dropped:
    ``members`` as :func:`run_batch` takes it (ids, a file, or ``None`` for every member)."""
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
class _Ranked:
    """A chunk after the kernel: its members, the menus found so far, and the members
    (positions) whose menus come from the cold-start cache."""

    ids: np.ndarray
    idx: np.ndarray
    parts: list[MenuRows]
    cold: np.ndarray


class _ChunkWriter:
    """Menus of a chunk of members, as output rows and files.

    A chunk goes through two stages. :meth:`rank` (the job's thread) runs the engine's
    ranking for the members with a history (the kernel on the model's factors, or the
    member menu's path where that does not apply). :meth:`write` (a helper thread, while
    the next chunk is ranked) adds the cold-start menus, builds the Arrow table straight
    from the arrays (ids gathered by index from Arrow arrays, no Python objects per row)
    and writes the file.
    """

    def __init__(
        self,
        model: Recommender,
        options: MenuOptions,
        version: str,
        generated_at: pd.Timestamp,
        format: str,
    ) -> None:
        self.model = model
        self.options = options
        self.format = format
        self.state = serving_state(model)
        self.filter = self.state.course_filter(options)
        # Members with a history of a factor model are ranked straight from the factors
        # (the kernel's GEMM over the whole chunk); reasons need the member menu's path.
        self.fast = model.course_vectors() is not None and not options.with_reasons
        self.course_ids = _arrow_ids(self.state.course_ext)
        self.routes = pa.array(ROUTES, pa.large_string())
        self.version = pa.array([version], pa.large_string())
        self.stamp = generated_at.value // 1000  # microseconds
        self._codes: np.ndarray | None = None
        # Cold-start menus by attribute code (see _cold), kept for the whole job: members
        # who share an attribute row share a menu, whichever chunk they are in.
        self._cold_menus: dict[int, MenuRows] = {}

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
            got = rank_chunk(model, self.state, self.options, self.filter, idx[pos], seen.take(pos))
            parts.append(_at(got, pos[got.pos]))
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
        rows = MenuRows.concat(parts).in_request_order()
        table = self._table(ranked.ids, rows)
        # Members per route, each member counted once (by their first row).
        first = np.ones(rows.pos.size, dtype=bool)
        first[1:] = rows.pos[1:] != rows.pos[:-1]
        counts = np.bincount(rows.route[first], minlength=len(ROUTES))
        routes = {
            ROUTES[r]: int(counts[r]) for r in np.argsort(-counts, kind="stable") if counts[r]
        }
        return _write_chunk(root, i, table, self.format, routes)

    def _table(self, ids: np.ndarray, rows: MenuRows) -> pa.Table:
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
    def _menus(self, pos: np.ndarray, ids: np.ndarray) -> MenuRows:
        """The member menus of ``ids`` (at chunk positions ``pos``), route by route."""
        request = MemberRequest.make(self.model, self.state, ids, None, "fallback")
        got = menu_rows(self.model, self.state, request, self.options, self.filter)
        return _at(got, pos[got.pos])

    def _cold(self, pos: np.ndarray, idx: np.ndarray, ids: np.ndarray) -> MenuRows:
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
            if self.options.with_reasons:
                got = self._menus(np.arange(reps.size), ids[reps])
            else:
                got = self._cold_menus_of(idx[reps])
            bounds = np.searchsorted(got.pos, np.arange(reps.size + 1))
            for r, code in enumerate(unique[new].tolist()):
                cache[code] = got.take(slice(bounds[r], bounds[r + 1]))
        menus = [cache[c] for c in unique.tolist()]
        lengths = np.array([m.pos.size for m in menus], dtype=np.int64)[inverse]
        # Each member's rows: their code's menu, in member order.
        starts = np.cumsum([0] + [m.pos.size for m in menus])[:-1][inverse]
        offsets = np.cumsum(lengths) - lengths
        take = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
        reason = None
        if self.options.with_reasons:
            reason = np.concatenate([m.reason for m in menus])[take]
        return MenuRows(
            np.repeat(pos, lengths),
            np.concatenate([m.course for m in menus])[take],
            np.concatenate([m.score for m in menus])[take],
            np.concatenate([m.rank for m in menus])[take],
            np.concatenate([m.route for m in menus])[take],
            reason,
        )

    def _cold_menus_of(self, idx: np.ndarray) -> MenuRows:
        """Menus of members without history (model indices, -1: unknown), vectorised:
        their cold-start scores through the engine's ranking. Positions are
        ``0..len(idx) - 1``."""
        parts = []
        for lo in range(0, idx.size, _COLD_CHUNK):
            part = idx[lo : lo + _COLD_CHUNK]
            for where, scorer in cold_scorers(self.model, self.state, part):
                dense, routes = scorer(where)
                codes = route_codes(routes)
                seen = history_rows(self.model.history_, part[where])
                got = rank_chunk(
                    self.model,
                    self.state,
                    self.options,
                    self.filter,
                    part[where],
                    seen,
                    dense=dense,
                )
                parts.append(
                    MenuRows(
                        lo + where[got.pos], got.course, got.score, got.rank, codes[got.pos], None
                    )
                )
        return MenuRows.concat(parts).in_request_order()

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


def _at(rows: MenuRows, pos: np.ndarray) -> MenuRows:
    """``rows`` with their member positions replaced by ``pos`` (one per row)."""
    return MenuRows(pos, rows.course, rows.score, rows.rank, rows.route, rows.reason)


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
            and store.sha256(file) == entry["sha256"]
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


def _write_json(path: Path, content: dict[str, Any]) -> None:
    """Write the job manifest atomically, in the format it has always had."""
    store.write_json(path, content, indent=1, default=str)


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
