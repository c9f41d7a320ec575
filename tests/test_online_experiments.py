"""Online experiments: salted assignment (recommend.engine.arms), arms in served menus and
batch rows, and the analysis (recommend.insights.online) on simulated outcomes: a planted
better arm is found at the power the test was planned for, an A/A test is not."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE, FixedFactors, make_tiny_dataset

import recommend as rc
from recommend.engine import Experiment
from recommend.errors import ConfigError, DataError
from recommend.insights.online import analyse_experiment, log_experiment, power

N_SHOWN = 10
BASE_CTR = 0.10


def test_assignment_is_salted_stable_and_balanced() -> None:
    exp = Experiment("menus-v2", salt="2026-12")
    ids = [f"m{i:06d}" for i in range(20_000)]
    arms = exp.assign(ids)
    assert set(arms.tolist()) == {"control", "treatment"}
    share = float(np.mean(arms == "treatment"))
    assert abs(share - 0.5) < 0.015  # 3 standard errors of a fair split of 20k
    # Another process (another hash seed) assigns the same arms.
    code = (
        "from recommend.engine import Experiment;"
        "print(''.join('1' if a == 'treatment' else '0' for a in "
        "Experiment('menus-v2', salt='2026-12').assign([f'm{i:06d}' for i in range(200)])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "", **_pythonpath()},
    ).stdout.strip()
    assert out == "".join("1" if a == "treatment" else "0" for a in arms[:200])
    # Another salt reshuffles; weights are honoured.
    other = Experiment("menus-v2", salt="2027-01").assign(ids)
    assert 0.4 < float(np.mean(other != arms)) < 0.6
    weighted = Experiment("w", arms=("a", "b", "c"), weights=(0.8, 0.1, 0.1)).assign(ids)
    assert abs(float(np.mean(weighted == "a")) - 0.8) < 0.015
    with pytest.raises(ConfigError, match="arms"):
        Experiment("x", arms=("a", "a"))
    with pytest.raises(ConfigError, match="weights"):
        Experiment("x", weights=(1.0, -1.0))


def _pythonpath() -> dict[str, str]:
    import os

    return {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def test_menus_and_batch_rows_carry_the_arm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = make_tiny_dataset()
    models = {
        "control": FixedFactors().fit(ds),
        "treatment": FixedFactors({"m0": {"c15": 99.0}}).fit(ds),
    }
    exp = Experiment("tiny", salt="s")
    ids = ["m0", "m1", "m2", "m3", "m4"]
    menu = rc.member_menu  # the plain menu, for comparison
    served = rc.experiment_menu(models, ids, exp, n=4, versions={"control": "v1"})
    assert list(served.columns) == [*rc.MENU_COLUMNS, "arm", "model_version"]
    assigned = dict(zip(ids, exp.assign(ids).tolist(), strict=True))
    assert served.groupby("member_id")["arm"].first().to_dict() == assigned
    assert list(dict.fromkeys(served["member_id"])) == ids  # request order
    for member in ids:
        arm = assigned[member]
        want = menu(models[arm], [member], n=4)["course_id"].tolist()
        assert served.loc[served["member_id"] == member, "course_id"].tolist() == want
    versions = served.groupby("arm")["model_version"].first().to_dict()
    assert versions.get("control", "v1") == "v1"
    if "treatment" in versions:
        assert versions["treatment"] == rc.engine.model_version(models["treatment"])
    # Batch: one job per arm; only its members, an ``arm`` column after model_version.
    for arm, model in models.items():
        result = rc.run_batch(model, tmp_path / arm, n=4, experiment=exp, arm=arm, progress=False)
        rows = pd.concat(pd.read_parquet(f) for f in result.files) if result.files else None
        mine = sorted(m for m in ids if assigned[m] == arm)
        if rows is not None and len(rows):
            assert list(rows.columns) == [
                "member_id", "course_id", "score", "rank", "reason", "route",
                "model_version", "arm", "generated_at",
            ]  # fmt: skip
            assert sorted(rows["member_id"].unique()) == mine
            assert set(rows["arm"]) == {arm}
    plain = rc.run_batch(models["control"], tmp_path / "plain", n=4, progress=False)
    assert "arm" not in pd.read_parquet(plain.files[0]).columns
    with pytest.raises(ConfigError, match="arm"):
        rc.run_batch(models["control"], tmp_path / "x", experiment=exp, progress=False)
    with pytest.raises(ConfigError, match="not an arm"):
        rc.run_batch(models["control"], tmp_path / "y", experiment=exp, arm="b", progress=False)


def _exposures(exp: Experiment, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Every member of the sample platform shown ``N_SHOWN`` courses, arms by ``exp``."""
    members = pd.read_parquet(SAMPLE / "members.parquet")["member_id"].to_numpy()
    courses = pd.read_parquet(SAMPLE / "courses.parquet")
    rng = np.random.default_rng(seed)
    shown = np.stack([rng.choice(len(courses), N_SHOWN, replace=False) for _ in members])
    arms = exp.assign(members)
    exposures = pd.DataFrame(
        {
            "member_id": np.repeat(members, N_SHOWN),
            "course_id": courses["course_id"].to_numpy()[shown.ravel()],
            "arm": np.repeat(arms, N_SHOWN),
        }
    )
    return exposures, courses["duration_seconds"].to_numpy()[shown.ravel()]


