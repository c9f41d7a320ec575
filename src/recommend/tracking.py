"""Experiment tracking with MLflow: evaluations, comparisons and tuning runs.

Every run records flat parameters (model, ``weighting.*``, ``split.*``), the training
data's fingerprint and size, metrics at each cut-off and per member segment, tables as CSV
(and HTML for comparisons) and plots as PNG.

Where runs go: an explicit ``uri``, else ``MLFLOW_TRACKING_URI``, else the embedded default
``sqlite:///mlruns.db`` in the working directory, so nothing has to be started. Experiments
created on a local SQLite store keep their artifacts in ``mlartifacts/`` next to the
database file; on any other store the server decides.

Privacy: only aggregates reach MLflow. ``EvaluationResult.per_member`` is never logged,
segment rows describing fewer than ``MIN_SEGMENT_MEMBERS`` members are dropped, parameter
values that are not plain scalars are logged by type name only, and of a model artifact
evaluation runs log only ``model.json`` (type, hyper-parameters, fingerprint, checksums).
Registering a model (``recommend.registry.register``, ``--register``) is the one place the
whole artifact goes to MLflow, because serving needs it: member and course ids, branch ids
and histories as indices, never a personal field.

Metric names: ``@`` becomes ``_at_`` (``ndcg@10`` -> ``ndcg_at_10``) and any character other
than letters, digits, ``_ - . /`` and space becomes ``_``, so names work with every MLflow
store and in search filters without quoting.

Internal API: other ``recommend`` modules that write runs (the model registry, search-weight
learning, experiments, benchmarks) use the MLflow helpers of the section "MLflow helpers
shared by recommend modules": ``mlflow_client``, ``ensure_experiment``, ``tracked_run``,
``flatten_params`` and ``log_batch``. They are stable within the library but not part of the
user-facing API re-exported by ``recommend``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from recommend import csvsafe

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient

    from recommend.data.dataset import Dataset
    from recommend.data.splits import Splitter
    from recommend.evaluation import EvaluationResult
    from recommend.models.base import Recommender

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MIN_SEGMENT_MEMBERS",
    "cold_route_logged",
    "comparison_runs",
    "log_comparison",
    "log_evaluation",
    "metric_key",
    "segment_key",
    "store_uri",
    "tracking_uri",
    "tuning_logger",
]
# MLflow helpers shared by recommend modules (internal API, see the module docstring).
__all__ += [
    "ensure_experiment",
    "flatten_params",
    "log_batch",
    "mlflow_client",
    "tracked_run",
]

log = logging.getLogger(__name__)

#: Store used when neither ``uri`` nor ``MLFLOW_TRACKING_URI`` is given.
DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
#: Artifact folder of experiments created on a local SQLite store (next to the database).
ARTIFACT_FOLDER = "mlartifacts"
#: Segments with fewer evaluated members than this are not logged.
MIN_SEGMENT_MEMBERS = 5
#: The only file of a model artifact that is logged (it holds no member data).
MODEL_FILES_LOGGED = ("model.json",)

_PARAM_KEY_MAX = 250
_PARAM_VALUE_MAX = 6000
_PARENT_TAG = "mlflow.parentRunId"
_RUN_NAME_TAG = "mlflow.runName"
_UNSAFE = re.compile(r"[^\w.\- /]")


# ---------------------------------------------------------------------------- stores
def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else the default.

    Parameters
    ----------
    uri
        Explicit tracking URI (any MLflow store: ``sqlite:///...``, ``http://...``, a folder).

    Returns
    -------
    str
        ``uri`` when given, the environment variable when set and non-empty, otherwise
        ``DEFAULT_TRACKING_URI`` (a SQLite file in the working directory).
    """
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI (as written, maybe relative); ``None`` for
    other stores and in-memory databases."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or parsed.path in ("", "/", "/:memory:"):
        return None
    # sqlite:///relative.db -> path "/relative.db"; sqlite:////abs/x.db -> "//abs/x.db"
    return Path(parsed.path[1:])


