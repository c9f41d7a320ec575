"""The pyfunc flavour, the registry, and real MLflow processes on loopback.

The last two tests start an ``mlflow server`` (SQLite backend) and ``mlflow models serve``
themselves, talk to them over HTTP and stop them; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.batch import run_batch
from recommend.cli import main
from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.experiment import config_from_dict, run_experiment
from recommend.menu import member_menu
from recommend.serving import (
    CHAMPION,
    MenuService,
    load_registered,
    register,
    register_artifact,
    save_pyfunc,
)
from recommend.tracking import ensure_experiment, log_comparison, mlflow_client, tracked_run

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
STARTUP_TIMEOUT = 90.0  # seconds; a cold mlflow start on a busy 2-core machine takes ~10 s


@pytest.fixture(scope="module")
def platform(small_platform: rc.Platform) -> rc.Platform:
    """The shared small platform (conftest)."""
    return small_platform


@pytest.fixture(scope="module")
def dataset(small_dataset: rc.Dataset) -> rc.Dataset:
    return small_dataset


@pytest.fixture(scope="module")
def model(dataset: rc.Dataset) -> rc.Recommender:
    return rc.EASE(l2=50.0).fit(dataset)


@pytest.fixture(scope="module")
def pyfunc_dir(model: rc.Recommender, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pyfunc(model, tmp_path_factory.mktemp("pyfunc") / "menus")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def _members(dataset: rc.Dataset, k: int) -> list[str]:
    return [str(m) for m in dataset.member_ids.external_ids[:k]]


# ------------------------------------------------------------------------- the flavour


def test_pyfunc_predicts_the_member_menus(
    pyfunc_dir: Path, model: rc.Recommender, dataset: rc.Dataset
) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    members = _members(dataset, 3)
    requests = pd.DataFrame(
        {
            "member_id": [members[0], "nobody", members[1], members[2]],
            "n": [5, 3, np.nan, 4],
            "max_minutes": [np.nan, np.nan, 20.0, np.nan],
            "channel": [None, None, None, "理论学习"],
        }
    )
    got = loaded.predict(requests)
    expected = pd.concat(
        [
            member_menu(model, [members[0]], n=5),
            member_menu(model, ["nobody"], n=3),
            member_menu(model, [members[1]], n=10, max_minutes=20),
            member_menu(model, [members[2]], n=4, channel="理论学习"),
        ],
        ignore_index=True,
    )
    assert list(got.columns) == ["member_id", "course_id", "score", "rank", "reason", "route"]
    pd.testing.assert_frame_equal(got, expected[got.columns], check_dtype=False)
    assert (got.loc[got["member_id"] == "nobody", "route"] == "cold_global").all()
    durations = dataset.courses.set_index("course_id")["duration_seconds"]
    short = got.loc[got["member_id"] == members[1], "course_id"]
    assert (durations.loc[short] <= 20 * 60).all()


def test_pyfunc_keeps_request_order_and_duplicates(pyfunc_dir: Path, dataset: rc.Dataset) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    a, b = _members(dataset, 2)
    got = loaded.predict(pd.DataFrame({"member_id": [b, a, b], "n": [2.0, 3.0, 2.0]}))
    assert got["member_id"].tolist() == [b, b, a, a, a, b, b]
    assert got["rank"].tolist() == [1, 2, 1, 2, 3, 1, 2]


def test_pyfunc_directory_holds_no_pickle(pyfunc_dir: Path) -> None:
    mlmodel = (pyfunc_dir / "MLmodel").read_text()
    assert "loader_module: recommend.serving" in mlmodel
    assert "python_model" not in mlmodel and "cloudpickle" not in mlmodel
    suffixes = {p.suffix for p in pyfunc_dir.rglob("*") if p.is_file()}
    assert not suffixes & {".pkl", ".pickle", ".joblib", ".cloudpickle"}
    assert (pyfunc_dir / "data" / "recommend" / "model.json").is_file()


def test_registry_names_stay_importable_from_serving() -> None:
    """The registry moved to recommend.registry; recommend.serving re-exports it unchanged."""
    from recommend import registry, serving

    moved = ["CHAMPION", "DATA_PATH", "Registration", "load_registered", "log_pyfunc"]
    moved += ["model_name", "register", "register_artifact", "save_pyfunc"]
    for name in moved:
        assert getattr(serving, name) is getattr(registry, name), name
    assert set(serving.__all__) == {
        "DEFAULT_N",
        "MenuService",
        "REQUEST_COLUMNS",
        "ServedMenus",
    } | (set(moved) - {"DATA_PATH"})
    # Saved MLmodel files name the loader module: it must stay the one MLflow can import.
    assert serving.__name__ == registry.LOADER_MODULE


def test_bad_requests_name_column_and_row(model: rc.Recommender) -> None:
    service = MenuService(model)
    with pytest.raises(DataError, match="no 'member_id' column"):
        service.predict(pd.DataFrame({"member": ["m1"]}))
    bad = pd.DataFrame(
        {
            "member_id": ["a", None, "c"],
            "n": [2.5, 3, 0],
            "max_minutes": [10, -1, 5],
        }
    )
    with pytest.raises(DataError) as err:
        service.predict(bad)
    text = str(err.value)
    assert "member_id" in text and "n" in text and "max_minutes" in text
    assert "2.5" in text and "-1" in text
    empty = service.predict(pd.DataFrame({"member_id": pd.Series([], dtype=str)}))
    assert empty.empty and list(empty.columns)[:2] == ["member_id", "course_id"]


def test_save_pyfunc_is_atomic_and_refuses_to_overwrite(
    model: rc.Recommender, tmp_path: Path
) -> None:
    target = save_pyfunc(model, tmp_path / "m")
    with pytest.raises(ArtifactError, match="exists"):
        save_pyfunc(model, target)
    save_pyfunc(model, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folder left
    # a folder that is not an artifact is refused before anything is written
    (tmp_path / "junk").mkdir()
    with pytest.raises(ArtifactError):
        save_pyfunc(tmp_path / "junk", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- registry


def _experiment(platform_dir: Path) -> dict[str, object]:
    return {
        "name": "registry-test",
        "data": {"source": "sample", "path": str(platform_dir)},
        "split": {"kind": "time", "test_fraction": 0.2},
        "evaluation": {"ks": [10], "segments": False},
        "models": {
            "popularity": {"params": {}},
            "ease": {"params": {"l2": 50.0}},
        },
    }


@pytest.fixture(scope="module")
def platform_dir(platform: rc.Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform") / "p"
    platform.write(out)
    return out


def test_experiment_registers_the_best_model_as_champion(
    store: str, platform_dir: Path, tmp_path: Path, dataset: rc.Dataset
) -> None:
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    config = config_from_dict(_experiment(platform_dir), base=tmp_path)
    result = run_experiment(config, register="menus")
    reg = result.registration
    assert reg is not None and reg.uri == "models:/menus@champion" and reg.version == "1"
    client = MlflowClient(store)
    version = client.get_model_version_by_alias("menus", CHAMPION)
    assert version.run_id == result.model_runs[result.best]
    best_ndcg = result.table["ndcg@10"].max()
    assert result.table.loc[result.best, "ndcg@10"] == best_ndcg

    served = mlflow.pyfunc.load_model("models:/menus@champion")
    members = _members(dataset, 2)
    menus = served.predict(pd.DataFrame({"member_id": members, "n": [4, 4]}))
    assert menus.groupby("member_id").size().to_dict() == dict.fromkeys(members, 4)

    # registering again moves the alias to the new version
    again = run_experiment(config, register="menus")
    assert again.registration is not None and again.registration.version == "2"
    assert str(client.get_model_version_by_alias("menus", CHAMPION).version) == "2"


def test_registered_model_drives_the_batch_job(
    store: str, model: rc.Recommender, tmp_path: Path
) -> None:
    folder = rc.save(model, tmp_path / "ease")
    reg = register_artifact(folder, "nightly")
    by_uri = run_batch(reg.uri, tmp_path / "a", n=3, progress=False)
    by_dir = run_batch(folder, tmp_path / "b", n=3, progress=False)
    assert by_uri.model_version == by_dir.model_version
    a = pd.read_parquet(by_uri.path).drop(columns="generated_at")
    b = pd.read_parquet(by_dir.path).drop(columns="generated_at")
    sort = ["member_id", "rank"]
    pd.testing.assert_frame_equal(
        a.sort_values(sort).reset_index(drop=True), b.sort_values(sort).reset_index(drop=True)
    )
    loaded, version = load_registered("models:/nightly/1")
    assert version == by_dir.model_version and type(loaded) is type(model)


def test_register_errors(store: str, platform_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        register("0" * 32, " ")
    config = config_from_dict(_experiment(platform_dir), base=tmp_path)
    with pytest.raises(ConfigError, match="--register"):
        run_experiment(config, register="a/b")  # refused before any data is read
    assert not (tmp_path / "mlruns.db").exists()
    with pytest.raises(ArtifactError, match="cannot fetch"):
        load_registered("models:/missing@champion")
    with pytest.raises(ConfigError, match="register: 'x@y'"):
        config_from_dict({**_experiment(platform_dir), "register": "x@y"}, base=tmp_path)


def test_cli_register(
    store: str, model: rc.Recommender, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = rc.save(model, tmp_path / "ease")
    assert main(["register", "--model", str(folder), "--name", "menus"]) == 0
    out = capsys.readouterr().out
    assert "models:/menus@champion (version 1)" in out
    assert "mlflow models serve -m models:/menus@champion --env-manager local" in out


def test_registry_runs_carry_no_personal_fields(
    store: str, platform_dir: Path, platform: rc.Platform, tmp_path: Path
) -> None:
    """The registered model holds ids only; the evaluation runs hold no member ids at all."""
    from mlflow.tracking import MlflowClient

    config = config_from_dict(_experiment(platform_dir), base=tmp_path)
    result = run_experiment(config, register="menus")
    member_ids = set(platform.members["member_id"].astype(str))
    personal = {"gender", "birth_year", "occupation", "skills", "district", "joined_at"}
    artifacts = tmp_path / "mlartifacts"
    registered = (
        artifacts / result.model_runs[result.best] / "artifacts" / "model" / "data" / "recommend"
    )
    for file in artifacts.rglob("*"):
        if not file.is_file() or registered in file.parents:
            continue
        text = file.read_bytes().decode("utf-8", "replace")
        assert not any(m in text for m in member_ids), file
    members = pd.read_parquet(next(registered.glob("members*.parquet")))
    assert set(members.columns) <= {"member_id", "org_id"}
    assert not personal & set(members.columns)
    client = MlflowClient(store)
    for run in client.search_runs([client.get_experiment_by_name("registry-test").experiment_id]):
        logged = json.dumps({**run.data.params, **run.data.tags, **run.data.metrics})
        assert not any(m in logged for m in member_ids)


# ------------------------------------------------------------------------- real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loopback(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: process exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not up after {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()}")


def _start(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                # the venv's bin first: `mlflow models serve` execs `uvicorn` from PATH
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                **(env or {}),
            },
            start_new_session=True,  # its own process group: stopped with all its workers
        )


def _start_in_plain_shell(
    command: str, tmp_path: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``command`` as a user pastes it: in bash, with a login shell's PATH (no virtual
    environment on it)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["/bin/bash", "-c", command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": str(tmp_path),
                "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                **(env or {}),
            },
            start_new_session=True,
        )


def _json_request(url: str, body: object) -> urllib.request.Request:
    return urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    proc = _start(
        [
            MLFLOW,
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            *_loopback(port),
        ],
        root / "server.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/health", proc, root / "server.log")
        yield url
    finally:
        _stop(proc)


def test_runs_logged_over_http_to_a_real_tracking_server(
    tracking_server: str, dataset: rc.Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    train, test = dataset.split(rc.TimeSplit(test_fraction=0.2))
    models = {"popularity": rc.Popularity(), "ease": rc.EASE(l2=50.0)}
    table, results = rc.compare(models, train, test, ks=(10,), segments=False)
    parent = log_comparison(table, results, train=train, experiment="http", uri=tracking_server)
    assert not (tmp_path / "mlruns.db").exists()  # nothing went to the embedded store

    mlflow.set_tracking_uri(tracking_server)
    try:
        runs = mlflow.search_runs(experiment_names=["http"])
    finally:
        mlflow.set_tracking_uri(None)
    assert len(runs) == 3
    children = runs[runs["tags.mlflow.parentRunId"] == parent].set_index("tags.mlflow.runName")
    assert set(children.index) == {"popularity", "ease"}
    for name in ("popularity", "ease"):
        assert children.loc[name, "metrics.ndcg_at_10"] == pytest.approx(table.loc[name, "ndcg@10"])
    client = mlflow_client(tracking_server)
    files = {f.path for f in client.list_artifacts(parent)}
    assert {"comparison.csv", "comparison.html", "plots"} <= files


def test_mlflow_models_serve_answers_invocations_with_menus(
    tracking_server: str, model: rc.Recommender, dataset: rc.Dataset, tmp_path: Path
) -> None:
    client = mlflow_client(tracking_server)
    with tracked_run(client, ensure_experiment(client, "serving"), run_name="fit") as run_id:
        from recommend.serving import log_pyfunc

        log_pyfunc(client, run_id, model)
    reg = register(run_id, "menus", uri=tracking_server)
    assert reg.uri == "models:/menus@champion"

    port = _free_port()
    proc = _start(
        [MLFLOW, "models", "serve", "-m", reg.uri, "--env-manager", "local", *_loopback(port)],
        tmp_path / "serve.log",
        env={"MLFLOW_TRACKING_URI": tracking_server},
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/ping", proc, tmp_path / "serve.log")
        members = _members(dataset, 2)
        body = {
            "dataframe_split": {
                "columns": ["member_id", "n", "max_minutes"],
                "data": [[members[0], 5, None], [members[1], 3, 30.0], ["nobody", 2, None]],
            }
        }
        request = _json_request(f"http://127.0.0.1:{port}/invocations", body)
        with urllib.request.urlopen(request, timeout=60) as answer:
            predictions = pd.DataFrame(json.loads(answer.read())["predictions"])
        # A bad request: HTTP 400 with the library's message, no traceback.
        bad = {"dataframe_split": {"columns": ["member_id", "n"], "data": [[members[0], 0]]}}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                _json_request(f"http://127.0.0.1:{port}/invocations", bad), timeout=60
            )
        assert refused.value.code == 400
        error = json.loads(refused.value.read())
    finally:
        _stop(proc)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "requests.n: a whole number of courses from 1 to 1000" in error["message"]
    assert "stack_trace" not in error and "Traceback" not in json.dumps(error)
    expected = pd.concat(
        [
            member_menu(model, [members[0]], n=5),
            member_menu(model, [members[1]], n=3, max_minutes=30),
            member_menu(model, ["nobody"], n=2),
        ],
        ignore_index=True,
    )
    assert predictions["member_id"].tolist() == expected["member_id"].tolist()
    assert predictions["course_id"].tolist() == expected["course_id"].tolist()
    assert predictions["rank"].tolist() == expected["rank"].tolist()
    np.testing.assert_allclose(predictions["score"], expected["score"], rtol=1e-6)
    assert predictions["route"].tolist() == expected["route"].tolist()


def test_query_rows_get_the_personalised_search_ranking(
    pyfunc_dir: Path, model: rc.Recommender, dataset: rc.Dataset
) -> None:
    import mlflow.pyfunc

    from recommend.search import search

    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    member = _members(dataset, 1)[0]
    title = str(dataset.courses["title"].iloc[0])
    requests = pd.DataFrame({"member_id": [member, member], "n": [4, 3], "query": [title, None]})
    got = loaded.predict(requests)
    expected = search(model, member, title, n=4)
    searched = got.iloc[: len(expected)]
    assert len(expected) > 0
    assert searched["course_id"].tolist() == expected["course_id"].tolist()
    assert searched["route"].str.startswith("search:").all()
    menu = got.iloc[len(expected) :]
    assert menu["course_id"].tolist() == member_menu(model, [member], n=3)["course_id"].tolist()


# ------------------------------------------------------------------------- review fixes


def test_registry_of_an_explicit_store_is_used_without_environment(
    model: rc.Recommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """models:/ URIs resolve in the registry of the store given, not MLflow's default one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    reg = register_artifact(rc.save(model, tmp_path / "m"), "menus", uri=store)
    loaded, _ = load_registered(reg.uri, tracking=store)
    again, _ = load_registered("models:/menus/1", tracking=store)
    members = [str(m) for m in loaded.member_ids_.external_ids[:3]]
    expected = member_menu(model, members, n=4)["course_id"].tolist()
    assert member_menu(loaded, members, n=4)["course_id"].tolist() == expected
    assert member_menu(again, members, n=4)["course_id"].tolist() == expected
    assert not (tmp_path / "mlflow.db").exists()  # MLflow's default registry untouched


