"""The model in service and its atomic swap.

A request reads :attr:`ModelHolder.current` once, at its start, and answers from that
:class:`Served` to its end: a reload loads the new model beside the old one and then
replaces the reference in one assignment, so requests already running finish on the old
model (kept alive by their reference) and every later request gets the new one. Loads are
serialised by a lock; a load that fails leaves the old model in service.

With several worker processes, the worker that reloads writes the new generation to a
file in the server's shared folder (``sync_dir``); the others see it at their next look
(``sync_seconds``) and load the same model.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommend.batch import resolve_model
from recommend.errors import ArtifactError, RecommendError
from recommend.store import read_json, write_json

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["GENERATION_FILE", "ModelHolder", "Served", "alias_version"]

log = logging.getLogger(__name__)

#: File of the shared folder that names the latest reload.
GENERATION_FILE = "generation.json"


@dataclass(frozen=True)
class Served:
    """One loaded model: what answers a request from start to end.

    Attributes
    ----------
    model : Recommender
    version : str
        The artifact's version (16 hex digits of the SHA-256 of its ``model.json``), the
        ``model_version`` of every answer.
    source : str
        The folder or registry URI it was loaded from.
    loaded_at : float
        ``time.time()`` when it went into service.
    """

    model: Recommender
    version: str
    source: str
    loaded_at: float


def load_served(source: str) -> Served:
    """Load the model ``source`` names (folder or registry URI) and warm it up."""
    from recommend.engine import serving_state

    model, version = resolve_model(source)
    serving_state(model)  # built now, not by the first request
    return Served(model, version, source, time.time())


def alias_version(source: str) -> str | None:
    """The registry version a ``models:/NAME@ALIAS`` URI points at now (``None`` for any
    other source)."""
    if not source.startswith("models:/") or "@" not in source:
        return None
    from recommend.tracking import mlflow_client

    name, _, alias = source[len("models:/") :].partition("@")
    return str(mlflow_client().get_model_version_by_alias(name, alias).version)


class ModelHolder:
    """The model in service; swapped atomically by :meth:`reload`.

    Parameters
    ----------
    source
        The folder or registry URI to serve.
    sync_dir
        The folder shared by the server's workers (``None``: one process).
    """

    def __init__(self, source: str, sync_dir: str | None = None) -> None:
        self.source = source
        self.sync_dir = Path(sync_dir) if sync_dir else None
        self._current: Served | None = None
        self._lock = threading.Lock()
        self.generation = 0
        self.alias_seen: str | None = None

    @property
    def current(self) -> Served:
        """The model in service (read once per request)."""
        served = self._current
        if served is None:
            raise ArtifactError("no model is loaded yet")
        return served

    @property
    def ready(self) -> bool:
        """A model is in service."""
        return self._current is not None

    def load(self) -> Served:
        """Load the first model (at start-up)."""
        with self._lock:
            served = load_served(self.source)
            self._current = served
            self.generation = self._shared().get("generation", 0)
            return served

    def reload(self, source: str | None = None, *, announce: bool = True) -> Served:
        """Load ``source`` (default: the one served) beside the model in service, then
        swap. ``announce``: tell the other workers (through ``sync_dir``).

        Raises
        ------
        RecommendError
            The new model cannot be loaded; the old one stays in service.
        """
        with self._lock:
            served = load_served(source or self.source)
            self._current = served  # the swap: one reference assignment
            self.source = served.source
            if announce and self.sync_dir is not None:
                self.generation = self._shared().get("generation", self.generation) + 1
                write_json(
                    self.sync_dir / GENERATION_FILE,
                    {"generation": self.generation, "source": served.source},
                )
            log.info("model %s from %s in service", served.version, served.source)
            return served

    def follow(self) -> Served | None:
        """Load what another worker reloaded, if anything (``None``: nothing new)."""
        shared = self._shared()
        generation = shared.get("generation", 0)
        if generation <= self.generation:
            return None
        served = self.reload(shared.get("source") or self.source, announce=False)
        self.generation = generation
        return served

    def watch(self) -> Served | None:
        """Load the new version a registry alias points at, if it moved."""
        try:
            seen = alias_version(self.source)
        except Exception as err:  # a registry that cannot be reached now: try again later
            log.warning("cannot read the alias of %s: %s", self.source, err)
            return None
        if seen is None or seen == self.alias_seen:
            return None
        first = self.alias_seen is None
        self.alias_seen = seen
        if first:
            return None
        try:
            return self.reload(announce=False)
        except RecommendError as err:
            log.warning("cannot load %s (version %s): %s", self.source, seen, err)
            return None

    def _shared(self) -> dict[str, Any]:
        if self.sync_dir is None:
            return {}
        path = self.sync_dir / GENERATION_FILE
        if not path.is_file():
            return {}
        try:
            found = read_json(path)
        except RecommendError:
            return {}
        return found if isinstance(found, dict) else {}
