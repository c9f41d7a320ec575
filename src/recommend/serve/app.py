"""The HTTP service: the library's verbs as JSON endpoints (an ASGI app on FastAPI).

Every endpoint calls the public function of its verb (``member_menu``'s engine rows,
``order_for_group``, ``search``, ``suggest``, ``similar_courses``, ``lecturer_menu``,
``compulsory_courses``, ``ingest``) on the model in service and answers its rows as JSON
records, with the ``model_version`` that answered (also in the ``x-model-version`` header
of every response). Errors of the library become HTTP 400 with its message
(``{"error", "column", "rows", "problems"}``); unknown courses (and members, with
``unknown="raise"``) 404; bodies over the limit 413; anything else 500 without a
traceback (it is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from recommend.data.ids import normalise_id
from recommend.engine import ROUTES, MemberRequest, MenuOptions, serving_state
from recommend.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    RecommendError,
    TrackingError,
)
from recommend.group import order_for_group
from recommend.menu import (
    MENU_COLUMNS,
    compulsory_courses,
    lecturer_menu,
    member_menu_rows,
    serve_member_menus,
)
from recommend.models.ingest import ingest
from recommend.search import search, suggest
from recommend.serve.config import ServeConfig
from recommend.serve.holder import ModelHolder, Served
from recommend.serve.metrics import CONTENT_TYPE, Metrics
from recommend.serve.schemas import (
    CompulsoryRequest,
    ErrorBody,
    EventsRequest,
    GroupRequest,
    LecturerRequest,
    MenuRequest,
    ReloadRequest,
    SearchRequest,
    SimilarRequest,
    SuggestRequest,
)
from recommend.similar import similar_courses
from recommend.version import __version__

__all__ = ["VERSION_HEADER", "NotFound", "ServeApp", "create_app", "error_body", "records"]

log = logging.getLogger(__name__)
access = logging.getLogger("recommend.serve.access")

#: Response header naming the model version that answered.
VERSION_HEADER = "x-model-version"
#: Endpoints counted by name in the metrics; anything else is ``other``.
_ENDPOINTS = frozenset(
    {
        "/v1/menus",
        "/v1/compulsory",
        "/v1/group-menus",
        "/v1/search",
        "/v1/suggest",
        "/v1/similar",
        "/v1/lecturers",
        "/v1/events",
        "/admin/reload",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: What a request's handlers write down for the edge (``model_version``, ``members``).
State = MutableMapping[str, Any]
#: A quick verb: its request body and request state in, its JSON answer out.
Handler = Callable[[Any, State], dict[str, Any]]
#: Whether a request body asks for more than one member's answer (then it is answered in
#: a worker thread, so the event loop goes on reading the other requests).
Heavy = Callable[[Any], bool]


def _many(body: Any) -> bool:
    ids = getattr(body, "member_ids", None)
    return ids is not None and len(ids) > 1


def _single(body: Any) -> bool:
    return False


_OPTION = re.compile(r"^(\w+)\b")
#: Option names of every request body: a library message that starts with one names it.
_FIELDS = frozenset(
    name
    for body in (
        CompulsoryRequest,
        EventsRequest,
        GroupRequest,
        LecturerRequest,
        MenuRequest,
        SearchRequest,
        SimilarRequest,
        SuggestRequest,
    )
    for name in body.model_fields
)
_ROUTE_NAMES = np.asarray(ROUTES, dtype=object)
#: Fields of a menu request that are not menu options.
_NOT_OPTIONS: set[str] = {"member_id", "member_ids", "member_attributes"}
#: Distinct menu option sets a server keeps checked.
_OPTION_SETS = 256


# ---------------------------------------------------------------------------- JSON
def _default(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


class JSON(Response):
    """A JSON response written by orjson (UTF-8, NaN as null)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (numpy values as Python values, NaN as null)."""
    columns = [str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


# ---------------------------------------------------------------------------- errors
class NotFound(Exception):
    """A resource the request names does not exist (404), with the library's message."""