def test_search_index_and_blend_weights_travel_with_the_served_model(
    store: str, dataset: rc.Dataset, tmp_path: Path
) -> None:
    import mlflow.pyfunc

    from recommend.search import BlendWeights, build_index, search
    from recommend.search.rank import attach_index, attached_index

    model = rc.EASE(l2=50.0).fit(dataset)
    weights = BlendWeights(text=0.2, preference=1.0, popularity=0.0, freshness=0.0)
    attach_index(model, build_index(model).with_weights(weights))
    member = str(dataset.member_ids.external_ids[0])
    query = str(dataset.courses["title"].iloc[3])
    expected = search(model, member, query, n=5)["course_id"].tolist()

    served = mlflow.pyfunc.load_model(str(save_pyfunc(model, tmp_path / "pyfunc")))
    got = served.predict(pd.DataFrame({"member_id": [member], "n": [5], "query": [query]}))
    assert got["course_id"].tolist() == expected
    assert (tmp_path / "pyfunc" / "data" / "recommend" / "search_index").is_dir()

    folder = rc.save(model, tmp_path / "m", search_index=attached_index(model, build=False))
    reg = register_artifact(folder, "s")
    registered, _ = load_registered(reg.uri)  # its temporary download is gone by now
    assert search(registered, member, query, n=5)["course_id"].tolist() == expected


