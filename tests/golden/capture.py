"""Capture the reference outputs that the equivalence tests compare against.

Fits an ALS and an EASE model on the shipped sample, saves them as artifacts, and writes
what every product serves from those artifacts (member menus, lecturer menus, group
menus, the batch job, search) as Parquet files beside this script. The equivalence tests
(``tests/test_equivalence.py``) load the same artifacts and require the same rows, so a
change to shared serving code that alters any menu fails there.

The files in this folder were captured before the serving rules moved into
``recommend.engine``, and the outputs again when reasons became Chinese by default and
menus began to pin at most two compulsory courses (the models were kept: their arrays did
not change), and the search outputs alone when the default preference weight of the search
blend went from 0.5 to 0.75. Re-capture only for an intended change of behaviour, and say
so; ``--only KIND ...`` re-captures those outputs from the kept models (no refit)::

    python tests/golden/capture.py [--only search]
"""

from __future__ import annotations

import argparse
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=("menus", "lecturers", "groups", "search"))
    args = parser.parse_args()
    if args.only:
        capture_outputs(set(args.only))
        return
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

    out = capture_outputs({"menus", "lecturers", "groups", "search", "batch"})
    from recommend.spark import spark_session

    spark = spark_session("local[2]", app_name="golden", shuffle_partitions=2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            frame = cases.spark_batch(spark, rc.load(HERE / "models" / "als"), Path(tmp))
        frame.to_parquet(out / "als_spark_batch.parquet", index=False)
        print(f"als_spark_batch: {len(frame)} rows")
    finally:
        spark.stop()


def capture_outputs(kinds: set[str]) -> Path:
    """Write the ``kinds`` of outputs of every kept model; returns the outputs folder."""
    out = HERE / "outputs"
    out.mkdir(exist_ok=True)
    products = {
        "menus": cases.menus,
        "lecturers": cases.lecturers,
        "groups": cases.groups,
        "search": cases.searches,
    }
    for name in cases.MODELS:
        model = rc.load(HERE / "models" / name)
        frames = {kind: make(model) for kind, make in products.items() if kind in kinds}
        if "batch" in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                frames["batch"] = cases.batch(model, Path(tmp))
        for kind, frame in frames.items():
            frame.to_parquet(out / f"{name}_{kind}.parquet", index=False)
            print(f"{name}_{kind}: {len(frame)} rows")
    return out


if __name__ == "__main__":
    main()
