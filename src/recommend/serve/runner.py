"""Running the service under uvicorn: one process, or a supervisor and N workers.

SIGTERM (or Ctrl-C) stops the server gracefully: it stops accepting connections, lets the
requests in flight finish (up to ``graceful_seconds``), then exits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from typing import Any

from recommend.serve.app import ServeApp, create_app
from recommend.serve.config import ENV_CONFIG, ServeConfig, default_workers
from recommend.serve.holder import ModelHolder

__all__ = ["app_from_env", "default_workers", "log_config", "run"]

log = logging.getLogger(__name__)

#: Environment variables that keep numeric libraries to one thread per worker: a menu is
#: one small matrix-vector product, and N workers on N cores must not fight for them.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def app_from_env() -> ServeApp:
    """The app of one worker, its settings from :data:`~recommend.serve.config.ENV_CONFIG`
    (uvicorn's factory for ``--workers N``)."""
    return create_app(ServeConfig.from_env())


def log_config(access_log: bool, verbose: bool = False) -> dict[str, Any]:
    """Logging of a server: uvicorn's messages, and the access log as one JSON object per
    line on standard error (logger ``recommend.serve.access``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(message)s"},
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "recommend": {
                "handlers": ["default"],
                "level": "INFO" if verbose else "WARNING",
                "propagate": False,
            },
            "recommend.serve": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "recommend.serve.access": {
                "handlers": ["access"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
        },
    }


def run(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = True,
    graceful_seconds: float = 30.0,
    verbose: bool = False,
) -> None:
    """Serve ``config`` until SIGTERM or Ctrl-C.

    The model is loaded once here first, so that a bad ``--model`` fails before the
    server starts (``ArtifactError``, ``TrackingError``); one worker serves that very
    model, several workers each load their own.
    """
    import uvicorn

    holder = ModelHolder(config.model)
    holder.load()
    workers = config.workers
    sync_dir = None
    if workers > 1:
        for name in _ONE_THREAD:
            os.environ.setdefault(name, "1")
        sync_dir = tempfile.mkdtemp(prefix="recommend-serve-")
        config = dataclasses.replace(config, sync_dir=sync_dir)
        os.environ[ENV_CONFIG] = config.to_json()
        del holder
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_config": log_config(access_log, verbose),
        "timeout_graceful_shutdown": graceful_seconds,
        "server_header": False,
    }
    try:
        if workers > 1:
            uvicorn.run(
                "recommend.serve.runner:app_from_env", factory=True, workers=workers, **options
            )
        else:
            uvicorn.run(create_app(config, holder), **options)
    finally:
        if sync_dir is not None:
            shutil.rmtree(sync_dir, ignore_errors=True)
