"""Property-based fuzzing of a batch job's resume: random byte flips and truncations of
its manifest and of its finished chunk files.

Whatever the damage, a resume either raises one of the library's own errors and leaves
the folder as it was, or recovers: every chunk file ends up byte for byte what an
undamaged run wrote. Hypothesis runs derandomised (the same examples every run) on top of
the fixed examples listed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import RandomFactors
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from recommend.batch import MANIFEST, run_batch
from recommend.errors import RecommendError

#: Examples per output format (two formats).
EXAMPLES = 150
ARGS = {"n": 4, "chunk_size": 50, "progress": False}
TARGETS = [MANIFEST, "part-00000", "part-00001", "part-00003"]


@dataclass(frozen=True)
class Finished:
    """A finished job's folder and its files' bytes (not shown in failure reports)."""

    format: str
    path: Path
    contents: dict[str, bytes] = field(repr=False)


@pytest.fixture(scope="module", params=["parquet", "csv"])
def finished(
    request: pytest.FixtureRequest, model: RandomFactors, tmp_path_factory: pytest.TempPathFactory
) -> Finished:
    """A finished job of 200 members in 4 chunks."""
    format = request.param
    out = tmp_path_factory.mktemp(f"fuzz-{format}") / "out"
    members = model.member_ids_.external_ids[:200].tolist()
    run_batch(model, out, members=members, format=format, **ARGS)
    return Finished(format, out, _contents(out))


def _contents(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def _target(name: str, format: str) -> str:
    return name if name == MANIFEST else f"{name}.{format}"


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)
@given(
    name=st.sampled_from(TARGETS),
    truncate=st.booleans(),
    where=st.floats(0.0, 1.0, exclude_max=True),
    mask=st.integers(1, 255),
)
@example(name=MANIFEST, truncate=True, where=0.0, mask=1)
@example(name=MANIFEST, truncate=True, where=0.5, mask=1)
@example(name=MANIFEST, truncate=False, where=0.0, mask=ord("{") ^ ord("["))
@example(name=MANIFEST, truncate=False, where=0.999, mask=0x20)
@example(name="part-00001", truncate=True, where=0.0, mask=1)
@example(name="part-00003", truncate=False, where=0.5, mask=0x80)
def test_a_damaged_job_resumes_or_fails_with_the_library_error(
    model: RandomFactors,
    finished: Finished,
    name: str,
    truncate: bool,
    where: float,
    mask: int,
) -> None:
    format, reference, contents = finished.format, finished.path, finished.contents
    members = model.member_ids_.external_ids[:200].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        shutil.copytree(reference, out)
        file = out / _target(name, format)
        data = bytearray(file.read_bytes())
        at = int(where * len(data))
        if truncate:
            del data[at:]
        else:
            data[at] ^= mask
        file.write_bytes(bytes(data))
        damaged = _contents(out)
        try:
            result = run_batch(model, out, members=members, format=format, **ARGS)
        except RecommendError:
            event(f"{'manifest' if name == MANIFEST else 'chunk'}: refused")
            assert _contents(out) == damaged  # refused: nothing removed or rewritten
            return
        event(f"{'manifest' if name == MANIFEST else 'chunk'}: recovered")
        after = _contents(out)
        parts = {k: v for k, v in after.items() if k.startswith("part-")}
        assert parts == {k: v for k, v in contents.items() if k.startswith("part-")}
        assert result.rows == 200 * ARGS["n"] and result.chunks == 4
        assert name != MANIFEST or result.resumed_chunks == 4
