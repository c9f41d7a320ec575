"""MLflow pyfunc flavour: a loaded model answers request frames with member menus.

A pyfunc model written by ``recommend.registry.save_pyfunc`` names this module as its
loader: MLflow calls ``_load_pyfunc`` with the folder of our artifact, which is read by
``recommend.load`` (no pickle), and gets a ``MenuService`` whose ``predict`` answers
requests. So both

>>> menus = mlflow.pyfunc.load_model("models:/menus@champion").predict(requests)  # doctest: +SKIP

and ``mlflow models serve -m models:/menus@champion --env-manager local`` (answering
``/invocations``) give menus.

A request frame has one row per menu wanted: ``member_id`` (required) and optional ``n``
(a whole number, default ``DEFAULT_N``), ``max_minutes``, ``channel``, ``query``,
``lang`` (the language of the reasons: ``zh``, the default, or ``en``) and ``compulsory``
(true: the member's branch's compulsory courses still to study, 本支部必学, route
``compulsory``, instead of the menu, which pins at most two of them).
Missing or null options mean "not set". Rows without a query get the member menu
(``member_menu``); rows with a query get the personalised search ranking
(``recommend.search.search``, route ``search:<member route>``; a query of only stop words
gives no rows). The answer has the columns of ``Recommender.recommend`` / ``member_menu``
(``member_id, course_id, score, rank, reason, route``), menus in request order.

Saving, logging, registering and loading registered models is ``recommend.registry``; its
names (``save_pyfunc``, ``log_pyfunc``, ``register``, ``register_artifact``,
``load_registered``, ``Registration``, ``model_name``, ``CHAMPION``) are re-exported here
and keep working from ``recommend.serving``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recommend.artifact import load
from recommend.errors import DataError, Problem, RecommendError
from recommend.menu import MENU_COLUMNS, compulsory_courses, member_menu
from recommend.messages import DEFAULT_LANG, LANGS, Lang, check_lang

# The registry's names, re-exported: importing them from here keeps working.
from recommend.registry import (
    CHAMPION,
    Registration,
    load_registered,
    log_pyfunc,
    model_name,
    register,
    register_artifact,
    save_pyfunc,
)
from recommend.registry import DATA_PATH as DATA_PATH
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "CHAMPION",
    "DEFAULT_N",
    "REQUEST_COLUMNS",
    "MenuService",
    "Registration",
    "ServedMenus",
    "load_registered",
    "log_pyfunc",
    "model_name",
    "register",
    "register_artifact",
    "save_pyfunc",
]

log = logging.getLogger(__name__)

#: Menu length when a request row sets no ``n``.
DEFAULT_N = 10
#: Columns a request frame may carry (``member_id`` is required).
REQUEST_COLUMNS = ("member_id", "n", "max_minutes", "channel", "query", "lang", "compulsory")
#: Largest ``n`` one request row may ask for.
MAX_N = 1000


# ---------------------------------------------------------------------------- predicting
@dataclass(frozen=True)
class _Request:
    n: int
    max_minutes: float | None
    channel: str | None
    query: str | None
    lang: Lang = DEFAULT_LANG
    compulsory: bool = False


def _unset(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _option(frame: pd.DataFrame, column: str) -> list[Any]:
    if column not in frame.columns:
        return [None] * len(frame)
    return [None if _unset(v) else v for v in frame[column].tolist()]


def _parse_requests(frame: pd.DataFrame) -> tuple[list[str], list[_Request]]:
    """Check a request frame; every bad value is reported with its row at once."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"a request must be a pandas DataFrame with a {Columns.MEMBER!r} column, "
            f"got {type(frame).__name__}"
        )
    if Columns.MEMBER not in frame.columns:
        raise DataError(
            f"request frame has no {Columns.MEMBER!r} column (columns: {list(frame.columns)}); "
            f"expected {Columns.MEMBER} plus optional {', '.join(REQUEST_COLUMNS[1:])}"
        )
    problems: list[Problem] = []

    def bad(column: str, rows: list[int], values: list[Any], expected: str) -> None:
        if rows:
            problems.append(
                Problem(
                    "requests",
                    column,
                    expected,
                    rows=tuple(rows[:5]),
                    count=len(rows),
                    values=tuple(values[:5]),
                )
            )

    members = _option(frame, Columns.MEMBER)
    missing = [i for i, m in enumerate(members) if m is None]
    bad(Columns.MEMBER, missing, [None] * len(missing), "a member id in every row")

    ns: list[int] = []
    n_rows: list[int] = []
    n_values: list[Any] = []
    for i, value in enumerate(_option(frame, "n")):
        if value is None:
            ns.append(DEFAULT_N)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (number.is_integer() and 1 <= number <= MAX_N):
            n_rows.append(i)
            n_values.append(value)
            ns.append(DEFAULT_N)
        else:
            ns.append(int(number))
    bad("n", n_rows, n_values, f"a whole number of courses from 1 to {MAX_N}")

    minutes: list[float | None] = []
    m_rows: list[int] = []
    m_values: list[Any] = []
    for i, value in enumerate(_option(frame, "max_minutes")):
        given: float | None
        try:
            given = None if value is None else float(value)
        except (TypeError, ValueError):
            given = math.nan
        if given is not None and not (math.isfinite(given) and given > 0):
            m_rows.append(i)
            m_values.append(value)
            given = None
        minutes.append(given)
    bad("max_minutes", m_rows, m_values, "a positive number of minutes")

    channels = [None if v is None else str(v).strip() for v in _option(frame, "channel")]
    queries = [None if v is None else str(v) for v in _option(frame, "query")]
    langs: list[Lang] = []
    l_rows: list[int] = []
    l_values: list[Any] = []
    for i, value in enumerate(_option(frame, "lang")):
        code = DEFAULT_LANG if value is None else str(value).strip()
        if code not in LANGS:
            l_rows.append(i)
            l_values.append(value)
            code = DEFAULT_LANG
        langs.append(check_lang(code))
    bad("lang", l_rows, l_values, f"one of {', '.join(LANGS)}")
    flags: list[bool] = []
    f_rows: list[int] = []
    f_values: list[Any] = []
    for i, value in enumerate(_option(frame, "compulsory")):
        flag = _flag(value)
        if flag is None:
            f_rows.append(i)
            f_values.append(value)
        flags.append(bool(flag))
    bad("compulsory", f_rows, f_values, "true or false")
    if problems:
        raise DataError(problems)
    requests = [
        _Request(*options)
        for options in zip(ns, minutes, channels, queries, langs, flags, strict=True)
    ]
    return [str(m).strip() for m in members], requests


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _flag(value: Any) -> bool | None:
    """A request's yes/no value (unset: no); ``None`` when it is neither."""
    if value is None:
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _compulsory_list(model: Recommender, member_id: str, request: _Request) -> pd.DataFrame:
    """The member's compulsory courses still to study, in the menu's columns."""
    found = compulsory_courses(model, [member_id], lang=request.lang)
    return found.head(request.n).assign(**{Columns.ROUTE: "compulsory"})


