from __future__ import annotations

import json
from pathlib import Path

import pytest

import recommend.experiment as experiment
from recommend.cli import main
from recommend.errors import ConfigError
from recommend.experiment import load_config, run_experiment
from recommend.tuning import Choice, LogUniform

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml"))

SMALL = """
name = "{name}"

[data]
source = "generated"
preset = "small"
seed = 3

[split]
kind = "time"
test_fraction = 0.2

[evaluation]
ks = [5, 10]
segments = false
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlruns.db"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_experiments_validate(path: Path) -> None:
    data_dir = path.parent.parent.parent / "shared" / "data" / "mooccubex-courses"
    if path.stem == "mooccubex" and not data_dir.is_dir():
        with pytest.raises(ConfigError, match=r"data\.path: folder .* not found"):
            load_config(path)
        return
    config = load_config(path)
    assert config.models and config.name


def test_required_experiments_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"baseline", "tune_als", "cold_start", "mooccubex"} <= names
    baseline = load_config(SHIPPED[[p.stem for p in SHIPPED].index("baseline")])
    assert {m.model for m in baseline.models} == {
        "popularity",
        "als",
        "bpr",
        "item_knn",
        "ease",
        "lightfm",
    }


def test_search_space_and_paths_are_parsed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "events.csv").write_text("member_id,course_id,event,timestamp\n")
    text = """
name = "files"
[data]
source = "files"
format = "csv"
events = "data/events.csv"
[models.als]
params = { iterations = 5 }
search = { n_factors = { choice = [8, 16] }, alpha = { loguniform = [1, 10] } }
"""
    config = load_config(write(tmp_path, text))
    assert config.data.tables["events"] == (tmp_path / "data" / "events.csv").resolve()
    (als,) = config.models
    assert als.search == {"n_factors": Choice((8, 16)), "alpha": LogUniform(1.0, 10.0)}
    assert als.params == {"iterations": 5}


def test_run_fixed_and_tuned_models_logs_to_mlflow(tmp_path: Path, uri: str) -> None:
    text = (
        SMALL.format(name="small-run")
        + """
[tuning]
trials = 2
metric = "ndcg@10"
sampler = "random"
minutes = 30

[models.popularity]

[models.ease]
search = { l2 = { loguniform = [50.0, 1000.0] } }
"""
    )
    result = run_experiment(load_config(write(tmp_path, text)), uri=uri)
    assert set(result.table.index) == {"popularity", "ease"}
    assert {"ndcg@5", "recall@10"} <= set(result.table.columns)
    assert len(result.tuning["ease"].trials) == 2
    assert result.tuning["ease"].sampler == "random"
    assert result.params["ease"] == result.tuning["ease"].best_params

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("small-run")
    assert exp is not None
    run = client.get_run(result.run_id)
    assert run.data.params["split.splitter"] == "TimeSplit"
    assert run.data.tags["recommend.config"] == "exp.toml"
    # comparison parent + 2 children, tuning parent + 2 trials
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 6


def test_cold_course_split_with_hybrid(tmp_path: Path, uri: str) -> None:
    text = """
name = "cold"
[data]
source = "generated"
seed = 1
[split]
kind = "cold_course"
test_fraction = 0.2
[evaluation]
ks = [10]
segments = false
[models.popularity]
[models.lightfm]
params = { n_factors = 8, epochs = 3, identity_features = false }
"""
    result = run_experiment(load_config(write(tmp_path, text)), uri=uri)
    assert set(result.table.index) == {"popularity", "lightfm"}
    # Only the new courses are ranked (candidates default to "test" on a cold-course
    # split). Popularity knows nothing about them (all score 0, ties in index order);
    # the hybrid places them by their features.
    table = result.table
    assert table.loc["lightfm", "ndcg@10"] > 1.5 * table.loc["popularity", "ndcg@10"]
    assert load_config(write(tmp_path, text)).evaluation.candidates == "test"


def test_pre_split_lines_files(tmp_path: Path, uri: str) -> None:
    lines_train = "\n".join(
        f"{m} " + " ".join(str((m + j) % 12) for j in range(6)) for m in range(30)
    )
    lines_test = "\n".join(f"{m} {(m + 7) % 12}" for m in range(30))
    (tmp_path / "train.txt").write_text(lines_train + "\n")
    (tmp_path / "test.txt").write_text(lines_test + "\n")
    text = """
