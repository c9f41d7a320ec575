"""Routes (recommend.engine.routes): which members are scored personally, from features,
by segment or platform popularity, with each route's label and reason."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import (
    TITLE,
    FixedFactors,
    Hybrid,
    events_frame,
    menu_lists,
    tiny_courses,
    tiny_events,
)

from recommend.data.dataset import Dataset
from recommend.data.validation import validate
from recommend.engine import (
    REASON_BRANCH,
    REASON_COMPULSORY,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    ROUTES,
    MemberRequest,
    MenuOptions,
    MenuRows,
    cold_scorer,
    cold_scorers,
    history_rows,
    menu_rows,
    route_groups,
    routes,
    segment_reason,
    serving_state,
)
from recommend.engine.routes import DIFFER_HEAD, CountScorer, PopularityScorer, rows_differ
from recommend.errors import DataError
from recommend.messages import value_label
from recommend.models.hybrid import LightFM
from recommend.models.popularity import Popularity


def _serve(
    model: FixedFactors, ids: object, attrs: pd.DataFrame | None = None, **options: object
) -> tuple[MenuRows, MemberRequest]:
    state = serving_state(model)
    opts = MenuOptions(**{"lang": "en", **options})  # type: ignore[arg-type]
    req = MemberRequest.make(model, state, ids, attrs, opts.unknown)
    return menu_rows(model, state, req, opts, state.course_filter(opts)), req


def _first(rows: MenuRows, column: np.ndarray, m: int) -> list[object]:
    """The value of ``column`` on each member's first row."""
    return [column[np.flatnonzero(rows.pos == i)[0]] for i in range(m)]


def _route_names(rows: MenuRows, m: int) -> list[str]:
    return [ROUTES[r] for r in _first(rows, rows.route, m)]


def _groups(model: FixedFactors, ids: list[object], attrs: pd.DataFrame | None = None):  # type: ignore[no-untyped-def]
    state = serving_state(model)
    req = MemberRequest.make(model, state, ids, attrs, "fallback")
    counts = history_rows(model.history_, req.idx).counts
    out = []
    for group in route_groups(model, state, req, counts):
        scored = group.scorer(group.take(slice(0, None)))
        out.append((group.pos.tolist(), scored))
    return out


# ---------------------------------------------------------------------------- groups


def test_members_with_history_are_personal_the_rest_cold(tiny_model: FixedFactors) -> None:
    (personal, p), (cold, c) = _groups(tiny_model, ["m1", "ghost", "m4", "m0"])
    assert personal == [0, 3] and cold == [1, 2]
    assert p.routes.tolist() == ["personal"] * 2 and p.reasons.tolist() == [None, None]
    np.testing.assert_array_equal(p.scores, tiny_model.score_block(np.array([1, 0])))
    # The tiny catalogue's segments are too small: platform popularity for both.
    assert c.routes.tolist() == ["cold_global"] * 2
    assert c.reasons.tolist() == [REASON_GLOBAL] * 2
    np.testing.assert_array_equal(
        c.scores, np.tile(cold_scorer(tiny_model).global_scores(), (2, 1))
    )


def test_unknown_members_without_attributes_get_platform_popularity(
    tiny_model: FixedFactors,
) -> None:
    ((pos, scored),) = _groups(tiny_model, ["ghost", "stranger"])
    assert pos == [0, 1]
    assert scored.routes.tolist() == ["cold_global"] * 2
    assert scored.reasons.tolist() == [REASON_GLOBAL] * 2
    # Popular where someone studied: c00, c02 .. c07 and c10.
    assert np.flatnonzero(scored.scores[0] > 0).tolist() == [0, 2, 3, 4, 5, 6, 7, 10]
    np.testing.assert_array_equal(scored.scores[1], scored.scores[0])
    assert scored.scores.flags.writeable  # fresh: the menu writes exclusions into it


def test_only_personal_members_make_one_group(tiny_model: FixedFactors) -> None:
    groups = _groups(tiny_model, ["m3", "m2"])
    assert len(groups) == 1 and groups[0][0] == [0, 1]


def test_unknown_member_falls_back_to_platform_popularity(tiny_model: FixedFactors) -> None:
    rows, _ = _serve(tiny_model, ["m1", "stranger"], n=3)
    assert _route_names(rows, 2) == ["personal", "cold_global"]
    assert (
        rows.reason[rows.pos == 1].tolist() == [REASON_GLOBAL.text("en")] * 3
    )  # no branch: no pins
    assert rows.reason[rows.pos == 0].tolist() == [REASON_COMPULSORY.text("en")] * 2 + [
        f"because you studied {TITLE['c02']}"
    ]


