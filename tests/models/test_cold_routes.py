"""Cold-member routes chosen on held-out members (``recommend.models.cold_routes``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import FixedFactors

from recommend import load, save
from recommend.data.dataset import Dataset
from recommend.engine import cold_scorer
from recommend.models.cold_routes import (
    COLD_GLOBAL,
    beats_global,
    choose_cold_route,
    cold_popularity,
)
from recommend.models.ease import EASE
from recommend.models.popularity import Popularity
from recommend.tracking import cold_route_logged

N_MEMBERS = 600
N_COURSES = 40
OCCUPATIONS = ("farmer", "teacher", "worker", "retired")


def planted(*, signal: bool, seed: int = 7) -> Dataset:
    """Members taking 6 courses each. With ``signal``, each occupation takes mostly from
    its own block of 10 courses; without, occupations are labels drawn independently of
    a shared, skewed taste."""
    rng = np.random.default_rng(seed)
    occupation = rng.integers(0, len(OCCUPATIONS), N_MEMBERS)
    shared = 1.0 / np.arange(1, N_COURSES + 1) ** 0.8
    rows = []
    for m in range(N_MEMBERS):
        taste = shared.copy()
        if signal:
            block = slice(10 * occupation[m], 10 * occupation[m] + 10)
            taste[block] *= 30.0
        picked = rng.choice(N_COURSES, size=6, replace=False, p=taste / taste.sum())
        rows += [(f"m{m:04d}", f"c{c:02d}", "view", "2024-05-01") for c in picked]
    events = pd.DataFrame(rows, columns=["member_id", "course_id", "event", "timestamp"])
    events["timestamp"] = pd.to_datetime(events["timestamp"])
    members = pd.DataFrame(
        {
            "member_id": [f"m{m:04d}" for m in range(N_MEMBERS)],
            "occupation": [OCCUPATIONS[o] for o in occupation],
        }
    )
    return Dataset.from_frames(events, members=members)


@pytest.fixture(scope="module")
def strong() -> Dataset:
    return planted(signal=True)


@pytest.fixture(scope="module")
def flat() -> Dataset:
    return planted(signal=False)


def test_planted_segment_tastes_choose_the_segment(strong: Dataset) -> None:
    model = EASE().fit(strong)
    choice = model.cold_route_
    assert choice["segment"] == "occupation"
    assert choice["route"].split(":")[0] in ("segment", "blend")
    scores = choice["scores"]
    assert scores[choice["route"]] == max(scores.values())
    # Occupation carries most of the taste here: far above global popularity.
    assert scores[choice["route"]] > 1.5 * scores[COLD_GLOBAL]
    assert choice["members"] == round(0.2 * N_MEMBERS)


def test_segments_without_signal_never_beat_global_on_validation(flat: Dataset) -> None:
    choice = EASE().fit(flat).cold_route_
    # Whatever wins validates at least as well as global popularity, and a pure segment
    # route (noise: segments of ~120 members) does not win.
    assert choice["scores"][choice["route"]] >= choice["scores"][COLD_GLOBAL]
    assert choice["route"] == COLD_GLOBAL or choice["route"].startswith("blend:")
    assert choice["scores"]["segment:occupation"] < choice["scores"][choice["route"]]


def test_cold_members_are_served_by_the_chosen_route(strong: Dataset) -> None:
    model = EASE().fit(strong)
    attrs = pd.DataFrame({"occupation": ["teacher", None]})
    scored = cold_scorer(model).score(attrs)
    assert scored.routes.tolist() == ["cold_segment", "cold_global"]
    expected = Popularity(
        segment="occupation", prior_members=model.cold_route_["prior_members"]
    ).fit(strong)
    np.testing.assert_allclose(scored.scores, expected.segment_scores(attrs), rtol=1e-6)
    # The teacher block (c10..c19) tops a teacher's cold menu.
    top = np.argsort(-scored.scores[0])[:5]
    assert {strong.course_ids.external_ids[i] for i in top} <= {f"c{j}" for j in range(10, 20)}


def test_flat_data_serves_global_popularity_to_described_members(flat: Dataset) -> None:
    model = EASE().fit(flat)
    assert model.cold_route_["route"] == COLD_GLOBAL
    scored = cold_scorer(model).score(pd.DataFrame({"occupation": ["teacher"]}))
    assert scored.routes.tolist() == ["cold_global"]
    np.testing.assert_allclose(scored.scores[0], Popularity().fit(flat).global_)


def test_choice_survives_save_and_load(tmp_path: Path, strong: Dataset) -> None:
    model = EASE().fit(strong)
    loaded = load(save(model, tmp_path / "model"))
    assert loaded.cold_route_["route"] == model.cold_route_["route"]
    assert loaded.cold_route_["scores"] == model.cold_route_["scores"]
    attrs = pd.DataFrame({"occupation": [*list(OCCUPATIONS), None]})
    before = cold_scorer(model).score(attrs)
    after = cold_scorer(loaded).score(attrs)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert before.routes.tolist() == after.routes.tolist()
    # The artifact holds counts per segment value, not members' attributes.
    assert "occupation" not in loaded.dataset_.members.columns


def test_popularity_without_segment_serves_global_to_cold_members(strong: Dataset) -> None:
    model = Popularity(segment=None).fit(strong)
    assert not hasattr(model, "cold_route_")  # a popularity model's setting is its route
    scored = cold_scorer(model).score(pd.DataFrame({"occupation": ["teacher", "farmer"]}))
    assert scored.routes.tolist() == ["cold_global"] * 2
    np.testing.assert_array_equal(scored.scores, np.tile(model.global_, (2, 1)))
    by_occupation = cold_scorer(Popularity(segment="occupation").fit(strong))
    assert by_occupation.score(pd.DataFrame({"occupation": ["teacher"]})).routes.tolist() == [
        "cold_segment"
    ]


def test_too_few_members_record_no_choice(tiny_dataset: Dataset) -> None:
    assert choose_cold_route(FixedFactors(), tiny_dataset) is None
    assert not hasattr(FixedFactors().fit(tiny_dataset), "cold_route_")


def test_rebuilt_popularity_matches_a_fitted_one(strong: Dataset) -> None:
    choice = EASE().fit(strong).cold_route_
    rebuilt = cold_popularity(choice, strong.course_ids)
    fitted = Popularity(segment=choice["segment"], prior_members=choice["prior_members"])
    fitted.fit(strong)
    attrs = pd.DataFrame({"occupation": ["worker", "nobody", None]})
    np.testing.assert_array_equal(rebuilt.segment_scores(attrs), fitted.segment_scores(attrs))


def test_shrinkage_blends_segment_and_global_shares(strong: Dataset) -> None:
    a = 50.0
    pop = Popularity(segment="occupation", prior_members=a).fit(strong)
    plain = Popularity(segment="occupation").fit(strong)
    attrs = pd.DataFrame({"occupation": ["farmer"]})
    # count + a * global share, against count + 1 * global share.
    diff = pop.segment_scores(attrs)[0] - plain.segment_scores(attrs)[0]
    np.testing.assert_allclose(diff, (a - 1.0) * plain.prior_, rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="prior_members"):
        Popularity(prior_members=0)


def test_mlflow_params_name_the_route_and_its_scores(strong: Dataset) -> None:
    model = EASE().fit(strong)
    params, metrics = cold_route_logged(model)
    assert params["cold_route"] == model.cold_route_["route"]
    assert metrics["cold_route.global.ndcg_at_10"] == model.cold_route_["scores"]["global"]
    assert len(metrics) == len(model.cold_route_["scores"])
    assert cold_route_logged(Popularity().fit(strong)) == ({}, {})


def test_a_route_must_be_clearly_ahead_of_global_to_replace_it() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(400)
    noise = base + rng.normal(0.0, 0.05, 400)
    noise += 0.001 - noise.mean() + base.mean()  # ahead on average, within the noise
    assert not beats_global(noise, base)
    assert beats_global(base + 0.02 + rng.normal(0.0, 0.05, 400), base)
    assert not beats_global(base[:1] + 1.0, base[:1])  # one member proves nothing