name = "lines"
[data]
source = "files"
format = "lines"
train = "train.txt"
test = "test.txt"
[evaluation]
ks = [5]
segments = false
[models.popularity]
"""
    config = load_config(write(tmp_path, text))
    assert config.split is None
    result = run_experiment(config, uri=uri)
    assert result.table.loc["popularity", "n_evaluated"] == 30


BASE = SMALL.format(name="bad") + "\n[models.popularity]\n"

BAD = [
    ("unknown section", BASE + "[extra]\nx = 1\n", r"^extra: unknown key"),
    ("missing name", BASE.replace('name = "bad"', ""), r"^name: missing"),
    ("name type", BASE.replace('"bad"', "3"), r"^name: got 3; expected a string"),
    ("no models", SMALL.format(name="x"), r"^models: missing"),
    ("bad source", BASE.replace('"generated"', '"web"'), r"^data\.source: got 'web'"),
    ("bad preset", BASE.replace('"small"', '"huge"'), r"^data\.preset: got 'huge'"),
    ("data key", BASE.replace("seed = 3", "sed = 3"), r"^data\.sed: unknown key"),
    ("seed type", BASE.replace("seed = 3", 'seed = "3"'), r"^data\.seed: got '3'"),
    ("split kind", BASE.replace('kind = "time"', 'kind = "weekly"'), r"^split\.kind: got"),
    (
        "split key",
        BASE.replace("test_fraction = 0.2", "fraction = 0.2"),
        r"^split\.fraction: unknown key",
    ),
    (
        "split value",
        BASE.replace("test_fraction = 0.2", "test_fraction = 1.5"),
        r"^split: .*test_fraction",
    ),
    (
        "given split",
        BASE.replace('kind = "time"\ntest_fraction = 0.2', 'kind = "given"'),
        r"^split\.kind: 'given' needs data with train and test",
    ),
    ("ks", BASE.replace("ks = [5, 10]", "ks = [0]"), r"^evaluation\.ks: got \[0\]"),
    (
        "evaluation key",
        BASE.replace("segments = false", "segment = false"),
        r"^evaluation\.segment: unknown key",
    ),
    ("weighting key", BASE + "[weighting]\nhalflife = 3\n", r"^weighting\.halflife: unknown"),
    (
        "weighting type",
        BASE + '[weighting]\nwatch_weight = "high"\n',
        r"^weighting\.watch_weight: got 'high'; expected a number",
    ),
    ("metric", BASE + '[tuning]\nmetric = "ndcg"\n', r"^tuning\.metric: got 'ndcg'"),
    ("trials", BASE + "[tuning]\ntrials = 0\n", r"^tuning\.trials: got 0"),
    ("unknown model", BASE + "[models.svd]\n", r"^models\.svd: unknown model 'svd'"),
    (
        "unknown model name",
        BASE + '[models.mine]\nmodel = "svd"\n',
        r"^models\.mine\.model: unknown model",
    ),
    (
        "unknown param",
        BASE + "[models.als]\nparams = { n_factor = 8 }\n",
        r"^models\.als\.params\.n_factor: ALS has no such parameter; expected one of n_factors",
    ),
    (
        "param type",
        BASE + '[models.als]\nparams = { n_factors = "many" }\n',
        r"^models\.als\.params\.n_factors: got 'many'; expected an integer",
    ),
    (
        "param value",
        BASE + "[models.ease]\nparams = { l2 = -1.0 }\n",
        r"^models\.ease\.params: ",
    ),
    ("model key", BASE + "[models.ease]\nparam = {}\n", r"^models\.ease\.param: unknown key"),
    (
        "search param",
        BASE + "[models.ease]\nsearch = { l3 = { choice = [1.0] } }\n",
        r"^models\.ease\.search\.l3: EASE has no such parameter",
    ),
    (
        "search distribution",
        BASE + "[models.ease]\nsearch = { l2 = { normal = [1, 2] } }\n",
        r"^models\.ease\.search\.l2: expected exactly one of choice",
    ),
    (
        "search bounds",
        BASE + "[models.ease]\nsearch = { l2 = { loguniform = [0.0, 2.0] } }\n",
        r"^models\.ease\.search\.l2\.loguniform: got \[0\.0, 2\.0\]; expected low > 0",
    ),
    (
        "search order",
        BASE + "[models.ease]\nsearch = { l2 = { uniform = [5, 2] } }\n",
        r"^models\.ease\.search\.l2\.uniform: got \[5, 2\]; expected \[low, high\]",
    ),
    (
        "search and fixed",
        BASE + "[models.ease]\nparams = { l2 = 5.0 }\nsearch = { l2 = { choice = [1.0] } }\n",
        r"^models\.ease\.search\.l2: also fixed",
    ),
    (
        "tuning sampler",
        BASE + '[tuning]\nsampler = "grid"\n',
        r"^tuning\.sampler: got 'grid'; expected one of 'tpe', 'random'",
    ),
    (
        "tuning minutes",
        BASE + "[tuning]\nminutes = 0\n",
        r"^tuning\.minutes: got 0; expected a number > 0",
    ),
    (
        "trials without tuning",
        BASE + "[models.ease]\ntrials = 3\n",
        r"^models\.ease\.trials: the model is not tuned",
    ),
    (
        "missing file",
        BASE.replace('source = "generated"\npreset = "small"\nseed = 3', "").replace(
            "[data]", '[data]\nsource = "files"\nformat = "csv"\nevents = "nope.csv"'
        ),
        r"^data\.events: file .*nope\.csv not found",
    ),
    (
        "missing sample",
        BASE.replace('source = "generated"\npreset = "small"\nseed = 3', "").replace(
            "[data]", '[data]\nsource = "sample"\npath = "no-sample"'
        ),
        r"^data\.path: folder .*no-sample not found",
    ),
]


@pytest.mark.parametrize(("text", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_the_key_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, pattern: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built or tuned from a bad config")

    monkeypatch.setattr(experiment, "make_model", refuse)
    monkeypatch.setattr(experiment, "tune", refuse)
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, text))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "name = \n"))
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_config(tmp_path / "missing.toml")


def test_cli_experiment_run(tmp_path: Path, uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE.replace('"bad"', '"cli"'))
    assert main(["experiment", "run", str(path), "--tracking-uri", uri, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "cli" and out["run_id"]
    assert "ndcg@10" in out["metrics"]["popularity"]
    bad = write(tmp_path, BASE + "[models.als]\nparams = { n_factor = 8 }\n", "bad.toml")
    assert main(["experiment", "run", str(bad), "--tracking-uri", uri]) == 2
    assert "models.als.params.n_factor" in capsys.readouterr().err
