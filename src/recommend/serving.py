"""MLflow pyfunc flavour: a saved model served as member menus.

``save_pyfunc(model, path)`` writes an MLflow model directory (an ``MLmodel`` file, an input
and output signature and our own artifact under ``data/``) whose loader is this module: no
Python object is pickled, loading only reads JSON, ``.npz`` and Parquet through
``recommend.load``. ``log_pyfunc`` logs it to a run and ``register`` puts a logged model in
the model registry under a name and moves an alias (``champion`` by default) to it, so a
backend loads

>>> menus = mlflow.pyfunc.load_model("models:/menus@champion").predict(requests)  # doctest: +SKIP

(MLflow resolves ``models:/`` in its registry: set ``MLFLOW_TRACKING_URI`` to the store
the model was registered in, e.g. ``sqlite:///mlruns.db``; ``load_registered`` and the
batch job take the store explicitly.)

and ``mlflow models serve -m models:/menus@champion --env-manager local`` answers
``/invocations`` with menus.

A request frame has one row per menu wanted: ``member_id`` (required) and optional ``n``
(a whole number, default ``DEFAULT_N``), ``max_minutes``, ``channel`` and ``query``.
Missing or null options mean "not set". Rows without a query get the member menu
(``member_menu``); rows with a query get the personalised search ranking
(``recommend.search.search``, route ``search:<member route>``; a query of only stop words
gives no rows). The answer has the columns of ``Recommender.recommend`` / ``member_menu``
(``member_id, course_id, score, rank, reason, route``), menus in request order.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recommend.errors import ArtifactError, ConfigError, DataError, Problem
from recommend.menu import MENU_COLUMNS, member_menu
from recommend.schema import Columns

if TYPE_CHECKING:
    from mlflow.models.signature import ModelSignature
    from mlflow.tracking import MlflowClient

    from recommend.models.base import Recommender

__all__ = [
    "CHAMPION",
    "DEFAULT_N",
    "REQUEST_COLUMNS",
    "MenuService",
    "Registration",
    "load_registered",
    "log_pyfunc",
    "model_name",
    "register",
    "register_artifact",
    "save_pyfunc",
]

log = logging.getLogger(__name__)

#: Alias that ``register`` moves to the newly registered version.
CHAMPION = "champion"
#: Menu length when a request row sets no ``n``.
DEFAULT_N = 10
#: Columns a request frame may carry (``member_id`` is required).
REQUEST_COLUMNS = ("member_id", "n", "max_minutes", "channel", "query")
#: Where our artifact lives inside an MLflow model directory (MLflow puts data under data/).
DATA_PATH = "data/recommend"
#: Largest ``n`` one request row may ask for.
MAX_N = 1000


# ---------------------------------------------------------------------------- predicting
@dataclass(frozen=True)
class _Request:
    n: int
    max_minutes: float | None
    channel: str | None
    query: str | None


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
                    "requests", column, expected, rows=rows[:5], count=len(rows), values=values[:5]
                )
            )

    members = _option(frame, Columns.MEMBER)
    missing = [i for i, m in enumerate(members) if m is None]
    bad(Columns.MEMBER, missing, [None] * len(missing), "a member id in every row")

    ns, n_rows, n_values = [], [], []
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

    minutes, m_rows, m_values = [], [], []
    for i, value in enumerate(_option(frame, "max_minutes")):
        try:
            number = None if value is None else float(value)
        except (TypeError, ValueError):
            number = math.nan
        if number is not None and not (math.isfinite(number) and number > 0):
            m_rows.append(i)
            m_values.append(value)
            number = None
        minutes.append(number)
    bad("max_minutes", m_rows, m_values, "a positive number of minutes")

    channels = [None if v is None else str(v).strip() for v in _option(frame, "channel")]
    queries = [None if v is None else str(v) for v in _option(frame, "query")]
    if problems:
        raise DataError(problems)
    requests = [_Request(*options) for options in zip(ns, minutes, channels, queries, strict=True)]
    return [str(m).strip() for m in members], requests


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
            ``member_id`` and optional ``n``, ``max_minutes``, ``channel``, ``query``.
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
            if request.query is not None:
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


def _load_pyfunc(data_path: str) -> MenuService:
    """The pyfunc loader: MLflow calls it with the folder of our artifact."""
    from recommend.artifact import load

    return MenuService(load(data_path))


# ---------------------------------------------------------------------------- saving
def _signature() -> ModelSignature:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # Options are typed Any: MLflow refuses int64 for a double column, NaN (a JSON null in a
    # mixed batch) for a long one, and an all-null (float64) column for a string one;
    # MenuService checks the values itself, by row.
    inputs = Schema(
        [
            ColSpec("string", Columns.MEMBER),
            ColSpec(AnyType(), "n", required=False),
            ColSpec(AnyType(), "max_minutes", required=False),
            ColSpec(AnyType(), "channel", required=False),
            ColSpec(AnyType(), "query", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", Columns.MEMBER),
            ColSpec("string", Columns.COURSE),
            ColSpec("float", Columns.SCORE),
            ColSpec("integer", Columns.RANK),
            ColSpec("string", Columns.REASON),
            ColSpec("string", Columns.ROUTE),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _requirements() -> list[str]:
    from importlib.metadata import version

    import mlflow

    return [f"recommend=={version('recommend')}", f"mlflow=={mlflow.__version__}"]


def save_pyfunc(
    model: Recommender | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as an MLflow pyfunc model directory; returns its path.

    Parameters
    ----------
    model
        A fitted ``Recommender``, or the folder of an artifact written by
        ``recommend.save`` (checked before it is copied).
    path
        Target folder; written atomically (temp folder + rename).
    overwrite
        Replace an existing folder.

    Returns
    -------
    pathlib.Path
        The model directory: ``MLmodel``, environment files and ``data/recommend/`` (our
        artifact).
    """
    import mlflow.pyfunc

    from recommend import artifact

    target = Path(path)
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staged = Path(tmp) / Path(DATA_PATH).name
        if isinstance(model, str | os.PathLike):
            artifact.artifact_info(model, verify=True)
            shutil.copytree(model, staged)
        else:
            from recommend.search.rank import attached_index

            # The search index (and its learned blend weights) travels with the model.
            artifact.save(model, staged, search_index=attached_index(model, build=False))
        built = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            path=str(built),
            loader_module=__name__,
            data_path=str(staged),
            signature=_signature(),
            # an unknown member: the example shows the request shape and holds no real id
            input_example=pd.DataFrame({Columns.MEMBER: ["example-member"], "n": [5.0]}),
            pip_requirements=_requirements(),
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(built, target)
    return target


