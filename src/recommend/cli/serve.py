"""``recommend serve``: the library's verbs over HTTP (see ``docs/serving.md``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["TOKEN_ENV", "add_serve_verb", "cmd_serve"]

#: Environment variable holding the bearer token of ingestion and reloads (a token on
#: the command line would show in the process list).
TOKEN_ENV = "RECOMMEND_SERVE_TOKEN"


def add_serve_verb(verbs: Any) -> None:
    """``recommend serve``: an HTTP service of menus, group menus, search and more."""
    from recommend.serve.config import default_workers

    sv = verbs.add_parser(
        "serve",
        help="serve menus, group menus, search, similar courses over HTTP (JSON)",
        description="An HTTP service (JSON) of the library's verbs for one model: "
        "POST /v1/menus, /v1/compulsory, /v1/group-menus, /v1/search, /v1/suggest, "
        "/v1/similar, /v1/lecturers, /v1/events (token), /admin/reload (token); GET "
        "/health, /ready, /metrics, /openapi.json, /docs. SIGTERM stops it gracefully. "
        f"The bearer token of /v1/events and /admin/reload is read from ${TOKEN_ENV}.",
    )
    sv.add_argument(
        "--model", required=True, help="artifact folder or registry URI (models:/NAME@champion)"
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=int, default=8000, help="port to listen on")
    sv.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes (default: one per core, here %(default)s); ingestion "
        "(/v1/events) needs 1",
    )
    sv.add_argument("--max-n", type=int, default=1000, help="largest n a request may ask for")
    sv.add_argument(
        "--max-members", type=int, default=1000, help="most members in one menu request"
    )
    sv.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="largest request body (413 beyond)"
    )
    sv.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="check a models:/NAME@ALIAS alias this often and serve the version it moves to",
    )
    sv.add_argument(
        "--log-members",
        action="store_true",
        help="name the members of each request in the access log (off: no member ids)",
    )
    sv.add_argument("--no-access-log", action="store_true", help="no access log lines")
    sv.add_argument(
        "--graceful-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, wait this long for requests in flight",
    )
    sv.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the model, then serve until SIGTERM or Ctrl-C."""
    from recommend.serve.config import ServeConfig
    from recommend.serve.runner import run

    token = os.environ.get(TOKEN_ENV) or None
    config = ServeConfig(
        model=args.model,
        token=token,
        max_n=args.max_n,
        max_members=args.max_members,
        max_body_bytes=args.max_body_bytes,
        log_members=args.log_members,
        watch_seconds=args.watch,
        workers=args.workers,
    )
    run(
        config,
        host=args.host,
        port=args.port,
        access_log=not args.no_access_log,
        graceful_seconds=args.graceful_seconds,
        verbose=args.verbose,
    )
    return 0
