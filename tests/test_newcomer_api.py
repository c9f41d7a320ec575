"""The Python API as a newcomer meets it: loaders at the top level, mapping suggestions,
clear errors where a slip used to mean something else."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import recommend as rc


def test_dir_lists_the_lazily_loaded_names() -> None:
    names = dir(rc)
    for name in ("EASE", "member_menu", "read_table", "run_batch", "compulsory_courses"):
        assert name in names
    assert set(rc.__all__) <= set(names)


def test_loaders_are_exported_and_suggest_a_mapping(tmp_path: Path) -> None:
    from recommend.data import loaders

    assert rc.read_table is loaders.read_table and rc.read_member_ids is loaders.read_member_ids
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,ts,action\nu1,c1,2024-05-01,view\n", encoding="utf-8")
    with pytest.raises(rc.DataError) as err:
        rc.read_table(path, "events")
    text = str(err.value)
    assert "its columns: ['user_id', 'item_id', 'ts', 'action']" in text
    assert (
        "columns={'user_id': 'member_id', 'item_id': 'course_id', 'ts': 'timestamp', "
        "'action': 'event'}" in text
    )
    mapping = rc.suggest_mapping("events", ["user_id", "item_id", "ts", "action"])
    frame = rc.read_table(path, "events", columns=mapping, validate=True)
    assert frame.loc[0, "member_id"] == "u1" and frame.loc[0, "event"] == "view"


def test_an_events_file_without_an_event_column(tmp_path: Path) -> None:
    path = tmp_path / "plays.csv"
    path.write_text("member_id,course_id,timestamp\nm1,c1,2024-05-01\n", encoding="utf-8")
    with pytest.raises(rc.DataError, match=r"event='view' \(--event view\)"):
        rc.read_table(path, "events")
    assert rc.read_table(path, "events", event="complete")["event"].tolist() == ["complete"]
    with pytest.raises(rc.DataError, match="has an event column already"):
        rc.read_table(path, "events", event="view", columns={"course_id": "event"})


def test_gbk_files_say_how_to_read_them(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    text = "member_id,course_id,event,timestamp,来源\nm1,c1,view,2024-05-01,手机\n"
    path.write_bytes(text.encode("gbk"))
    with pytest.raises(rc.DataError, match=r"not UTF-8 text .*encoding='gbk' \(--encoding gbk\)"):
        rc.read_table(path, "events")
    assert rc.read_table(path, "events", encoding="gbk").loc[0, "来源"] == "手机"
    with pytest.raises(rc.DataError, match="unknown text encoding 'klingon'"):
        rc.read_table(path, "events", encoding="klingon")


def test_validation_of_a_frame_suggests_the_mapping_too() -> None:
    frame = pd.DataFrame({"uid": ["a"], "course_id": ["c"], "event": ["view"], "time": ["2024"]})
    with pytest.raises(rc.DataError, match=r"--columns uid=member_id,time=timestamp"):
        rc.validate("events", frame)


def test_evaluate_an_unfitted_model_without_fitting(small_dataset: rc.Dataset) -> None:
    train, test = small_dataset.split(rc.TimeSplit(test_fraction=0.2))
    with pytest.raises(rc.NotFittedError):
        rc.evaluate(rc.EASE(), train, test, fit=False)


def test_evaluate_takes_one_cut_off(small_dataset: rc.Dataset) -> None:
    train, test = small_dataset.split(rc.TimeSplit(test_fraction=0.2))
    result = rc.evaluate(rc.Popularity(), train, test, ks=5, segments=False, n_boot=0)
    assert "ndcg@5" in result.metrics and "ndcg@10" not in result.metrics
    with pytest.raises(rc.ConfigError, match="ks='five'"):
        rc.evaluate(rc.Popularity(), train, test, ks="five", segments=False, n_boot=0)


def test_time_split_with_a_fraction_as_first_argument() -> None:
    with pytest.raises(rc.ConfigError, match=r"TimeSplit\(test_fraction=0.2\)"):
        rc.TimeSplit(0.2)
    assert rc.TimeSplit("2024-05-01").at == pd.Timestamp("2024-05-01")


def test_make_model_lists_the_parameters() -> None:
    with pytest.raises(rc.ConfigError, match=r"did you mean 'n_factors' for 'factors'"):
        rc.make_model("als", factors=64)
    assert rc.make_model("als", n_factors=8).n_factors == 8


def test_group_budget_error_says_how_to_resolve_it(sample_dataset: rc.Dataset) -> None:
    """The README's group example without --max-pins: the pins alone exceed the budget,
    and the message names the option."""
    model = rc.Popularity().fit(sample_dataset)
    with pytest.raises(rc.ConfigError) as err:
        rc.order_for_group(model, "o0047", 8, budget_minutes=120, quotas={"理论学习": 2})
    text = str(err.value)
    assert "over the budget of 120 minutes" in text and "--max-pins" in text
    result = rc.order_for_group(
        model, "o0047", 8, budget_minutes=120, quotas={"理论学习": 2}, max_pins=2
    )
    assert result.total_minutes <= 120 and int(result.menu["pinned"].sum()) == 2
