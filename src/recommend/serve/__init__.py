"""``recommend serve``: the library's verbs as an HTTP service (ASGI, FastAPI on uvicorn).

- :mod:`recommend.serve.app`: the endpoints (``create_app``), errors as JSON, the edge
  every request goes through (body limit, version header, metrics, access log).
- :mod:`recommend.serve.schemas`: the request bodies (the OpenAPI description).
- :mod:`recommend.serve.holder`: the model in service and its atomic hot swap.
- :mod:`recommend.serve.metrics`: Prometheus counters and latency histogram.
- :mod:`recommend.serve.config`: a server's settings; :mod:`recommend.serve.runner`:
  running it under uvicorn (one or N workers, graceful SIGTERM).

See ``docs/serving.md`` for the endpoints and examples.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the command line reads the defaults (``config``) without paying
# for the web stack.
_LAZY = {
    "VERSION_HEADER": "recommend.serve.app",
    "ServeApp": "recommend.serve.app",
    "create_app": "recommend.serve.app",
    "ServeConfig": "recommend.serve.config",
    "default_workers": "recommend.serve.config",
    "ModelHolder": "recommend.serve.holder",
    "Served": "recommend.serve.holder",
    "run": "recommend.serve.runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recommend.serve' has no attribute {name!r}")


__all__ = [
    "VERSION_HEADER",
    "ModelHolder",
    "ServeApp",
    "ServeConfig",
    "Served",
    "create_app",
    "default_workers",
    "run",
]