def test_all_null_option_columns_pass_the_signature(pyfunc_dir: Path, dataset: rc.Dataset) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    members = _members(dataset, 2)
    frame = pd.DataFrame(
        {"member_id": members, "n": [3, 3], "channel": [np.nan, np.nan], "query": [np.nan] * 2}
    )
    got = loaded.predict(frame)
    assert got.groupby("member_id").size().to_dict() == dict.fromkeys(members, 3)


def test_compulsory_rows_get_the_branch_list(pyfunc_dir: Path, model: rc.Recommender) -> None:
    """A request row with ``compulsory`` true gets the member's compulsory courses still
    to study (本支部必学), apart from the menu, which pins at most two of them."""
    import mlflow.pyfunc

    from recommend.menu import compulsory_courses

    ids = model.member_ids_.external_ids[:300].tolist()
    full = compulsory_courses(model, ids)
    member = str(full.groupby("member_id").size().idxmax())
    want = full[full["member_id"] == member]
    assert len(want) > 2
    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    frame = pd.DataFrame({"member_id": [member, member], "n": [50, 10], "compulsory": [True, None]})
    got = loaded.predict(frame)
    listed = got[got["route"] == "compulsory"]
    assert listed["course_id"].tolist() == want["course_id"].tolist()
    assert listed["reason"].str.startswith("本支部必学").all()
    menu = got[got["route"] != "compulsory"]
    assert len(menu) == 10 and menu["reason"].str.startswith("本支部必学").sum() == 2
    with pytest.raises(DataError, match=r"requests.compulsory: true or false.*'maybe'"):
        MenuService(model).predict(pd.DataFrame({"member_id": [member], "compulsory": ["maybe"]}))