def test_folded_in_member_is_served_personally(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    model.update("fresh", events_frame([("fresh", "c00", "view", "2024-03-11")]))
    rows, _ = _serve(model, "fresh", n=2, pin_compulsory=False)
    assert _route_names(rows, 1) == ["personal"]
    assert menu_lists(rows) == [["c01", "c02"]]
    assert rows.reason[0] == f"because you studied {TITLE['c00']}"


def test_cold_scorer_is_fitted_once_per_model(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    first = cold_scorer(model)
    assert isinstance(first, PopularityScorer) and cold_scorer(model) is first
    model.fit(tiny_dataset)
    assert cold_scorer(model) is not first


def test_without_a_members_table_cold_start_warns_about_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model trained without members serves unknown members platform popularity, without
    a warning about a segment setting the caller never made."""
    ds = Dataset.from_frames(tiny_events(), courses=tiny_courses())
    model = FixedFactors().fit(ds)
    with caplog.at_level(logging.WARNING):
        rows, _ = _serve(model, ["ghost"], None, n=3)
    assert _route_names(rows, 1) == ["cold_global"]
    assert "segment" not in caplog.text and caplog.records == []


def test_cold_scorers_serve_any_subset_of_their_members(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    idx = np.array([-1, 4, -1], dtype=np.int64)
    ((positions, scorer),) = cold_scorers(tiny_model, state, idx)
    assert positions.tolist() == [0, 1, 2]
    scores, labels = scorer(np.array([2, 0]))
    assert scores.shape == (2, 16) and labels.tolist() == ["cold_global"] * 2
    np.testing.assert_array_equal(scores[0], cold_scorer(tiny_model).global_scores())


# ---------------------------------------------------------------------------- branch counts


@pytest.fixture
def counts_model(tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> FixedFactors:
    """A model whose segment popularity cannot be fitted: cold start uses branch counts."""

    def failing_fit(self: object, dataset: Dataset) -> None:
        raise RuntimeError("no segment popularity here")

    def failing_restore(*args: object) -> None:
        raise RuntimeError("no stored cold route here")

    monkeypatch.setattr(routes.Popularity, "fit", failing_fit)
    monkeypatch.setattr(routes, "cold_popularity", failing_restore)
    return FixedFactors().fit(tiny_dataset)


def test_count_scorer_counts_branch_members_then_platform() -> None:
    # Members 0, 1 in b1, member 2 in b2, member 3 unknown; four courses.
    base = sp.csr_matrix(
        np.array([[1, 0, 2, 0], [1, 0, 0, 0], [0, 3, 1, 0], [0, 0, 1, 0]], dtype=np.float32)
    )
    scorer = CountScorer(base, np.array(["b1", "b1", "b2", None], dtype=object))
    np.testing.assert_array_equal(scorer.global_scores(), [2, 1, 3, 0])
    attrs = pd.DataFrame({"org_id": ["b1", "b2", None, "b9"]})
    got = scorer.score(attrs)
    tiebreak = np.array([2, 1, 3, 0]) / 4  # platform counts / (max + 1)
    np.testing.assert_allclose(got.scores[0], tiebreak + np.array([2, 0, 1, 0]))
    np.testing.assert_allclose(got.scores[1], tiebreak + np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(got.scores[2:], [[2, 1, 3, 0]] * 2)
    assert got.routes.tolist() == ["cold_segment"] * 2 + ["cold_global"] * 2
    assert got.reasons.tolist() == [REASON_BRANCH] * 2 + [REASON_GLOBAL] * 2
    no_org = scorer.score(pd.DataFrame({"occupation": ["retired"]}))
    assert no_org.routes.tolist() == ["cold_global"]


def test_when_segment_popularity_fails_cold_members_get_branch_counts(
    counts_model: FixedFactors,
) -> None:
    assert isinstance(cold_scorer(counts_model), CountScorer)
    attrs = pd.DataFrame({"member_id": ["new"], "org_id": ["b2"], "birth_year": [1988]})
    rows, _ = _serve(counts_model, "new", attrs, n=4)
    assert _route_names(rows, 1) == ["cold_segment"]
    # Branch b2 pins c10 and c13 (a new member has completed neither), then what b2's
    # members studied (c04, c06, c07, c10) by count, platform counts breaking ties.
    assert menu_lists(rows) == [["c10", "c13", "c04", "c06"]]
    assert (
        rows.reason.tolist() == [REASON_COMPULSORY.text("en")] * 2 + [REASON_BRANCH.text("en")] * 2
    )
    # A known member without history (m4, branch b1) uses the training attributes.
    known, _ = _serve(counts_model, "m4", n=3, pin_compulsory=False)
    assert _route_names(known, 1) == ["cold_segment"]
    assert menu_lists(known) == [["c00", "c02", "c03"]]  # b1 studied c00, c02, c03
    ghost, _ = _serve(counts_model, "ghost", n=2)
    assert _route_names(ghost, 1) == ["cold_global"]


# ---------------------------------------------------------------------------- segments


def test_cold_member_with_attributes_gets_segment_popularity(small_dataset: Dataset) -> None:
    model = FixedFactors().fit(small_dataset)
    # Without a recorded choice (an artifact from an older version) the default applies.
    del model.cold_route_
    pop = Popularity(segment="auto").fit(small_dataset)
    used = pop.segments_[pop.segments_["used"]]
    occupation = used.loc[used["segment"] == "occupation", "value"].iloc[0]
    branch = used.loc[used["segment"] == "org_id", "value"].iloc[0]
    ids = ["like_others", "in_branch", "nobody"]
    attrs = pd.DataFrame(
        {
            "member_id": ids,
            "occupation": [occupation, occupation, None],
            "org_id": [None, branch, None],
        }
    )
    rows, _ = _serve(model, ids, attrs, n=5, pin_compulsory=False, only_published=False)
    assert _route_names(rows, 3) == ["cold_segment", "cold_segment", "cold_global"]
    assert _first(rows, rows.reason, 3) == [
        REASON_SEGMENT.text("en"),
        REASON_BRANCH.text("en"),
        REASON_GLOBAL.text("en"),
    ]
    # The menu is the segment's popularity order.
    expected = pop.segment_scores(attrs.iloc[[0]])[0]
    np.testing.assert_allclose(rows.score[rows.pos == 0], np.sort(expected)[::-1][:5])


def test_cold_labels_from_served_kinds_equal_probing_the_scores(small_dataset: Dataset) -> None:
    pop = Popularity(segment="auto").fit(small_dataset)
    members = small_dataset.members.reset_index(drop=True)
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
    scorer = PopularityScorer(pop, small_dataset.n_courses)
    new = scorer.score(attrs)
    old = scorer._score_probing(attrs)
    np.testing.assert_array_equal(new.scores, old.scores)
    assert new.routes.tolist() == old.routes.tolist()
    # The same reasons in English; knowing the kind, the Chinese ones name the segment.
    english = [r.text("en") for r in new.reasons.tolist()]
    assert english == [r.text("en") for r in old.reasons.tolist()]
    # Every label occurs, so each way of being served was compared.
    assert set(english) == {r.text("en") for r in (REASON_BRANCH, REASON_SEGMENT, REASON_GLOBAL)}
    assert new.reasons.tolist()[-4] == REASON_BRANCH
    assert new.reasons.tolist()[-2] == REASON_GLOBAL
    named = new.reasons.tolist()[-3]
    assert named == segment_reason("occupation", occupation)
    label = value_label("occupation", occupation)
    assert named.text() == f"与你同为{label}党员的同志常学"
    assert old.reasons.tolist()[-3] == REASON_SEGMENT  # probing cannot tell the kind


def _menus_of(model: FixedFactors, ids: list[object]) -> list[tuple[object, ...]]:
    rows, req = _serve(model, ids, n=6, only_published=False)
    return list(
        zip(
            req.ids[rows.pos].tolist(),
            rows.course.tolist(),
            rows.score.tolist(),
            [ROUTES[r] for r in rows.route.tolist()],
            [r.text() if hasattr(r, "text") else r for r in rows.reason.tolist()],
            strict=True,
        )
    )


def test_known_members_without_history_get_the_segments_of_their_attribute_rows(
    sample_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training members without history asked without attributes take their segment
    from segments looked up once for the members table: the same menus, scores, routes
    and reasons as building their attribute rows per request."""
    model = FixedFactors().fit(sample_dataset)
    counts = np.diff(model.history_.rows(np.arange(sample_dataset.n_members)).indptr)
    quiet = sample_dataset.member_ids.to_external(np.flatnonzero(counts == 0)).tolist()
    assert len(quiet) > 100
    scorer = cold_scorer(model)
    assert isinstance(scorer, PopularityScorer)
    calls: list[int] = []
    score_known = scorer.score_known

    def counted(known: object, idx: np.ndarray) -> object:
        calls.append(idx.size)
        return score_known(known, idx)  # type: ignore[arg-type]

    monkeypatch.setattr(scorer, "score_known", counted)
    one_by_one = [row for m in quiet for row in _menus_of(model, [m])]
    together = _menus_of(model, quiet)
    assert sum(calls) == 2 * len(quiet)
    monkeypatch.setattr(routes, "_known_route", lambda *args: None)
    calls.clear()
    framed = _menus_of(model, quiet)
    assert not calls
    assert one_by_one == together == framed
    # Every way of being served was compared: branch, a named segment, platform.
    assert {r[3] for r in framed} == {"cold_segment", "cold_global"}
    assert len({r[4] for r in framed}) >= 3


def test_popularity_scorer_checks_the_shape(small_dataset: Dataset) -> None:
    pop = Popularity(segment="auto").fit(small_dataset)
    with pytest.raises(DataError, match=r"segment_scores returned shape \(1, 120\); expected"):
        PopularityScorer(pop, small_dataset.n_courses + 1)


def test_rows_differ_compares_the_whole_row() -> None:
    """Rows equal to the reference in the first columns but not later still differ."""
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


# ---------------------------------------------------------------------------- features


def test_hybrid_model_scores_cold_members_from_features(tiny_dataset: Dataset) -> None:
    m = Hybrid().fit(tiny_dataset)
    # Unknown, described by attributes: the model's cold_member_scores (ascending).
    attrs = pd.DataFrame({"member_id": ["new"], "occupation": ["retired"]})
    rows, _ = _serve(m, "new", attrs, n=3, pin_compulsory=False)
    assert _route_names(rows, 1) == ["cold_features"]
    assert rows.reason.tolist() == [REASON_FEATURES.text("en")] * 3
    assert menu_lists(rows) == [["c14", "c13", "c12"]]  # c15 is unpublished
    # Trained without history (m4): the model's own vector, already placed by attributes.
    trained, _ = _serve(m, "m4", n=3, pin_compulsory=False)
    assert _route_names(trained, 1) == ["cold_features"]
    assert menu_lists(trained) == [["c00", "c01", "c02"]]
    # Without any attributes the hybrid model cannot help: platform popularity.
    ghost, _ = _serve(m, "ghost", n=2)
    assert _route_names(ghost, 1) == ["cold_global"]


class _FailingHybrid(Hybrid):
    def cold_member_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("features unavailable")


class _MisshapenHybrid(Hybrid):
    def cold_member_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        return np.zeros((len(attributes), 3), np.float32)


@pytest.mark.parametrize("cls", [_FailingHybrid, _MisshapenHybrid])
def test_a_failing_feature_scorer_falls_back_to_popularity(
    tiny_dataset: Dataset, cls: type[Hybrid], caplog: pytest.LogCaptureFixture
) -> None:
    model = cls().fit(tiny_dataset)
    attrs = pd.DataFrame({"member_id": ["new"], "occupation": ["retired"]})
    rows, _ = _serve(model, "new", attrs, n=3, pin_compulsory=False)
    assert _route_names(rows, 1) == ["cold_global"]  # tiny segments: platform popularity
    assert "cold_member_scores failed" in caplog.text


def test_lightfm_serves_cold_members_from_their_attributes(small_dataset: Dataset) -> None:
    model = LightFM(n_factors=8, epochs=2).fit(small_dataset)
    # The validated choice of this barely trained model may be popularity; serve features.
    assert "features" in model.cold_route_["scores"]
    model.cold_route_ = {**model.cold_route_, "route": "features"}
    attrs = pd.DataFrame({"member_id": ["new"], "occupation": ["retired"], "birth_year": [1950]})
    rows, _ = _serve(model, ["new", "ghost"], attrs, n=3)
    assert _route_names(rows, 2) == ["cold_features", "cold_global"]
    expected = model.cold_member_scores(validate("members", attrs))[0]
    new = rows.pos == 0
    pinned = rows.reason[new] == REASON_COMPULSORY.text("en")
    np.testing.assert_allclose(rows.score[new], expected[rows.course[new]])
    assert (rows.reason[new][~pinned] == REASON_FEATURES.text("en")).all()
