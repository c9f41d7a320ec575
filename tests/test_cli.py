"""The command line, run in-process through ``recommend.cli.main``."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommend.cli import main


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    assert main(["data", "synth", "--preset", "small", "--seed", "3", "--out", str(out)]) == 0
    return out


def test_synth_writes_every_table(platform_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("events", "courses", "members", "orgs", "searches"):
        assert (platform_dir / f"{name}.parquet").stat().st_size > 0
    assert pd.read_parquet(platform_dir / "members.parquet")["member_id"].is_unique


def test_validate_good_files(platform_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(platform_dir / f"{n}.parquet") for n in ("events", "courses", "members")]
    assert main(["data", "validate", *files]) == 0
    out = capsys.readouterr().out
    assert "all tables valid" in out and out.count("ok ") == 3


def test_validate_reports_problems_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "events.csv"
    bad.write_text(
        "member_id,course_id,event,timestamp,watch_seconds\n"
        "m1,c1,view,2024-01-01,30\n"
        "m2,c1,watch,2024-01-02,-5\n"
        ",c2,view,not a date,10\n",
        encoding="utf-8",
    )
    members = tmp_path / "members.csv"
    members.write_text("member_id,name\nm1,Zhang San\n", encoding="utf-8")
    assert main(["data", "validate", str(bad), str(members)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "problems found" in out
    for text in (
        "events.member_id",
        "events.timestamp",
        "events.watch_seconds",
        "'watch'",
        "personal columns ['name']",
    ):
        assert text in out, text
    assert "Zhang San" not in out  # personal values are never echoed


def test_validate_reports_future_dated_rows_duplicates_and_normalised_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.csv"
    rows = ["m1,c1,view,2024-01-01", "m1,c1,view,2024-01-01", " m2 ,c2,view,2024-01-02"]
    rows += [f"m{i},c1,view,2024-01-0{i}" for i in range(3, 9)]
    rows += ["m9,c1,view,2100-01-01", "m9,c2,view,1970-01-01"]
    events.write_text("member_id,course_id,event,timestamp\n" + "\n".join(rows) + "\n")
    assert main(["data", "validate", str(events)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "events.timestamp: events dated after the data's own now" in out
    assert "in 1 row (row 9)" in out
    for note in (
        "note: events.member_id: ids normalised",
        "note: events: exact duplicate events (1 beyond the first of each set)",
        "note: events.timestamp: events dated more than 3650 days before",
    ):
        assert note in out, note
    assert main(["data", "validate", "--json", str(events)]) == 1
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ok"] is False and len(entry["problems"]) == 1 and len(entry["notes"]) == 3


def test_validate_json_and_unknown_table_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "stuff.csv"
    odd.write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["data", "validate", "--json", str(odd)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report[0]["ok"] is False and "--table" in report[0]["problems"][0]


def test_demo_runs_on_a_platform_folder(
    platform_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--data", str(platform_dir)]) == 0
    out = capsys.readouterr().out
    assert "validate the tables" in out and "fingerprint" in out
    # the runs went to the embedded store in the working directory, the champion is there
    assert "mlflow ui --backend-store-uri sqlite:///mlruns.db" in out
    assert "champion: models:/menus@champion (version 1)" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    version = client.get_model_version_by_alias("menus", "champion")
    assert client.get_run(version.run_id).data.tags["mlflow.runName"] == "register-menus"
    assert (tmp_path / "out" / "model" / "model.json").is_file()
    assert (tmp_path / "out" / "menus").is_dir()


def test_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "evaluate",
                "--train",
                "nope.txt",
                "--test",
                "nope.txt",
                "--model",
                "ease",
                "--format",
                "lines",
            ]
        )
        == 2
    )
    assert "error:" in capsys.readouterr().err


@pytest.fixture(scope="module")
def lines_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two taste groups of learners over 40 courses, one held-out course per learner."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("lines")
    train, test = [], []
    for user in range(120):
        pool = np.arange(20) if user % 2 else np.arange(20, 40)
        items = rng.choice(pool, size=8, replace=False)
        train.append(f"{user} " + " ".join(map(str, items[:-1])))
        test.append(f"{user} {items[-1]}")
    (out / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    return out / "train.txt", out / "test.txt"


def test_evaluate_json(lines_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = lines_files
    args = ["evaluate", "--train", str(train), "--test", str(test), "--format", "lines"]
    assert main([*args, "--model", "ease", "--param", "l2=50", "--k", "5,10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "ease" and result["params"] == {"l2": 50}
    # Tastes are split in two halves of the catalogue: EASE finds the right half.
    assert result["metrics"]["hit_rate@10"] > 0.6
    assert main([*args, "--model", "popularity", "--k", "10", "--json"]) == 0
    pop = json.loads(capsys.readouterr().out)
    assert pop["metrics"]["hit_rate@10"] < result["metrics"]["hit_rate@10"]


def test_evaluate_says_whom_it_left_out(
    lines_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Test members without training history are not evaluated: the output and the JSON
    say how many were evaluated and why the others were not."""
    train, test = lines_files
    extra = tmp_path / "test.txt"
    lines = test.read_text(encoding="utf-8").splitlines()
    extra.write_text("\n".join([*lines, "900 3", "901 25", "902 7"]) + "\n", encoding="utf-8")
    args = ["evaluate", "--train", str(train), "--test", str(extra), "--format", "lines"]
    assert main([*args, "--model", "popularity", "--k", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["members"] == {
        "evaluated": 120,
        "with_test_courses": 123,
        "left_out_no_history": 3,
    }
    assert result["metrics"]["n_left_out"] == 3
    assert main([*args, "--model", "popularity", "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "members evaluated 120 of 123 with test courses; 3 left out: no training history" in out


def test_evaluate_with_tuning(
    lines_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = lines_files
    args = ["evaluate", "--train", str(train), "--test", str(test), "--format", "lines"]
    assert main([*args, "--model", "ease", "--tune", "3", "--k", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "l2" in result["params"] and "ndcg@10" in result["metrics"]


def test_train_saves_an_artifact_and_menu_reads_it(
    platform_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    args = ["train", "--data", str(platform_dir), "--model", "ease", "--param", "l2=100"]
    assert main([*args, "--out", str(out)]) == 0
    assert (out / "model.json").exists() and (out / "arrays.npz").exists()
    assert "saved the model" in capsys.readouterr().out
    members = pd.read_parquet(platform_dir / "members.parquet")["member_id"]
    member = members.iloc[0]
    assert main(["menu", "--model", str(out), "--member", member, "--n", "4", "--json"]) == 0
    menu = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert len(menu) == 4 and menu["rank"].tolist() == [1, 2, 3, 4]
    assert {"title", "reason", "route"} <= set(menu.columns)
    # A short-course menu only holds courses that fit.
    assert (
        main(["menu", "--model", str(out), "--member", member, "--max-minutes", "10", "--json"])
        == 0
    )
    short = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert (short["minutes"] <= 10).all()
    # "auto": an artifact keeps no watch times, so the platform's fallback (15 minutes)
    # limits the recommendations; --no-continue leaves out 继续学习 and 下一讲.
    auto = ["menu", "--model", str(out), "--member", member, "--max-minutes", "auto"]
    assert main([*auto, "--no-continue", "--n", "8", "--json"]) == 0
    fitted = pd.read_json(io.StringIO(capsys.readouterr().out))
    own = fitted[~fitted["reason"].str.startswith("本支部必学")]
    assert len(own) and (own["minutes"] <= 15).all()
    assert not fitted["reason"].str.startswith(("继续学习", "下一讲")).any()
    # An existing artifact is not replaced without --overwrite.
    assert main([*args, "--out", str(out)]) == 2
    assert main([*args, "--out", str(out), "--overwrite"]) == 0


def test_menu_for_an_unknown_member_falls_back(
    platform_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pop"
    assert (
        main(["train", "--data", str(platform_dir), "--model", "popularity", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["menu", "--model", str(out), "--member", "nobody", "--n", "3", "--json"]) == 0
    menu = pd.read_json(io.StringIO(capsys.readouterr().out))
    assert len(menu) == 3 and set(menu["route"]) <= {"cold_segment", "cold_global"}


def test_evaluate_best_tunes_every_model_and_reports_the_winner(
    lines_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from recommend.models import MODEL_NAMES

    train, test = lines_files
    args = ["evaluate", "--train", str(train), "--test", str(test), "--format", "lines"]
    # l2 belongs to EASE only: the other models are tuned without it.
    code = main(
        [*args, "--model", "best", "--tune", "2", "--param", "l2=50", "--k", "10", "--json"]
    )
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["model"] in MODEL_NAMES and "ndcg@10" in result["metrics"]
    for name in MODEL_NAMES:
        if name == "fusion":  # built from the tuned EASE, RP3beta, EDLAE, GF-CF: one trial
            assert "scoring the fusion of the tuned linear models" in captured.err
        else:
            assert f"tuning {name}" in captured.err


def test_evaluate_tunes_with_a_sampler_and_a_time_budget(
    lines_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = lines_files
    args = ["evaluate", "--train", str(train), "--test", str(test), "--format", "lines"]
    code = main(
        [*args, "--model", "rp3beta", "--tune", "3", "--sampler", "random", "--k", "10", "--json"]
    )
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["model"] == "rp3beta" and set(result["params"]) == {"alpha", "beta", "neighbours"}
    assert "3 random trials" in captured.err
    # A budget alone: trials until it is spent (here at least the first one).
    assert main([*args, "--model", "ease", "--tune-minutes", "0.001", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "ease" and "0.001 min at most" in captured.err


# ---------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def popularity_dir(platform_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("popularity") / "model"
    assert (
        main(["train", "--data", str(platform_dir), "--model", "popularity", "--out", str(out)])
        == 0
    )
    return out


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_exits_3_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from recommend import store

    monkeypatch.setattr(store, "write_json", _disk_full)
    code = main(["data", "synth", "--preset", "small", "--seed", "3", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.strip().splitlines() == ["error: [Errno 28] No space left on device"]


def test_full_disk_while_saving_a_model_exits_2_with_one_line(
    platform_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq, "write_table", _disk_full)
    out = tmp_path / "model"
    code = main(["train", "--data", str(platform_dir), "--model", "popularity", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(out) in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("table", ["", "  ", "menus; drop table x"])
def test_bad_sql_table_name_is_refused_before_the_job_runs(
    popularity_dir: Path, tmp_path: Path, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["batch", "--model", str(popularity_dir), "--out", str(tmp_path / "menus")]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--sql", f"sqlite:///{tmp_path / 'm.db'}", "--table", table])
    assert stop.value.code == 2
    assert "expected a SQL table name" in capsys.readouterr().err
    assert not (tmp_path / "menus").exists()


def test_corrupt_tracking_store_exits_2_with_one_line(
    popularity_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a SQLite database" * 100)
    uri = f"sqlite:///{db}"
    code = main(
        ["register", "--model", str(popularity_dir), "--name", "menus", "--tracking-uri", uri]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        len(lines) == 1
        and lines[0].startswith("error: the MLflow store")
        and "not a database" in lines[0]
    )


def test_symlink_in_an_artifact_is_refused_by_register(
    popularity_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(popularity_dir, folder)
    private = tmp_path / "private"
    private.mkdir()
    (private / "id_rsa").write_text("KEY", encoding="utf-8")
    (folder / "notes").symlink_to(private, target_is_directory=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["register", "--model", str(folder), "--name", "menus", "--tracking-uri", uri])
    err = capsys.readouterr().err
    assert code == 2 and "symbolic link" in err and "notes" in err
    assert not list(tmp_path.rglob("id_rsa"))[1:]  # only the original exists


def test_unsigned_model_is_refused_when_a_key_is_configured(
    popularity_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECOMMEND_ARTIFACT_KEY", "a signing key of enough bytes")
    code = main(["menu", "--model", str(popularity_dir), "--member", "m000001"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and "not signed" in lines[0]


def test_evaluate_a_test_file_after_the_training_now_and_on_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A time split's test events lie after the training data's now: evaluated, not
    refused. A training event dated decades ahead is refused with its row named, unless
    ``--on-future drop`` drops (and counts) it."""
    rng = np.random.default_rng(0)
    rows = [
        (f"m{m}", f"c{(m % 2) * 10 + rng.integers(10)}", "view", f"2024-0{1 + day % 5}-1{day % 9}")
        for m in range(60)
        for day in range(8)
    ]
    train = pd.DataFrame(rows, columns=["member_id", "course_id", "event", "timestamp"])
    test = train.groupby("member_id").head(1).assign(timestamp="2024-07-01")
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    args = [
        "evaluate",
        "--train",
        str(tmp_path / "train.csv"),
        "--test",
        str(tmp_path / "test.csv"),
    ]
    assert main([*args, "--model", "popularity", "--k", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["members"]["evaluated"] == 60
    train.loc[7, "timestamp"] = "2100-01-01"
    train.to_csv(tmp_path / "train.csv", index=False)
    assert main([*args, "--model", "popularity", "--k", "5", "--json"]) == 2
    assert "events dated after the data's own now" in capsys.readouterr().err
    assert main([*args, "--model", "popularity", "--k", "5", "--json", "--on-future", "drop"]) == 0


def test_mlflow_logs_nothing_without_verbose(
    lines_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A new MLflow store (database migrations, a signature check) is created quietly: MLflow
    logs at INFO unless told otherwise, and the CLI tells it to keep to warnings."""
    import subprocess
    import sys

    train, _ = lines_files
    folder = tmp_path / "ease"
    assert main(["train", "--data", str(train), "--format", "lines", "--model", "ease",
                 "--out", str(folder)]) == 0  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    run = subprocess.run(
        [sys.executable, "-m", "recommend.cli", "register", "--model", str(folder),
         "--name", "menus", "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"],
        capture_output=True, text=True, timeout=300, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "models:/menus@champion (version 1)" in run.stdout
    assert "INFO" not in run.stdout + run.stderr