def _outcomes(
    exposures: pd.DataFrame, durations: np.ndarray, lift: dict[str, float], seed: int
) -> pd.DataFrame:
    """Members open each shown course with probability ``BASE_CTR`` (+ their arm's lift),
    finish 60% of what they open; they also open a few courses off the menu."""
    rng = np.random.default_rng(seed)
    p = BASE_CTR + exposures["arm"].map(lift).fillna(0.0).to_numpy()
    opened = rng.random(len(exposures)) < p
    done = opened & (rng.random(len(exposures)) < 0.6)
    watched = np.where(done, durations, durations * rng.uniform(0.05, 0.8, len(exposures)))
    parts = [
        exposures.loc[opened, ["member_id", "course_id"]].assign(event="view", watch_seconds=0.0),
        exposures.loc[done, ["member_id", "course_id"]].assign(
            event="complete", watch_seconds=watched[done]
        ),
    ]
    members = exposures["member_id"].unique()
    extra = rng.poisson(0.5, members.size)
    parts.append(
        pd.DataFrame(
            {
                "member_id": np.repeat(members, extra),
                "course_id": [f"off-{i}" for i in range(int(extra.sum()))],
                "event": "view",
                "watch_seconds": 30.0,
            }
        )
    )
    return pd.concat(parts, ignore_index=True)


def test_a_planted_better_arm_is_found_at_the_planned_power() -> None:
    exp = Experiment("planted", salt="seed-0")
    exposures, durations = _exposures(exp)
    per_arm = int(exposures.groupby("arm")["member_id"].nunique().min())
    sd = np.sqrt(BASE_CTR * (1 - BASE_CTR) / N_SHOWN)  # a member's CTR over 10 shown
    # The lift a test of this size finds 80% of the time (two-sided, alpha 0.05).
    lift = (1.959964 + 0.841621) * sd * np.sqrt(2.0 / per_arm)
    assert power(lift, sd, per_arm) == pytest.approx(0.80, abs=0.005)
    found = []
    for seed in range(40):
        out = _outcomes(exposures, durations, {"treatment": lift}, seed)
        got = analyse_experiment(exposures, out, experiment=exp)
        ctr = got.tests.set_index("metric").loc["ctr"]
        found.append(bool(ctr["significant"]) and ctr["difference"] > 0)
        assert not got.srm
    rate = float(np.mean(found))
    # 40 replications of a test with power 0.8: the rate's standard error is 0.063.
    assert 0.6 <= rate <= 0.97, rate