class Unauthorized(Exception):
    """A guarded endpoint without the right token (401) or without any token set (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _TooLarge(Exception):
    pass


def error_body(err: BaseException, version: str | None) -> dict[str, Any]:
    """``{"error", "column", "rows", "problems", "model_version"}`` of a library error."""
    column: str | None = None
    rows: list[int] | None = None
    problems: list[dict[str, Any]] = []
    if isinstance(err, DataError) and err.problems:
        first = err.problems[0]
        column, rows = first.column, list(first.rows)
        problems = [
            {
                "table": p.table,
                "column": p.column,
                "message": p.message,
                "rows": list(p.rows),
                "count": p.count,
                "expected": p.expected,
            }
            for p in err.problems
        ]
    else:
        found = _OPTION.match(str(err))
        column = found.group(1) if found and found.group(1) in _FIELDS else None
    return {
        "error": str(err),
        "column": column,
        "rows": rows,
        "problems": problems,
        "model_version": version,
    }


def _validation_body(errors: Sequence[Any], version: str | None) -> dict[str, Any]:
    """Pydantic's findings in the library's words: ``request.FIELD: what; got ...``."""
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    column = next((str(p) for p in loc if isinstance(p, str)), None)
    rows = [p for p in loc if isinstance(p, int)] or None
    where = ".".join(str(p) for p in loc) or "body"
    value = first.get("input")
    shown = "" if first.get("type") == "missing" else f"; got {value!r}"[:200]
    message = f"request.{where}: {first.get('msg', 'invalid value')}{shown}"
    more = len(errors) - 1
    if more > 0:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return {
        "error": message,
        "column": column,
        "rows": rows,
        "problems": [],
        "model_version": version,
    }


# ---------------------------------------------------------------------------- app
def create_app(config: ServeConfig, holder: ModelHolder | None = None) -> ServeApp:
    """The ASGI app serving ``config.model``.

    Parameters
    ----------
    config
        What to serve and the limits.
    holder
        The model holder (a new one for ``config.model`` by default; the model is loaded
        when the app starts).
    """
    holder = holder if holder is not None else ModelHolder(config.model, config.sync_dir)
    metrics = Metrics()

    def version() -> str | None:
        return holder.current.version if holder.ready else None

    def in_service(served: Served) -> None:
        metrics.model_version = served.version
        metrics.model_source = served.source

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not holder.ready:
            await run_in_threadpool(holder.load)
        in_service(holder.current)
        log.info("serving model %s from %s", holder.current.version, holder.source)
        task = asyncio.create_task(_poll(holder, config, metrics, in_service))
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(
        title="recommend",
        version=__version__,
        description="Course menus, group menus, search and similar courses from a "
        "recommend model. Every answer carries the model_version that produced it.",
        lifespan=lifespan,
        default_response_class=JSON,
    )
    app.state.holder = holder
    app.state.metrics = metrics

    # -------------------------------------------------------------- error handlers
    @app.exception_handler(RecommendError)
    async def library_error(request: Request, err: RecommendError) -> Response:
        status = 503 if isinstance(err, ArtifactError | TrackingError) else 400
        return JSON(error_body(err, version()), status_code=status)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, err: NotFound) -> Response:
        return JSON(error_body(err, version()), status_code=404)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, err: Unauthorized) -> Response:
        headers = {"www-authenticate": "Bearer"} if err.status == 401 else None
        return JSON(error_body(err, version()), status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> Response:
        return JSON(_validation_body(err.errors(), version()), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        body: dict[str, Any] = {
            "error": str(err.detail),
            "column": None,
            "rows": None,
            "problems": [],
        }
        return JSON({**body, "model_version": version()}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        body = {"error": "internal error (logged by the server)", "column": None, "rows": None}
        return JSON({**body, "problems": [], "model_version": version()}, status_code=500)

    def guard(request: Request) -> None:
        if config.token is None:
            raise Unauthorized(
                "this endpoint is disabled: start the server with a token "
                "(RECOMMEND_SERVE_TOKEN) to enable it",
                403,
            )
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), config.token.encode()
        ):
            raise Unauthorized("missing or wrong bearer token (Authorization: Bearer ...)", 401)

    def answered(state: State, served: Served) -> str:
        state["model_version"] = served.version
        return served.version

    def check_n(n: int) -> None:
        if isinstance(n, int) and n > config.max_n:
            raise DataError(f"n={n} is above this server's limit of {config.max_n} (--max-n)")

    def members_of(member_id: Any, member_ids: Any, state: State) -> Any:
        if (member_id is None) == (member_ids is None):
            raise DataError("give one of member_id (one member) or member_ids (a list)")
        if member_ids is not None and len(member_ids) > config.max_members:
            raise DataError(
                f"member_ids has {len(member_ids)} members; this server answers at most "
                f"{config.max_members} per request (--max-members)"
            )
        if config.log_members:
            state["members"] = [member_id] if member_ids is None else member_ids
        return member_id if member_ids is None else member_ids

    def table(rows: list[dict[str, Any]] | None, name: str) -> pd.DataFrame | None:
        if rows is None:
            return None
        try:
            return pd.DataFrame.from_records(rows)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name}: expected a list of records (objects): {err}") from None

    # Requests mostly repeat a few option sets: each is checked once (MenuOptions is
    # frozen and its checks depend on the values alone), at most _OPTION_SETS kept.
    option_sets: dict[tuple[tuple[str, type, Any], ...], MenuOptions] = {}

    def menu_options(fields: dict[str, Any]) -> MenuOptions:
        # Types in the key: 1, 1.0 and True are equal keys but not equal options.
        key = tuple((name, type(value), value) for name, value in fields.items())
        try:
            return option_sets[key]
        except KeyError:
            pass
        except TypeError:  # a list value: not a key
            return MenuOptions(**fields)
        options = MenuOptions(**fields)
        if len(option_sets) >= _OPTION_SETS:
            option_sets.clear()
        option_sets[key] = options
        return options

    # -------------------------------------------------------------- verbs
    # The quick verbs are plain functions of (body, request state): the FastAPI routes
    # below call them, and so does ``ServeApp``'s short path, which answers them without
    # FastAPI's per-request machinery (see ``ServeApp``).
    def answer_menus(body: MenuRequest, state: State) -> dict[str, Any]:
        served = holder.current
        model = served.model
        ids = members_of(body.member_id, body.member_ids, state)
        check_n(body.n)
        options = menu_options(body.model_dump(exclude=_NOT_OPTIONS))
        attributes = table(body.member_attributes, "member_attributes")
        notes = None
        if options.auto_minutes:
            frame = serve_member_menus(model, ids, options, attributes)
            rows = records(frame)
            notes = frame.attrs.get("notes")
            metrics.served_routes(frame["route"].value_counts().to_dict())
        else:
            try:
                found, req, menu_state = member_menu_rows(model, ids, options, attributes)
            except DataError as err:
                if options.unknown == "raise" and _unknown_members(model, ids):
                    raise NotFound(str(err)) from None
                raise
            rows = _menu_records(found, req.ids, menu_state.course_ext)
            if found.route.size:
                counts = np.bincount(found.route, minlength=len(ROUTES)).tolist()
                metrics.served_routes({r: c for r, c in zip(ROUTES, counts, strict=True) if c})
        out: dict[str, Any] = {"model_version": answered(state, served), "rows": rows}
        if notes is not None:
            out["notes"] = notes
        return out

    def answer_compulsory(body: CompulsoryRequest, state: State) -> dict[str, Any]:
        served = holder.current
        ids = members_of(body.member_id, body.member_ids, state)
        frame = compulsory_courses(
            served.model,
            [ids] if body.member_ids is None else ids,
            only_published=body.only_published,
            now=body.now,
            member_attributes=table(body.member_attributes, "member_attributes"),
            unknown=body.unknown,  # type: ignore[arg-type]
            lang=body.lang,  # type: ignore[arg-type]
        )
        return {"model_version": answered(state, served), "rows": records(frame)}

    def answer_search(body: SearchRequest, state: State) -> dict[str, Any]:
        served = holder.current
        members_of(body.member_id, None, state)
        check_n(body.n)
        options = body.model_dump(exclude={"member_id", "query", "member_attributes"})
        frame = search(
            served.model,
            body.member_id,
            body.query,
            member_attributes=table(body.member_attributes, "member_attributes"),
            **options,
        )
        attrs = frame.attrs
        return {
            "model_version": answered(state, served),
            "rows": records(frame),
            "query": attrs.get("query"),
            "words": list(attrs.get("words", ())),
            "route": attrs.get("route"),
            "notes": list(attrs.get("notes", ())),
        }

    def answer_suggest(body: SuggestRequest, state: State) -> dict[str, Any]:
        served = holder.current
        members_of(body.member_id, None, state)
        check_n(body.n)
        frame = suggest(
            served.model,
            body.member_id,
            body.prefix,
            body.n,
            member_attributes=table(body.member_attributes, "member_attributes"),
        )
        return {"model_version": answered(state, served), "rows": records(frame)}

    def answer_similar(body: SimilarRequest, state: State) -> dict[str, Any]:
        served = holder.current
        check_n(body.n)
        options = body.model_dump(exclude={"course_id"})
        try:
            frame = similar_courses(served.model, body.course_id, **options)
        except DataError as err:
            if not _known_course(served, body.course_id):
                raise NotFound(str(err)) from None
            raise
        return {"model_version": answered(state, served), "rows": records(frame)}

    def answer_lecturers(body: LecturerRequest, state: State) -> dict[str, Any]:
        served = holder.current
        members_of(body.member_id, None, state)
        check_n(body.n)
        options = body.model_dump(exclude={"member_id", "member_attributes"})
        frame = lecturer_menu(
            served.model,
            body.member_id,
            member_attributes=table(body.member_attributes, "member_attributes"),
            **options,
        )
        return {"model_version": answered(state, served), "rows": records(frame)}

    quick: dict[str, tuple[type[BaseModel], Handler, Heavy]] = {
        "/v1/menus": (MenuRequest, answer_menus, _many),
        "/v1/compulsory": (CompulsoryRequest, answer_compulsory, _many),
        "/v1/search": (SearchRequest, answer_search, _single),
        "/v1/suggest": (SuggestRequest, answer_suggest, _single),
        "/v1/similar": (SimilarRequest, answer_similar, _single),
        "/v1/lecturers": (LecturerRequest, answer_lecturers, _single),
    }

    @app.post("/v1/menus", tags=["menus"])
    async def menus(body: MenuRequest, request: Request) -> Response:
        """Member menus (``recommend.member_menu``), members in request order; 404 for
        unknown members with ``unknown="raise"``."""
        return JSON(await run_in_threadpool(answer_menus, body, _state(request)))

    @app.post("/v1/compulsory", tags=["menus"])
    async def compulsory(body: CompulsoryRequest, request: Request) -> Response:
        """The branch's compulsory courses still to study (``recommend.compulsory_courses``)."""
        return JSON(await run_in_threadpool(answer_compulsory, body, _state(request)))

    @app.post("/v1/search", tags=["search"])
    async def search_courses(body: SearchRequest, request: Request) -> Response:
        """Red search ranked for one member (``recommend.search.search``)."""
        return JSON(answer_search(body, _state(request)))

    @app.post("/v1/suggest", tags=["search"])
    async def suggest_text(body: SuggestRequest, request: Request) -> Response:
        """Completions of what a member is typing (``recommend.suggest``)."""
        return JSON(answer_suggest(body, _state(request)))

    @app.post("/v1/similar", tags=["menus"])
    async def similar(body: SimilarRequest, request: Request) -> Response:
        """The courses most like one course (``recommend.similar_courses``); 404 for a
        course the model does not know."""
        return JSON(answer_similar(body, _state(request)))

    @app.post("/v1/lecturers", tags=["menus"])
    async def lecturers(body: LecturerRequest, request: Request) -> Response:
        """Lecturers ranked for one member (``recommend.lecturer_menu``)."""
        return JSON(answer_lecturers(body, _state(request)))

    @app.post("/v1/group-menus", tags=["group"])
    async def group_menus(body: GroupRequest, request: Request) -> Response:
        """A group menu (``recommend.order_for_group``) and how it serves each member."""
        served = holder.current
        check_n(body.n)
        members = body.members
        if isinstance(members, list) and len(members) > config.max_members * 100:
            raise DataError(
                f"members has {len(members)} ids; this server takes at most "
                f"{config.max_members * 100} in a group (name an org or filters instead)"
            )
        options = body.model_dump(exclude={"members", "member_table"})
        member_table = table(body.member_table, "member_table")
        result = await run_in_threadpool(
            order_for_group, served.model, members, member_table=member_table, **options
        )
        total = result.total_minutes
        return JSON(
            {
                "model_version": answered(_state(request), served),
                "strategy": result.strategy,
                "menu": records(result.menu),
                "members": records(result.members),
                "notes": list(result.notes),
                "unknown": np.asarray(result.unknown).tolist(),
                "lecturers": None if result.lecturers is None else records(result.lecturers),
                "total_minutes": None if total is None or np.isnan(total) else float(total),
                "coverage": result.coverage,
            }
        )

    @app.post("/v1/events", tags=["live"])
    async def events(body: EventsRequest, request: Request) -> Response:
        """Fold new events into the model in service (``recommend.ingest``); needs the
        bearer token and a one-worker server (each worker holds its own model)."""
        guard(request)
        if config.workers != 1:
            raise ConfigError(
                f"ingestion needs a server of one worker (this one has {config.workers}): "
                "each worker holds its own copy of the model; start it with --workers 1"
            )
        served = holder.current
        frame = table(body.events, "events")
        result = await run_in_threadpool(ingest, served.model, frame)
        return JSON(
            {
                "model_version": answered(_state(request), served),
                "snapshot": result.version,
                "events": result.events,
                "members": result.members,
                "new_members": result.new_members,
                "new_courses": list(result.new_courses),
            }
        )

    # -------------------------------------------------------------- operations
    @app.post("/admin/reload", tags=["operations"])
    async def reload(request: Request, body: ReloadRequest | None = None) -> Response:
        """Load the model (again, or ``model``) beside the one in service, then swap."""
        guard(request)
        old = holder.current.version
        try:
            served = await run_in_threadpool(holder.reload, body.model if body else None)
        except RecommendError:
            metrics.reloaded("failed")
            raise
        metrics.reloaded("ok")
        in_service(served)
        return JSON(
            {
                "model_version": answered(_state(request), served),
                "previous_version": old,
                "source": served.source,
            }
        )

    @app.get("/health", tags=["operations"])
    async def health() -> Response:
        """The process answers."""
        return JSON({"status": "ok"})

    @app.get("/ready", tags=["operations"])
    async def ready(request: Request) -> Response:
        """A model is in service (503 otherwise)."""
        if not holder.ready:
            return JSON({"status": "loading", "model_version": None}, status_code=503)
        served = holder.current
        return JSON(
            {
                "status": "ready",
                "model_version": answered(_state(request), served),
                "source": served.source,
                "loaded_at": served.loaded_at,
            }
        )

    @app.get("/metrics", tags=["operations"])
    async def prometheus() -> Response:
        """Prometheus text format: requests, latency histogram, routes, model version."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    _describe_errors(app)
    return ServeApp(app, config, metrics, version, quick)


#: Error answers every verb may give, for the OpenAPI description.
_ERRORS = {
    "400": "the library refused the request (bad option, value or table)",
    "404": "an unknown course, or unknown members with unknown=raise",
    "413": "the body is over the server's limit",
    "503": "the model cannot be loaded or read",
}


def _describe_errors(app: FastAPI) -> None:
    """OpenAPI: our error answers (:class:`ErrorBody`) instead of FastAPI's 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, operations in spec.get("paths", {}).items():
            for operation in operations.values():
                answers = operation.setdefault("responses", {})
                answers.pop("422", None)
                if path.startswith(("/v1/", "/admin/")):
                    for code, text in _ERRORS.items():
                        answers[code] = {
                            "description": text,
                            "content": {"application/json": {"schema": ref}},
                        }
                if path in ("/v1/events", "/admin/reload"):
                    answers["401"] = {
                        "description": "missing or wrong bearer token",
                        "content": {"application/json": {"schema": ref}},
                    }
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _state(request: Request) -> State:
    """The request's state as the edge reads it (``scope["state"]``)."""
    state: State = request.scope.setdefault("state", {})
    return state


