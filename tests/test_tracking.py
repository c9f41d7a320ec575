from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from csv import reader
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from recommend import tracking
from recommend.data.dataset import Dataset
from recommend.data.splits import TimeSplit
from recommend.data.synthetic import Platform
from recommend.evaluation import EvaluationResult, compare, evaluate
from recommend.models import make_model
from recommend.models.base import Recommender
from recommend.tuning import Uniform, tune

SPLIT = TimeSplit(test_fraction=0.2)
#: Member attributes that must never reach MLflow, by name or by value.
PERSONAL = ("birth_year", "gender", "district", "skills", "joined_at")


@dataclasses.dataclass
class Data:
    train: Dataset
    test: Dataset
    members: pd.DataFrame


@pytest.fixture(scope="module")
def data(small_platform: Platform, small_dataset: Dataset) -> Data:
    train, test = small_dataset.split(SPLIT)
    return Data(train, test, small_platform.members)


@pytest.fixture(scope="module")
def ease(data: Data) -> tuple[Recommender, EvaluationResult]:
    model = make_model("ease")
    return model, evaluate(model, data.train, data.test, ks=(5, 10), n_boot=50)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No env URI, cwd in tmp; global MLflow state must be the same afterwards."""
    before = mlflow.get_tracking_uri()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    assert mlflow.active_run() is None
    # With the environment and directory restored, the URI MLflow derives must be the one
    # it derived before (no process-wide URI set). It is only compared, never set: setting
    # it would pin it and make later tests ignore MLFLOW_TRACKING_URI.
    monkeypatch.undo()
    assert mlflow.get_tracking_uri() == before


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlruns.db"


def _search(uri: str, experiment: str) -> pd.DataFrame:
    """Every run of ``experiment`` as one row: params.*, metrics.*, tags.*, status."""
    client = MlflowClient(tracking_uri=tracking.store_uri(uri))  # relative paths: cwd now
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    rows = []
    for run in client.search_runs([exp.experiment_id]):
        row = {"run_id": run.info.run_id, "status": run.info.status}
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _without_cold_route(path: Path) -> str:
    """A logged file's text; of ``model.json``, without the cold route's state (the kinds
    it validated name the segment dictionaries' keys; its values are checked apart)."""
    text = path.read_bytes().decode("utf-8", "replace")
    if path.name != "model.json":
        return text
    meta = json.loads(text)
    meta["state"].pop("cold_route_", None)
    return json.dumps(meta, ensure_ascii=False)


def artifact_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "mlartifacts").rglob("*") if p.is_file()]


def test_metric_key_sanitises() -> None:
    assert tracking.metric_key("ndcg@10") == "ndcg_at_10"
    assert tracking.metric_key("segment.age band.30-39/x") == "segment.age band.30-39/x"
    assert tracking.metric_key("a:b(c)") == "a_b_c_"


def test_segment_key_is_one_component_per_part() -> None:
    assert (
        tracking.segment_key("age_band", "30-39", "ndcg@10") == "segment.age_band.30-39.ndcg_at_10"
    )
    assert tracking.segment_key("org", "a/b@c", "recall@5") == "segment.org.a_b_at_c.recall_at_5"


def test_flatten_params_nests_and_hides_objects() -> None:
    flat = tracking.flatten_params(
        "model.",
        {"k": 10, "weights": {"a": 0.5, "b": None}, "ids": (1, 2), "frame": pd.DataFrame()},
    )
    assert flat == {
        "model.k": "10",
        "model.weights.a": "0.5",
        "model.weights.b": "None",
        "model.ids": "[1, 2]",
        "model.frame": "<DataFrame>",
    }


