"""A simulated platform (``Platform``): its tables and truth, written to and read from a
directory of Parquet files, ``truth.npz`` and ``meta.json``."""

from __future__ import annotations

import io
import logging
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recommend import store
from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.tables import TABLE_NAMES, to_arrow, to_pandas
from recommend.data.synthetic.truth import Truth
from recommend.errors import DataError

logger = logging.getLogger(__name__)

_FORMAT_VERSION: Final = 1
_META: Final = "meta.json"
_TRUTH: Final = "truth.npz"


@dataclass(frozen=True, eq=False)
class Platform:
    """A simulated platform: the public tables plus the truth that generated them.

    Attributes
    ----------
    events : DataFrame
        ``member_id``, ``course_id``, ``event`` (str, in :data:`recommend.schema.EVENT_TYPES`),
        ``timestamp`` (datetime64[ns], tz-naive UTC), ``watch_seconds`` (float64: seconds
        watched in the session up to the event; 0 for ``view`` and ``search_click``).
        Sorted by member, timestamp, event (in ``EVENT_TYPES`` order), course.
    courses : DataFrame
        ``course_id``, ``title``, ``category`` (a channel), ``tags`` (list of str),
        ``duration_seconds`` (float64), ``lecturer_id`` (null for UGC), ``source``
        (``official``/``ugc``), ``published_at``, ``org_id`` (uploading branch, null for
        official), ``description``, ``compulsory_for`` (list of branch org ids). Course ids
        follow publication order.
    members : DataFrame
        ``member_id``, ``org_id`` (branch), ``gender`` (``male``/``female``), ``birth_year``
        (int64), ``occupation``, ``skills`` (list of str), ``district``, ``joined_at``,
        ``mobile`` (bool).
    orgs : DataFrame
        ``org_id``, ``parent_id`` (null for committees), ``kind`` (committee /
        general_branch / branch), ``industry``, ``district``.
    searches : DataFrame
        ``member_id``, ``query``, ``timestamp``, ``shown`` (course ids in shown order),
        ``clicked`` (clicked course ids, in shown order).
    lecturers : DataFrame
        ``lecturer_id``, ``category`` (home channel), ``tags`` (expertise topic).
    truth : Truth
    config : SynthConfig
    seed : int
    """

    events: pd.DataFrame
    courses: pd.DataFrame
    members: pd.DataFrame
    orgs: pd.DataFrame
    searches: pd.DataFrame
    lecturers: pd.DataFrame
    truth: Truth
    config: SynthConfig
    seed: int

    @property
    def period(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Start (inclusive) and end (exclusive) of the simulated period."""
        start = pd.Timestamp(self.config.start)
        return start, start + pd.Timedelta(days=self.config.days)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The frames by table name (``events``, ``courses``, ...)."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the platform to a directory, deterministically.

        Writes ``events.parquet``, ``courses.parquet``, ``members.parquet``,
        ``orgs.parquet``, ``searches.parquet``, ``lecturers.parquet``, ``truth.npz`` and
        ``meta.json`` (config, seed, row counts, SHA-256 of every file). The same platform
        always gives the same bytes. A new directory appears atomically (written next to it,
        then renamed); in an existing directory each file is replaced atomically and
        ``meta.json`` last, other files (e.g. a README) are left alone.

        Returns
        -------
        Path
            The directory written.
        """
        target = Path(path)
        tmp = store.make_staging_dir(target)
        try:
            store.write_json(tmp / _META, self._meta(self._write_files(tmp)), sort_keys=True)
            if not target.exists():
                store.publish_dir(tmp, target, error=DataError)
            else:
                # File by file, meta.json last: a reader never sees a listing ahead of its files.
                for file in sorted(tmp.iterdir(), key=lambda p: p.name == _META):
                    store.publish_file(file, target / file.name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("wrote simulated platform to %s", target)
        return target

    def _write_files(self, directory: Path) -> dict[str, str]:
        """Write the tables and the truth into ``directory``; their SHA-256 by file name."""
        files = []
        for name, frame in self.tables().items():
            file = directory / f"{name}.parquet"
            _write_parquet(to_arrow(name, frame), file)
            files.append(file)
        npz = directory / _TRUTH
        _write_npz(npz, self.truth.to_arrays())
        files.append(npz)
        checksums = {}
        for file in files:
            store.fsync_file(file)
            checksums[file.name] = store.sha256(file)
        return checksums

    def _meta(self, checksums: dict[str, str]) -> dict[str, Any]:
        """Content of ``meta.json``."""
        return {
            "format_version": _FORMAT_VERSION,
            "generator": "recommend.data.synthetic",
            "seed": int(self.seed),
            "config": asdict(self.config),
            "counts": {name: len(frame) for name, frame in self.tables().items()},
            "files": checksums,
        }


def read_platform(path: str | os.PathLike[str], *, verify: bool = True) -> Platform:
    """Read a platform written by :meth:`Platform.write`.

    Parameters
    ----------
    path
        The directory.
    verify
        Check every file against the SHA-256 recorded in ``meta.json``.

    Raises
    ------
    DataError
        A file is missing, does not match its checksum, or has a newer format.
    """
    root = Path(path)
    meta_file = root / _META
    if not meta_file.is_file():
        raise DataError(f"{root} holds no meta.json; is it a directory from Platform.write?")
    meta = store.read_json(meta_file, error=DataError)
    if meta.get("format_version", 0) > _FORMAT_VERSION:
        raise DataError(
            f"{root} has format {meta['format_version']}, newer than {_FORMAT_VERSION}; "
            "upgrade recommend"
        )
    for name, digest in meta["files"].items():
        file = root / name
        if not file.is_file():
            raise DataError(f"{file} is missing")
        if verify and store.sha256(file) != digest:
            raise DataError(f"{file} does not match the checksum in meta.json (partial write?)")
    frames = {
        name: to_pandas(name, pq.read_table(root / f"{name}.parquet")) for name in TABLE_NAMES
    }
    with np.load(root / _TRUTH, allow_pickle=False) as npz:
        truth = Truth.from_arrays(npz)
    return Platform(
        **frames, truth=truth, config=SynthConfig(**meta["config"]), seed=int(meta["seed"])
    )


def _write_parquet(table: pa.Table, file: Path) -> None:
    pq.write_table(
        table,
        file,
        compression="zstd",
        compression_level=9,
        version="2.6",
        row_group_size=1 << 20,
        write_statistics=True,
    )


def _write_npz(file: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez stamps zip entries with the current time; a fixed date keeps the bytes stable.
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            # np.asarray keeps 0-d scalars 0-d (np.ascontiguousarray would make them 1-d).
            np.lib.format.write_array(buf, np.asarray(arrays[name], order="C"), allow_pickle=False)
            zf.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue()
            )
