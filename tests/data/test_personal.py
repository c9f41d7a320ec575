"""Personal data is refused in every table, told by column name or by content
(recommend.data.personal), and values are never echoed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.data.personal import is_resident_id, personal_content
from recommend.errors import DataError

PHONES = ["13812345678", "+86 139 1234 5678", "150-1234-5678", "18600001111"]
EMAILS = ["zhang.san@example.com", "li_si+party@mail.example.org.cn", "a@b.co", "x@y.cn"]


def _resident_id(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


IDS = [
    _resident_id("11010519491231002"),
    _resident_id("44030419900101123"),
    _resident_id("32010219851120456"),
    _resident_id("51010719771005789"),
]

TABLES = {
    "events": pd.DataFrame(
        {
            "member_id": ["m000001", "m000002", "m000003", "m000004"],
            "course_id": ["c1", "c2", "c3", "c4"],
            "event": ["view"] * 4,
            "timestamp": pd.to_datetime(["2024-01-01"] * 4),
        }
    ),
    "courses": pd.DataFrame({"course_id": ["c1", "c2", "c3", "c4"], "title": ["党课"] * 4}),
    "members": pd.DataFrame({"member_id": ["m1", "m2", "m3", "m4"], "org_id": ["o1"] * 4}),
    "orgs": pd.DataFrame({"org_id": ["o1", "o2", "o3", "o4"], "kind": ["branch"] * 4}),
    "searches": pd.DataFrame(
        {
            "member_id": ["m1", "m2", "m3", "m4"],
            "query": ["党史"] * 4,
            "timestamp": pd.to_datetime(["2024-01-01"] * 4),
        }
    ),
}


def _refused(table: str, frame: pd.DataFrame) -> str:
    with pytest.raises(DataError) as info:
        rc.validate(table, frame)
    return str(info.value)


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("column", ["phone", "姓名", "id_card", "email", "phone_1", "联系电话2"])
def test_personal_column_names_are_refused_in_every_table(table: str, column: str) -> None:
    frame = TABLES[table].assign(**{column: ["x"] * 4})
    msg = _refused(table, frame)
    assert "personal columns" in msg and repr(column) in msg


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [
        ("电话号码", PHONES, "personal columns"),  # by name first
        ("phone_1", PHONES, "personal columns"),
        ("证件号码", IDS, "personal columns"),
        ("number", IDS, "resident identity numbers"),
        ("contact", PHONES, "mobile phone numbers"),
        ("mail", EMAILS, "e-mail addresses"),
        ("note", [PHONES[0], "党员", None, "ok"], "mobile phone numbers"),
        ("contact", [13812345678, 13912345678, 15012345678, 18600001111], "mobile phone numbers"),
        ("contact", [13812345678.0, np.nan, 15012345678.0, np.nan], "mobile phone numbers"),
        ("extra", [[EMAILS[0]], [], ["a"], ["b"]], "e-mail addresses"),
    ],
)
def test_personal_values_are_refused_by_content_in_every_table(
    table: str, column: str, values: list[object], kind: str
) -> None:
    frame = TABLES[table].copy()
    frame[column] = pd.Series(values, dtype=object if column == "extra" else None)
    msg = _refused(table, frame)
    assert kind in msg and repr(column) in msg
    for value in values:
        for token in value if isinstance(value, list) else [value]:
            if isinstance(token, str) and len(token) > 3:
                assert token not in msg  # never echoed
            if isinstance(token, int | float) and not pd.isna(token):
                assert str(int(token)) not in msg


def test_personal_data_in_an_id_column_is_refused() -> None:
    events = TABLES["events"].assign(member_id=PHONES)
    assert "events.member_id" in _refused("events", events)


def test_a_wrong_check_digit_is_not_an_identity_number() -> None:
    good = IDS[0]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert is_resident_id(pd.Series([good, bad, "11010519491331002X"])).tolist() == [
        True,
        False,
        False,  # month 13
    ]


def test_ordinary_ids_titles_and_numbers_pass() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame(
        {
            "member_id": [f"m{i:06d}" for i in range(n)],
            "course_id": [f"c{i % 977}" for i in range(n)],
            "org_id": rng.integers(1, 10**8, n),
            # 18-digit numeric ids (snowflake style): a few may pass the check digit by
            # chance, far below the share that marks a column personal.
            "snowflake": rng.integers(10**17, 10**18 - 1, n).astype(str),
            "big_numbers": rng.integers(10**12, 10**15, n),
            "title": [f"第{i}讲 学习贯彻党的二十大精神 联系电话见通知" for i in range(n)],
            "watch_seconds": rng.random(n) * 3600,
            "when": pd.Timestamp("2024-01-01"),
        }
    )
    assert personal_content(frame) == {}


def test_content_scan_stays_fast() -> None:
    import time

    n = 1_000_000
    frame = pd.DataFrame(
        {
            "member_id": [f"m{i:07d}" for i in range(n)],
            "course_id": [f"c{i % 5000}" for i in range(n)],
            "extra": np.arange(n, dtype=np.int64) * 10_000,
        }
    )
    start = time.perf_counter()
    assert personal_content(frame) == {}
    assert time.perf_counter() - start < 2.0  # a sample of 10,000 rows, whatever the size
