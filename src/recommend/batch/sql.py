"""A batch job's rows into a SQL table: one transaction that replaces the table's rows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from recommend import csvsafe
from recommend.errors import ConfigError, one_line
from recommend.schema import Columns

__all__ = ["load_sql", "read_csv_part"]

logger = logging.getLogger(__name__)
C = Columns


def load_sql(url: str, table: str, files: list[Path], format: str) -> int:
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
        rows = _replace_rows(sa, engine, table, files, format)
    except sa.exc.SQLAlchemyError as err:
        # The driver's own message (never the URL, which may hold a password).
        cause = getattr(err, "orig", None) or err
        raise ConfigError(
            f"cannot load the batch rows into SQL table {table!r}: "
            f"{type(cause).__name__}: {one_line(cause)}"
        ) from err
    finally:
        engine.dispose()
    logger.info("batch: loaded %d rows into SQL table %s", rows, table)
    return rows


def _replace_rows(sa: Any, engine: Any, table: str, files: list[Path], format: str) -> int:
    """The one transaction: the table's rows deleted, the job's inserted."""
    rows = 0
    with engine.begin() as conn:
        if sa.inspect(conn).has_table(table):
            quoted = conn.dialect.identifier_preparer.quote(table)
            conn.execute(sa.text(f"DELETE FROM {quoted}"))
        for file in files:
            frame = pd.read_parquet(file) if format == "parquet" else read_csv_part(file)
            frame.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
            rows += len(frame)
    return rows


def read_csv_part(file: Path) -> pd.DataFrame:
    """A CSV chunk file as the rows it holds (text the writer escaped for spreadsheets
    restored)."""
    text = [C.MEMBER, C.COURSE, C.REASON, C.ROUTE, "model_version"]
    frame = pd.read_csv(file, keep_default_na=False, dtype={C.MEMBER: str, C.COURSE: str})
    frame = csvsafe.restore_columns(frame, [c for c in text if c in frame.columns])
    frame["generated_at"] = pd.to_datetime(frame["generated_at"], utc=True)
    return frame
