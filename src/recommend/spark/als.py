"""ALS on Spark MLlib (implicit preferences), exported as a standard ``recommend`` ALS model.

``SparkALS(...).fit(data)`` trains ``pyspark.ml.recommendation.ALS`` with
``implicitPrefs=True`` on a ``SparkInteractions`` matrix, then builds
``recommend.models.ALS`` from the learned factors, the id maps and the serving view of the
data: ``recommend.save(model_, path)`` writes an artifact that ``recommend.load`` reads like
any other, so serving, menus, search, evaluation and the batch jobs need no change.

Spark's objective differs from ``implicit``'s, so the factors differ and are compared by
ranking quality, not number by number (see ``tests/test_spark.py``):

- confidence ``c = 1 + alpha * r`` for a studied course (``implicit``: ``alpha * r``);
- the penalty on a member's (course's) vector is ``regularization * n`` with ``n`` the
  number of courses (members) it has interactions with (``implicit``: ``regularization``).

The exported model keeps ``n_factors``, ``regularization``, ``alpha`` and ``iterations`` as
its hyper-parameters; fold-in (``model.update``) re-solves a member with ``implicit``'s
objective and these values, which approximates Spark's solution for that member.

Courses nobody studied get the content-placed factors the single-machine ``ALS`` gives them
(``cold_neighbours``); members without interactions get zero vectors, as with ``implicit``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX
from recommend.errors import ConfigError, NotFittedError
from recommend.models.content import COLD_NEIGHBOURS
from recommend.models.implicit_models import ALS
from recommend.spark._compat import require_pyspark
from recommend.spark.data import CONFIDENCE, SparkInteractions

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

__all__ = ["SparkALS"]

log = logging.getLogger(__name__)


class SparkALS:
    """Implicit-feedback ALS trained with Spark MLlib; ``model_`` is a ``recommend`` ALS.

    Parameters
    ----------
    n_factors
        Rank of the factorisation (Spark's ``rank``).
    regularization
        Spark's ``regParam`` (scaled per member and per course by their interaction count).
    alpha
        Spark's ``alpha``: confidence ``1 + alpha * r``.
    iterations
        ALS sweeps (``maxIter``).
    random_state
        Seed of the initial factors.
    blocks
        Member and course blocks (``numUserBlocks`` / ``numItemBlocks``): the unit of
        parallelism; about the number of cores of the cluster (``None``: Spark's 10).
    checkpoint_interval
        Checkpoint the factor lineage every this many iterations; needs
        ``SparkContext.setCheckpointDir`` (long runs on a cluster; ignored without it).
    cold_neighbours
        Warm courses averaged into a cold course's factors (as ``recommend.models.ALS``).

    Attributes
    ----------
    model_ : recommend.models.ALS
        The fitted model, ready for ``recommend.save``.
    fit_seconds_ : float
        Wall time of Spark's ``fit`` (factors collected to the driver included).
    """

    def __init__(
        self,
        n_factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 0,
        blocks: int | None = None,
        checkpoint_interval: int = 10,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.blocks = blocks
        self.checkpoint_interval = checkpoint_interval
        self.cold_neighbours = cold_neighbours
        # The exported model checks the shared hyper-parameters (clear errors, same rules).
        self._template()
        if blocks is not None and (
            isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1
        ):
            raise ConfigError(f"SparkALS.blocks={blocks!r}; expected a positive integer or None")
        if isinstance(checkpoint_interval, bool) or not isinstance(checkpoint_interval, int):
            raise ConfigError(
                f"SparkALS.checkpoint_interval={checkpoint_interval!r}; expected an integer"
            )

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a flat dict."""
        return {
            "n_factors": self.n_factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": self.random_state,
            "blocks": self.blocks,
            "checkpoint_interval": self.checkpoint_interval,
            "cold_neighbours": self.cold_neighbours,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"SparkALS({args})"

    def _template(self) -> ALS:
        return ALS(
            n_factors=self.n_factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            cold_neighbours=self.cold_neighbours,
            random_state=self.random_state,
        )

    def fit(self, data: SparkInteractions) -> Self:
        """Train on ``data`` and build ``model_``; returns ``self``.

        The member and course factors (``n x n_factors`` float32) and the serving view
        (the matrix, completed pairs, tables) are collected to the driver, which needs
        memory for them (see ``docs/scale_plan.md``).
        """
        require_pyspark()
        from pyspark.ml.recommendation import ALS as MLlibALS

        if not isinstance(data, SparkInteractions):
            raise ConfigError(
                f"SparkALS.fit expects recommend.spark.interactions(...), got {type(data).__name__}"
            )
        estimator = MLlibALS(
            rank=int(self.n_factors),
            maxIter=int(self.iterations),
            regParam=float(self.regularization),
            alpha=float(self.alpha),
            implicitPrefs=True,
            nonnegative=False,
            seed=int(self.random_state or 0),
            userCol=MEMBER_IDX,
            itemCol=COURSE_IDX,
            ratingCol=CONFIDENCE,
            checkpointInterval=int(self.checkpoint_interval),
        )
        if self.blocks is not None:
            estimator.setNumUserBlocks(int(self.blocks)).setNumItemBlocks(int(self.blocks))
        log.info(
            "spark als: %d members x %d courses, rank %d, %d iterations",
            data.n_members,
            data.n_courses,
            self.n_factors,
            self.iterations,
        )
        start = time.perf_counter()
        fitted = estimator.fit(data.frame)
        members = _factor_array(fitted.userFactors, data.n_members, int(self.n_factors))
        courses = _factor_array(fitted.itemFactors, data.n_courses, int(self.n_factors))
        self.fit_seconds_ = time.perf_counter() - start
        if not (np.isfinite(members).all() and np.isfinite(courses).all()):
            raise ConfigError("Spark ALS diverged (non-finite factors): raise regularization")

        # Finished as ALS.fit finishes, with Spark's factors in place of implicit's.
        self.model_ = ALS.from_factors(
            data.to_dataset(), members, courses, **self._template().get_params()
        )
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "model_")

    def save(self, path: str, *, overwrite: bool = False) -> Any:
        """``recommend.save(self.model_, path)``: a standard artifact directory."""
        if not self.is_fitted:
            raise NotFittedError("SparkALS is not fitted: call fit(data) first")
        from recommend.artifact import save

        return save(self.model_, path, overwrite=overwrite)


def _factor_array(frame: DataFrame, n: int, rank: int) -> np.ndarray:
    """Spark's ``id, features`` factor table as an ``(n, rank)`` float32 array; ids that
    have no row (no interactions) stay zero."""
    from pyspark.sql import functions as F

    columns = [F.col("features")[i].alias(f"f{i}") for i in range(rank)]
    table: pd.DataFrame = frame.select(F.col("id"), *columns).toPandas()
    out = np.zeros((n, rank), dtype=np.float32)
    ids = table["id"].to_numpy(np.int64)
    out[ids] = table[[f"f{i}" for i in range(rank)]].to_numpy(np.float32)
    return out
