"""Tests of the member menu (recommend.menu): filters, pins, diversity, reasons, routes."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend.data.dataset import Dataset
from recommend.data.validation import validate
from recommend.engine import routes
from recommend.errors import ConfigError, DataError
from recommend.menu import (
    MENU_COLUMNS,
    REASON_BRANCH,
    REASON_COMPULSORY,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    lecturer_menu,
    member_menu,
)
from recommend.models.base import Factors, Recommender
from recommend.schema import CHANNELS

N_COURSES = 16
COURSES = [f"c{j:02d}" for j in range(N_COURSES)]
# Channels come in runs of four (c00-c03 the first channel...), lecturers cycle (L0 gives
# c00, c04, c08, c12), so channel and lecturer rankings are told apart.
CHANNEL_OF = {c: CHANNELS[j // 4] for j, c in enumerate(COURSES)}
TITLE = {c: f"课程{c}" for c in COURSES}


def _courses() -> pd.DataFrame:
    published = [pd.Timestamp("2024-01-01")] * N_COURSES
    published[15] = pd.Timestamp("2025-06-01")  # after the data: not yet published
    duration = [60.0 * (j + 1) for j in range(N_COURSES)]  # c00 1 min ... c15 16 min
    duration[14] = np.nan  # unknown duration
    compulsory: list[list[str]] = [[] for _ in COURSES]
    compulsory[9] = ["b1"]
    compulsory[10] = ["b1", "b2"]
    compulsory[13] = ["b2"]
    return pd.DataFrame(
        {
            "course_id": COURSES,
            "title": [TITLE[c] for c in COURSES],
            "category": [CHANNEL_OF[c] for c in COURSES],
            "duration_seconds": duration,
            "lecturer_id": [f"L{j % 4}" for j in range(N_COURSES)],
            "source": ["official"] * N_COURSES,
            "published_at": published,
            "compulsory_for": compulsory,
        }
    )


def _members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": ["m0", "m1", "m2", "m3", "m4"],
            "org_id": ["b1", "b1", "b2", "b2", "b1"],
            "birth_year": [1960, 1985, 1990, 1975, 1950],
            "occupation": ["retired", "white_collar", "blue_collar", "rural", "retired"],
            "district": ["xs", "xs", "gs", "gs", "xs"],
        }
    )


def _events() -> pd.DataFrame:
    rows = [
        ("m0", "c00", "view", "2024-03-01"),
        ("m0", "c00", "complete", "2024-03-01"),
        ("m0", "c05", "view", "2024-03-02"),
        ("m1", "c02", "view", "2024-03-03"),
        ("m1", "c03", "view", "2024-03-03"),
        ("m2", "c10", "view", "2024-03-04"),
        ("m2", "c10", "complete", "2024-03-04"),
        ("m2", "c04", "view", "2024-03-05"),
        ("m3", "c06", "view", "2024-03-06"),
        ("m3", "c07", "view", "2024-03-10"),
    ]
    frame = pd.DataFrame(rows, columns=["member_id", "course_id", "event", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


class FixedFactors(Recommender):
    """Factors that make scores exactly ``boost`` over a default ``16, 15, ..., 1``.

    Course factors are ``[identity | channel_weight * channel one-hot]`` and member factors
    ``[scores | 0]``: the score is the chosen number, and courses of one channel are more
    alike (cosine) than courses of different channels.
    """

    name = "fixed"

    def __init__(self, boost: dict[str, dict[str, float]] | None = None) -> None:
        self.boost = boost

    def _default_row(self, n_courses: int) -> np.ndarray:
        return np.arange(n_courses, 0, -1, dtype=np.float32)

    def _fit(self, dataset: Dataset) -> None:
        n_m, n_c = dataset.n_members, dataset.n_courses
        scores = np.tile(self._default_row(n_c), (n_m, 1))
        for member, boosts in (self.boost or {}).items():
            i = int(dataset.member_ids.to_index([member])[0])
            for course, value in boosts.items():
                scores[i, int(dataset.course_ids.to_index([course])[0])] = value
        codes = pd.factorize(dataset.courses["category"])[0]
        channel = np.eye(codes.max() + 1, dtype=np.float32)[codes] * 0.5
        self.member_factors_ = np.hstack([scores, np.zeros((n_m, channel.shape[1]), np.float32)])
        self.course_factors_ = np.hstack([np.eye(n_c, dtype=np.float32), channel])

    def factors(self) -> Factors:
        return Factors(self.member_factors_, self.course_factors_)

    def _fold_in(self, member_idx: int, row: object) -> None:
        f = self.member_factors_
        if member_idx >= len(f):
            f = np.vstack([f, np.zeros((member_idx + 1 - len(f), f.shape[1]), np.float32)])
        else:
            f = f.copy()
        f[member_idx, :N_COURSES] = self._default_row(N_COURSES)
        self.member_factors_ = f


class ScoresOnly(FixedFactors):
    """The same scores without factors: exercises the ``score_block`` path."""

    name = "scores_only"

    def factors(self) -> None:  # type: ignore[override]
        return None

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        return self.member_factors_[np.asarray(member_idx), :N_COURSES].copy()


class Hybrid(FixedFactors):
    """A model that scores members from attributes: ascending scores (c15 best)."""

    name = "hybrid"
    uses_features = True

    def cold_member_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        return np.tile(np.arange(N_COURSES, dtype=np.float32), (len(attributes), 1))


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_frames(_events(), courses=_courses(), members=_members())


@pytest.fixture(scope="module")
def model(dataset: Dataset) -> FixedFactors:
    # m3 likes lecturer L3 (c03, c07, c11, c15) and c01's channel a lot.
    boost = {"m3": {"c03": 40.0, "c11": 39.0, "c15": 38.0, "c01": 30.0}}
    return FixedFactors(boost).fit(dataset)


def _menu(model: Recommender, member: object, **kw: object) -> list[str]:
    return member_menu(model, member, **kw)["course_id"].tolist()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- shape


def test_columns_dtypes_and_ranks(model: FixedFactors) -> None:
    menu = member_menu(model, ["m1", "m0"], n=4)
    assert tuple(menu.columns) == MENU_COLUMNS
    assert menu["score"].dtype == np.float32
    assert menu["rank"].dtype == np.int32
    assert pd.api.types.is_string_dtype(menu["reason"])
    assert pd.api.types.is_string_dtype(menu["route"])
    assert menu["member_id"].tolist() == ["m1"] * 4 + ["m0"] * 4  # request order
    for _, rows in menu.groupby("member_id"):
        assert rows["rank"].tolist() == [1, 2, 3, 4]
        assert rows["course_id"].is_unique
    assert (menu["route"] == "personal").all()


def test_recommend_delegates_to_the_menu(model: FixedFactors) -> None:
    pd.testing.assert_frame_equal(model.recommend(["m1"], n=3), member_menu(model, ["m1"], n=3))


def test_scalar_and_integer_ids(model: FixedFactors) -> None:
    one = member_menu(model, "m1", n=2)
    assert one["member_id"].tolist() == ["m1", "m1"]
    unknown = member_menu(model, [7, 8], n=2)
    assert unknown["member_id"].tolist() == [7, 7, 8, 8]


def test_invalid_options(model: FixedFactors) -> None:
    with pytest.raises(ConfigError, match="exclude"):
        member_menu(model, "m0", exclude="everything")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="diversity"):
        member_menu(model, "m0", diversity=1.5)
    with pytest.raises(ConfigError, match="positive integer"):
        member_menu(model, "m0", n=0)
    with pytest.raises(ConfigError, match="max_minutes"):
        member_menu(model, "m0", max_minutes=-3)
    with pytest.raises(ConfigError, match="channel"):
        member_menu(model, "m0", channel="cooking")


# ---------------------------------------------------------------------------- exclusions


def test_seen_courses_are_excluded(model: FixedFactors) -> None:
    menu = _menu(model, "m0", n=8, pin_compulsory=False)
    assert not {"c00", "c05"} & set(menu)
    assert menu[:3] == ["c01", "c02", "c03"]


def test_completed_only_excludes_completed(model: FixedFactors) -> None:
    menu = _menu(model, "m0", n=8, exclude="completed", pin_compulsory=False)
    assert "c00" not in menu  # completed
    assert "c05" in menu  # seen, not completed: may come back
    everything = _menu(model, "m0", n=3, exclude="none", pin_compulsory=False)
    assert everything == ["c00", "c01", "c02"]


# ---------------------------------------------------------------------------- filters


def test_channel_filter(model: FixedFactors) -> None:
    menu = _menu(model, "m1", n=10, channel=CHANNELS[1], pin_compulsory=False)
    assert menu == ["c04", "c05", "c06", "c07"]
    two = _menu(model, "m1", n=10, channel=[CHANNELS[0], CHANNELS[3]], pin_compulsory=False)
    assert {CHANNEL_OF[c] for c in two} == {CHANNELS[0], CHANNELS[3]}


def test_channel_of_the_platform_missing_from_the_catalogue_gives_an_empty_menu(
    model: FixedFactors, dataset: Dataset
) -> None:
    ds = Dataset.from_frames(
        _events(), courses=_courses().assign(category=CHANNELS[0]), members=_members()
    )
    m = FixedFactors().fit(ds)
    menu = member_menu(m, "m1", channel=CHANNELS[2])
    assert menu.empty and tuple(menu.columns) == MENU_COLUMNS


def test_max_minutes_keeps_courses_that_fit(model: FixedFactors) -> None:
    menu = _menu(model, "m1", n=16, max_minutes=5, pin_compulsory=False)
    assert menu == ["c00", "c01", "c04"]  # 1, 2, 5 minutes; c02 and c03 are seen
    longer = _menu(model, "m1", n=16, max_minutes=60, pin_compulsory=False)
    assert "c14" not in longer  # unknown duration never promised to fit


def test_unpublished_courses_are_excluded(model: FixedFactors) -> None:
    assert "c15" not in _menu(model, "m3", n=16)
    assert "c15" in _menu(model, "m3", n=16, now="2025-07-01")
    assert "c15" in _menu(model, "m3", n=16, only_published=False)
    assert _menu(model, "m3", n=16, now="2023-01-01") == []  # nothing published yet


# ---------------------------------------------------------------------------- pins


def test_compulsory_courses_are_pinned_first(model: FixedFactors) -> None:
    menu = member_menu(model, "m1", n=4)  # branch b1: c09, c10
    assert menu["course_id"].tolist()[:2] == ["c09", "c10"]
    assert menu["reason"].tolist()[:2] == [REASON_COMPULSORY] * 2
    assert menu["course_id"].tolist()[2:] == ["c00", "c01"]
    assert REASON_COMPULSORY not in menu["reason"].tolist()[2:]


def test_pins_skip_completed_and_respect_filters(model: FixedFactors) -> None:
    # m2 (branch b2) completed c10: only c13 is pinned.
    assert _menu(model, "m2", n=3) == ["c13", "c00", "c01"]
    # A channel filter without c13's channel pins nothing.
    assert _menu(model, "m2", n=2, channel=CHANNELS[2]) == ["c08", "c09"]
    # Fragment time: c13 takes 14 minutes and does not fit in 10.
    assert "c13" not in _menu(model, "m2", n=3, max_minutes=10)


def test_pins_never_exceed_n(model: FixedFactors) -> None:
    menu = member_menu(model, "m1", n=1)
    assert menu["course_id"].tolist() == ["c09"]


def test_max_pins_leaves_room_for_the_member(model: FixedFactors) -> None:
    assert _menu(model, "m1", n=3, max_pins=1) == ["c09", "c00", "c01"]
    assert _menu(model, "m1", n=3, max_pins=0) == ["c00", "c01", "c04"]
    with pytest.raises(ConfigError, match="max_pins"):
        member_menu(model, "m1", max_pins=-1)


# ---------------------------------------------------------------------------- diversity


def test_no_diversity_equals_the_kernel_order(model: FixedFactors) -> None:
    idx = model.member_ids_.to_index(["m3"])
    kernel = model.topk(idx, 6, exclude=model.history_.rows(idx)).indices[0]
    menu = member_menu(model, "m3", n=6, pin_compulsory=False, only_published=False)
    assert menu["course_id"].tolist() == model.course_ids_.to_external(kernel).tolist()


def test_full_diversity_spreads_channels(model: FixedFactors) -> None:
    plain = _menu(model, "m1", n=4, pin_compulsory=False)
    assert len({CHANNEL_OF[c] for c in plain}) == 2
    diverse = member_menu(model, "m1", n=4, pin_compulsory=False, diversity=1.0)
    assert len({CHANNEL_OF[c] for c in diverse["course_id"]}) == 4
    assert diverse["course_id"].iloc[0] == plain[0]  # the best course still leads
    assert diverse["rank"].tolist() == [1, 2, 3, 4]


def test_diversity_counts_pinned_channels(model: FixedFactors) -> None:
    # m1's pins c09 and c10 cover the third channel: the rest comes from the others.
    menu = _menu(model, "m1", n=5, diversity=1.0)
    assert menu[:2] == ["c09", "c10"]
    assert {CHANNEL_OF[c] for c in menu[2:]} == {CHANNELS[0], CHANNELS[1], CHANNELS[3]}


# ---------------------------------------------------------------------------- reasons


def test_reasons_name_the_most_similar_studied_course(model: FixedFactors) -> None:
    menu = member_menu(model, "m0", n=6, pin_compulsory=False)
    reasons = dict(zip(menu["course_id"], menu["reason"], strict=True))
    # m0 studied c00 (first channel) and c05 (second channel).
    assert reasons["c01"] == f"because you studied {TITLE['c00']}"
    assert reasons["c04"] == f"because you studied {TITLE['c05']}"


def test_reasons_without_factors_use_the_channel(dataset: Dataset) -> None:
    m = ScoresOnly().fit(dataset)
    menu = member_menu(m, "m0", n=6, pin_compulsory=False)
    reasons = dict(zip(menu["course_id"], menu["reason"], strict=True))
    assert reasons["c02"] == f"because you studied {TITLE['c00']}"
    assert reasons["c06"] == f"because you studied {TITLE['c05']}"
    factor_menu = member_menu(FixedFactors().fit(dataset), "m0", n=6, pin_compulsory=False)
    assert menu["course_id"].tolist() == factor_menu["course_id"].tolist()


def test_started_courses_say_continue(model: FixedFactors) -> None:
    menu = member_menu(model, "m0", n=8, exclude="completed", pin_compulsory=False)
    reason = menu.loc[menu["course_id"] == "c05", "reason"].item()
    assert reason == f"continue studying {TITLE['c05']}"


def test_without_reasons(model: FixedFactors) -> None:
    menu = member_menu(model, "m1", n=3, with_reasons=False)
    assert (menu["reason"] == "").all()


# ---------------------------------------------------------------------------- routes


def test_unknown_member_falls_back_and_can_raise(model: FixedFactors) -> None:
    menu = member_menu(model, ["m1", "stranger"], n=3)
    routes = menu.groupby("member_id", sort=False)["route"].first()
    assert routes["m1"] == "personal"
    assert routes["stranger"] == "cold_global"
    assert (menu.loc[menu["member_id"] == "stranger", "reason"] == REASON_GLOBAL).all()
    with pytest.raises(DataError, match="stranger"):
        member_menu(model, ["m1", "stranger"], unknown="raise")


@pytest.fixture
def counts_model(dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> FixedFactors:
    """A model whose segment popularity cannot be fitted: cold start uses branch counts."""

    def failing_fit(self: object, dataset: Dataset) -> None:
        raise RuntimeError("no segment popularity here")

    monkeypatch.setattr(routes.Popularity, "fit", failing_fit)
    return FixedFactors().fit(dataset)


def test_when_segment_popularity_fails_cold_members_get_branch_counts(
    counts_model: FixedFactors,
) -> None:
    attrs = pd.DataFrame({"member_id": ["new"], "org_id": ["b2"], "birth_year": [1988]})
    menu = member_menu(counts_model, "new", n=4, member_attributes=attrs)
    assert (menu["route"] == "cold_segment").all()
    # Branch b2 pins c10 and c13 (a new member has completed neither), then what b2's
    # members studied (c04, c06, c07, c10) by count, platform counts breaking ties.
    assert menu["course_id"].tolist() == ["c10", "c13", "c04", "c06"]
    assert menu["reason"].tolist() == [REASON_COMPULSORY] * 2 + [REASON_BRANCH] * 2
    # A known member without history (m4, branch b1) uses the training attributes.
    known = member_menu(counts_model, "m4", n=3, pin_compulsory=False)
    assert (known["route"] == "cold_segment").all()
    assert known["course_id"].tolist() == ["c00", "c02", "c03"]  # b1 studied c00, c02, c03
    assert (member_menu(counts_model, "ghost", n=2)["route"] == "cold_global").all()


@pytest.fixture(scope="module")
def platform() -> Dataset:
    synthetic = pytest.importorskip("recommend.data.synthetic")
    p = synthetic.synthesize("small", seed=0)
    return Dataset.from_frames(p.events, courses=p.courses, members=p.members, orgs=p.orgs)


def test_cold_member_with_attributes_gets_segment_popularity(platform: Dataset) -> None:
    popularity = pytest.importorskip("recommend.models.popularity")
    model = FixedFactors().fit(platform)
    pop = popularity.Popularity(segment="auto").fit(platform)
    used = pop.segments_[pop.segments_["used"]]
    occupation = used.loc[used["segment"] == "occupation", "value"].iloc[0]
    branch = used.loc[used["segment"] == "org_id", "value"].iloc[0]
    attrs = pd.DataFrame(
        {
            "member_id": ["like_others", "in_branch", "nobody"],
            "occupation": [occupation, occupation, None],
            "org_id": [None, branch, None],
        }
    )
    menu = member_menu(
        model,
        ["like_others", "in_branch", "nobody"],
        n=5,
        member_attributes=attrs,
        pin_compulsory=False,
        only_published=False,
    )
    first = menu.groupby("member_id", sort=False).first()
    assert first["route"].to_dict() == {
        "like_others": "cold_segment",
        "in_branch": "cold_segment",
        "nobody": "cold_global",
    }
    assert first["reason"].to_dict() == {
        "like_others": REASON_SEGMENT,
        "in_branch": REASON_BRANCH,
        "nobody": REASON_GLOBAL,
    }
    # The menu is the segment's popularity order.
    expected = pop.segment_scores(attrs.iloc[[0]])[0]
    got = menu.loc[menu["member_id"] == "like_others", "score"].to_numpy()
    np.testing.assert_allclose(got, np.sort(expected)[::-1][:5])


def test_cold_labels_from_served_kinds_equal_probing_the_scores(platform: Dataset) -> None:
    popularity = pytest.importorskip("recommend.models.popularity")
    from recommend.engine.routes import PopularityScorer

    pop = popularity.Popularity(segment="auto").fit(platform)
    members = platform.members.reset_index(drop=True)
    used = pop.segments_[pop.segments_["used"]]
    unused = pop.segments_[~pop.segments_["used"]]
    branch = used.loc[used["segment"] == "org_id", "value"].iloc[0]
    occupation = used.loc[used["segment"] == "occupation", "value"].iloc[0]
    extra = pd.DataFrame(
        {
            # A used branch; an unknown branch with a used occupation; nothing known; an
            # unused branch alone (global unless another segment applies).
            "org_id": [branch, "no-such-branch", None, unused["value"].iloc[0]],
            "occupation": [None, occupation, None, None],
        }
    )
    attrs = pd.concat([members.drop(columns=["member_id"]), extra], ignore_index=True)
    scorer = PopularityScorer(pop, platform.n_courses)
    new = scorer.score(attrs)
    old = scorer._score_probing(attrs)
    np.testing.assert_array_equal(new.scores, old.scores)
    assert new.routes.tolist() == old.routes.tolist()
    assert new.reasons.tolist() == old.reasons.tolist()
    # Every label occurs, so each way of being served was compared.
    assert set(new.reasons.tolist()) == {REASON_BRANCH, REASON_SEGMENT, REASON_GLOBAL}
    assert new.reasons.tolist()[-4:-1] == [REASON_BRANCH, REASON_SEGMENT, REASON_GLOBAL]


def test_rows_differ_compares_the_whole_row() -> None:
    """Rows equal to the reference in the first columns but not later still differ."""
    from recommend.engine.routes import DIFFER_HEAD, rows_differ

    rng = np.random.default_rng(0)
    reference = rng.random(DIFFER_HEAD + 50).astype(np.float32)
    scores = np.tile(reference, (5, 1))
    scores[1, 3] += 1.0  # differs in the head
    scores[2, -1] -= 1.0  # differs only after the head
    scores[4, DIFFER_HEAD] = np.nan  # NaN never equals
    rows = np.array([4, 3, 2, 1, 0, 2])
    expected = (scores[rows] != reference).any(axis=1)
    np.testing.assert_array_equal(rows_differ(scores, rows, reference), expected)
    assert expected.tolist() == [True, False, True, True, False, True]
    # Narrower than the head: one comparison of the whole row.
    narrow = scores[:, :10]
    got = rows_differ(narrow, np.arange(5), reference[:10])
    assert got.tolist() == [False, True, False, False, False]


def test_hybrid_model_scores_cold_members_from_features(dataset: Dataset) -> None:
    m = Hybrid().fit(dataset)
    # Unknown, described by attributes: the model's cold_member_scores (ascending).
    attrs = pd.DataFrame({"member_id": ["new"], "occupation": ["retired"]})
    menu = member_menu(m, "new", n=3, pin_compulsory=False, member_attributes=attrs)
    assert (menu["route"] == "cold_features").all()
    assert (menu["reason"] == REASON_FEATURES).all()
    assert menu["course_id"].tolist() == ["c14", "c13", "c12"]  # c15 is unpublished
    # Trained without history (m4): the model's own vector, already placed by attributes.
    trained = member_menu(m, "m4", n=3, pin_compulsory=False)
    assert (trained["route"] == "cold_features").all()
    assert trained["course_id"].tolist() == ["c00", "c01", "c02"]
    # Without any attributes the hybrid model cannot help: platform popularity.
    assert (member_menu(m, "ghost", n=2)["route"] == "cold_global").all()


def test_lightfm_serves_cold_members_from_their_attributes(platform: Dataset) -> None:
    hybrid = pytest.importorskip("recommend.models.hybrid")
    model = hybrid.LightFM(n_factors=8, epochs=2).fit(platform)
    attrs = pd.DataFrame({"member_id": ["new"], "occupation": ["retired"], "birth_year": [1950]})
    menu = member_menu(model, ["new", "ghost"], n=3, member_attributes=attrs)
    routes = menu.groupby("member_id", sort=False)["route"].first().to_dict()
    assert routes == {"new": "cold_features", "ghost": "cold_global"}
    expected = model.cold_member_scores(validate("members", attrs))[0]
    new = menu[menu["member_id"] == "new"]
    pinned = new["reason"] == REASON_COMPULSORY
    np.testing.assert_allclose(new["score"], expected[model.course_ids_.to_index(new["course_id"])])
    assert (new.loc[~pinned, "reason"] == REASON_FEATURES).all()


def test_empty_request(model: FixedFactors) -> None:
    menu = member_menu(model, [], n=3)
    assert menu.empty and tuple(menu.columns) == MENU_COLUMNS


def test_mixed_routes_keep_request_order(counts_model: FixedFactors) -> None:
    menu = member_menu(counts_model, ["ghost", "m1", "m4", "m0"], n=2)
    assert menu["member_id"].tolist() == ["ghost"] * 2 + ["m1"] * 2 + ["m4"] * 2 + ["m0"] * 2
    assert menu.groupby("member_id", sort=False)["route"].first().tolist() == [
        "cold_global",
        "personal",
        "cold_segment",
        "personal",
    ]


def test_folded_in_member_is_served_personally(dataset: Dataset) -> None:
    m = FixedFactors().fit(dataset)
    events = pd.DataFrame(
        {
            "member_id": ["fresh"],
            "course_id": ["c00"],
            "event": ["view"],
            "timestamp": [pd.Timestamp("2024-03-11")],
        }
    )
    m.update("fresh", events)
    menu = member_menu(m, "fresh", n=2, pin_compulsory=False)
    assert (menu["route"] == "personal").all()
    assert menu["course_id"].tolist() == ["c01", "c02"]
    assert menu["reason"].iloc[0] == f"because you studied {TITLE['c00']}"


# ---------------------------------------------------------------------------- threads


def test_concurrent_calls_equal_sequential(dataset: Dataset) -> None:
    m = FixedFactors({"m3": {"c03": 40.0}}).fit(dataset)  # fresh: caches built under load
    calls = [
        dict(member_ids=["m0", "m1"], n=4),
        dict(member_ids="m2", n=3, exclude="completed", diversity=0.5),
        dict(member_ids=["m3", "ghost"], n=5, channel=CHANNELS[0]),
        dict(member_ids="m4", n=3, max_minutes=8),
        dict(member_ids=["m1", "m2", "m3"], n=6, diversity=1.0, now="2025-12-01"),
    ]
    results: dict[tuple[int, int], pd.DataFrame] = {}
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        for r in range(10):
            for c, kw in enumerate(calls):
                if (r + t + c) % 3 == 0:
                    results[(t, r * len(calls) + c)] = member_menu(m, **kw)  # type: ignore[arg-type]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    expected = [member_menu(m, **kw) for kw in calls]  # type: ignore[arg-type]
    assert len(results) > 100
    for (_, key), frame in results.items():
        pd.testing.assert_frame_equal(frame, expected[key % len(calls)])


# ---------------------------------------------------------------------------- lecturers


def test_lecturer_menu_ranks_the_favourite_lecturer_first(model: FixedFactors) -> None:
    lect = lecturer_menu(model, "m3", n=4)
    assert tuple(lect.columns) == ("lecturer_id", "score", "rank", "courses", "top_course_id")
    # m3 scores L3's c03, c11 at 40 and 39; c15 is unpublished. Mean of the top 3 of L3's
    # published courses: (40 + 39 + 9) / 3.
    assert lect["lecturer_id"].iloc[0] == "L3"
    assert lect["top_course_id"].iloc[0] == "c03"
    assert lect["score"].iloc[0] == pytest.approx((40 + 39 + 9) / 3)
    assert lect["courses"].iloc[0] == 3
    assert lect["rank"].tolist() == [1, 2, 3, 4]
    assert lect["score"].is_monotonic_decreasing


def test_lecturer_menu_respects_filters(model: FixedFactors) -> None:
    lect = lecturer_menu(model, "m3", channel=CHANNELS[1])  # c04-c07: L0..L3 once each
    assert lect["courses"].tolist() == [1, 1, 1, 1]
    assert lect["lecturer_id"].tolist() == ["L0", "L1", "L2", "L3"]
    lect = lecturer_menu(model, "m3", exclude="seen", top=1)  # m3 saw c06 and c07
    assert lect.set_index("lecturer_id").loc["L3", "top_course_id"] == "c03"


def test_lecturer_menu_for_a_cold_member(model: FixedFactors) -> None:
    lect = lecturer_menu(model, "ghost", n=2)
    assert len(lect) == 2
    with pytest.raises(DataError):
        lecturer_menu(model, "ghost", unknown="raise")


# ---------------------------------------------------------------------------- properties


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    member=st.sampled_from(["m0", "m1", "m2", "m3", "m4", "ghost"]),
    n=st.integers(1, 20),
    exclude=st.sampled_from(["seen", "completed", "none"]),
    channel=st.sampled_from([None, CHANNELS[0], CHANNELS[2], list(CHANNELS[1:3])]),
    max_minutes=st.sampled_from([None, 3.0, 9.5]),
    diversity=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_menus_are_well_formed(
    model: FixedFactors,
    member: str,
    n: int,
    exclude: str,
    channel: object,
    max_minutes: float | None,
    diversity: float,
) -> None:
    menu = member_menu(
        model,
        member,
        n=n,
        exclude=exclude,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        max_minutes=max_minutes,
        diversity=diversity,
    )
    courses = _courses().set_index("course_id")
    assert len(menu) <= n
    assert menu["rank"].tolist() == list(range(1, len(menu) + 1))
    assert menu["course_id"].is_unique
    picked = courses.loc[menu["course_id"]]
    if channel is not None:
        wanted = {channel} if isinstance(channel, str) else set(channel)
        assert set(picked["category"]) <= wanted
    if max_minutes is not None:
        assert (picked["duration_seconds"] <= max_minutes * 60).all()
    assert "c15" not in set(menu["course_id"])
