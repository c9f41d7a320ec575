"""Capture the reference outputs that the equivalence tests compare against.

Fits an ALS and an EASE model on the shipped sample, saves them as artifacts, and writes
what every product serves from those artifacts (member menus, lecturer menus, group
menus, the batch job, search) as Parquet files beside this script. The equivalence tests
(``tests/test_equivalence.py``) load the same artifacts and require the same rows, so a
change to shared serving code that alters any menu fails there.

The files in this folder were captured before the serving rules moved into
``recommend.engine``, and the outputs again when reasons became Chinese by default and
menus began to pin at most two compulsory courses (the models were kept: their arrays did
not change). Re-capture only for an intended change of behaviour, and say so::

    python tests/golden/capture.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402

import recommend as rc  # noqa: E402
from recommend.data.synthetic import read_platform  # noqa: E402


def main() -> None:
    platform = read_platform(cases.SAMPLE)
    dataset = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    for name, model in (
        ("als", rc.ALS(n_factors=16, iterations=6, random_state=0, num_threads=1)),
        ("ease", rc.EASE(l2=300.0)),
    ):
        model.fit(dataset)
        target = HERE / "models" / name
        if target.exists():
            shutil.rmtree(target)
        rc.save(model, target)

    out = HERE / "outputs"
    out.mkdir(exist_ok=True)
    for name in cases.MODELS:
        model = rc.load(HERE / "models" / name)
        frames = {
            "menus": cases.menus(model),
            "lecturers": cases.lecturers(model),
            "groups": cases.groups(model),
            "search": cases.searches(model),
        }
        with tempfile.TemporaryDirectory() as tmp:
            frames["batch"] = cases.batch(model, Path(tmp))
        for kind, frame in frames.items():
            frame.to_parquet(out / f"{name}_{kind}.parquet", index=False)
            print(f"{name}_{kind}: {len(frame)} rows")
    from recommend.spark import spark_session

    spark = spark_session("local[2]", app_name="golden", shuffle_partitions=2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            frame = cases.spark_batch(spark, rc.load(HERE / "models" / "als"), Path(tmp))
        frame.to_parquet(out / "als_spark_batch.parquet", index=False)
        print(f"als_spark_batch: {len(frame)} rows")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
