"""The MLflow model registry: a saved model as a pyfunc model, logged, registered, loaded.

``save_pyfunc(model, path)`` writes an MLflow model directory (an ``MLmodel`` file, an input
and output signature and our own artifact under ``data/``) whose loader is
``recommend.serving``: no Python object is pickled, loading only reads JSON, ``.npz`` and
Parquet through ``recommend.load``. ``log_pyfunc`` logs it to a run and ``register`` puts a
logged model in the model registry under a name and moves an alias (``champion`` by
default) to it; ``register_artifact`` does both for a saved artifact folder. A backend then
loads

>>> menus = mlflow.pyfunc.load_model("models:/menus@champion").predict(requests)  # doctest: +SKIP

(MLflow resolves ``models:/`` in its registry: set ``MLFLOW_TRACKING_URI`` to the store
the model was registered in, e.g. ``sqlite:///mlruns.db``.) ``load_registered`` takes the
store explicitly and gives back our ``Recommender`` and its version, for the batch job.

How a loaded pyfunc model answers requests is ``recommend.serving`` (``MenuService``); that
module re-exports every name of this one, so ``from recommend.serving import register``
keeps working.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recommend import artifact
from recommend.artifact import artifact_info
from recommend.errors import (
    ArtifactError,
    ConfigError,
    RecommendError,
    TrackingError,
    one_line,
)
from recommend.schema import Columns
from recommend.tracking import (
    ensure_experiment,
    flatten_params,
    log_batch,
    mlflow_client,
    store_uri,
    tracked_run,
)

if TYPE_CHECKING:
    from mlflow.models.signature import ModelSignature
    from mlflow.tracking import MlflowClient

    from recommend.models.base import Recommender

__all__ = [
    "CHAMPION",
    "DATA_PATH",
    "LOADER_MODULE",
    "Registration",
    "load_registered",
    "log_pyfunc",
    "model_name",
    "register",
    "register_artifact",
    "save_pyfunc",
    "store_errors",
]

log = logging.getLogger(__name__)

#: Alias that ``register`` moves to the newly registered version.
CHAMPION = "champion"
#: Where our artifact lives inside an MLflow model directory (MLflow puts data under data/).
DATA_PATH = "data/recommend"
#: The pyfunc loader module written into every ``MLmodel`` file. Models already logged or
#: registered name it, and MLflow imports it by this name to load them, so it stays the
#: module that answers requests (``recommend.serving``, which defines ``_load_pyfunc``).
LOADER_MODULE = "recommend.serving"


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
            ColSpec(AnyType(), "lang", required=False),
            ColSpec(AnyType(), "compulsory", required=False),
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
        ``recommend.save``: only the files of the artifact are copied (``model.json``, its
        signature, the files it lists and its parts' listed files), after checking them;
        a symbolic link anywhere in the folder is refused, never followed.
    path
        Target folder; written atomically (temp folder + rename).
    overwrite
        Replace an existing folder.

    Returns
    -------
    pathlib.Path
        The model directory: ``MLmodel``, environment files and ``data/recommend/`` (our
        artifact).

    Raises
    ------
    ArtifactError
        ``path`` exists (without ``overwrite``), the artifact is invalid or holds a
        symbolic link, or the folder cannot be written (e.g. the disk is full).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            built = _build_pyfunc(model, Path(tmp))
            if target.exists():
                shutil.rmtree(target)
            os.replace(built, target)
    except OSError as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"could not write the MLflow model {target}: {one_line(exc)}") from exc
    return target


def _build_pyfunc(model: Recommender | str | os.PathLike[str], tmp: Path) -> Path:
    """Write the pyfunc model directory in ``tmp``; returns it."""
    import mlflow.pyfunc

    staged = tmp / Path(DATA_PATH).name
    if isinstance(model, str | os.PathLike):
        artifact.copy_artifact(model, staged)
    else:
        from recommend.search.rank import attached_index

        # The search index (and its learned blend weights) travels with the model.
        artifact.save(model, staged, search_index=attached_index(model, build=False))
    built = tmp / "model"
    mlflow.pyfunc.save_model(
        path=str(built),
        loader_module=LOADER_MODULE,
        data_path=str(staged),
        signature=_signature(),
        # an unknown member: the example shows the request shape and holds no real id
        input_example=pd.DataFrame({Columns.MEMBER: ["example-member"], "n": [5.0]}),
        pip_requirements=_requirements(),
    )
    return built


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


# ---------------------------------------------------------------------------- registering
@contextlib.contextmanager
def store_errors(uri: str | None) -> Iterator[None]:
    """Turn the errors of an MLflow store (a locked or corrupt SQLite database, an
    unreachable server) into a one-line ``TrackingError`` naming the store."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except RecommendError:
        raise
    except (MlflowException, SQLAlchemyError, sqlite3.Error) as exc:
        lines = str(exc).strip().splitlines()
        cause = lines[0] if lines else type(exc).__name__
        where = store_uri(uri)
        raise TrackingError(
            f"the MLflow store {where} cannot be used: {cause} (is the database locked by "
            "another process, or damaged?)"
        ) from exc


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

    name = model_name(name)
    with store_errors(uri):
        client = mlflow_client(uri)
        try:
            client.get_registered_model(name)
        except MlflowException as missing:
            if _is_store_failure(missing):
                raise
            try:
                client.create_registered_model(name, tags={"recommend.library": "recommend"})
            except MlflowException as exc:  # created meanwhile by another process
                if _is_store_failure(exc):
                    raise
                client.get_registered_model(name)
        source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
        version = client.create_model_version(name, source, run_id=run_id)
        client.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s as @%s", name, version.version, alias)
    return Registration(name, str(version.version), alias, source)


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
    info = artifact_info(path, verify=True)
    model_meta, data = info["model"], info.get("data") or {}
    params = {"model": str(model_meta["name"]), **flatten_params("", model_meta.get("params", {}))}
    params.update({f"data.{k}": str(v) for k, v in data.items() if k != "now"})
    with store_errors(uri):
        client = mlflow_client(uri)
        exp = ensure_experiment(client, experiment)
        with tracked_run(
            client, exp, run_name=f"register-{name}", tags={"recommend.registered": name}
        ) as run:
            log_batch(client, run, params, {})
            log_pyfunc(client, run, path)
    return register(run, name, alias=alias, uri=uri)


