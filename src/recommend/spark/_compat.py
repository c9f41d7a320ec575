"""The one place that imports ``pyspark``: a helpful error when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from recommend.errors import ConfigError

__all__ = ["MIN_PYSPARK", "SparkUnavailableError", "require_pyspark"]

#: Oldest Spark whose ``mapInPandas``, ``createDataFrame(pyarrow.Table)`` and MLlib ALS
#: this package relies on.
MIN_PYSPARK = (4, 0)


class SparkUnavailableError(ConfigError, ImportError):
    """``recommend.spark`` was used without a usable ``pyspark``."""


def require_pyspark() -> ModuleType:
    """The ``pyspark`` module, or a ``SparkUnavailableError`` saying how to install it.

    Raises
    ------
    SparkUnavailableError
        ``pyspark`` is not installed, or older than ``MIN_PYSPARK``.
    """
    try:
        pyspark = importlib.import_module("pyspark")
    except ImportError as exc:
        raise SparkUnavailableError(
            "recommend.spark needs Apache Spark's Python package, which is not installed: "
            "pip install 'recommend[spark]' (or pip install pyspark); Spark also needs a "
            "Java 17+ runtime (java on PATH or JAVA_HOME)"
        ) from exc
    version = getattr(pyspark, "__version__", "0")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_PYSPARK:
        wanted = ".".join(map(str, MIN_PYSPARK))
        raise SparkUnavailableError(
            f"recommend.spark needs pyspark >= {wanted}, found {version}: "
            "pip install -U 'recommend[spark]'"
        )
    return pyspark
