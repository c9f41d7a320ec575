"""What a newcomer meets on the command line: every expected failure is one line in the
library's words with its exit code, own data comes in with a column mapping, and the
small conveniences (version, defaults in help, -v anywhere) are there."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from recommend.cli import main


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    assert main(["data", "synth", "--preset", "small", "--seed", "5", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def model_dir(platform_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "ease"
    assert main(["train", "--data", str(platform_dir), "--model", "ease", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def member(platform_dir: Path) -> str:
    return str(pd.read_parquet(platform_dir / "members.parquet")["member_id"].iloc[0])


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Run the command, check its exit code; the one line it printed to stderr."""
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_members_files_that_are_not_what_order_needs(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["order", "--model", str(model_dir), "--members"]
    line = _fails([*order, str(tmp_path / "nofile.txt")], capsys)
    assert "members file not found" in line and "nofile.txt" in line
    line = _fails([*order, str(tmp_path)], capsys)
    assert "is a directory, expected a file" in line
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("党员甲\n".encode("gbk"))
    line = _fails([*order, str(gbk)], capsys)
    assert "is not UTF-8 text" in line and "--encoding gbk" in line
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    line = _fails([*order, str(empty)], capsys)
    assert "holds no member id" in line
    batch = ["batch", "--model", str(model_dir), "--out", str(tmp_path / "menus")]
    line = _fails([*batch, "--members", str(empty)], capsys)
    assert "holds no member id" in line


def test_a_gbk_members_file_is_read_with_encoding(
    model_dir: Path, member: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes(f"{member}\n未知党员\n".encode("gbk"))
    argv = ["order", "--model", str(model_dir), "--members", str(gbk), "--encoding", "gbk"]
    assert main([*argv, "--n", "3", "--max-pins", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["members"] == 1 and out["summary"]["unknown_members"] == 1


def test_batch_out_under_a_file_and_unknown_preset(
    model_dir: Path, platform_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    under_a_file = platform_dir / "events.parquet" / "sub"
    line = _fails(["batch", "--model", str(model_dir), "--out", str(under_a_file)], capsys)
    assert "events.parquet/sub" in line and "a part of this path is a file" in line
    line = _fails(["data", "synth", "--preset", "huge", "--out", str(tmp_path)], capsys)
    assert "unknown preset" in line and "small, sample, city" in line
    line = _fails(
        ["train", "--data", str(tmp_path / "none"), "--model", "ease", "--out", "x"], capsys
    )
    assert "no such file or folder" in line


def test_synth_refuses_to_overwrite_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = ["data", "synth", "--preset", "small", "--members", "200", "--out", str(tmp_path)]
    (tmp_path / "events.parquet").write_bytes(b"the user's own events")
    line = _fails(tiny, capsys)
    assert "already holds events.parquet" in line and "--overwrite" in line
    assert (tmp_path / "events.parquet").read_bytes() == b"the user's own events"
    assert main([*tiny, "--overwrite"]) == 0
    assert len(pd.read_parquet(tmp_path / "events.parquet")) > 0


def test_own_events_file_with_a_column_mapping_and_an_event(
    platform_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = pd.read_parquet(platform_dir / "events.parquet")
    own = events.rename(
        columns={"member_id": "user_id", "course_id": "item_id", "timestamp": "ts"}
    )[["user_id", "item_id", "ts", "event"]].assign(来源="手机")
    path = tmp_path / "plays.csv"
    own.rename(columns={"event": "action"}).to_csv(path, index=False, encoding="gbk")
    train = ["train", "--data", str(path), "--model", "popularity", "--out"]
    # Without a mapping: the suggestion from the file's own columns, and the encoding hint.
    line = _fails([*train, str(tmp_path / "m1"), "--encoding", "gbk"], capsys)
    assert "--columns user_id=member_id,item_id=course_id,ts=timestamp,action=event" in line
    line = _fails([*train, str(tmp_path / "m1"), "--columns", "user_id=member_id"], capsys)
    assert "not UTF-8 text" in line and "--encoding gbk" in line
    mapping = "user_id=member_id,item_id=course_id,ts=timestamp,action=event"
    argv = [*train, str(tmp_path / "m1"), "--encoding", "gbk", "--columns", mapping]
    assert main(argv) == 0
    assert (tmp_path / "m1" / "model.json").is_file()
    capsys.readouterr()
    # A file without an event column: the suggestion says --event, which then works.
    plays = tmp_path / "plays2.csv"
    own.drop(columns="event").to_csv(plays, index=False)
    mapping = "user_id=member_id,item_id=course_id,ts=timestamp"
    argv = ["train", "--data", str(plays), "--model", "popularity", "--columns", mapping]
    line = _fails([*argv, "--out", str(tmp_path / "m2")], capsys)
    assert "--event view" in line
    assert main([*argv, "--event", "view", "--out", str(tmp_path / "m2")]) == 0
    bad = _fails([*argv, "--columns", "user_id", "--out", str(tmp_path / "m3")], capsys)
    assert "expected FILE_COLUMN=OUR_COLUMN" in bad
    # data validate reads the same way.
    assert main(["data", "validate", str(plays), "--table", "events"]) == 1
    assert "--event view" in capsys.readouterr().out
    validate = ["data", "validate", str(plays), "--table", "events", "--columns", mapping]
    assert main([*validate, "--event", "view"]) == 0
    assert "all tables valid" in capsys.readouterr().out


def test_a_bad_param_lists_the_valid_names(
    platform_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(platform_dir), "--model", "als", "--param", "factors=8"]
    line = _fails([*argv, "--out", str(tmp_path / "als")], capsys)
    assert "unknown parameter(s) ['factors'] for als" in line
    assert "n_factors, regularization" in line and "did you mean 'n_factors'" in line


def test_existing_artifact_says_overwrite_the_cli_way(
    platform_dir: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(platform_dir), "--model", "ease", "--out", str(model_dir)]
    assert "--overwrite" in _fails(argv, capsys)


def test_an_empty_menu_says_why(
    model_dir: Path, member: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["menu", "--model", str(model_dir), "--member", member, "--max-minutes", "0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Empty DataFrame" not in out
    assert (
        out.strip() == f"no course for {member}: none fits --max-minutes 0.5 (loosen the filters)"
    )


def test_lecturers_verb(model_dir: Path, member: str, capsys: pytest.CaptureFixture[str]) -> None:
    from recommend.artifact import load
    from recommend.menu import lecturer_menu

    argv = ["lecturers", "--model", str(model_dir), "--member", member, "--n", "4", "--json"]
    assert main(argv) == 0
    got = pd.read_json(io.StringIO(capsys.readouterr().out), dtype={"lecturer_id": str})
    want = lecturer_menu(load(model_dir), member, n=4)
    assert got["lecturer_id"].tolist() == want["lecturer_id"].tolist() and len(got) == 4


def test_version_verbose_after_the_verb_and_defaults_in_help(
    model_dir: Path, member: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from recommend.version import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"recommend {__version__}"
    with pytest.raises(SystemExit):
        main(["menu", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--n N courses on the menu (default: 10)" in text
    assert "--diversity DIVERSITY MMR weight in [0, 1] (default: 0.0)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit codes: 0 success" in capsys.readouterr().out
    from recommend.cli import build_parser

    menu = ["menu", "--model", str(model_dir), "--member", member]
    assert build_parser().parse_args([*menu, "-v"]).verbose is True
    assert build_parser().parse_args(["-v", *menu]).verbose is True
    assert build_parser().parse_args(menu).verbose is False
    assert main([*menu, "-v", "--n", "2"]) == 0


def test_batch_writes_the_compulsory_courses_apart(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from recommend.artifact import load
    from recommend.menu import compulsory_courses

    out = tmp_path / "menus"
    argv = ["batch", "--model", str(model_dir), "--out", str(out), "--n", "5", "--quiet"]
    db = tmp_path / "menus.db"
    assert main([*argv, "--compulsory", "--sql", f"sqlite:///{db}", "--table", "menus"]) == 0
    assert "compulsory courses still to study" in capsys.readouterr().out
    listed = pd.read_parquet(out / "_compulsory.parquet")
    model = load(model_dir)
    want = compulsory_courses(model, model.member_ids_.external_ids)
    assert listed["course_id"].tolist() == want["course_id"].tolist()
    assert listed["member_id"].tolist() == want["member_id"].tolist()
    assert (listed["route"] == "compulsory").all() and len(listed) > 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("select count(*) from menus_compulsory").fetchone()
    assert rows == len(listed)
    # The menus themselves are the same as without the option.
    plain = tmp_path / "plain"
    assert (
        main(["batch", "--model", str(model_dir), "--out", str(plain), "--n", "5", "--quiet"]) == 0
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(out).drop(columns="generated_at"),
        pd.read_parquet(plain).drop(columns="generated_at"),
    )
    # --overwrite removes the compulsory file of the earlier job with it.
    assert main([*argv, "--overwrite", "--format", "csv"]) == 0
    assert not (out / "_compulsory.parquet").exists()
