"""The settings of a ``recommend serve`` process, passed to its workers as one JSON value."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from recommend.errors import ConfigError

__all__ = ["ENV_CONFIG", "ServeConfig", "default_workers"]

#: Environment variable that carries the settings to the worker processes.
ENV_CONFIG = "RECOMMEND_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """What a server serves and its limits.

    Attributes
    ----------
    model : str
        An artifact folder or a registry URI (``models:/NAME@champion``).
    token : str or None
        Bearer token of ``POST /v1/events`` and ``POST /admin/reload``; ``None``: those
        endpoints answer 403.
    max_n : int
        Largest ``n`` a request may ask for.
    max_members : int
        Most members one menu request may name.
    max_body_bytes : int
        Largest request body (413 beyond).
    max_event_bytes : int
        Largest body of ``POST /v1/events``.
    log_members : bool
        Access log lines name the members a request asked for.
    watch_seconds : float or None
        Check the registry alias (``models:/NAME@ALIAS``) this often and load a new
        version when it moves.
    sync_dir : str or None
        A folder the workers of one server share: a reload by one worker is picked up by
        the others from the file it writes there.
    sync_seconds : float
        How often a worker looks at ``sync_dir``.
    workers : int
        Worker processes of the server (ingestion needs exactly one).
    """

    model: str
    token: str | None = None
    max_n: int = 1000
    max_members: int = 1000
    max_body_bytes: int = 1 << 20
    max_event_bytes: int = 16 << 20
    log_members: bool = False
    watch_seconds: float | None = None
    sync_dir: str | None = None
    sync_seconds: float = 0.5
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("max_n", "max_members", "max_body_bytes", "max_event_bytes", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r}; expected a whole number >= 1")
        if self.watch_seconds is not None and not self.watch_seconds > 0:
            raise ConfigError(f"watch_seconds={self.watch_seconds!r}; expected seconds > 0")
        if not self.sync_seconds > 0:
            raise ConfigError(f"sync_seconds={self.sync_seconds!r}; expected seconds > 0")
        if self.token is not None and not self.token.strip():
            raise ConfigError("token is empty; expected a secret string, or no token")

    def to_json(self) -> str:
        """The settings as one JSON object."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Settings written by :meth:`to_json`."""
        values = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_env(cls) -> ServeConfig:
        """The settings the server process put in :data:`ENV_CONFIG`."""
        text = os.environ.get(ENV_CONFIG)
        if not text:
            raise ConfigError(
                f"{ENV_CONFIG} is not set; start the service with `recommend serve --model ...`"
            )
        return cls.from_json(text)


def default_workers() -> int:
    """Worker processes by default: one per core this process may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))
