"""The platform's ids: ``m000000`` members, ``c00000`` courses, ``o0000`` orgs, ``l0000``
lecturers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recommend.data.synthetic.config import SynthConfig


def format_ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers; the width grows with ``n`` so ids sort numerically."""
    width = max(width, len(str(max(n - 1, 0))))
    return np.strings.add(prefix, np.strings.zfill(np.arange(n).astype(str), width))


@dataclass(frozen=True)
class Ids:
    """The ids of a platform's members, courses, orgs and lecturers, as Arrow arrays."""

    member: pa.Array
    course: pa.Array
    org: pa.Array
    lecturer: pa.Array

    @classmethod
    def make(cls, cfg: SynthConfig, n_orgs: int, n_lecturers: int) -> Ids:
        return cls(
            pa.array(format_ids("m", cfg.n_members, 6)),
            pa.array(format_ids("c", cfg.n_courses, 5)),
            pa.array(format_ids("o", n_orgs, 4)),
            pa.array(format_ids("l", n_lecturers, 4)),
        )
