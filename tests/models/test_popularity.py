"""Tests of recommend.models.popularity: hand-counted popularity, decay, segments, cold start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import events_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend.data.dataset import Dataset
from recommend.data.weighting import Weighting
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.models.popularity import Popularity

NOW = pd.Timestamp("2024-06-30")


@pytest.fixture
def dataset() -> Dataset:
    """Retired members r1-r3 study c1 (and r1 c2); students s1, s2 study c2 and c3; x1 (no
    attributes) studies c4; n1 has attributes but no history."""
    events = events_frame(
        [
            ("r1", "c1", "view", "2024-06-01"),
            ("r1", "c1", "complete", "2024-06-02"),  # a repeat: still one member
            ("r1", "c2", "view", "2024-06-03"),
            ("r2", "c1", "view", "2024-06-04"),
            ("r3", "c1", "like", "2024-06-05"),
            ("s1", "c2", "view", "2024-06-06"),
            ("s1", "c3", "view", "2024-06-07"),
            ("s2", "c2", "view", "2024-06-08"),
            ("s2", "c3", "complete", "2024-06-09"),
            ("x1", "c4", "view", "2024-06-30"),
        ]
    )
    members = pd.DataFrame(
        {
            "member_id": ["r1", "r2", "r3", "s1", "s2", "x1", "n1"],
            "org_id": [7, 7, 8, 8, 8, None, 7],
            "birth_year": [1950, 1952, 1955, 2003, 2004, None, 1951],
            "occupation": ["retired", "retired", "retired", "student", "student", None, "retired"],
            "district": ["east", "east", "west", "west", "west", None, "east"],
        }
    )
    courses = pd.DataFrame({"course_id": ["c1", "c2", "c3", "c4"]})
    return Dataset.from_frames(events, courses=courses, members=members, now=NOW)


def _idx(ds: Dataset, *ids: str) -> np.ndarray:
    return ds.member_ids.to_index(list(ids))


def test_global_popularity_counts_distinct_members(dataset: Dataset) -> None:
    model = Popularity().fit(dataset)
    # c1: r1, r2, r3; c2: r1, s1, s2; c3: s1, s2; c4: x1.
    np.testing.assert_array_equal(model.global_scores(), [3, 3, 2, 1])
    assert model.global_scores().dtype == np.float32
    scores = model.score(_idx(dataset, "r1", "s1", "n1"))
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, np.tile([3, 3, 2, 1], (3, 1)))
    np.testing.assert_array_equal(model.score(_idx(dataset, "s1"), np.array([2, 0])), [[2, 3]])
    assert model.segments_.empty


def test_zero_weight_events_do_not_count() -> None:
    events = events_frame([("a", "c1", "view", "2024-01-01"), ("b", "c2", "share", "2024-01-02")])
    weights = dict(Weighting().event_weights, share=0.0)
    ds = Dataset.from_frames(events, weighting=Weighting(event_weights=weights))
    np.testing.assert_array_equal(Popularity().fit(ds).global_scores(), [1, 0])


def test_time_decay_ranks_recent_courses_first() -> None:
    # Two members each for "old" and "new"; "new" was studied 30 days later.
    events = events_frame(
        [
            ("a", "old", "view", "2024-01-01"),
            ("b", "old", "view", "2024-01-01"),
            ("c", "new", "view", "2024-01-31"),
            ("d", "new", "view", "2024-01-01"),
            ("d", "new", "view", "2024-01-31"),  # d's latest event on "new" counts
        ]
    )
    ds = Dataset.from_frames(events)
    new, old = ds.course_ids.to_index(["new", "old"])
    plain = Popularity().fit(ds).global_scores()
    assert plain[new] == plain[old] == 2
    decayed = Popularity(half_life_days=30).fit(ds).global_scores()
    assert decayed[new] == pytest.approx(2.0) and decayed[old] == pytest.approx(2 * 0.5)
    model = Popularity(half_life_days=30).fit(ds)
    top = model.topk(np.array([0]), 2)
    assert ds.course_ids.to_external(top.indices[0]).tolist() == ["new", "old"]


def test_segment_popularity_differs_by_segment(dataset: Dataset) -> None:
    model = Popularity(segment="occupation", min_segment_members=2).fit(dataset)
    share = np.array([3, 3, 2, 1], np.float32) / 6  # global share: 6 members have history
    retired, student, unknown = model.score(_idx(dataset, "r2", "s1", "x1"))
    np.testing.assert_allclose(retired, np.array([3, 1, 0, 0]) + share, rtol=1e-6)
    np.testing.assert_allclose(student, np.array([0, 2, 2, 0]) + share, rtol=1e-6)
    np.testing.assert_array_equal(unknown, [3, 3, 2, 1])  # no occupation: global
    # The prior breaks the tie among the courses students never took by global popularity.
    assert student[0] > student[3]
    assert model.segment_of(_idx(dataset, "r2", "s1", "x1")).tolist() == [
        "occupation=retired",
        "occupation=student",
        "global",
    ]
    # n1 has no history but is retired: gets the retired members' popularity.
    np.testing.assert_array_equal(model.score(_idx(dataset, "n1"))[0], retired)


def test_small_segments_fall_back_to_global(dataset: Dataset) -> None:
    model = Popularity(segment="occupation", min_segment_members=3).fit(dataset)
    retired, student = model.score(_idx(dataset, "r1", "s1"))
    assert retired[0] > retired[1]  # retired has 3 members with history: its own vector
    np.testing.assert_array_equal(student, model.global_scores())  # only 2
    seg = model.segments_.set_index("value")
    assert seg.loc["retired", "members"] == 4 and seg.loc["retired", "active_members"] == 3
    assert seg.loc["student", "members"] == 2 and not seg.loc["student", "used"]
    assert set(model.segments_.columns) == {
        "segment",
        "value",
        "members",
        "active_members",
        "used",
    }


def test_age_band_segments_use_birth_year(dataset: Dataset) -> None:
    model = Popularity(segment="age_band", min_segment_members=2).fit(dataset)
    old, young = model.score(_idx(dataset, "r1", "s1"))
    assert old.argmax() == 0 and young[2] > young[0]
    # In 2024: r1, r2, n1 are 70+, r3 is 69 (alone: falls back), s1 and s2 are under 30.
    seg = model.segments_
    assert set(seg["value"]) == {"70+", "60-69", "<30"}
    assert set(seg.loc[seg["used"], "value"]) == {"70+", "<30"}
    np.testing.assert_array_equal(model.score(_idx(dataset, "r3"))[0], model.global_scores())


def test_auto_picks_the_most_specific_segment_with_enough_members(dataset: Dataset) -> None:
    model = Popularity(segment="auto", min_segment_members=2).fit(dataset)
    # Branch 7 has r1, r2 (2 with history): r1 uses the branch. Branch 8 (r3, s1, s2) is
    # used too. x1 has no attributes at all.
    labels = model.segment_of(_idx(dataset, "r1", "r3", "s1", "x1", "n1"))
    assert labels.tolist() == ["org_id=7", "org_id=8", "org_id=8", "global", "org_id=7"]
    strict = Popularity(segment="auto", min_segment_members=3).fit(dataset)
    # Branch 7 has only 2 members with history: r1 falls through to occupation (3 retired
    # members with history); branch 8 (r3, s1, s2) still qualifies.
    labels = strict.segment_of(_idx(dataset, "r1", "s1", "x1"))
    assert labels.tolist() == ["occupation=retired", "org_id=8", "global"]


def test_segment_scores_for_members_known_only_by_attributes(dataset: Dataset) -> None:
    model = Popularity(segment="auto", min_segment_members=2).fit(dataset)
    member_scores = model.score(_idx(dataset, "r1", "s1", "r3"))
    attributes = pd.DataFrame(
        {
            # "7" matches the integer branch 7; 8.0 (a float column with gaps) matches 8.
            "org_id": ["7", None, None, "99", None],
            "occupation": [None, "student", "farmer", None, None],
            "birth_year": [None, None, None, 1953, None],
        }
    )
    scores = model.segment_scores(attributes)
    assert scores.shape == (5, 4) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores[0], member_scores[0])  # branch 7
    student = Popularity(segment="occupation", min_segment_members=2).fit(dataset)
    np.testing.assert_array_equal(scores[1], student.score(_idx(dataset, "s1"))[0])
    np.testing.assert_array_equal(scores[2], model.global_scores())  # unknown occupation
    # Unknown branch 99 and no occupation, born 1953: r1's age band (70+) in 2024.
    by_age = Popularity(segment="age_band", min_segment_members=2).fit(dataset)
    np.testing.assert_array_equal(scores[3], by_age.score(_idx(dataset, "r1"))[0])
    np.testing.assert_array_equal(scores[4], model.global_scores())  # nothing known
    floats = model.segment_scores(pd.DataFrame({"org_id": [8.0, np.nan]}))
    np.testing.assert_array_equal(floats[0], member_scores[2])
    np.testing.assert_array_equal(floats[1], model.global_scores())
    # Columns the model does not use are ignored; no usable column means global.
    other = model.segment_scores(pd.DataFrame({"gender": ["female"]}))
    np.testing.assert_array_equal(other[0], model.global_scores())
    assert model.segment_scores(attributes.iloc[:0]).shape == (0, 4)
    with pytest.raises(DataError, match="DataFrame"):
        model.segment_scores({"occupation": ["retired"]})  # type: ignore[arg-type]


def test_segment_scores_with_kinds_names_the_serving_segment(dataset: Dataset) -> None:
    model = Popularity(segment="auto", min_segment_members=2).fit(dataset)
    attributes = pd.DataFrame(
        {
            # Branch 8 is used; unknown branch 99 falls through to occupation; 1953 is the
            # 70+ band (r1, r2); nothing usable is global.
            "org_id": ["8", "99", None, "99", None],
            "occupation": [None, "student", None, None, "farmer"],
            "birth_year": [None, None, 1953, None, None],
        }
    )
    scores, kinds = model.segment_scores_with_kinds(attributes)
    assert kinds.tolist() == ["org_id", "occupation", "age_band", None, None]
    # A segment's scores: its counts plus the global prior.
    branch_row = model.segment_rows_["org_id"][list(model.segment_values_["org_id"]).index("8")]
    counts = model.table_[[branch_row]].toarray()[0]
    np.testing.assert_array_equal(scores[0], counts + model.prior_)
    np.testing.assert_array_equal(scores[3], model.global_scores())
    np.testing.assert_array_equal(scores, model.segment_scores(attributes))
    scores, kinds = model.segment_scores_with_kinds(attributes.iloc[:0])
    assert scores.shape == (0, 4) and kinds.shape == (0,)
    plain = Popularity().fit(dataset)
    assert plain.segment_scores_with_kinds(attributes)[1].tolist() == [None] * 5


def test_segment_scores_sum_duplicate_entries_of_the_table(dataset: Dataset) -> None:
    model = Popularity(segment="auto", min_segment_members=2).fit(dataset)
    attributes = pd.DataFrame({"org_id": ["7", "8", None]})
    expected = model.segment_scores(attributes)
    t = model.table_
    # The same counts, each stored as two halves (as a table built elsewhere may be).
    model.table_ = sp.csr_matrix(
        (np.repeat(t.data / 2, 2), np.repeat(t.indices, 2), t.indptr * 2), shape=t.shape
    )
    assert not model.table_.has_canonical_format
    np.testing.assert_array_equal(model.segment_scores(attributes), expected)


def test_global_model_ignores_attributes(dataset: Dataset) -> None:
    model = Popularity().fit(dataset)
    scores = model.segment_scores(pd.DataFrame({"occupation": ["retired", "student"]}))
    np.testing.assert_array_equal(scores, np.tile(model.global_scores(), (2, 1)))


def test_without_members_table_everyone_gets_global(caplog: pytest.LogCaptureFixture) -> None:
    events = events_frame([("a", "c1", "view", "2024-01-01"), ("b", "c2", "view", "2024-01-02")])
    ds = Dataset.from_frames(events)
    model = Popularity(segment="occupation", min_segment_members=1).fit(ds)
    assert "no members table" in caplog.text
    np.testing.assert_array_equal(model.score(np.array([0, 1])), [[1, 1], [1, 1]])
    assert caplog.text.count("no members table") == 1  # said once, at fit


def test_folded_in_members_get_global_popularity(dataset: Dataset) -> None:
    model = Popularity(segment="occupation", min_segment_members=2).fit(dataset)
    model.update("newcomer", events_frame([("newcomer", "c3", "view", "2024-06-10")]))
    idx = model.member_ids_.to_index(["newcomer"])
    assert idx[0] == dataset.n_members
    np.testing.assert_array_equal(model.score(idx)[0], model.global_scores())
    assert model.segment_of(idx).tolist() == ["global"]


def test_params_validation_and_fitting_state(dataset: Dataset) -> None:
    model = Popularity(half_life_days=14.0, segment="district", min_segment_members=5)
    assert model.get_params() == {
        "half_life_days": 14.0,
        "segment": "district",
        "min_segment_members": 5,
        "prior_members": 1.0,
    }
    assert Popularity.name == "popularity"
    with pytest.raises(NotFittedError):
        model.score(np.array([0]))
    for method in (model.global_scores, lambda: model.segment_scores(pd.DataFrame())):
        with pytest.raises(NotFittedError):
            method()
    with pytest.raises(ConfigError, match="segment"):
        Popularity(segment="religion")
    with pytest.raises(ConfigError, match="half_life_days"):
        Popularity(half_life_days=0)
    with pytest.raises(ConfigError, match="min_segment_members"):
        Popularity(min_segment_members=0)
    bogus = Popularity().set_params(segment="bogus")
    with pytest.raises(ConfigError, match="segment"):
        bogus.fit(dataset)
    assert not bogus.is_fitted
    assert Popularity(half_life_days=np.float32(7.0)).half_life_days == 7.0


def test_fit_does_not_mutate_the_dataset(dataset: Dataset) -> None:
    before = dataset.interactions.copy()
    events = dataset.events.copy()
    members = dataset.members.copy() if dataset.members is not None else None
    Popularity(half_life_days=7, segment="auto", min_segment_members=1).fit(dataset)
    assert (dataset.interactions != before).nnz == 0
    pd.testing.assert_frame_equal(dataset.events, events)
    assert members is not None and dataset.members is not None
    pd.testing.assert_frame_equal(dataset.members, members)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 4), st.integers(0, 40)),
        min_size=1,
        max_size=40,
    )
)
def test_global_scores_match_a_direct_count(rows: list[tuple[int, int, int]]) -> None:
    events = pd.DataFrame(
        {
            "member_id": [f"m{m}" for m, _, _ in rows],
            "course_id": [f"c{c}" for _, c, _ in rows],
            "event": "view",
            "timestamp": [pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for *_, d in rows],
        }
    )
    ds = Dataset.from_frames(events)
    counted = events.groupby("course_id")["member_id"].nunique()
    expected = counted.reindex(ds.course_ids.external_ids).to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(Popularity().fit(ds).global_scores(), expected)
    # Decay: each member counts 0.5 ** (days since their latest event on the course / 10).
    last = events.groupby(["course_id", "member_id"])["timestamp"].max()
    age = (ds.now - last).dt.days.to_numpy()
    decayed = pd.Series(0.5 ** (age / 10), index=last.index).groupby(level=0).sum()
    np.testing.assert_allclose(
        Popularity(half_life_days=10).fit(ds).global_scores(),
        decayed.reindex(ds.course_ids.external_ids).to_numpy(),
        rtol=1e-5,
    )
