"""Experiments as files: one TOML file describes data, weighting, split, models and metrics.

``load_config(path)`` reads and validates the whole file before anything is trained: every
unknown section or key, wrong type, unknown model or parameter, bad split or search
distribution and missing data file raises ``ConfigError`` naming the key path (e.g.
``models.als.params.n_factor``) and what was expected. ``run_experiment(config)`` builds the
dataset, splits it, fits each model with fixed parameters or tunes it on a validation split
carved from the training part only, compares the models on the test part and logs the
comparison (and each tuning) to MLflow under the experiment's ``name``.

The schema (relative paths resolve against the TOML file's folder; the string ``"none"``
stands for ``None``, which TOML cannot spell)::

    name = "baseline"                  # MLflow experiment name (required)
    description = "..."                # optional
    register = "menus"                 # optional: register the best model under this name
                                       #   and point the alias "champion" at it

    [data]                             # required
    source = "sample"                  # "sample" | "generated" | "files"
    path = "../data/sample"            # sample: a folder written by Platform.write;
                                       #   without it the 'sample' preset is generated (seed 0)
    # generated: preset = "small", seed = 0, members = 500, courses = 200
    # files:     format = "parquet" | "csv" | "lines" | "mooccubex"
    #            events = "events.parquet" (+ courses, members, orgs for parquet/csv)
    #            or train = "...", test = "..." (already split), or path = DIR (mooccubex)
    on_unknown = "drop"                # events with ids missing from the tables: drop|raise

    [weighting]                        # optional: fields of recommend.data.Weighting
    half_life_days = 90.0

    [split]                            # optional: kind + fields of the splitter
    kind = "time"                      # time | leave_last_out | random | cold_course | given
    test_fraction = 0.2                # ("given" for train/test data, the default there)

    [evaluation]                       # optional
    ks = [10, 20]
    members = "warm"                   # warm | all
    n_boot = 0                         # bootstrap resamples for confidence intervals
    segments = true                    # breakdowns by member segment
    truth = false                      # simulator truth metrics (sample/generated data)
    candidates = "all"                 # all | test: rank only courses with held-out
                                       #   interactions (default "test" on cold_course)

    [tuning]                           # optional: defaults of every tuned model
    trials = 10
    metric = "ndcg@20"                 # default ndcg@max(ks)
    seed = 0
    sampler = "tpe"                    # Optuna TPE with pruning (default), or "random"
    minutes = 5                        # optional time budget per tuned model
    [tuning.validation]                # default: time split 0.2 (random 0.2 without times)
    kind = "random"
    test_fraction = 0.2

    [models.als]                       # one table per model; the label is the table name
    model = "als"                      # registered name; defaults to the label
    params = { iterations = 15 }       # fixed hyper-parameters
    tune = true                        # tune with the default search space, or:
    search = { n_factors = { choice = [16, 32, 64] },
               regularization = { loguniform = [0.001, 1.0] },
               alpha = { uniform = [1.0, 20.0] } }   # add integer = true to round
    trials = 20                        # overrides tuning.trials
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.data.splits import ColdCourseSplit, LeaveLastOut, RandomHoldout, Splitter, TimeSplit
from recommend.data.weighting import Weighting
from recommend.errors import ConfigError, DataError
from recommend.evaluation import EvaluationResult, compare
from recommend.models import MODEL_NAMES, get_model_class, make_model
from recommend.models.base import Recommender
from recommend.registry import Registration, model_name
from recommend.schema import Columns
from recommend.tracking import comparison_runs, tuning_logger
from recommend.tuning import SEARCH_SPACES, Choice, LogUniform, TuningResult, Uniform, tune

__all__ = [
    "DataConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "ExperimentResult",
    "ModelConfig",
    "TuningConfig",
    "load_config",
    "run_experiment",
]

log = logging.getLogger(__name__)

SPLITTERS: dict[str, type[Splitter] | None] = {
    "time": TimeSplit,
    "leave_last_out": LeaveLastOut,
    "random": RandomHoldout,
    "cold_course": ColdCourseSplit,
    "given": None,  # the data comes already split into train and test
}
SOURCES = ("sample", "generated", "files")
FILE_FORMATS = ("parquet", "csv", "lines", "mooccubex")
DISTRIBUTIONS = {"choice": Choice, "uniform": Uniform, "loguniform": LogUniform}
_MISSING = object()

Distribution = Choice | Uniform | LogUniform


# ---------------------------------------------------------------------------- config classes
@dataclass(frozen=True)
class DataConfig:
    """Where the events come from; paths are absolute (resolved against the TOML file)."""

    source: str
    path: Path | None = None
    preset: str = "small"
    seed: int = 0
    members: int | None = None
    courses: int | None = None
    format: str | None = None
    tables: Mapping[str, Path] = field(default_factory=dict)
    on_unknown: str = "drop"

    @property
    def pre_split(self) -> bool:
        """The data comes as a train and a test part (no split step)."""
        return self.format == "mooccubex" or "train" in self.tables

    @property
    def timed(self) -> bool:
        """Events carry real timestamps (the "lines" formats only encode order)."""
        return self.format not in ("lines", "mooccubex")


@dataclass(frozen=True)
class ModelConfig:
    """One model of the experiment: fixed parameters, and a search space when tuned."""

    label: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, Distribution] | None = None
    trials: int | None = None


@dataclass(frozen=True)
class EvaluationConfig:
    """Options passed to ``compare``/``evaluate``."""

    ks: tuple[int, ...] = (10, 20)
    members: str = "warm"
    n_boot: int = 0
    segments: bool = True
    truth: bool = False
    seed: int = 0
    candidates: str = "all"


@dataclass(frozen=True)
class TuningConfig:
    """Defaults of every tuned model."""

    trials: int = 10
    metric: str = "ndcg@20"
    seed: int = 0
    validation: Splitter | None = None
    sampler: str = "tpe"
    minutes: float | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment file."""

    name: str
    data: DataConfig
    models: tuple[ModelConfig, ...]
    weighting: Weighting = field(default_factory=Weighting)
    split: Splitter | None = None
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    description: str = ""
    register: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class ExperimentResult:
    """What ``run_experiment`` produced: the comparison table and the MLflow runs.

    ``run_id`` is the parent (comparison) run, ``model_runs`` the child run of each model
    label, ``registration`` where the best model was registered (``None`` unless asked).
    """

    name: str
    run_id: str
    table: pd.DataFrame = field(repr=False)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    tuning: dict[str, TuningResult] = field(default_factory=dict, repr=False)
    results: dict[str, EvaluationResult] = field(default_factory=dict, repr=False)
    model_runs: dict[str, str] = field(default_factory=dict)
    registration: Registration | None = None

    @property
    def best(self) -> str:
        """Label of the best model (first row of the table)."""
        return str(self.table.index[0])