def test_shared_run_helpers_log_nest_and_fail(uri: str) -> None:
    """What the registry and search-weight learning build their runs from."""
    client = tracking.mlflow_client(uri)
    exp = tracking.ensure_experiment(client, "helpers")
    assert tracking.ensure_experiment(client, "helpers") == exp  # found, not created again
    with tracking.tracked_run(client, exp, run_name="parent") as parent:
        with tracking.tracked_run(client, exp, run_name="child", parent=parent) as child:
            params = {f"p{i}": str(i) for i in range(150)}  # more than one batch
            tracking.log_batch(client, child, params, {"ndcg_at_10": 0.25})
        with pytest.raises(RuntimeError), tracking.tracked_run(client, exp, run_name="bad"):
            raise RuntimeError("boom")
    runs = _search(uri, "helpers").set_index("tags.mlflow.runName")
    assert runs.loc["child", "tags.mlflow.parentRunId"] == parent
    assert runs.loc["child", "params.p149"] == "149"
    assert runs.loc["child", "metrics.ndcg_at_10"] == 0.25
    assert runs["status"].to_dict() == {"parent": "FINISHED", "child": "FINISHED", "bad": "FAILED"}
    assert (runs["tags.recommend.library"] == "recommend").all()


def test_tracking_uri_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracking.tracking_uri() == "sqlite:///mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.tracking_uri() == "sqlite:///elsewhere.db"
    assert tracking.tracking_uri("http://server:5000") == "http://server:5000"


def test_evaluation_run_reads_back(
    data: Data, ease: tuple[Recommender, EvaluationResult], uri: str, tmp_path: Path
) -> None:
    model, result = ease
    run_id = tracking.log_evaluation(
        result, train=data.train, split=SPLIT, model=model, uri=uri, tags={"purpose": "test"}
    )
    frame = _search(uri, "recommend")
    assert list(frame["run_id"]) == [run_id]
    row = frame.iloc[0]
    assert row["status"] == "FINISHED"
    assert row["params.model"] == "ease"
    assert row["params.ease.l2"] == str(model.get_params()["l2"])
    assert row["params.weighting.half_life_days"] == "90.0"
    assert row["params.split.test_fraction"] == "0.2"
    assert row["params.split.splitter"] == "TimeSplit"
    assert row["params.data.fingerprint"] == data.train.fingerprint()
    assert row["metrics.ndcg_at_10"] == pytest.approx(result.metrics["ndcg@10"])
    assert row["metrics.coverage_at_5"] == pytest.approx(result.metrics["coverage@5"])
    assert row["metrics.data.members"] == data.train.n_members
    assert row["metrics.data.courses"] == data.train.n_courses
    assert row["metrics.data.events"] == len(data.train.events)
    assert row["metrics.data.density"] == pytest.approx(data.train.summary()["density"])
    occ = result.segments["occupation"]
    label = occ["members"].idxmax()
    key = f"metrics.segment.occupation.{label}.ndcg_at_10"
    assert row[key] == pytest.approx(occ.loc[label, "ndcg@10"])
    assert row["tags.purpose"] == "test"

    names = {p.relative_to(tmp_path / "mlartifacts").parts[-2:] for p in artifact_files(tmp_path)}
    assert ("model", "model.json") in names
    assert ("plots", "metric_at_k.png") in names
    assert ("segments", "occupation.csv") in names
    assert any(n[-1] == "intervals.csv" for n in names)
    png = next(p for p in artifact_files(tmp_path) if p.name == "metric_at_k.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(
        next(p for p in artifact_files(tmp_path) if p.name == "model.json").read_text()
    )
    assert meta["data"]["fingerprint"] == data.train.fingerprint()


def test_embedded_default_store_in_working_directory(
    data: Data, ease: tuple[Recommender, EvaluationResult], tmp_path: Path
) -> None:
    run_id = tracking.log_evaluation(ease[1], train=data.train, experiment="default")
    assert (tmp_path / "mlruns.db").is_file()
    assert any((tmp_path / "mlartifacts").rglob("metric_at_k.png"))
    assert list(_search("sqlite:///mlruns.db", "default")["run_id"]) == [run_id]