# ---------------------------------------------------------------------------- loading
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

    with tempfile.TemporaryDirectory() as tmp:
        try:
            with store_errors(tracking):
                # models:/ is resolved by the client of our store (its registry), not by
                # MLflow's process-wide default registry, which may be another database.
                try:
                    source = _model_source(mlflow_client(tracking), uri)
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=source, dst_path=tmp, tracking_uri=store_uri(tracking)
                    )
                except MlflowException as err:
                    if _is_store_failure(err):
                        raise
                    raise ArtifactError(
                        f"{uri}: cannot fetch the model from the registry: {one_line(err)}"
                    ) from err
        except OSError as err:
            if isinstance(err, ArtifactError):
                raise
            raise ArtifactError(f"{uri}: cannot fetch the model: {one_line(err)}") from err
        root = Path(local) / DATA_PATH
        if not (root / MODEL_JSON).is_file():
            raise ArtifactError(
                f"{uri} is not a recommend pyfunc model (no {DATA_PATH}/{MODEL_JSON}); "
                "log models with recommend.registry.log_pyfunc or register_artifact"
            )
        model = load(root)
        attached_index(model, build=False)  # read a saved search index before tmp goes
        version = hashlib.sha256((root / MODEL_JSON).read_bytes()).hexdigest()[:16]
    return model, version


def _is_store_failure(exc: BaseException) -> bool:
    """True when an MLflow error comes from the store itself (SQL), not from a missing
    name or version."""
    from sqlalchemy.exc import SQLAlchemyError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, SQLAlchemyError | sqlite3.Error):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


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