# ---------------------------------------------------------------------------- validation
def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


class _Table:
    """One TOML table being read: typed getters that name the key path, unknown-key check."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table, got {_type_name(raw)}")
        self.raw: dict[str, Any] = raw
        self.where = where
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str, default: Any = _MISSING, *, expected: str = "a value") -> Any:
        self.used.add(name)
        if name not in self.raw:
            if default is _MISSING:
                raise ConfigError(f"{self.key(name)}: missing; expected {expected}")
            return default
        return self.raw[name]

    def string(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] = ()) -> Any:
        what = f"one of {', '.join(map(repr, choices))}" if choices else "a string"
        value = self.get(name, default, expected=what)
        if value is default and name not in self.raw:
            return value
        if not isinstance(value, str) or (choices and value not in choices):
            raise ConfigError(f"{self.key(name)}: got {value!r}; expected {what}")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int = 0) -> Any:
        what = f"an integer >= {minimum}"
        value = self.get(name, default, expected=what)
        if name not in self.raw:
            return value
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{self.key(name)}: got {value!r}; expected {what}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self.get(name, default, expected="true or false")
        if name in self.raw and not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: got {value!r}; expected true or false")
        return value

    def table(self, name: str) -> _Table | None:
        value = self.get(name, None, expected="a table")
        return None if value is None else _Table(value, self.key(name))

    def required_table(self, name: str) -> _Table:
        return _Table(self.get(name, expected="a table"), self.key(name))

    def done(self, allowed: list[str] | None = None) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            known = sorted(allowed if allowed is not None else self.used)
            raise ConfigError(
                f"{self.key(unknown[0])}: unknown key; expected one of {', '.join(known)}"
            )


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() == "none" else value


def _check_value(key: str, value: Any, default: Any) -> Any:
    """``value`` against the type of a parameter's default (when that default is a scalar)."""
    value = _none(value)
    if value is None or default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        return value
    if not ok:
        raise ConfigError(f"{key}: got {value!r}; expected {_type_name(default)}")
    return value


