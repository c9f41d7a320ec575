"""The batch job: every member's menu, precomputed into files (and a SQL table) to serve.

A platform precomputes menus nightly and serves them from a table. :func:`run_batch` writes
the menus of all members (or of a given list) chunk by chunk into a directory::

    OUT/
        .batch.lock           locked while a job runs in OUT (a second job is refused)
        _manifest.json        the job (model version, n, members digest, options, chunk
                              size, format), when it was generated, and every finished
                              chunk with its row count, routes, size and SHA-256; its own
                              SHA-256 last
        part-00000.parquet    the menus of members 0 .. chunk_size-1 (in job order)
        part-00001.parquet    ...

In CSV output (``format="csv"``), a text cell that a spreadsheet would run as a formula
(an id starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written
with an apostrophe in front (:mod:`recommend.csvsafe`); the SQL load reads it back as
it was.

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
- One job at a time per folder: the job holds an exclusive lock on ``OUT/.batch.lock``
  from its start to its end (SQL load included); a second job on the same folder is
  refused at once with a :class:`~recommend.errors.ConfigError`. A job that dies releases
  the lock with its process.
- The manifest is checked before a resume uses it (its own checksum, chunk file names
  exactly ``part-NNNNN.<format>``, counts that fit the job): a damaged or edited manifest
  refuses the resume with a ``ConfigError`` (``overwrite=True`` starts again).
- A restart with other arguments (another model, ``n``, member list, options, chunk size
  or format) refuses to mix outputs with a :class:`~recommend.errors.ConfigError`, unless
  ``overwrite=True``, which first removes the previous job's files. The job only ever
  removes files of its exact name patterns (``part-NNNNN.parquet|csv``, its temporary
  files, the manifest); a folder without a manifest that holds other files is refused,
  and other files in a job's folder are left alone.
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

from recommend import csvsafe, store
from recommend.artifact import MODEL_JSON, load
from recommend.batch import folder
from recommend.batch.chunks import ChunkWriter
from recommend.batch.folder import BATCH_COLUMNS, MANIFEST
from recommend.batch.sql import load_sql
from recommend.checks import positive_int
from recommend.data.ids import normalise_ids
from recommend.data.loaders import read_member_ids
from recommend.engine import MenuOptions, serving_state
from recommend.engine.options import DEFAULT_MAX_PINS, Exclude
from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.messages import DEFAULT_LANG, Lang
from recommend.models.base import Recommender
from recommend.registry import load_registered
from recommend.schema import Columns

__all__ = [
    "BATCH_COLUMNS",
    "MANIFEST",
    "MODEL_RESOLVERS",
    "BatchResult",
    "member_list",
    "object_version",
    "resolve_model",
    "run_batch",
]

logger = logging.getLogger(__name__)
C = Columns

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
    compulsory_path : Path or None
        With ``compulsory=True``: the file of the members' compulsory courses still to
        study (``OUT/_compulsory.parquet`` or ``.csv``).
    compulsory_rows : int or None
        Rows of that file.
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
    compulsory_path: Path | None = None
    compulsory_rows: int | None = None


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
    compulsory: bool = False,
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
    compulsory
        Also write each member's branch's compulsory courses still to study (本支部必学,
        :func:`recommend.menu.compulsory_courses`; the menus pin at most ``max_pins`` of
        them) to ``OUT/_compulsory.<format>``, with the menus' columns (``route``
        ``compulsory``), and with ``sql`` to the table ``<table>_compulsory``.

    Returns
    -------
    BatchResult

    Raises
    ------
    ConfigError
        An option is invalid, ``out`` holds another job's output or a damaged manifest
        (without ``overwrite``) or files of no batch job, another job is running in
        ``out``, or the model reference cannot be resolved.
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
    # One version of the model for the whole job, whatever update() publishes meanwhile
    # (the writer thread reads it too).
    with model.reading() as snapshot:
        ids = member_list(model, members)
        job = _job(
            version,
            options,
            ids,
            chunk_size,
            format,
            channel=channel,
            max_minutes=max_minutes,
            now=now,
        )

        root = Path(out)
        n_chunks = -(-ids.size // chunk_size)
        with folder.job_lock(root):
            manifest = folder.open_job(root, job, n_chunks, overwrite)
            done = folder.finished_chunks(root, manifest)
            manifest["chunks"] = {str(i): done[i] for i in sorted(done)}
            folder.write_manifest(root, manifest)
            if done:
                logger.info(
                    "resuming %s: %d of %d chunks already written", root, len(done), n_chunks
                )

            stamp = pd.Timestamp(manifest["generated_at"])
            writer = ChunkWriter(model, options, version, stamp, format, snapshot)
            # Every member of the model, in its order: their indices need no lookup.
            in_model_order = members is None
            _write_chunks(writer, root, manifest, ids, chunk_size, done, in_model_order, progress)

            manifest["complete"] = True
            folder.write_manifest(root, manifest)
            entries = [manifest["chunks"][str(i)] for i in range(n_chunks)]
            files = [root / e["file"] for e in entries]
            listed = None
            if compulsory:
                listed = _write_compulsory(model, ids, root, format, version, stamp, lang)
                manifest["compulsory"] = {"file": listed[0].name, "rows": listed[1]}
                folder.write_manifest(root, manifest)
            sql_rows = None
            if sql is not None and table is not None:
                sql_rows = load_sql(sql, table, files, format)
                # Never the URL: it may hold a password.
                manifest["sql"] = {"table": table, "rows": sql_rows}
                if listed is not None:
                    load_sql(sql, f"{table}_compulsory", [listed[0]], format)
                    manifest["sql"]["compulsory_table"] = f"{table}_compulsory"
                folder.write_manifest(root, manifest)
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
        compulsory_path=listed[0] if listed else None,
        compulsory_rows=listed[1] if listed else None,
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


def _write_compulsory(
    model: Recommender,
    ids: np.ndarray,
    root: Path,
    format: str,
    version: str,
    stamp: pd.Timestamp,
    lang: Lang,
) -> tuple[Path, int]:
    """The members' compulsory courses still to study, to ``root/_compulsory.<format>``
    atomically; returns the file and its rows."""
    from recommend.menu import compulsory_courses

    parts = [
        compulsory_courses(model, ids[lo : lo + 20_000], lang=lang)
        for lo in range(0, max(ids.size, 1), 20_000)
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    frame = frame.assign(route="compulsory", model_version=version, generated_at=stamp)
    target = root / folder.compulsory_name(format)
    with store.staged_file(target) as tmp:
        if format == "parquet":
            frame.to_parquet(tmp, index=False, compression="zstd")
        else:
            csvsafe.write_csv(
                frame, tmp, index=False, encoding="utf-8", date_format="%Y-%m-%dT%H:%M:%S%z"
            )
    return target, len(frame)


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
    if table is not None and (
        not isinstance(table, str)
        or not table.strip()
        or table != table.strip()
        or len(table) > 128
        or not table.isprintable()
    ):
        raise ConfigError(
            f"table={table!r}; expected a SQL table name (1 to 128 printable characters, "
            "no surrounding spaces)"
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
    writer: ChunkWriter,
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
        folder.write_manifest(root, manifest)
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
        folder.remove_temporaries(root)


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
    if series.dtype.kind not in "iu":
        # String ids as validation reads them at load (" m1 ", full-width, zero-width).
        series = pd.Series(normalise_ids(series.to_numpy(dtype=object))[0], dtype=object)
    before = len(series)
    series = series.drop_duplicates()
    if len(series) < before:
        logger.info("members: dropped %d duplicate ids", before - len(series))
    integer = series.dtype.kind in "iu"
    return series.to_numpy(dtype=np.int64 if integer else object)


def _read_members(path: Path, integer: bool) -> list[Any] | pd.Series:
    values = read_member_ids(path)
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