def _search_menu(model: Recommender, member_id: str, request: _Request) -> pd.DataFrame:
    """A personalised search ranking in the menu's columns (``route`` from the search)."""
    from recommend.search import search

    found = search(
        model,
        member_id,
        request.query or "",
        n=request.n,
        channel=request.channel,
        max_minutes=request.max_minutes,
        lang=request.lang,
    )
    out = found.assign(**{Columns.MEMBER: member_id})
    out[Columns.ROUTE] = f"search:{found.attrs.get('route', 'personal')}"
    return out.loc[:, list(MENU_COLUMNS)]


class MenuService:
    """Answers request frames with menus from one loaded model (thread-safe, read-only).

    Parameters
    ----------
    model
        A fitted ``Recommender`` (usually from ``recommend.load``).
    """

    def __init__(self, model: Recommender) -> None:
        self.model = model

    def predict(
        self, model_input: pd.DataFrame, params: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Menus for each request row, in request order.

        Parameters
        ----------
        model_input
            ``member_id`` and optional ``n``, ``max_minutes``, ``channel``, ``query``,
            ``lang``.
        params
            Unused; accepted for the pyfunc protocol.

        Returns
        -------
        pandas.DataFrame
            ``member_id, course_id, score, rank, reason, route``; unknown members get the
            cold-start route, not an error.
        """
        members, requests = _parse_requests(model_input)
        if not members:
            return _empty_menu()
        parts: list[pd.DataFrame | None] = [None] * len(members)
        plain: dict[_Request, list[int]] = {}
        for row, request in enumerate(requests):
            if request.compulsory:
                parts[row] = _compulsory_list(self.model, members[row], request)
            elif request.query is not None:
                parts[row] = _search_menu(self.model, members[row], request)
            else:
                plain.setdefault(request, []).append(row)
        for request, rows in plain.items():
            unique = list(dict.fromkeys(members[r] for r in rows))
            menus = member_menu(
                self.model,
                unique,
                n=request.n,
                max_minutes=request.max_minutes,
                channel=request.channel,
                lang=request.lang,
            )
            by_member = dict(iter(menus.groupby(Columns.MEMBER, sort=False)))
            for row in rows:
                parts[row] = by_member.get(members[row])
        found = [p for p in parts if p is not None]
        if not found:
            return _empty_menu()
        out = pd.concat(found, ignore_index=True)
        return out.loc[:, list(MENU_COLUMNS)]


def _empty_menu() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Columns.MEMBER: pd.Series([], dtype=str),
            Columns.COURSE: pd.Series([], dtype=str),
            Columns.SCORE: pd.Series([], dtype=np.float32),
            Columns.RANK: pd.Series([], dtype=np.int32),
            Columns.REASON: pd.Series([], dtype=str),
            Columns.ROUTE: pd.Series([], dtype=str),
        }
    )


# ---------------------------------------------------------------------------- loading
def _load_pyfunc(data_path: str) -> MenuService:
    """The pyfunc loader: MLflow calls it with the folder of our artifact.

    Its module and name are MLflow's contract: every saved ``MLmodel`` file names this
    module (``recommend.registry.LOADER_MODULE``), and MLflow looks up ``_load_pyfunc``.
    """
    return ServedMenus(load(data_path))


class ServedMenus(MenuService):
    """The ``MenuService`` MLflow serves: the library's errors as MLflow's bad-request error.

    MLflow's scoring server (``mlflow models serve``) answers any other exception with a
    generic message, HTTP 500-style handling and the traceback sent to the client; an
    ``MlflowException`` with ``INVALID_PARAMETER_VALUE`` becomes HTTP 400 with its message
    and no traceback. So a bad request (``requests.n: a whole number of courses from 1 to
    1000 ...``) reaches the client as ``400 {"error_code": "INVALID_PARAMETER_VALUE",
    "message": "... requests.n: ..."}``. ``mlflow.pyfunc.load_model(...).predict`` raises
    the same ``MlflowException``; ``MenuService`` itself raises the library's errors.
    """

    def predict(
        self, model_input: pd.DataFrame, params: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """As :meth:`MenuService.predict`; a ``RecommendError`` becomes
        ``MlflowException.invalid_parameter_value`` with the same message."""
        try:
            return super().predict(model_input, params)
        except RecommendError as err:
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value(str(err)) from None