def test_default_store_follows_the_working_directory(
    data: Data,
    ease: tuple[Recommender, EvaluationResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relative default is resolved at each call, not pinned to the first folder used."""
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        run_id = tracking.log_evaluation(ease[1], train=data.train, experiment=name)
        assert (tmp_path / name / "mlruns.db").is_file()
        assert list(_search(f"sqlite:///{tmp_path / name / 'mlruns.db'}", name)["run_id"]) == [
            run_id
        ]
    assert tracking.store_uri() == f"sqlite:///{tmp_path / 'second' / 'mlruns.db'}"
    assert tracking.store_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert tracking.store_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    second = tmp_path / "second" / "mlruns.db"
    assert tracking.store_uri("sqlite:///mlruns.db?timeout=30") == f"sqlite:///{second}?timeout=30"


def test_env_uri_is_honoured(
    data: Data,
    ease: tuple[Recommender, EvaluationResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_uri = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    run_id = tracking.log_evaluation(ease[1], train=data.train)
    assert not (tmp_path / "mlruns.db").exists()
    assert list(_search(env_uri, "recommend")["run_id"]) == [run_id]


def test_comparison_parent_with_one_child_per_model(data: Data, uri: str, tmp_path: Path) -> None:
    models = {"popularity": make_model("popularity"), "ease": make_model("ease")}
    table, results = compare(models, data.train, data.test, ks=(5, 10), n_boot=0)
    parent = tracking.log_comparison(table, results, train=data.train, split=SPLIT, uri=uri)
    frame = _search(uri, "recommend")
    assert len(frame) == 3
    children = frame[frame["tags.mlflow.parentRunId"] == parent]
    assert sorted(children["tags.mlflow.runName"]) == ["ease", "popularity"]
    top = frame[frame["run_id"] == parent].iloc[0]
    assert top["params.models"] == ",".join(table.index)
    names = {p.name for p in (tmp_path / "mlartifacts").rglob(f"{parent}/**/*") if p.is_file()}
    assert {"comparison.csv", "comparison.html"} <= names
    assert {"ndcg_at_k.png", "coverage_vs_ndcg.png", "popularity.png"} <= names
    csv = next((tmp_path / "mlartifacts").rglob(f"{parent}/**/comparison.csv"))
    assert list(pd.read_csv(csv, index_col=0).index) == list(table.index)


def test_tuning_trials_are_children_of_one_parent(data: Data, uri: str) -> None:
    with tracking.tuning_logger("tuning", "popularity", metric="ndcg@10", uri=uri) as on_trial:
        result = tune("popularity", data.train, n_trials=3, metric="ndcg@10", on_trial=on_trial)
    frame = _search(uri, "tuning")
    parent = frame[frame["tags.mlflow.runName"] == "tune-popularity"]
    assert len(parent) == 1
    top = parent.iloc[0]
    children = frame[frame["tags.mlflow.parentRunId"] == top["run_id"]]
    assert len(children) == 3
    assert set(children["status"]) == {"FINISHED"}
    assert top["metrics.best.ndcg_at_10"] == pytest.approx(result.best_score)
    assert top["params.best.half_life_days"] == str(result.best_params["half_life_days"])
    assert children["metrics.ndcg_at_10"].max() == pytest.approx(result.best_score)


def test_pruned_trials_are_child_runs_flagged_pruned(data: Data, uri: str) -> None:
    space = {"beta": Uniform(0.0, 4.0)}  # large beta: weak trials for the pruner to stop
    with tracking.tuning_logger("tuning", "rp3beta", metric="ndcg@10", uri=uri) as on_trial:
        result = tune(
            "rp3beta", data.train, n_trials=12, space=space, metric="ndcg@10", on_trial=on_trial
        )
    assert result.n_pruned >= 1
    frame = _search(uri, "tuning")
    children = frame[frame["tags.mlflow.parentRunId"].notna()]
    assert len(children) == 12
    pruned = children[children["metrics.pruned"] == 1.0]
    assert len(pruned) == result.n_pruned
    # A pruned trial's running score is logged apart and never competes for the best.
    assert pruned["metrics.ndcg_at_10"].isna().all()
    assert pruned["metrics.partial_ndcg_at_10"].notna().all()
    top = frame[frame["tags.mlflow.runName"] == "tune-rp3beta"].iloc[0]
    assert top["metrics.best.ndcg_at_10"] == pytest.approx(result.best_score)


def test_failed_body_marks_parent_failed(uri: str) -> None:
    with pytest.raises(RuntimeError), tracking.tuning_logger("tuning", "ease", uri=uri):
        raise RuntimeError("boom")
    assert list(_search(uri, "tuning")["status"]) == ["FAILED"]


def test_small_segments_are_not_logged(
    data: Data,
    ease: tuple[Recommender, EvaluationResult],
    uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = ease[1]
    sizes = pd.concat([t["members"] for t in result.segments.values()])
    threshold = int(sizes.min()) + 1  # at least one segment falls below
    monkeypatch.setattr(tracking, "MIN_SEGMENT_MEMBERS", threshold)
    tracking.log_evaluation(result, train=data.train, uri=uri)
    row = _search(uri, "recommend").iloc[0]
    for name, table in result.segments.items():
        csv = pd.read_csv(next((tmp_path / "mlartifacts").rglob(f"segments/{name}.csv")))
        assert (csv["members"] >= threshold).all()
        for label, n in table["members"].items():
            logged = f"metrics.{tracking.segment_key(name, label, 'ndcg@10')}" in row.index
            assert logged == (n >= threshold), (name, label, n)


def test_no_member_data_reaches_mlflow(
    data: Data, ease: tuple[Recommender, EvaluationResult], uri: str, tmp_path: Path
) -> None:
    model, result = ease
    # A parameter holding member data (as an oracle's test set would) is logged by type only.
    leaky = dataclasses.replace(result, params={**result.params, "ease.table": data.members})
    tracking.log_evaluation(leaky, train=data.train, split=SPLIT, model=model, uri=uri)
    table, results = compare([make_model("popularity")], data.train, data.test, n_boot=20)
    tracking.log_comparison(table, results, train=data.train, uri=uri)
    with tracking.tuning_logger("recommend", "popularity", uri=uri) as on_trial:
        tune("popularity", data.train, n_trials=2, on_trial=on_trial)

    frame = _search(uri, "recommend")
    assert frame["params.ease.table"].dropna().tolist() == ["<DataFrame>"]
    texts = [" ".join(map(str, frame.columns)), " ".join(map(str, frame.to_numpy().ravel()))]
    files = artifact_files(tmp_path)
    assert files
    texts += [_without_cold_route(p) for p in files]
    # The store itself, byte for byte (params, metrics, tags, names).
    texts.append((tmp_path / "mlruns.db").read_bytes().decode("utf-8", "replace"))
    blob = "\n".join(texts)

    ids = data.members["member_id"].astype(str)
    assert not [m for m in ids if m in blob]
    personal_values = set(data.members["district"].astype(str))
    personal_values |= {s for skills in data.members["skills"] for s in skills}
    assert not [v for v in personal_values if v in blob]
    # The cold route names the segment kinds it validated ("segment:district", in metric
    # names "segment_district"): labels of aggregates (course counts within a district),
    # never a member's value (checked above).
    labels = re.sub(r"(segment|blend)[:_][a-z]+", "", blob)
    assert not [c for c in PERSONAL if c in labels]
    assert "member_idx" not in blob
    assert frame["params.cold_route"].dropna().tolist() == [model.cold_route_["route"]]
    n_evaluated = int(result.metrics["n_evaluated"])
    for p in files:
        if p.suffix == ".csv":
            assert len(pd.read_csv(p)) < n_evaluated, p
    # The blob really holds what was logged: the test would see a leak.
    assert data.train.fingerprint() in blob and "occupation" in blob


def test_logged_tables_cannot_run_as_spreadsheet_formulas(
    data: Data, uri: str, tmp_path: Path
) -> None:
    """A model named like a formula: the comparison table's CSV holds it escaped (a
    spreadsheet shows it as text), and reads back as the name with an apostrophe."""
    name = '=HYPERLINK("http://example.com","x")'
    models = {name: make_model("popularity"), "-ease": make_model("ease")}
    table, results = compare(models, data.train, data.test, ks=(5,), n_boot=0)
    parent = tracking.log_comparison(table, results, train=data.train, split=SPLIT, uri=uri)
    csv = next((tmp_path / "mlartifacts").rglob(f"{parent}/**/comparison.csv"))
    with open(csv, encoding="utf-8", newline="") as fh:
        rows = list(reader(fh))
    assert sorted(row[0] for row in rows[1:]) == sorted(["'" + name, "'-ease"])
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@")]