def _menu_records(found: Any, ids: np.ndarray, course_ext: np.ndarray) -> list[dict[str, Any]]:
    """The engine's menu rows as ``member_menu``'s records (``MENU_COLUMNS``)."""
    size = found.pos.size
    reason = found.reason.tolist() if found.reason is not None else [""] * size
    columns = (
        ids[found.pos].tolist(),
        course_ext[found.course].tolist(),
        found.score.tolist(),
        found.rank.tolist(),
        reason,
        _ROUTE_NAMES[found.route].tolist(),
    )
    return [dict(zip(MENU_COLUMNS, row, strict=True)) for row in zip(*columns, strict=True)]


def _unknown_members(model: Any, ids: Any) -> bool:
    """Some of the request's members are unknown to the model."""
    state = serving_state(model)
    with model.reading():
        request = MemberRequest.make(model, state, ids, None, "fallback")
    return bool((request.idx < 0).any())


def _known_course(served: Served, course_id: Any) -> bool:
    value = normalise_id(course_id) if isinstance(course_id, str) else course_id
    return bool(served.model.course_ids_.to_index([value], unknown="mask")[0] >= 0)


async def _poll(
    holder: ModelHolder,
    config: ServeConfig,
    metrics: Metrics,
    in_service: Callable[[Served], None],
) -> None:
    """Follow reloads of the other workers, and the registry alias with ``watch_seconds``."""
    next_watch = time.monotonic()
    while True:
        await asyncio.sleep(config.sync_seconds)
        try:
            served = await run_in_threadpool(holder.follow)
            if served is None and config.watch_seconds and time.monotonic() >= next_watch:
                next_watch = time.monotonic() + config.watch_seconds
                served = await run_in_threadpool(holder.watch)
            if served is not None:
                metrics.reloaded("ok")
                in_service(served)
        except RecommendError as err:
            metrics.reloaded("failed")
            log.warning("reload failed, the model in service stays: %s", err)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reload failed, the model in service stays")


