"""Argument checks and the training matrix the ``implicit`` wrappers share."""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse as sp

from recommend.errors import ConfigError

__all__ = [
    "check_bool",
    "check_gpu",
    "check_int",
    "check_random_state",
    "check_real",
    "training_matrix",
]


def training_matrix(interactions: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """The interactions as implicit wants them: ``csr_matrix``, float32, sorted indices,
    no stored zeros (implicit would read a stored 0 as a dislike).

    Copies only when the input is not already in that form, and never modifies it
    (implicit's BPR sorts the indices of its input in place).
    """
    x = interactions
    ready = (
        isinstance(x, sp.csr_matrix)
        and x.dtype == np.float32
        and x.has_sorted_indices
        and (x.data != 0).all()
    )
    if ready:
        return x
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    x.sort_indices()
    return x


def check_int(owner: str, name: str, value: object, minimum: int) -> None:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum
    if not ok:
        raise ConfigError(f"{owner}.{name}={value!r}; expected an integer >= {minimum}")


def check_real(owner: str, name: str, value: object, *, positive: bool) -> None:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and (float(value) > 0 if positive else float(value) >= 0)
    )
    if not ok:
        raise ConfigError(
            f"{owner}.{name}={value!r}; expected a finite number {'> 0' if positive else '>= 0'}"
        )


def check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{owner}.{name}={value!r}; expected True or False")


def check_random_state(owner: str, value: object) -> None:
    if value is not None:
        check_int(owner, "random_state", value, 0)


def check_gpu(owner: str, use_gpu: bool) -> None:
    if use_gpu:
        import implicit.gpu

        if not implicit.gpu.HAS_CUDA:
            raise ConfigError(
                f"{owner}(use_gpu=True) but implicit has no CUDA support here (no GPU, or "
                "implicit built without CUDA); use use_gpu=False"
            )