def _dataclass_kwargs(table: _Table, cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in skip]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in names and table.has(f.name):
            default = f.default if f.default is not dataclasses.MISSING else None
            out[f.name] = _check_value(table.key(f.name), table.get(f.name), default)
    table.done(allowed=[*skip, *names])
    return out


def _build(key: str, make: Any, **kwargs: Any) -> Any:
    try:
        return make(**kwargs)
    except (ConfigError, DataError, TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {err}") from None


def _path(table: _Table, name: str, base: Path, *, folder: bool = False) -> Path:
    raw = table.string(name)
    path = (base / raw).resolve()
    kind = "folder" if folder else "file"
    if not (path.is_dir() if folder else path.is_file()):
        raise ConfigError(f"{table.key(name)}: {kind} {path} not found (from {raw!r})")
    return path


def _data(table: _Table, base: Path) -> DataConfig:
    source = table.string("source", choices=SOURCES)
    on_unknown = table.string("on_unknown", "drop", choices=("drop", "raise"))
    if source == "sample":
        path = _path(table, "path", base, folder=True) if table.has("path") else None
        if path is not None and not (path / "events.parquet").is_file():
            raise ConfigError(f"data.path: {path} has no events.parquet; expected a sample folder")
        table.done(allowed=["source", "path", "on_unknown"])
        return DataConfig(source, path=path, on_unknown=on_unknown)
    if source == "generated":
        from recommend.data.synthetic import PRESETS

        data = DataConfig(
            source,
            preset=table.string("preset", "small", choices=tuple(PRESETS)),
            seed=table.integer("seed", 0),
            members=table.integer("members", None, minimum=1),
            courses=table.integer("courses", None, minimum=1),
            on_unknown=on_unknown,
        )
        table.done()
        return data
    fmt = table.string("format", choices=FILE_FORMATS)
    if fmt == "mooccubex":
        path = _path(table, "path", base, folder=True)
        for name in ("train.txt", "test.txt"):
            if not (path / name).is_file():
                raise ConfigError(f"data.path: {path} has no {name}; expected a MOOCCubeX folder")
        table.done(allowed=["source", "format", "path", "on_unknown"])
        return DataConfig(source, path=path, format=fmt, on_unknown=on_unknown)
    names = ["events", "train", "test"] + (["courses", "members", "orgs"] if fmt != "lines" else [])
    tables = {name: _path(table, name, base) for name in names if table.has(name)}
    table.done(allowed=["source", "format", "on_unknown", *names])
    if ("train" in tables) != ("test" in tables) or ("events" in tables) == ("train" in tables):
        raise ConfigError(
            "data: expected either events = FILE, or train = FILE and test = FILE (already split)"
        )
    return DataConfig(source, format=fmt, tables=tables, on_unknown=on_unknown)


def _weighting(table: _Table | None) -> Weighting:
    if table is None:
        return Weighting()
    kwargs = _dataclass_kwargs(table, Weighting)
    if "event_weights" in kwargs:
        weights = _Table(kwargs["event_weights"], "weighting.event_weights")
        for event, value in weights.raw.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(
                    f"weighting.event_weights.{event}: got {value!r}; expected a number"
                )
    return _build("weighting", Weighting, **kwargs)


def _splitter(table: _Table, *, allow_given: bool) -> Splitter | None:
    kinds = tuple(k for k in SPLITTERS if allow_given or k != "given")
    kind = table.string("kind", choices=kinds)
    cls = SPLITTERS[kind]
    if cls is None:
        table.done(allowed=["kind"])
        return None
    return _build(table.where, cls, **_dataclass_kwargs(table, cls, skip=("kind",)))


def _distribution(key: str, raw: object) -> Distribution:
    spec = _Table(raw, key)
    kinds = [k for k in DISTRIBUTIONS if spec.has(k)]
    if len(kinds) != 1:
        raise ConfigError(
            f"{key}: expected exactly one of choice = [...], uniform = [low, high], "
            "loguniform = [low, high]"
        )
    kind = kinds[0]
    values = spec.get(kind)
    integer = spec.boolean("integer", False)
    spec.done(allowed=[kind, "integer"])
    where = f"{key}.{kind}"
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: got {values!r}; expected a non-empty list")
    if kind == "choice":
        if spec.has("integer"):
            raise ConfigError(f"{key}.integer: only for uniform and loguniform")
        return Choice(tuple(_none(v) for v in values))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if len(values) != 2 or not numbers or values[0] > values[1]:
        raise ConfigError(f"{where}: got {values!r}; expected [low, high] numbers, low <= high")
    if kind == "loguniform" and values[0] <= 0:
        raise ConfigError(f"{where}: got {values!r}; expected low > 0 for a log scale")
    return DISTRIBUTIONS[kind](float(values[0]), float(values[1]), integer)


def _model(label: str, raw: object) -> ModelConfig:
    table = _Table(raw, f"models.{label}")
    name = table.string("model", label)
    if name.lower() not in MODEL_NAMES:
        raise ConfigError(
            f"{table.key('model') if table.has('model') else table.where}: unknown model "
            f"{name!r}; expected one of {', '.join(MODEL_NAMES)}"
        )
    cls = get_model_class(name)
    signature = inspect.signature(cls.__init__).parameters
    accepted = cls.param_names()
    params_table = table.table("params") or _Table({}, table.key("params"))

    def accept(where: str, key: str) -> None:
        if key not in accepted:
            raise ConfigError(
                f"{where}: {cls.__name__} has no such parameter; expected one of "
                f"{', '.join(accepted)}"
            )

    params: dict[str, Any] = {}
    for key, value in params_table.raw.items():
        where = params_table.key(key)
        accept(where, key)
        params[key] = _check_value(where, value, signature[key].default)
    _build(params_table.where, cls, **params)  # the class checks values; nothing is fitted
    search: dict[str, Distribution] | None = None
    search_table = table.table("search")
    if search_table is not None:
        search = {}
        for key, spec in search_table.raw.items():
            where = search_table.key(key)
            accept(where, key)
            if key in params:
                raise ConfigError(f"{where}: also fixed in {params_table.key(key)}; keep one")
            search[key] = _distribution(where, spec)
        if not search:
            raise ConfigError(f"{search_table.where}: empty; expected param = {{ choice = [...] }}")
    tuned = table.boolean("tune", search is not None)
    if search is None and tuned:
        search = {k: v for k, v in SEARCH_SPACES.get(cls.name, {}).items() if k not in params}
        if not search:
            raise ConfigError(
                f"{table.key('tune')}: {cls.name} has no default search space; "
                "give search = { param = { choice = [...] } }"
            )
    if search is not None and not tuned:
        raise ConfigError(f"{table.key('tune')}: false, but a search space is given")
    trials = table.integer("trials", None, minimum=1)
    if trials is not None and not tuned:
        raise ConfigError(f"{table.key('trials')}: the model is not tuned; add tune = true")
    table.done(allowed=["model", "params", "search", "tune", "trials"])
    return ModelConfig(label, cls.name, params, search, trials)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file; raises ``ConfigError`` naming the bad key."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: experiment file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from None
    return config_from_dict(raw, base=file.resolve().parent, path=file)


def config_from_dict(
    raw: Mapping[str, Any], *, base: Path, path: Path | None = None
) -> ExperimentConfig:
    """Validate a parsed experiment file; relative data paths resolve against ``base``."""
    top = _Table(dict(raw), "")
    name = top.string("name")
    if not name.strip():
        raise ConfigError("name: empty; expected the MLflow experiment name")
    description = top.string("description", "")
    register = _register_name(top.string("register", None), "register")
    data = _data(top.required_table("data"), base)
    weighting = _weighting(top.table("weighting"))

    split_table = top.table("split")
    if split_table is None:
        split_table = _Table(
            {"kind": "given"}
            if data.pre_split
            else {"kind": "time" if data.timed else "random", "test_fraction": 0.2},
            "split",
        )
    split = _splitter(split_table, allow_given=True)
    if data.pre_split and split is not None:
        raise ConfigError(
            "split.kind: the data is already split into train and test; "
            "expected 'given' (or no [split] section)"
        )
    if not data.pre_split and split is None:
        raise ConfigError("split.kind: 'given' needs data with train and test files")

    ev = top.table("evaluation") or _Table({}, "evaluation")
    ks = ev.get("ks", [10, 20], expected="a list of positive integers")
    if (
        not isinstance(ks, list)
        or not ks
        or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks)
    ):
        raise ConfigError(f"evaluation.ks: got {ks!r}; expected a list of positive integers")
    evaluation = EvaluationConfig(
        ks=tuple(sorted(set(ks))),
        members=ev.string("members", "warm", choices=("warm", "all")),
        n_boot=ev.integer("n_boot", 0),
        segments=ev.boolean("segments", True),
        truth=ev.boolean("truth", False),
        seed=ev.integer("seed", 0),
        # a cold-course split asks how models order the new courses: rank only those
        candidates=ev.string(
            "candidates",
            "test" if isinstance(split, ColdCourseSplit) else "all",
            choices=("all", "test"),
        ),
    )
    ev.done(allowed=["ks", "members", "n_boot", "segments", "truth", "seed", "candidates"])
    if evaluation.truth and data.source == "files":
        raise ConfigError("evaluation.truth: only sample or generated data has a truth")

    tu = top.table("tuning") or _Table({}, "tuning")
    metric = tu.string("metric", f"ndcg@{max(evaluation.ks)}")
    family, _, k = metric.partition("@")
    if not family or not k.isdigit() or int(k) < 1:
        raise ConfigError(f"tuning.metric: got {metric!r}; expected NAME@K such as 'ndcg@20'")
    valid_table = tu.table("validation")
    minutes = tu.get("minutes", None, expected="a number of minutes > 0")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes > 0
    ):
        raise ConfigError(f"{tu.key('minutes')}: got {minutes!r}; expected a number > 0")
    tuning = TuningConfig(
        trials=tu.integer("trials", 10, minimum=1),
        metric=metric,
        seed=tu.integer("seed", 0),
        validation=_splitter(valid_table, allow_given=False) if valid_table else None,
        sampler=tu.string("sampler", "tpe", choices=("tpe", "random")),
        minutes=None if minutes is None else float(minutes),
    )
    tu.done(allowed=["trials", "metric", "seed", "validation", "sampler", "minutes"])

    models_table = top.required_table("models")
    if not models_table.raw:
        raise ConfigError("models: empty; expected at least one [models.NAME] table")
    models = tuple(_model(label, spec) for label, spec in models_table.raw.items())
    top.done(
        allowed=[
            "name",
            "description",
            "data",
            "weighting",
            "split",
            "evaluation",
            "tuning",
            "models",
            "register",
        ]
    )
    return ExperimentConfig(
        name=name,
        description=description,
        data=data,
        weighting=weighting,
        split=split,
        evaluation=evaluation,
        tuning=tuning,
        models=models,
        register=register,
        path=path,
    )


