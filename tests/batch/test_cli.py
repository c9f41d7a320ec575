"""``recommend batch``: the command line, a registry URI, a job killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recommend.batch import BATCH_COLUMNS, MANIFEST
from recommend.cli import main


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


def test_cli_batch_and_models_uri(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "menus"
    assert main(["batch", "--model", str(artifact), "--out", str(out), "--n", "3", "--quiet"]) == 0
    assert "wrote menus of 6,000 members" in capsys.readouterr().out
    assert _read(out)["member_id"].nunique() == 6000
    # A registry with no such model: a clear error naming the URI, no output.
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        code = main(["batch", "--model", "models:/menus@champion", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "models:/menus@champion: cannot fetch the model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_killed_mid_run_resumes_to_the_same_output(artifact: Path, tmp_path: Path) -> None:
    def command(out: Path) -> list[str]:
        # Reasons take the per-member path: slow enough to be killed between chunks.
        return [
            sys.executable,
            "-m",
            "recommend.cli",
            "batch",
            "--model",
            str(artifact),
            "--out",
            str(out),
            "--n",
            "5",
            "--chunk-size",
            "300",
            "--with-reasons",
            "--quiet",
        ]

    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(command(out), env=env)
    deadline = time.monotonic() + 120
    chunks = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            chunks = len(json.loads((out / MANIFEST).read_text())["chunks"])
        except (OSError, ValueError, KeyError):
            chunks = 0
        if chunks >= 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"], "the job finished before it could be killed"
    kept = set(manifest["chunks"])

    subprocess.run(command(out), env=env, check=True)
    subprocess.run(command(tmp_path / "whole"), env=env, check=True)
    resumed, whole = _read(out), _read(tmp_path / "whole")
    assert resumed["generated_at"].nunique() == 1
    cols = [c for c in BATCH_COLUMNS if c != "generated_at"]
    pd.testing.assert_frame_equal(resumed[cols], whole[cols])
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and kept <= set(manifest["chunks"])
    assert len(manifest["chunks"]) == 20
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