# ---------------------------------------------------------------------------- edge


class ServeApp:
    """The ASGI app ``create_app`` returns: the FastAPI app (``.app``, with its
    ``openapi()``) behind what every request goes through: the body limit, the model
    version header, the metrics and one structured access log line (member ids only with
    ``log_members``)."""

    def __init__(
        self,
        app: FastAPI,
        config: ServeConfig,
        metrics: Metrics,
        version: Callable[[], str | None],
        quick: dict[str, tuple[type[BaseModel], Handler, Heavy]],
    ) -> None:
        self.app = app
        self.quick = quick
        self.config = config
        self.metrics = metrics
        self.version = version
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in _ENDPOINTS else "other"
        limit = self.config.max_event_bytes if path == "/v1/events" else self.config.max_body_bytes
        status = 500
        sent = False
        self.metrics.started()

        if scope["method"] == "POST":
            _json_body(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            status = 413
            await self._too_large(send, limit)
            self._done(scope, endpoint, status, start)
            return

        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def send_with_version(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = True
                state = scope.get("state") or {}
                version = state.get("model_version") or self.version() or ""
                headers = list(message.get("headers", []))
                headers.append((VERSION_HEADER.encode(), version.encode()))
                message["headers"] = headers
            await send(message)

        route = self.quick.get(path) if scope["method"] == "POST" else None
        try:
            if route is None:
                await self.app(scope, limited_receive, send_with_version)
            else:
                await self._answer(scope, limited_receive, send_with_version, *route)
        except _TooLarge:
            if not sent:
                status = 413
                await self._too_large(send, limit)
        finally:
            self._done(scope, endpoint, status, start)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: type[BaseModel],
        handler: Handler,
        heavy: Heavy,
    ) -> None:
        """A quick verb: read the body, validate it against its model, answer (in the
        event loop for one member: a menu takes a millisecond; in a worker thread for
        more); errors as the FastAPI app's handlers give them."""
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        state: State = scope.setdefault("state", {})
        status = 200
        content: dict[str, Any]
        try:
            request = body.model_validate(orjson.loads(b"".join(chunks)))
            if heavy(request):
                content = await run_in_threadpool(handler, request, state)
            else:
                content = handler(request, state)
        except orjson.JSONDecodeError as err:
            status = 400
            content = {
                "error": f"request body is not JSON: {err}",
                "column": None,
                "rows": None,
                "problems": [],
                "model_version": self.version(),
            }
        except ValidationError as err:
            status, content = 400, _validation_body(err.errors(), self.version())
        except NotFound as err:
            status, content = 404, error_body(err, self.version())
        except RecommendError as err:
            status = 503 if isinstance(err, ArtifactError | TrackingError) else 400
            content = error_body(err, self.version())
        except Exception:
            log.exception("internal error on %s", scope["path"])
            status = 500
            content = {
                "error": "internal error (logged by the server)",
                "column": None,
                "rows": None,
                "problems": [],
                "model_version": self.version(),
            }
        await _send(send, status, _dumps(content))

    async def _too_large(self, send: Send, limit: int) -> None:
        body = _dumps(
            {
                "error": f"request body is larger than this server's limit of {limit} bytes",
                "column": None,
                "rows": None,
                "problems": [],
                "model_version": self.version(),
            }
        )
        await _send(send, 413, body)

    def _done(self, scope: Scope, endpoint: str, status: int, start: float) -> None:
        seconds = time.perf_counter() - start
        self.metrics.finished(endpoint, scope["method"], status, seconds)
        if access.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            line: dict[str, Any] = {
                "method": scope["method"],
                "endpoint": endpoint,
                "status": status,
                "ms": round(seconds * 1000, 3),
                "model_version": state.get("model_version") or self.version(),
            }
            if self.config.log_members and "members" in state:
                line["members"] = state["members"]
            access.info(_dumps(line).decode())


async def _send(send: Send, status: int, body: bytes) -> None:
    """A JSON response in two messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _json_body(scope: Scope) -> None:
    """Read every POST body as JSON, whatever content type the client sent (``curl -d``
    sends a form's): the endpoints take nothing else."""
    headers = scope.get("headers") or []
    kept = [(k, v) for k, v in headers if k != b"content-type"]
    if len(kept) == len(headers) or not any(
        k == b"content-type" and v.startswith(b"application/json") for k, v in headers
    ):
        scope["headers"] = [*kept, (b"content-type", b"application/json")]


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