def log_pyfunc(
    client: MlflowClient,
    run_id: str,
    model: Recommender | str | os.PathLike[str],
    artifact_path: str = "model",
) -> str:
    """Log ``model`` (fitted, or an artifact folder) to a run as a pyfunc model.

    Returns the model's ``runs:/RUN_ID/ARTIFACT_PATH`` URI.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pyfunc(model, Path(tmp) / "model")
        client.log_artifacts(run_id, str(folder), artifact_path=artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


@dataclass(frozen=True)
class Registration:
    """Where ``register`` put a model: name, version, alias and the URI to load it by."""

    name: str
    version: str
    alias: str
    source: str

    @property
    def uri(self) -> str:
        """``models:/NAME@ALIAS``, what backends load."""
        return f"models:/{self.name}@{self.alias}"


def model_name(value: str, key: str = "name") -> str:
    """A registered model name, stripped: non-empty, without ``/``, ``@`` or ``:`` (they
    would split ``models:/NAME@ALIAS`` URIs); ``key`` names the setting in the error."""
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "/@:"):
        raise ConfigError(
            f"{key}: {value!r} is not a usable registered model name; expected a non-empty "
            "name without '/', '@' or ':' (e.g. 'menus')"
        )
    return value.strip()


def register(
    run_id: str,
    name: str,
    *,
    alias: str = CHAMPION,
    artifact_path: str = "model",
    uri: str | None = None,
) -> Registration:
    """Register the model logged in ``run_id`` under ``name`` and point ``alias`` at it.

    Parameters
    ----------
    run_id
        A run holding a pyfunc model at ``artifact_path`` (``log_pyfunc``).
    name
        Registered model name (created when missing).
    alias
        Alias moved to the new version (``champion``).
    uri
        Tracking URI (see ``recommend.tracking.tracking_uri``); the registry lives there.
    """
    from mlflow.exceptions import MlflowException

    from recommend.tracking import mlflow_client

    name = model_name(name)
    client = mlflow_client(uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, tags={"recommend.library": "recommend"})
        except MlflowException:  # created meanwhile by another process
            client.get_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=run_id)
    client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s as @%s", name, version.version, alias)
    return Registration(name, str(version.version), alias, source)


def load_registered(uri: str, *, tracking: str | None = None) -> tuple[Recommender, str]:
    """Load our model out of a registered or logged pyfunc model.

    Parameters
    ----------
    uri
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/model``.
    tracking
        Tracking URI of the registry (see ``recommend.tracking.tracking_uri``).

    Returns
    -------
    (Recommender, str)
        The model and its version: the first 16 hex digits of the SHA-256 of its
        ``model.json``, the same string a local copy of the artifact gives.
    """
    import hashlib

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from recommend.artifact import MODEL_JSON, load
    from recommend.search.rank import attached_index
    from recommend.tracking import mlflow_client, store_uri

    with tempfile.TemporaryDirectory() as tmp:
        try:
            # models:/ is resolved by the client of our store (its registry), not by MLflow's
            # process-wide default registry, which may be another database.
            source = _model_source(mlflow_client(tracking), uri)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=store_uri(tracking)
            )
        except MlflowException as err:
            raise ArtifactError(f"{uri}: cannot fetch the model from the registry: {err}") from err
        root = Path(local) / DATA_PATH
        if not (root / MODEL_JSON).is_file():
            raise ArtifactError(
                f"{uri} is not a recommend pyfunc model (no {DATA_PATH}/{MODEL_JSON}); "
                "log models with recommend.serving.log_pyfunc or register_artifact"
            )
        model = load(root)
        attached_index(model, build=False)  # read a saved search index before tmp goes
        version = hashlib.sha256((root / MODEL_JSON).read_bytes()).hexdigest()[:16]
    return model, version


def _model_source(client: MlflowClient, uri: str) -> str:
    """Where the files of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` are; other
    URIs (``runs:/...``) as they are."""
    if not uri.startswith("models:/"):
        return uri
    ref = uri[len("models:/") :].strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
    else:
        raise ArtifactError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return str(client.get_model_version_download_uri(name, str(version)))


def register_artifact(
    path: str | os.PathLike[str],
    name: str,
    *,
    alias: str = CHAMPION,
    experiment: str = "registry",
    uri: str | None = None,
) -> Registration:
    """Log a saved artifact in a new run and register it (e.g. a model refit on all data).

    The run carries the model's type, hyper-parameters and data fingerprint as params (all
    read from ``model.json``) and the pyfunc model under ``model/``.

    Parameters
    ----------
    path
        Folder written by ``recommend.save`` / ``recommend train``; verified first.
    name, alias
        Registered model name and the alias to move (``champion``).
    experiment
        MLflow experiment of the registration run.
    uri
        Tracking URI (see ``recommend.tracking.tracking_uri``).
    """
    from recommend.artifact import artifact_info
    from recommend.tracking import (
        ensure_experiment,
        flatten_params,
        log_batch,
        mlflow_client,
        tracked_run,
    )

    info = artifact_info(path, verify=True)
    client = mlflow_client(uri)
    exp = ensure_experiment(client, experiment)
    model_meta, data = info["model"], info.get("data", {})
    params = {"model": str(model_meta["name"]), **flatten_params("", model_meta.get("params", {}))}
    params.update({f"data.{k}": str(v) for k, v in data.items() if k != "now"})
    with tracked_run(
        client, exp, run_name=f"register-{name}", tags={"recommend.registered": name}
    ) as run:
        log_batch(client, run, params, {})
        log_pyfunc(client, run, path)
    return register(run, name, alias=alias, uri=uri)
