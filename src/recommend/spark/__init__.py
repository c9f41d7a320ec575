"""Scale-out on Apache Spark: training and batch scoring that share the standard artifact.

Install with ``pip install 'recommend[spark]'`` (and a Java 17+ runtime). Importing this
package without ``pyspark`` raises ``SparkUnavailableError`` saying so.

- ``spark_session(master)``: a session configured for these jobs (UTC, Arrow);
- ``read_events(spark, path)``: events from (partitioned) Parquet;
- ``interactions(events, courses=..., members=..., orgs=...)``: validation, id maps and
  the confidence matrix, with the single-machine ``Dataset``'s own code per partition;
- ``SparkALS(...).fit(data)``: MLlib ALS with implicit preferences; ``.model_`` is a
  ``recommend.models.ALS`` that ``recommend.save`` writes as a standard artifact;
- ``spark_batch(spark, artifact, out)``: every member's menu, the rows of
  ``recommend.run_batch``, computed partition by partition with course factors broadcast.

``docs/scale_plan.md`` sizes every stage for a national platform.
"""

from recommend.spark._compat import SparkUnavailableError, require_pyspark

require_pyspark()

from recommend.spark.als import SparkALS  # noqa: E402
from recommend.spark.batch import SparkBatchResult, spark_batch  # noqa: E402
from recommend.spark.data import SparkInteractions, interactions, read_events  # noqa: E402
from recommend.spark.session import spark_session  # noqa: E402

__all__ = [
    "SparkALS",
    "SparkBatchResult",
    "SparkInteractions",
    "SparkUnavailableError",
    "interactions",
    "read_events",
    "require_pyspark",
    "spark_batch",
    "spark_session",
]