def _artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` next to a local SQLite database; ``None`` (server decides) otherwise."""
    db = _sqlite_file(uri)
    return None if db is None else (db.resolve().parent / ARTIFACT_FOLDER).as_uri()


def store_uri(uri: str | None = None) -> str:
    """``tracking_uri(uri)`` with a relative SQLite path made absolute.

    MLflow keeps one database engine per URI string for the life of the process, so a
    relative ``sqlite:///mlruns.db`` would keep pointing at the folder that was current when
    it was first used; resolving it against the working directory now avoids that.
    """
    chosen = tracking_uri(uri)
    db = _sqlite_file(chosen)
    if db is None or db.is_absolute():
        return chosen
    query = urlparse(chosen).query
    return f"sqlite:///{db.resolve()}{'?' + query if query else ''}"  # keeps ?timeout=30


# ---------------------------------------------------------------------------- MLflow helpers
# MLflow helpers shared by recommend modules (internal API): the registry, search-weight
# learning, experiments and benchmarks write their runs through these, as this module does.


def mlflow_client(uri: str | None = None) -> MlflowClient:
    """An ``MlflowClient`` of the store ``store_uri(uri)`` (tracking and model registry).

    Parameters
    ----------
    uri
        Tracking URI (see ``tracking_uri``); a relative SQLite path is made absolute.
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store_uri(uri))


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing; returns it as a string.

    An experiment created on a local SQLite store keeps its artifacts in ``mlartifacts/``
    next to the database (see the module docstring). Safe when another process creates the
    same experiment at the same time.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(
            client.create_experiment(
                name, artifact_location=_artifact_location(client.tracking_uri)
            )
        )
    except MlflowException:  # created meanwhile by another process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


@contextlib.contextmanager
def tracked_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    run_name: str | None = None,
    parent: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Create a run, yield its id, end it FINISHED (or FAILED on an exception).

    Parameters
    ----------
    client, experiment_id
        The store and the experiment (``ensure_experiment``) of the run.
    run_name
        Name shown in the MLflow UI.
    parent
        Run id of the parent run (the new run is nested under it).
    tags
        Extra tags; every run also gets ``recommend.library=recommend``.

    Yields
    ------
    str
        The run id. No global MLflow state (active run, tracking URI) is touched.
    """
    all_tags = {"recommend.library": "recommend", **(tags or {})}
    if parent:
        all_tags[_PARENT_TAG] = parent
    run = client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def flatten_params(prefix: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Nested parameters as flat MLflow params: ``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``.

    Keys get ``prefix`` in front and are cut to MLflow's key length; plain scalars and
    small lists of them become text, any other value only its type name (``<DataFrame>``),
    so no object's text (which could hold ids) reaches MLflow.
    """
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(f"{name}.", value))
        else:
            out[name[:_PARAM_KEY_MAX]] = _param_value(value)
    return out


def log_batch(
    client: MlflowClient, run_id: str, params: Mapping[str, str], metrics: Mapping[str, float]
) -> None:
    """Log params and metrics (step 0) to a run, in batches the stores accept.

    Parameters
    ----------
    params
        Flat text params (``flatten_params``).
    metrics
        Finite values under MLflow-safe names (``metric_key``).
    """
    from mlflow.entities import Metric, Param

    params_list = [Param(k, v) for k, v in params.items()]
    metric_list = [Metric(k, v, 0, 0) for k, v in metrics.items()]
    # Stores accept at most 100 params / 1000 metrics per batch.
    for lo in range(0, len(params_list), 100):
        client.log_batch(run_id, params=params_list[lo : lo + 100])
    for lo in range(0, len(metric_list), 1000):
        client.log_batch(run_id, metrics=metric_list[lo : lo + 1000])


# ---------------------------------------------------------------------------- names, values
def metric_key(name: str) -> str:
    """MLflow-safe metric name: ``"ndcg@10"`` -> ``"ndcg_at_10"``."""
    return _UNSAFE.sub("_", str(name).replace("@", "_at_"))


def _label(value: object) -> str:
    """A segment label as one name component (no ``/``, no ``@``)."""
    return metric_key(str(value)).replace("/", "_")


def segment_key(segment: object, label: object, metric: str) -> str:
    """The metric name a segment row is logged under: ``segment.<segment>.<label>.<metric>``.

    ``segment_key("age_band", "30-39", "ndcg@10")`` -> ``"segment.age_band.30-39.ndcg_at_10"``
    (segment and label lose ``/`` and ``@`` so each stays one name component).
    """
    return f"segment.{_label(segment)}.{_label(label)}.{metric_key(metric)}"


def _param_value(value: Any) -> str:
    """Plain scalars and small containers of them as text; anything else by type name.

    Objects (datasets, frames, arrays) are never stringified: their text could hold ids.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return str(value)[:_PARAM_VALUE_MAX]
    if isinstance(value, list | tuple) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    ):
        return str(list(value))[:_PARAM_VALUE_MAX]
    return f"<{type(value).__name__}>"


def run_params(
    result: EvaluationResult,
    train: Dataset,
    split: Splitter | None = None,
) -> dict[str, str]:
    """Flat parameters of an evaluation: model, ``weighting.*``, ``split.*``, data."""
    params = {"model": result.model, **flatten_params("", result.params)}
    params.update(flatten_params("weighting.", train.weighting.get_params()))
    if split is not None:
        params["split.splitter"] = type(split).__name__
        params.update(flatten_params("split.", split.get_params()))
    params["data.fingerprint"] = train.fingerprint()
    return params


def data_metrics(train: Dataset) -> dict[str, float]:
    """Size of the training data: members, courses, events, interactions, density."""
    summary = train.summary()
    keys: tuple[str, ...] = ("members", "courses", "events", "interactions", "density")
    keys += ("members_with_events", "courses_with_events", "dropped_events")
    return {f"data.{k}": float(summary[k]) for k in keys if _is_number(summary.get(k))}


def cold_route_logged(model: Recommender) -> tuple[dict[str, str], dict[str, float]]:
    """The model's chosen cold-member route as params (``cold_route``, its
    ``prior_members``, held-out ``members``) and each candidate's validation NDCG as
    metrics ``cold_route.<candidate>.ndcg_at_<k>``; empty when the model recorded none."""
    choice = getattr(model, "cold_route_", None)
    if not isinstance(choice, Mapping):
        return {}, {}
    # The route's name carries its segment kind (e.g. "blend:occupation:42"): no separate
    # param holds a bare attribute name.
    params = {
        "cold_route": _param_value(choice.get("route")),
        "cold_route.prior_members": _param_value(choice.get("prior_members")),
        "cold_route.members": _param_value(choice.get("members")),
    }
    k = choice.get("k", 10)
    metrics = {
        f"cold_route.{_label(name)}.ndcg_at_{k}": float(value)
        for name, value in (choice.get("scores") or {}).items()
        if _is_number(value)
    }
    return params, _finite(metrics)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        metric_key(k): float(v)
        for k, v in metrics.items()
        if _is_number(v) and math.isfinite(float(v))
    }


def safe_segments(result: EvaluationResult) -> dict[str, pd.DataFrame]:
    """Segment tables without rows describing fewer than ``MIN_SEGMENT_MEMBERS`` members."""
    tables = {}
    for name, table in result.segments.items():
        kept = table[table["members"] >= MIN_SEGMENT_MEMBERS]
        dropped = len(table) - len(kept)
        if dropped:
            log.info("segment %s: %d small group(s) not logged", name, dropped)
        tables[name] = kept
    return tables


def segment_metrics(result: EvaluationResult) -> dict[str, float]:
    """``segment.<segment>.<label>.<metric>`` means of the segments large enough to log."""
    out: dict[str, float] = {}
    for name, table in safe_segments(result).items():
        for label, row in table.iterrows():
            out.update({segment_key(name, label, k): v for k, v in _finite(row.to_dict()).items()})
    return out


# ---------------------------------------------------------------------------- plots
def _ks(names: Any, family: str) -> list[int]:
    return sorted(int(n.split("@")[1]) for n in names if str(n).startswith(f"{family}@"))


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display needed
    return fig


def metric_at_k_figure(
    results: Mapping[str, Mapping[str, float]], families: tuple[str, ...] = ("ndcg", "recall")
) -> Figure:
    """Metric@k curves: one line per (model, metric family)."""
    fig = _figure()
    ax = fig.add_subplot()
    for model, metrics in results.items():
        for family in families:
            ks = _ks(metrics, family)
            if ks:
                ax.plot(
                    ks,
                    [metrics[f"{family}@{k}"] for k in ks],
                    marker="o",
                    label=f"{model} {family}",
                )
    ax.set_xlabel("k")
    ax.set_ylabel("metric@k")
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def coverage_accuracy_figure(table: pd.DataFrame, k: int) -> Figure:
    """Catalogue coverage@k against NDCG@k, one point per model."""
    fig = _figure()
    ax = fig.add_subplot()
    x, y = f"coverage@{k}", f"ndcg@{k}"
    if x in table.columns and y in table.columns:
        ax.scatter(table[x], table[y])
        for model, row in table.iterrows():
            ax.annotate(str(model), (row[x], row[y]), fontsize="small")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    return fig


def popularity_figure(table: pd.DataFrame, k: int) -> Figure:
    """Average popularity of the recommended courses, one bar per model."""
    fig = _figure()
    ax = fig.add_subplot()
    col = f"popularity@{k}"
    if col in table.columns:
        ax.bar([str(m) for m in table.index], table[col].to_numpy())
    ax.set_ylabel(col)
    ax.tick_params(axis="x", labelrotation=30)
    return fig


# ---------------------------------------------------------------------------- logging
def _log_frame(client: MlflowClient, run_id: str, frame: pd.DataFrame, path: str) -> None:
    if path.endswith(".html"):
        client.log_text(run_id, frame.to_html(float_format=lambda v: f"{v:.4f}"), path)
    else:
        # Labels and text a spreadsheet would run as a formula are written escaped.
        client.log_text(run_id, csvsafe.csv_text(frame), path)


def _log_model(client: MlflowClient, run_id: str, model: Recommender) -> None:
    from recommend import artifact

    with tempfile.TemporaryDirectory() as tmp:
        root = artifact.save(model, Path(tmp) / "model")
        for name in MODEL_FILES_LOGGED:
            client.log_artifact(run_id, str(root / name), artifact_path="model")


def log_evaluation(
    result: EvaluationResult,
    *,
    train: Dataset,
    split: Splitter | None = None,
    experiment: str = "recommend",
    model: Recommender | None = None,
    run_name: str | None = None,
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Log one evaluation as an MLflow run; returns the run id.

    Parameters
    ----------
    result
        What ``evaluate`` returned. Its ``per_member`` table is never logged.
    train
        The training dataset: its fingerprint, weighting and size are logged.
    split
        The splitter that made train/test; its parameters are logged as ``split.*``.
    experiment
        Experiment name; created when missing.
    model
        The fitted model; when given its ``model.json`` is logged under ``model/``.
    run_name, tags
        Run name (the model's by default) and extra tags.
    uri
        Tracking URI (see ``tracking_uri``).
    parent_run_id
        Make this run a child of that run.

    Returns
    -------
    str
        The MLflow run id.
    """
    client = mlflow_client(uri)
    exp = ensure_experiment(client, experiment)
    with tracked_run(
        client, exp, run_name=run_name or result.model, parent=parent_run_id, tags=tags
    ) as run_id:
        metrics = {**_finite(result.metrics), **data_metrics(train), **segment_metrics(result)}
        params = run_params(result, train, split)
        if model is not None:
            cold_params, cold_metrics = cold_route_logged(model)
            params.update(cold_params)
            metrics.update(cold_metrics)
        log_batch(client, run_id, params, metrics)
        for name, table in safe_segments(result).items():
            _log_frame(client, run_id, table, f"segments/{_label(name)}.csv")
        if result.intervals is not None:
            _log_frame(client, run_id, result.intervals, "intervals.csv")
        _log_frame(client, run_id, result.table(), "metrics.csv")
        fig = metric_at_k_figure({result.model: result.metrics})
        client.log_figure(run_id, fig, "plots/metric_at_k.png")
        if model is not None:
            _log_model(client, run_id, model)
    log.info("logged evaluation of %s to run %s (%s)", result.model, run_id, client.tracking_uri)
    return run_id


def log_comparison(
    table: pd.DataFrame,
    results: Mapping[str, EvaluationResult],
    *,
    train: Dataset,
    split: Splitter | None = None,
    experiment: str = "recommend",
    models: Mapping[str, Recommender] | None = None,
    run_name: str = "comparison",
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log a ``compare`` outcome: a parent run with the table and plots, one child per model.

    Parameters
    ----------
    table, results
        What ``compare`` returned.
    train, split, experiment, uri, tags
        As in ``log_evaluation``.
    models
        Fitted models by name, to log their ``model.json`` in the child runs.
    run_name
        Name of the parent run.

    Returns
    -------
    str
        The parent run id (``comparison_runs`` gives the child run of each model too).
    """
    return comparison_runs(
        table,
        results,
        train=train,
        split=split,
        experiment=experiment,
        models=models,
        run_name=run_name,
        uri=uri,
        tags=tags,
    )[0]


def comparison_runs(
    table: pd.DataFrame,
    results: Mapping[str, EvaluationResult],
    *,
    train: Dataset,
    split: Splitter | None = None,
    experiment: str = "recommend",
    models: Mapping[str, Recommender] | None = None,
    run_name: str = "comparison",
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """``log_comparison`` returning ``(parent run id, {model name: child run id})``."""
    client = mlflow_client(uri)
    exp = ensure_experiment(client, experiment)
    children: dict[str, str] = {}
    with tracked_run(client, exp, run_name=run_name, tags=tags) as parent:
        params = {"models": ",".join(map(str, table.index)), "split.splitter": "none"}
        if split is not None:
            params = {**params, **flatten_params("split.", split.get_params())}
            params["split.splitter"] = type(split).__name__
        params.update(flatten_params("weighting.", train.weighting.get_params()))
        params["data.fingerprint"] = train.fingerprint()
        log_batch(client, parent, params, data_metrics(train))
        _log_frame(client, parent, table, "comparison.csv")
        _log_frame(client, parent, table, "comparison.html")
        ks = _ks(table.columns, "ndcg")
        if ks:
            k = max(ks)
            curves = {str(m): row.to_dict() for m, row in table.iterrows()}
            client.log_figure(parent, metric_at_k_figure(curves, ("ndcg",)), "plots/ndcg_at_k.png")
            client.log_figure(
                parent, coverage_accuracy_figure(table, k), "plots/coverage_vs_ndcg.png"
            )
            client.log_figure(parent, popularity_figure(table, k), "plots/popularity.png")
        for name, result in results.items():
            children[name] = log_evaluation(
                result,
                train=train,
                split=split,
                experiment=experiment,
                model=(models or {}).get(name),
                run_name=name,
                uri=client.tracking_uri,
                tags=tags,
                parent_run_id=parent,
            )
    return parent, children


TrialCallback = Callable[[int, dict[str, Any], dict[str, float]], None]


@contextlib.contextmanager
def tuning_logger(
    experiment: str,
    model_name: str,
    *,
    metric: str = "ndcg@20",
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[TrialCallback]:
    """A parent run whose ``on_trial`` callback logs each trial of ``tune`` as a child run.

    On exit the parent gets ``best.<param>`` params and the ``best.<metric>`` score.

    Parameters
    ----------
    experiment
        Experiment name; created when missing.
    model_name
        The tuned model (also the parent run's name prefix).
    metric
        The metric ``tune`` maximises (same spelling, e.g. ``"ndcg@20"``).
    uri, tags
        As in ``log_evaluation``.

    Yields
    ------
    Callable[[int, dict, dict], None]
        Pass as ``tune(..., on_trial=callback)``.

    Examples
    --------
    >>> with tuning_logger("tuning", "ease") as on_trial:  # doctest: +SKIP
    ...     result = tune("ease", train, n_trials=10, on_trial=on_trial)
    """
    client = mlflow_client(uri)
    exp = ensure_experiment(client, experiment)
    best: dict[str, Any] = {}
    with tracked_run(client, exp, run_name=f"tune-{model_name}", tags=tags) as parent:
        client.log_param(parent, "model", model_name)
        client.log_param(parent, "metric", metric)

        def on_trial(trial: int, params: dict[str, Any], metrics: dict[str, float]) -> None:
            with tracked_run(
                client, exp, run_name=f"trial-{trial}", parent=parent, tags=tags
            ) as child:
                values = _finite(metrics)
                log_batch(
                    client, child, {"trial": str(trial), **flatten_params("", params)}, values
                )
            score = metrics.get(metric)
            if score is not None and ("score" not in best or score > best["score"]):
                best.update(score=float(score), params=dict(params), trial=trial)

        yield on_trial
        if best:
            best_params = flatten_params("best.", best["params"])
            best_params["best.trial"] = str(best["trial"])
            log_batch(client, parent, best_params, {f"best.{metric_key(metric)}": best["score"]})