def _register_name(value: str | None, key: str) -> str | None:
    """A registered model name (see ``recommend.registry.model_name``), or ``None``."""
    return None if value is None else model_name(value, key)


# ---------------------------------------------------------------------------- running
@dataclass(frozen=True)
class _Tables:
    events: pd.DataFrame | None = None
    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    courses: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    orgs: pd.DataFrame | None = None
    truth: Any = None


def _read(data: DataConfig) -> _Tables:
    from recommend.data.loaders import load_mooccubex, read_lines, read_table
    from recommend.data.synthetic import PRESETS, read_platform, synthesize

    if data.source in ("sample", "generated"):
        if data.path is not None:
            platform = read_platform(data.path)
        else:
            preset = "sample" if data.source == "sample" else data.preset
            cfg = PRESETS[preset]
            cfg = dataclasses.replace(
                cfg,
                n_members=cfg.n_members if data.members is None else data.members,
                n_courses=cfg.n_courses if data.courses is None else data.courses,
            )
            platform = synthesize(cfg, seed=data.seed)
        return _Tables(
            events=platform.events,
            courses=platform.courses,
            members=platform.members,
            orgs=platform.orgs,
            truth=platform.truth,
        )
    if data.format == "mooccubex":
        assert data.path is not None
        cube = load_mooccubex(data.path)
        return _Tables(train=cube.train, test=cube.test, courses=cube.courses)
    if data.format == "lines":
        return _Tables(**{name: read_lines(p) for name, p in data.tables.items()})
    return _Tables(
        **{
            name: read_table(p, "events" if name in ("train", "test") else name, format=data.format)
            for name, p in data.tables.items()
        }
    )