def test_an_aa_test_is_not_significant_and_ratios_are_checked() -> None:
    exp = Experiment("aa", arms=("a", "b"), salt="seed-1")
    exposures, durations = _exposures(exp, seed=1)
    false = []
    for seed in range(40):
        out = _outcomes(exposures, durations, {}, seed + 100)
        got = analyse_experiment(exposures, out, experiment=exp)
        false.append(bool(got.tests["significant"].any()))
    # Four metrics, each at 5%: the rate of any false alarm stays well under 4 x 5%.
    assert float(np.mean(false)) <= 0.25
    got = analyse_experiment(exposures, _outcomes(exposures, durations, {}, 7), experiment=exp)
    arms = got.arms.set_index("arm")
    assert (
        set(arms.index) == {"a", "b"} and arms["members"].sum() == exposures["member_id"].nunique()
    )
    for metric in ("ctr", "starts", "completions", "minutes"):
        assert (arms[f"{metric}_low"] <= arms[metric]).all() and (
            arms[metric] <= arms[f"{metric}_high"]
        ).all()
    assert arms.loc["a", "ctr"] == pytest.approx(BASE_CTR, abs=0.01)
    assert not got.srm
    # Losing a tenth of arm b's members (a logging fault) is a sample-ratio mismatch.
    b = exposures.loc[exposures["arm"] == "b", "member_id"].unique()
    lost = exposures[~exposures["member_id"].isin(b[: b.size // 10])]
    assert analyse_experiment(
        lost, _outcomes(lost, durations[: len(lost)], {}, 7), experiment=exp
    ).srm


def test_bad_input_is_refused() -> None:
    exposures = pd.DataFrame(
        {"member_id": ["m1", "m1"], "course_id": ["c1", "c2"], "arm": ["a", "b"]}
    )
    outcomes = pd.DataFrame({"member_id": ["m1"], "course_id": ["c1"], "event": ["view"]})
    with pytest.raises(DataError, match="more than one arm"):
        analyse_experiment(exposures, outcomes)
    with pytest.raises(DataError, match="arm"):
        analyse_experiment(exposures.drop(columns="arm"), outcomes)
    with pytest.raises(ConfigError, match="control"):
        analyse_experiment(exposures.iloc[:1], outcomes, control="zzz")


def test_logged_to_mlflow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exp = Experiment("logged", salt="x")
    exposures, durations = _exposures(exp)
    got = analyse_experiment(exposures, _outcomes(exposures, durations, {}, 1), experiment=exp)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_experiment(got, "online", uri=uri, experiment=exp)
    from recommend.tracking import mlflow_client

    run = mlflow_client(uri).get_run(run_id)
    assert run.data.params["control"] == "control"
    assert run.data.metrics["srm_p_value"] == pytest.approx(got.srm_p_value)
    assert "treatment.ctr" in run.data.metrics or "treatment_ctr" in {
        k.replace(".", "_") for k in run.data.metrics
    }
    assert not any("m0" in v for v in run.data.params.values())


def test_cli_analyses_files(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from recommend.cli import main

    exp = Experiment("cli", salt="x")
    exposures, durations = _exposures(exp)
    exposures.to_parquet(tmp_path / "exposures.parquet")
    outcomes = _outcomes(exposures, durations, {"treatment": 0.05}, 3)
    outcomes.to_csv(tmp_path / "out.csv", index=False)
    code = main(
        [
            "experiment", "analyse", "--exposures", str(tmp_path / "exposures.parquet"),
            "--outcomes", str(tmp_path / "out.csv"), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    import json

    got = json.loads(capsys.readouterr().out)
    ctr = next(t for t in got["tests"] if t["metric"] == "ctr")
    assert got["control"] == "control" and ctr["significant"] and ctr["difference"] > 0.03
