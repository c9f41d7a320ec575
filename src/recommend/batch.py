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
and compulsory pins are computed vectorised over the chunk. Everything the fast path does
not cover (members without history, models without factors, ``with_reasons=True``) goes
through :func:`recommend.menu.member_menu` with the same options, so both produce the same
menus.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.models.base import Recommender
from recommend.schema import Columns

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
    model._check_fitted()
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
    from recommend.menu import member_menu

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

    writer = _ChunkWriter(model, n, menu_options, version, generated_at)
    bar = _progress(ids.size, progress)
    try:
        bar.update(sum(int(c["members"]) for c in done.values()))
        for i in range(n_chunks):
            if i in done:
                continue
            part = ids[i * chunk_size : (i + 1) * chunk_size]
            frame = writer.menus(part)
            entry = _write_chunk(root, i, frame, format)
            entry["members"] = int(part.size)
            manifest["chunks"][str(i)] = entry
            _write_json(root / MANIFEST, manifest)
            bar.update(part.size)
    finally:
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
        from recommend.serving import load_registered

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


class _ChunkWriter:
    """Menus of a chunk of members as the output frame."""

    def __init__(
        self,
        model: Recommender,
        n: int,
        options: dict[str, Any],
        version: str,
        generated_at: pd.Timestamp,
    ) -> None:
        from recommend.menu import _state

        self.model = model
        self.n = n
        self.options = options
        self.version = version
        self.generated_at = generated_at
        self.state = _state(model)
        self.filter = self.state.filter(
            options["channel"],
            options["max_minutes"],
            options["now"] if options["only_published"] else False,
        )
        # The fast path reproduces the menu without reasons and without diversity for
        # members with a history of a factor model; reasons need the per-member path.
        self.fast = model.factors() is not None and not options["with_reasons"]
        self._pins: _BranchPins | None = None
        self._codes: np.ndarray | None = None

    def menus(self, ids: np.ndarray) -> pd.DataFrame:
        """The output rows of members ``ids`` (in that order)."""
        from recommend.menu import _history_rows, member_menu

        model = self.model
        idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
        seen = _history_rows(model.history_, idx)
        has_history = seen.counts > 0
        personal = has_history if self.fast else np.zeros(ids.size, dtype=bool)
        parts = []
        if personal.any():
            pos = np.flatnonzero(personal)
            parts.append(self._personal(pos, idx[pos], seen.take(pos), ids))
        # Members without history of a model that does not score them from their own
        # features get a menu that depends on their attributes only: one menu per
        # distinct attribute row, copied to the members who share it.
        alike = ~has_history & (not getattr(model, "uses_features", False))
        if alike.any():
            parts.append(self._cold(np.flatnonzero(alike), idx, ids))
        rest = ~personal & ~alike
        if rest.any():
            pos = np.flatnonzero(rest)
            slow = member_menu(model, ids[pos], n=self.n, **self.options)
            where = pd.Index(ids).get_indexer(slow[C.MEMBER])
            parts.append((where, slow))
        if len(parts) == 1:
            frame = parts[0][1]
        else:
            where = np.concatenate([p[0] for p in parts])
            frame = pd.concat([p[1] for p in parts], ignore_index=True)
            # Both parts are ordered by member then rank: a stable sort by position merges.
            frame = frame.take(np.argsort(where, kind="stable")).reset_index(drop=True)
        frame["model_version"] = self.version
        frame["generated_at"] = self.generated_at
        return frame

    def _cold(
        self, pos: np.ndarray, idx: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Menus of members without history, one per distinct attribute row: (positions,
        frame)."""
        from recommend.menu import member_menu

        key = self._attribute_codes()
        own = idx[pos]
        inside = (own >= 0) & (own < key.size)
        codes = np.full(pos.size, -1, dtype=np.int64)  # unknown: no attributes at all
        codes[inside] = key[own[inside]]
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        reps = ids[pos[first]]
        menus = member_menu(self.model, reps, n=self.n, **self.options)
        rep_of_row = pd.Index(reps).get_indexer(menus[C.MEMBER])
        counts = np.bincount(rep_of_row, minlength=reps.size)
        starts = np.cumsum(counts) - counts
        lengths = counts[inverse]
        offsets = np.cumsum(lengths) - lengths
        rows = np.repeat(starts[inverse] - offsets, lengths) + np.arange(lengths.sum())
        frame = menus.take(rows).reset_index(drop=True)
        frame[C.MEMBER] = np.repeat(ids[pos], lengths)
        return np.repeat(pos, lengths), frame

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
        self, pos: np.ndarray, idx: np.ndarray, seen: Any, ids: np.ndarray
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Menus of members with a history, through one kernel call: (positions, frame)."""
        from recommend.menu import ROUTE_PERSONAL, _matrix_rows

        model, state, filt, n = self.model, self.state, self.filter, self.n
        m, n_courses = idx.size, state.n_courses
        exclude = self.options["exclude"]
        if exclude == "seen":
            rows = seen
        elif exclude == "completed":
            rows = _matrix_rows(state.completed(), idx)
        else:
            rows = None
        pin_rows, pin_cols, pin_scores, pin_counts = self._pins_of(idx)
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
        top = model.topk(idx, min(n, n_courses), exclude=mask, forbid=forbid, allow=allow)

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
        order = np.lexsort((all_rank, all_rows))
        all_rows, all_rank = all_rows[order], all_rank[order]
        frame = pd.DataFrame(
            {
                C.MEMBER: ids[pos[all_rows]],
                C.COURSE: state.course_ext[courses[order]],
                C.SCORE: scores[order].astype(np.float32),
                C.RANK: (all_rank + 1).astype(np.int32),
                C.REASON: np.full(all_rows.size, "", dtype=object),
                C.ROUTE: np.full(all_rows.size, ROUTE_PERSONAL, dtype=object),
            }
        )
        return pos[all_rows], frame

    def _pins_of(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compulsory pins of members ``idx`` (with a history), vectorised over the chunk.

        Returns (row, course, score, count per member): rows ascending, within a row best
        score first and ties by course index, at most ``max_pins`` per member.
        """
        m = idx.size
        none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
        if not self.options["pin_compulsory"] or self.options["max_pins"] == 0:
            return (*none, np.zeros(m, np.int64))
        if self._pins is None:
            self._pins = _BranchPins(self.state)
        rows, cols = self._pins.candidates(idx, self.filter)
        if rows.size == 0:
            return (*none, np.zeros(m, np.int64))
        f = self.model.factors()
        assert f is not None
        scores = np.einsum("ij,ij->i", f.members[idx[rows]], f.courses[cols], dtype=np.float32)
        if f.course_bias is not None:
            scores = scores + f.course_bias[cols]
        scores = scores.astype(np.float32)
        order = np.lexsort((cols, -scores, rows))
        rows, cols, scores = rows[order], cols[order], scores[order]
        counts = np.bincount(rows, minlength=m)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        limit = (
            self.n if self.options["max_pins"] is None else min(self.n, self.options["max_pins"])
        )
        keep = (np.arange(rows.size) - first) < limit
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
        return rows, cols, scores, np.bincount(rows, minlength=m).astype(np.int64)


class _BranchPins:
    """The branch -> compulsory courses map as CSR arrays, and members' branches as codes."""

    def __init__(self, state: Any) -> None:
        self.state = state
        branch = state.branch_pins()
        names = sorted(branch)
        self.indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([branch[k].size for k in names], out=self.indptr[1:])
        self.indices = (
            np.concatenate([branch[k] for k in names]) if names else np.empty(0, np.int64)
        ).astype(np.int64)
        code = {k: i for i, k in enumerate(names)}
        orgs = state.member_orgs()
        self.member_code = np.array([code.get(o, -1) for o in orgs.tolist()], dtype=np.int64)

    def candidates(self, idx: np.ndarray, filt: Any) -> tuple[np.ndarray, np.ndarray]:
        """(row, course) of every pin candidate: branch compulsory, allowed, not completed."""
        from recommend.menu import _gather, _matrix_rows

        codes = np.full(idx.size, -1, dtype=np.int64)
        inside = (idx >= 0) & (idx < self.member_code.size)
        codes[inside] = self.member_code[idx[inside]]
        got = _gather(self.indptr, self.indices, self.indices, codes, self.indptr.size - 1)
        rows = np.repeat(np.arange(idx.size, dtype=np.int64), got.counts)
        cols = got.indices.astype(np.int64)
        if filt.mask is not None and cols.size:
            ok = filt.mask[cols]
            rows, cols = rows[ok], cols[ok]
        if cols.size:
            done = _matrix_rows(self.state.completed(), idx)
            if done.indices.size:
                n_courses = np.int64(self.state.n_courses)
                done_keys = np.repeat(np.arange(idx.size, dtype=np.int64), done.counts) * n_courses
                done_keys += done.indices.astype(np.int64)
                ok = ~np.isin(rows * n_courses + cols, done_keys)
                rows, cols = rows[ok], cols[ok]
        return rows, cols


# ============================================================================ files


def _open_job(root: Path, job: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The manifest to continue: the existing one of the same job, or a new one."""
    path = root / MANIFEST
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
            return dict(old)
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


def _write_chunk(root: Path, i: int, frame: pd.DataFrame, format: str) -> dict[str, Any]:
    name = _PART.format(i, format)
    tmp = root / f"{_TMP_PREFIX}{name}"
    try:
        if format == "parquet":
            # The timestamp column goes to Arrow directly: through pandas it would pass a
            # deprecated tz-dropping conversion.
            stamp = frame["generated_at"].iloc[0] if len(frame) else pd.Timestamp(0, tz="UTC")
            table = pa.Table.from_pandas(
                frame.drop(columns=["generated_at"]), preserve_index=False
            ).append_column(
                pa.field("generated_at", pa.timestamp("us", tz="UTC")),
                pa.array(np.full(len(frame), stamp.value // 1000), pa.timestamp("us", tz="UTC")),
            )
            pq.write_table(table, tmp, compression="zstd")
        else:
            frame.to_csv(tmp, index=False, encoding="utf-8", date_format="%Y-%m-%dT%H:%M:%S%z")
        _fsync(tmp)
        os.replace(tmp, root / name)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(root)
    file = root / name
    routes = frame.drop_duplicates(C.MEMBER)[C.ROUTE].value_counts()
    return {
        "file": name,
        "rows": len(frame),
        "routes": {str(k): int(v) for k, v in routes.items()},
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
