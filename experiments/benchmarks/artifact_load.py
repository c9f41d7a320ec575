"""Benchmark of ``recommend.load``: the checked loader against a raw read of the same files.

A simulated platform (20k members x 5k courses by default) is fitted with ``ALS`` (64
factors) and saved, signed. Then, repeated and interleaved so that load from other
processes hits both alike, it times:

- ``load(path, key=...)``: signature, checksums, bounded readers (stored ``.npz`` entries,
  ``.npy`` headers checked against entry sizes, Parquet read row group by row group under
  an expansion bound), the size cross-checks and the model's restoration;
- the reference: the same files read with no checks beyond the checksums, as plain
  ``numpy.load`` of every array and ``pyarrow.parquet.read_table`` of every table.

Usage::

    python experiments/benchmarks/artifact_load.py               # 20k x 5k, 5 rounds
    python experiments/benchmarks/artifact_load.py --members 3000 --courses 800

The last line is machine-readable::

    RESULT load_ms=... raw_ms=... ratio_vs_raw=... artifact_mb=...

``load_ms`` and ``raw_ms`` are medians over the rounds; ``ratio_vs_raw`` is their ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from recommend import store
from recommend.artifact import ARRAYS, MODEL_JSON, load, save
from recommend.data.dataset import Dataset
from recommend.data.synthetic import SynthConfig, synthesize
from recommend.models.implicit_models import ALS

KEY = "benchmark-signing-key-0123456789"


def raw_read(root: Path) -> int:
    """Checksums, then every array and table read as plainly as possible; returns bytes."""
    meta = store.read_json(root / MODEL_JSON)
    store.verify_files(root, meta["files"], listing=MODEL_JSON)
    total = 0
    with np.load(root / ARRAYS, allow_pickle=False) as npz:
        for key in npz.files:
            total += npz[key].nbytes
    for name in meta["files"]:
        if name.endswith(".parquet"):
            total += pq.read_table(root / name).nbytes
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--courses", type=int, default=5_000)
    parser.add_argument("--events-per-member", type=float, default=50.0)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    config = SynthConfig(
        n_members=args.members, n_courses=args.courses, events_per_member=args.events_per_member
    )
    plat = synthesize(config, seed=args.seed)
    ds = Dataset.from_frames(plat.events, courses=plat.courses, members=plat.members)
    model = ALS(n_factors=args.factors, random_state=args.seed).fit(ds)
    with tempfile.TemporaryDirectory() as tmp:
        root = save(model, Path(tmp) / "model", key=KEY)
        size = sum(p.stat().st_size for p in root.iterdir())
        load(root, key=KEY)  # warm-up: class lookup, imports, page cache
        raw_read(root)
        load_ms, raw_ms = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            loaded = load(root, key=KEY)
            load_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            raw_read(root)
            raw_ms.append(1000 * (time.perf_counter() - t0))
        members = np.arange(min(100, len(model.member_ids_)))
        same = bool(np.array_equal(loaded.score(members), model.score(members)))
    load_med, raw_med = float(np.median(load_ms)), float(np.median(raw_ms))
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus; {args.members:,} members x "
        f"{args.courses:,} courses, ALS {args.factors} factors; artifact {size / 1e6:.1f} MB"
    )
    print(f"load (checked, signed): median {load_med:.1f} ms over {args.rounds} rounds")
    print(f"raw read of the same files: median {raw_med:.1f} ms")
    print(f"loaded model scores like the saved one: {same}")
    print(
        f"RESULT load_ms={load_med:.1f} raw_ms={raw_med:.1f} "
        f"ratio_vs_raw={load_med / raw_med:.2f} artifact_mb={size / 1e6:.1f}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