def _datasets(config: ExperimentConfig, tables: _Tables) -> tuple[Dataset, Dataset]:
    common: dict[str, Any] = dict(
        courses=tables.courses,
        members=tables.members,
        orgs=tables.orgs,
        weighting=config.weighting,
        on_unknown=config.data.on_unknown,
    )
    if tables.events is not None:
        assert config.split is not None
        return Dataset.from_frames(tables.events, **common).split(config.split)
    assert tables.train is not None and tables.test is not None
    # One universe for both parts, so test courses unseen in training count as misses.
    both = pd.concat([tables.train, tables.test])
    members = IdMap.from_values(both[Columns.MEMBER])
    courses = IdMap.from_values(both[Columns.COURSE])
    common.update(member_ids=members, course_ids=courses)
    train = Dataset.from_frames(tables.train, **common)
    # The test part lies after the training part's now on purpose.
    return train, Dataset.from_frames(tables.test, now=train.now, on_future="keep", **common)


def run_experiment(
    config: ExperimentConfig, *, uri: str | None = None, register: str | None = None
) -> ExperimentResult:
    """Run an experiment end to end and log it to MLflow.

    Parameters
    ----------
    config
        What ``load_config`` returned.
    uri
        Tracking URI (see ``recommend.tracking.tracking_uri``).
    register
        Register the best model under this name (overrides the file's ``register``): the
        model evaluated in the best run is logged to that run as a pyfunc model
        (``recommend.registry``), registered, and the alias ``champion`` moved to it.

    Returns
    -------
    ExperimentResult
        The comparison table (one row per model label, best NDCG first), the run ids, the
        parameters each model was evaluated with, the tuning results and the registration.
    """
    register = _register_name(register, "--register") or config.register
    tables = _read(config.data)
    train, test = _datasets(config, tables)
    log.info("experiment %s: %s", config.name, train.summary())
    validation = config.tuning.validation or (
        TimeSplit(test_fraction=0.2) if config.data.timed else RandomHoldout(0.2, seed=0)
    )
    tags = {"recommend.experiment": config.name}
    fitted: dict[str, Recommender] = {}
    if config.path is not None:
        tags["recommend.config"] = Path(config.path).name
    models = {}
    params: dict[str, dict[str, Any]] = {}
    tuned: dict[str, TuningResult] = {}
    for spec in config.models:
        chosen = dict(spec.params)
        if spec.search is not None:
            with tuning_logger(
                config.name, spec.label, metric=config.tuning.metric, uri=uri, tags=tags
            ) as on_trial:
                tuned[spec.label] = tune(
                    spec.model,
                    train,
                    n_trials=spec.trials or config.tuning.trials,
                    space=spec.search,
                    fixed=spec.params,
                    metric=config.tuning.metric,
                    validation=validation,
                    seed=config.tuning.seed,
                    on_trial=on_trial,
                    sampler=config.tuning.sampler,
                    minutes=config.tuning.minutes,
                )
            chosen = dict(tuned[spec.label].best_params)
        params[spec.label] = chosen
        models[spec.label] = make_model(spec.model, **chosen)
    ev = config.evaluation
    table, results = compare(
        models,
        train,
        test,
        ks=ev.ks,
        members=ev.members,
        n_boot=ev.n_boot,
        segments=ev.segments,
        seed=ev.seed,
        candidates=ev.candidates,
        truth=tables.truth if ev.truth else None,
        progress=lambda label: log.info("experiment %s: fitting %s", config.name, label),
        on_fitted=fitted.__setitem__ if register else None,
    )
    run_id, model_runs = comparison_runs(
        table,
        results,
        train=train,
        split=config.split,
        experiment=config.name,
        run_name=config.name,
        uri=uri,
        tags=tags,
    )
    registration = None
    if register:
        best = str(table.index[0])
        registration = _register_best(model_runs[best], fitted[best], register, uri)
        log.info("experiment %s: %s registered as %s", config.name, best, registration.uri)
    return ExperimentResult(
        config.name, run_id, table, params, tuned, results, model_runs, registration
    )


def _register_best(run_id: str, model: Recommender, name: str, uri: str | None) -> Registration:
    from recommend.registry import log_pyfunc, register
    from recommend.tracking import mlflow_client

    log_pyfunc(mlflow_client(uri), run_id, model)
    return register(run_id, name, uri=uri)
