"""Tests of the public-data loaders, on small files written into ``tmp_path``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommend.data import loaders
from recommend.data.loaders import (
    lecturer_pseudonym,
    load_lines_split,
    load_mooccubex,
    read_item_map,
    read_lines,
    read_lines_data,
    read_mooccubex_courses,
    read_mooccubex_members,
    read_movielens,
    read_table,
)
from recommend.errors import DataError
from recommend.schema import Columns as C

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------- read_table


@pytest.fixture
def events_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path / "log.csv",
        "user,item,ts,kind\n007,c1,2024-01-01 08:00:00,view\n8,c2,2024-01-02 09:00:00,like\n",
    )


def test_read_table_maps_columns_and_keeps_ids_as_written(events_csv: Path) -> None:
    frame = read_table(
        events_csv,
        "events",
        columns={"user": C.MEMBER, "item": C.COURSE, "ts": C.TIMESTAMP, "kind": C.EVENT},
    )
    assert list(frame.columns) == [C.MEMBER, C.COURSE, C.TIMESTAMP, C.EVENT]
    assert frame[C.MEMBER].tolist() == ["007", "8"]
    assert frame[C.EVENT].tolist() == ["view", "like"]


def test_read_table_validate_returns_canonical_dtypes(events_csv: Path) -> None:
    mapping = {"user": C.MEMBER, "item": C.COURSE, "ts": C.TIMESTAMP, "kind": C.EVENT}
    frame = read_table(events_csv, "events", columns=mapping, validate=True)
    assert frame[C.TIMESTAMP].dtype == "datetime64[ns]"
    assert frame[C.TIMESTAMP].iloc[1] == pd.Timestamp("2024-01-02 09:00:00")


def test_read_table_missing_mapped_column_lists_available(events_csv: Path) -> None:
    with pytest.raises(DataError, match=r"\['member'\] not found.*'user', 'item', 'ts'"):
        read_table(events_csv, "events", columns={"member": C.MEMBER})


def test_read_table_target_outside_schema(events_csv: Path) -> None:
    with pytest.raises(DataError, match=r"\['member'\] are not columns of the events table"):
        read_table(events_csv, "events", columns={"user": "member"})


def test_read_table_target_clashes_with_existing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "user,member_id\n1,2\n")
    with pytest.raises(DataError, match="already has column"):
        read_table(path, "events", columns={"user": C.MEMBER})


def test_read_table_unknown_table_and_format(tmp_path: Path, events_csv: Path) -> None:
    with pytest.raises(DataError, match="unknown table 'event'"):
        read_table(events_csv, "event")
    odd = write(tmp_path / "log.xlsx", "x")
    with pytest.raises(DataError, match=r"cannot tell the format of 'log.xlsx'"):
        read_table(odd, "events")
    with pytest.raises(DataError, match="unknown format 'json'"):
        read_table(events_csv, "events", format="json")


def test_read_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="events file not found"):
        read_table(tmp_path / "nope.csv", "events")


def test_read_table_tsv_gzip_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["c1", "c2"], "tags": ["a|b", ""], "title": ["x", "y"]})
    frame.to_csv(tmp_path / "c.tsv.gz", sep="\t", index=False)
    frame.to_parquet(tmp_path / "c.pq")
    frame.to_csv(tmp_path / "c.txt", index=False)
    for path, fmt in ((tmp_path / "c.tsv.gz", None), (tmp_path / "c.pq", None)):
        out = read_table(path, "courses", columns={"id": C.COURSE}, format=fmt)
        assert out[C.COURSE].tolist() == ["c1", "c2"]
        assert out[C.TAGS].tolist() == [["a", "b"], []]
    out = read_table(tmp_path / "c.txt", "courses", columns={"id": C.COURSE}, format="csv")
    assert out[C.TITLE].tolist() == ["x", "y"]


# ----------------------------------------------------------------------- lines files


def test_read_lines_parses_orders_and_counts_duplicates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "train.txt", "0 5 3 5\r\n\n12 3\n7\n0 3 9\n")
    with caplog.at_level(logging.WARNING, logger=loaders.__name__):
        data = read_lines_data(path)
    ev = data.events
    pairs = list(zip(ev[C.MEMBER], ev[C.COURSE], strict=True))
    # the second "0 5" and the "0 3" of the second line of member 0 are duplicates
    assert pairs == [("0", "5"), ("0", "3"), ("12", "3"), ("0", "9")]
    assert data.duplicates_dropped == 2
    assert data.members_without_items == ("7",)
    assert data.blank_lines == 1
    assert ev[C.EVENT].eq("interaction").all()
    seconds = (ev[C.TIMESTAMP] - pd.Timestamp("1970-01-01")).dt.total_seconds().tolist()
    assert seconds == [0, 1, 0, 1]  # position within the line
    assert "dropped 2 duplicate" in caplog.text
    assert "1 member(s) have no courses" in caplog.text


def test_read_lines_event_name_and_plain_frame(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "1 2 3\n")
    frame = read_lines(path, event="enrol")
    assert frame[C.EVENT].tolist() == ["enrol", "enrol"]
    assert frame[C.COURSE].tolist() == ["2", "3"]


def test_read_lines_malformed_token_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "1 2 3\n\n2 4 x5 6\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 3: token 'x5'"):
        read_lines(path)
    assert read_lines(path, integer_ids=False)[C.COURSE].tolist() == ["2", "3", "4", "x5", "6"]


def test_read_lines_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_lines(tmp_path / "absent.txt")


def test_load_lines_split_reports_counts_and_overlap(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "0 1 2 2\n1 3\n")
    test = write(tmp_path / "test.txt", "0 4\n1 3\n2\n")
    split = load_lines_split(train, test)
    assert split.duplicates_dropped == {"train": 1, "test": 0}
    assert split.members_without_items == {"train": 0, "test": 1}
    assert split.overlap == 1
    assert len(split.train) == 3 and len(split.test) == 2


# ------------------------------------------------------------------------ MOOCCubeX

TEACHERS = ["贾艳滨", "张文霞", "杨芳"]


def _profiles(tmp_path: Path) -> Path:
    rows = [
        {
            "original_id": "C_10",
            "name": "心理学导论",
            "about": "关于心理",
            "fields": ["心理学", "医学"],
            "key_concepts": ["人格", "心理学", "人格"],
            "teacher_ids": ["T_1"],
            "teachers": [TEACHERS[0]],
            "school_ids": ["S_9"],
            "schools": ["暨南大学"],
        },
        {
            "original_id": "C_20",
            "name": "English",
            "about": "",
            "fields": [],
            "key_concepts": [],
            "teachers": TEACHERS[1:],
            "schools": [],
        },
        {"original_id": "C_30", "name": "unmapped", "teachers": []},
    ]
    return write(
        tmp_path / "course_profiles.jsonl",
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
    )


def test_read_mooccubex_courses_maps_fields(tmp_path: Path) -> None:
    courses = read_mooccubex_courses(_profiles(tmp_path))
    first = courses.iloc[0]
    assert courses[C.COURSE].tolist() == ["C_10", "C_20", "C_30"]
    assert first[C.TITLE] == "心理学导论"
    assert first[C.DESCRIPTION] == "关于心理"
    assert first[C.TAGS] == ["心理学", "医学", "人格"]
    assert first[C.CATEGORY] == "心理学"
    assert first[C.ORG] == "S_9"
    assert courses[C.CATEGORY].tolist()[1:] == ["", ""]
    # teacher id preferred; the name only when the profile has no ids; none -> None
    assert first[C.LECTURER] == lecturer_pseudonym("T_1")
    assert courses[C.LECTURER].iloc[1] == lecturer_pseudonym(TEACHERS[1])
    assert pd.isna(courses[C.LECTURER].iloc[2])


def test_mooccubex_courses_never_hold_teacher_or_school_names(tmp_path: Path) -> None:
    courses = read_mooccubex_courses(_profiles(tmp_path))
    text = courses.astype(str).to_csv() + " ".join(map(str, courses.columns))
    for name in [*TEACHERS, "暨南大学"]:
        assert name not in text
    assert courses[C.LECTURER].iloc[0].startswith("t")
    assert len(courses[C.LECTURER].iloc[0]) == 13
    keyed = read_mooccubex_courses(_profiles(tmp_path), pseudonym_key=b"secret")
    assert keyed[C.LECTURER].iloc[0] != courses[C.LECTURER].iloc[0]


def test_read_mooccubex_courses_item_map_drops_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    item_map = write(tmp_path / "item_map.txt", "C_10 0\r\nC_20 1\r\nC_99 2\r\n")
    with caplog.at_level(logging.WARNING, logger=loaders.__name__):
        courses = read_mooccubex_courses(_profiles(tmp_path), item_map=item_map)
    assert courses[C.COURSE].tolist() == ["0", "1"]
    assert courses[C.TITLE].tolist() == ["心理学导论", "English"]
    assert courses.attrs["load_report"] == {
        "profiles": 3,
        "not_in_item_map": 1,
        "item_map_without_profile": 1,
    }
    assert "dropped 1 course profile(s)" in caplog.text
    assert "1 course(s) of the item map have no profile" in caplog.text


def test_read_mooccubex_courses_bad_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"original_id": "C_1"}\n{"original_id": \n')
    with pytest.raises(DataError, match=r"p\.jsonl, line 2: not valid JSON"):
        read_mooccubex_courses(path)
    dup = write(tmp_path / "d.jsonl", '{"original_id": "C_1"}\n{"original_id": "C_1"}\n')
    with pytest.raises(DataError, match="already given on line 1"):
        read_mooccubex_courses(dup)


def test_read_item_map_errors(tmp_path: Path) -> None:
    assert read_item_map(write(tmp_path / "a.txt", "original idx\nC_1 0\n")) == {"C_1": "0"}
    with pytest.raises(DataError, match="line 2: original id 'C_1' is listed twice"):
        read_item_map(write(tmp_path / "b.txt", "C_1 0\nC_1 1\n"))
    with pytest.raises(DataError, match="line 1: expected 'original_id index'"):
        read_item_map(write(tmp_path / "c.txt", "C_1\n"))


def test_read_mooccubex_members(tmp_path: Path) -> None:
    path = write(tmp_path / "user_list.txt", "org_id remap_id gender\nU_24 0 1\nU_53 1 2\n")
    members = read_mooccubex_members(path)
    assert list(members.columns) == [C.MEMBER, C.GENDER]
    assert members[C.MEMBER].tolist() == ["0", "1"]
    assert members[C.GENDER].tolist() == ["1", "2"]
    assert "U_24" not in members.to_csv()
    labelled = read_mooccubex_members(path, gender_labels={"1": "male", "2": "female"})
    assert labelled[C.GENDER].tolist() == ["male", "female"]
    with pytest.raises(DataError, match=r"gender codes \['2'\]"):
        read_mooccubex_members(path, gender_labels={"1": "male"})
    bad = write(tmp_path / "bad.txt", "U_1 0 1\nU_2 1\n")
    with pytest.raises(DataError, match="line 2: expected"):
        read_mooccubex_members(bad)


def test_load_mooccubex_folder(tmp_path: Path) -> None:
    _profiles(tmp_path)
    write(tmp_path / "item_map.txt", "C_10 0\nC_20 1\nC_30 2\n")
    write(tmp_path / "train.txt", "0 0 1 1\n1 2\n")
    write(tmp_path / "test.txt", "0 2\n1 0\n")
    data = load_mooccubex(tmp_path)
    assert data.duplicates_dropped == {"train": 1, "test": 0}
    assert data.courses is not None
    assert set(data.train[C.COURSE]) <= set(data.courses[C.COURSE])
    assert data.members is None
    with pytest.raises(DataError, match="folder not found"):
        load_mooccubex(tmp_path / "nope")


# ------------------------------------------------------------------------ MovieLens


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("ratings.dat", "1::1193::5::978300760\n1::661::3.5::978302109\n"),
        ("u.data", "1\t1193\t5\t978300760\n1\t661\t3.5\t978302109\n"),
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1193,5,978300760\n1,661,3.5,978302109\n",
        ),
    ],
)
def test_read_movielens_formats(tmp_path: Path, name: str, text: str) -> None:
    frame = read_movielens(write(tmp_path / name, text))
    assert frame[C.MEMBER].tolist() == ["1", "1"]
    assert frame[C.COURSE].tolist() == ["1193", "661"]
    assert frame[C.EVENT].tolist() == ["rating", "rating"]
    np.testing.assert_array_equal(frame[C.VALUE].to_numpy(), [5.0, 3.5])
    assert frame[C.TIMESTAMP].iloc[0] == pd.Timestamp("2000-12-31 22:12:40")


def test_read_movielens_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a MovieLens ratings file"):
        read_movielens(write(tmp_path / "x.dat", "1 2 3 4\n"))
    with pytest.raises(DataError, match=r"non-numeric value \(first at data row 2: 'five'\)"):
        read_movielens(write(tmp_path / "y.dat", "1::2::4::10\n1::3::five::11\n"))
    with pytest.raises(DataError, match="missing or non-numeric timestamp"):
        read_movielens(write(tmp_path / "z.data", "1\t2\t4\n"))
    with pytest.raises(DataError, match="cannot parse"):
        read_movielens(write(tmp_path / "w.data", "1\t2\t4\t5\t6\n"))
    with pytest.raises(DataError, match="not found"):
        read_movielens(tmp_path / "ratings.dat")


# ------------------------------------------------------------------------- real data


def test_real_mooccubex_counts() -> None:
    courses_dir = REAL_DATA / "mooccubex-courses"
    big_dir = REAL_DATA / "mooccubex-enrolments-97k"
    if not (courses_dir.is_dir() and big_dir.is_dir()):
        pytest.skip(f"real MOOCCubeX data not present at {REAL_DATA}")
    small = load_mooccubex(courses_dir)
    assert small.train[C.MEMBER].nunique() == 5_972
    assert pd.concat([small.train, small.test])[C.COURSE].nunique() == 2_297
    assert small.courses is not None and len(small.courses) == 2_297
    assert set(small.train[C.COURSE]) <= set(small.courses[C.COURSE])

    big = load_mooccubex(big_dir)
    assert big.train[C.MEMBER].nunique() == 97_722
    assert 800 <= big.duplicates_dropped["train"] <= 960
    assert big.test.groupby(C.MEMBER).size().eq(1).all()
    assert big.members is not None
    assert set(big.members[C.MEMBER]) == set(big.train[C.MEMBER])
