"""Online experiments: which arm serves a member, decided by a salted hash of their id.

Assignment is a pure function of the experiment's name, its salt and the member id: the
same member gets the same arm in every process, after every restart and in every product
(member menus, batch rows), and a new salt reshuffles everyone (a fresh experiment on the
same members). The hash is BLAKE2b of ``name|salt|member_id`` (the id as text), read as a
number in [0, 1) and cut by the arms' cumulative weights.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from recommend.errors import ConfigError

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["Experiment", "model_version"]

_SCALE = float(2**64)


@dataclass(frozen=True)
class Experiment:
    """An online experiment: arms and how members are split between them.

    Attributes
    ----------
    name : str
        The experiment's name (part of the hash; also the MLflow experiment of its
        analysis).
    arms : tuple of str
        Arm names, the control first (default ``("control", "treatment")``).
    weights : tuple of float or None
        Share of members per arm (normalised; ``None``: equal shares).
    salt : str
        Changes the split without renaming the experiment.
    """

    name: str
    arms: tuple[str, ...] = ("control", "treatment")
    weights: tuple[float, ...] | None = None
    salt: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"Experiment name must be a non-empty string, got {self.name!r}")
        arms = tuple(str(a) for a in self.arms)
        if len(arms) < 2 or len(set(arms)) != len(arms) or any(not a for a in arms):
            raise ConfigError(
                f"Experiment arms must be 2 or more distinct names, got {self.arms!r}"
            )
        object.__setattr__(self, "arms", arms)
        if self.weights is not None:
            weights = tuple(float(w) for w in self.weights)
            if len(weights) != len(arms) or not all(math.isfinite(w) and w > 0 for w in weights):
                raise ConfigError(
                    f"Experiment weights must be {len(arms)} positive numbers (one per arm), "
                    f"got {self.weights!r}"
                )
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "salt", str(self.salt))

    @property
    def shares(self) -> NDArray[np.float64]:
        """Each arm's expected share of members."""
        w = np.ones(len(self.arms)) if self.weights is None else np.asarray(self.weights)
        return np.asarray(w / w.sum(), dtype=np.float64)

    def buckets(self, member_ids: Sequence[Any] | np.ndarray) -> NDArray[np.float64]:
        """Each member's hash as a number in [0, 1)."""
        prefix = f"{self.name}|{self.salt}|".encode()
        out = np.empty(len(member_ids), dtype=np.float64)
        for i, member in enumerate(np.asarray(member_ids, dtype=object).tolist()):
            digest = hashlib.blake2b(prefix + str(member).encode(), digest_size=8).digest()
            out[i] = int.from_bytes(digest, "big") / _SCALE
        return out

    def assign_index(self, member_ids: Sequence[Any] | np.ndarray) -> NDArray[np.int64]:
        """Each member's arm as an index into ``arms``."""
        edges = np.cumsum(self.shares)[:-1]
        return np.searchsorted(edges, self.buckets(member_ids), side="right").astype(np.int64)

    def assign(self, member_ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Each member's arm name (object array aligned with ``member_ids``)."""
        return np.asarray(self.arms, dtype=object)[self.assign_index(member_ids)]

    def as_dict(self) -> dict[str, Any]:
        """The experiment as plain values (what manifests and MLflow record)."""
        return {
            "name": self.name,
            "arms": list(self.arms),
            "weights": None if self.weights is None else list(self.weights),
            "salt": self.salt,
        }


def model_version(model: Recommender) -> str:
    """A version for a model object: a hash of its type, parameters and training data's
    fingerprint (what ``model_version`` columns hold for a model that is not an artifact)."""
    ds = model.dataset_
    payload = {
        "type": type(model).__name__,
        "params": model.get_params(),
        "fingerprint": ds.fingerprint() if ds is not None else None,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
