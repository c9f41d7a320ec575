"""One id rule everywhere (recommend.data.ids): NFKC, zero-width characters removed,
surrounding spaces stripped; ids it changes are counted, never merged silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.data.ids import normalise_id, normalise_ids
from recommend.data.validation import check_table
from recommend.errors import DataError


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("m1", "m1"),
        (" m1 ", "m1"),
        ("\tm1\n", "m1"),
        ("ｍ１", "m1"),  # full-width letters and digits
        ("m\u200b1", "m1"),  # zero-width space
        ("\ufeffm1", "m1"),  # byte-order mark
        ("m1\u200d", "m1"),  # zero-width joiner
        ("\u3000m1\u3000", "m1"),  # ideographic spaces
        ("党员\u200c007", "党员007"),
        ("007", "007"),  # digits stay text
        ("a b", "a b"),  # inner spaces are part of the id
    ],
)
def test_normalise_id(raw: str, want: str) -> None:
    assert normalise_id(raw) == want


@pytest.mark.parametrize("n", [5, 500])  # the request path and the factorised path
def test_normalise_ids_counts_only_changed_strings(n: int) -> None:
    base = ["m1", " m1", None, np.nan, 7, "ｍ1", "m2"]
    values = (base * (n // len(base) + 1))[:n]
    ids, changed = normalise_ids(pd.Series(values, dtype=object))
    want = ["m1", "m1", None, "nan", 7, "m1", "m2"]
    got = ["nan" if isinstance(v, float) else v for v in ids.tolist()]
    assert got == (want * (n // len(want) + 1))[:n]
    assert changed.tolist() == ([False, True, False, False, False, True, False] * n)[:n]


def test_three_spellings_of_one_member_are_one_member() -> None:
    events = pd.DataFrame(
        {
            "member_id": ["m000000", "ｍ000000", "m000\u200b000", " m000000 ", "m1"],
            "course_id": ["c1", "c2", "c3", "c4", "c1"],
            "event": ["view"] * 5,
            "timestamp": pd.to_datetime(["2024-01-01"] * 5),
        }
    )
    report = check_table("events", events)
    (note,) = report.notes
    assert note.column == "member_id" and note.count == 3 and note.rows == (1, 2, 3)
    assert "3 distinct id(s) became 1" in note.message
    assert report.frame["member_id"].tolist() == ["m000000"] * 4 + ["m1"]
    ds = rc.Dataset.from_frames(events)
    assert ds.member_ids.external_ids.tolist() == ["m000000", "m1"]
    assert ds.interactions.getrow(0).nnz == 4


def test_an_id_of_only_invisible_characters_is_an_empty_id() -> None:
    events = pd.DataFrame(
        {
            "member_id": ["m1", "\u200b"],
            "course_id": ["c1", "c1"],
            "event": ["view", "view"],
            "timestamp": ["2024-01-01", "2024-01-02"],
        }
    )
    with pytest.raises(DataError, match=r"events.member_id: null or empty ids in 1 row \(row 1\)"):
        rc.validate("events", events)


def test_missing_optional_ids_are_not_counted_as_changed(
    sample_platform: rc.Platform, caplog: pytest.LogCaptureFixture
) -> None:
    # The sample has courses without a lecturer and orgs without a parent: nothing to note.
    assert sample_platform.courses["lecturer_id"].isna().any()
    with caplog.at_level("WARNING"):
        for table in ("courses", "members", "orgs"):
            assert check_table(table, getattr(sample_platform, table)).notes == ()
            rc.validate(table, getattr(sample_platform, table))
    assert caplog.text == ""


def test_courses_ids_are_normalised_too() -> None:
    courses = pd.DataFrame({"course_id": ["c1", "ｃ２ "], "lecturer_id": [" l1", None]})
    out = rc.validate("courses", courses)
    assert out["course_id"].tolist() == ["c1", "c2"]
    assert out["lecturer_id"].tolist()[0] == "l1" and pd.isna(out["lecturer_id"].iloc[1])


@pytest.mark.parametrize(
    "odd", [" c5", "c5 ", "c\t5", "c5\x1f", "ｃ5", "c\u200b5", "c5\u3000", 5, None, np.nan]
)
def test_plain_ascii_ids_short_cut_agrees_with_the_rule(odd: object) -> None:
    """Object arrays of plain ASCII ids (a search engine's few hundred candidates) are
    checked as one joined string; any id the rule would change, or a value that is not a
    string, goes the long way and gives what ``normalise_id`` gives."""
    plain = np.array([f"c{i:04d}" for i in range(200)], dtype=object)
    got, changed = normalise_ids(plain)
    assert got is plain and not changed.any()
    values = plain.copy()
    values[7] = odd
    got, changed = normalise_ids(values)
    want = [normalise_id(v) if isinstance(v, str) else v for v in values.tolist()]
    assert [g if isinstance(g, str) else repr(g) for g in list(got)] == [
        w if isinstance(w, str) else repr(w) for w in want
    ]
    assert changed.tolist() == [isinstance(v, str) and normalise_id(v) != v for v in values]