def test_served_model_raises_the_library_message_as_a_bad_request(pyfunc_dir: Path) -> None:
    """Through MLflow, a bad request is ``INVALID_PARAMETER_VALUE`` (HTTP 400 when
    served) carrying the library's message, not MLflow's generic one."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    loaded = mlflow.pyfunc.load_model(str(pyfunc_dir))
    with pytest.raises(MlflowException) as err:
        loaded.predict(pd.DataFrame({"member_id": ["m1"], "n": [5000]}))
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert err.value.get_http_status_code() == 400
    assert "requests.n: a whole number of courses from 1 to 1000" in err.value.message


# ------------------------------------------------------------------------- hostile folders


def test_save_pyfunc_copies_only_the_artifact_files(model: rc.Recommender, tmp_path: Path) -> None:
    folder = rc.save(model, tmp_path / "art")
    (folder / "notes.txt").write_text("not part of the model", encoding="utf-8")
    (folder / "old-run").mkdir()
    (folder / "old-run" / "events.csv").write_text("member_id\nm1\n", encoding="utf-8")
    out = save_pyfunc(folder, tmp_path / "pyfunc")
    data = out / "data" / "recommend"
    listed = json.loads((folder / "model.json").read_text(encoding="utf-8"))["files"]
    assert sorted(p.name for p in data.iterdir()) == sorted(["model.json", *listed])


def test_save_pyfunc_refuses_a_symlink_and_uploads_nothing(
    model: rc.Recommender, tmp_path: Path
) -> None:
    folder = rc.save(model, tmp_path / "art")
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_rsa").write_text("KEY", encoding="utf-8")
    (folder / "notes").symlink_to(private, target_is_directory=True)
    with pytest.raises(ArtifactError, match=r"notes is a symbolic link"):
        save_pyfunc(folder, tmp_path / "pyfunc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "private"]


def test_save_pyfunc_on_a_full_disk_is_an_artifact_error(
    model: rc.Recommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import mlflow.pyfunc

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mlflow.pyfunc, "save_model", full)
    with pytest.raises(ArtifactError, match="No space left on device"):
        save_pyfunc(rc.save(model, tmp_path / "art"), tmp_path / "pyfunc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_corrupt_store_is_a_tracking_error(model: rc.Recommender, tmp_path: Path) -> None:
    from recommend.errors import TrackingError

    db = tmp_path / "mlruns.db"
    db.write_bytes(b"not a database" * 200)
    folder = rc.save(model, tmp_path / "art")
    uri = f"sqlite:///{db}"
    with pytest.raises(TrackingError, match=r"cannot be used: .*not a database") as err:
        register_artifact(folder, "menus", uri=uri)
    assert "\n" not in str(err.value)
    with pytest.raises(TrackingError, match="not a database"):
        load_registered("models:/menus@champion", tracking=uri)


def test_the_serve_command_the_demo_prints_works_as_printed(
    model: rc.Recommender, dataset: rc.Dataset, tmp_path: Path
) -> None:
    """The command `recommend demo` and `recommend register` print serves the champion
    from a shell whose PATH holds no virtual environment (MLflow starts `uvicorn` from
    PATH: the command puts the environment's bin first itself)."""
    import shlex

    from recommend.cli.demo import mlflow_commands
    from recommend.registry import register_artifact

    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    reg = register_artifact(rc.save(model, tmp_path / "model"), "menus", uri=store)
    _, serve = mlflow_commands(store, reg.uri)
    assert serve.startswith("PATH=") and f"{Path(sys.executable).parent}/mlflow" in serve
    port = _free_port()
    printed = serve.replace("--port 5001", f"--host 127.0.0.1 --port {port} --workers 1")
    log = tmp_path / "serve.log"
    proc = _start_in_plain_shell(
        printed, tmp_path, log, env={"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/ping", proc, log)
        member = _members(dataset, 1)[0]
        body = {"dataframe_split": {"columns": ["member_id", "n"], "data": [[member, 3]]}}
        request = _json_request(f"http://127.0.0.1:{port}/invocations", body)
        with urllib.request.urlopen(request, timeout=60) as answer:
            got = pd.DataFrame(json.loads(answer.read())["predictions"])
    finally:
        _stop(proc)
    assert got["course_id"].tolist() == member_menu(model, [member], n=3)["course_id"].tolist()
    assert shlex.split(serve)[0].startswith("PATH=")


def test_printed_recommend_serve_command_works_from_a_plain_shell(
    model: rc.Recommender, dataset: rc.Dataset, tmp_path: Path
) -> None:
    """The `recommend serve` command the demo prints serves the registered champion from a
    shell whose PATH holds no virtual environment, and answers what the Python API does."""
    from recommend.cli.demo import serve_command
    from recommend.registry import register_artifact

    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    reg = register_artifact(rc.save(model, tmp_path / "model"), "menus", uri=store)
    command = serve_command(store, reg.uri)
    assert f"{Path(sys.executable).parent}/recommend serve" in command
    port = _free_port()
    printed = command.replace("--port 8000", " ".join(_loopback(port)))
    log = tmp_path / "serve.log"
    proc = _start_in_plain_shell(printed, tmp_path, log)
    try:
        _wait_http(f"http://127.0.0.1:{port}/ready", proc, log)
        member = _members(dataset, 1)[0]
        request = _json_request(f"http://127.0.0.1:{port}/v1/menus", {"member_id": member, "n": 3})
        with urllib.request.urlopen(request, timeout=60) as answer:
            got = json.loads(answer.read())
    finally:
        _stop(proc)
    assert [r["course_id"] for r in got["rows"]] == member_menu(model, [member], n=3)[
        "course_id"
    ].tolist()
