"""Group menus (recommend.group): constraints, strategies, errors, ground truth, CLI. Who
is in a group is tested in ``test_selection.py``, the pin rule in ``engine/test_pins.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import FixedFactors, events_frame

import recommend as rc
from recommend.cli import main
from recommend.engine import serving_state
from recommend.errors import ConfigError, DataError
from recommend.group import (
    STRATEGIES,
    evaluate_group_strategies,
    group_members,
    order_for_group,
)


@pytest.fixture(scope="module")
def platform(small_platform: rc.Platform) -> rc.Platform:
    """The shared small platform (conftest)."""
    return small_platform


@pytest.fixture(scope="module")
def model(small_dataset: rc.Dataset) -> rc.EASE:
    return rc.EASE(l2=50.0).fit(small_dataset)


def test_menu_meets_budget_quota_and_n(model: rc.EASE, platform: rc.Platform) -> None:
    branch = platform.members["org_id"].value_counts().index[0]
    result = order_for_group(
        model, branch, 6, budget_minutes=90, quotas={"理论学习": 2}, pin_compulsory=False
    )
    menu = result.menu
    assert 1 <= len(menu) <= 6
    assert menu["course_id"].is_unique
    durations = platform.courses.set_index("course_id")["duration_seconds"]
    assert durations.loc[menu["course_id"]].sum() <= 90 * 60 + 1e-6
    assert (menu["channel"] == "理论学习").sum() >= 2
    assert list(menu["rank"]) == list(range(1, len(menu) + 1))
    members = result.members
    assert len(members) == len(group_members(model, branch))
    assert members["satisfaction"].between(0, 1).all()
    # "served" per course agrees with the member table.
    assert result.coverage == pytest.approx(members["served"].mean())


def test_compulsory_pins_and_completed_exclusion(model: rc.EASE, platform: rc.Platform) -> None:
    branch = platform.members["org_id"].value_counts().index[0]
    ids = group_members(model, branch)
    result = order_for_group(model, branch, 20)
    pinned = result.menu.loc[result.menu["pinned"], "course_id"]
    compulsory = platform.courses[
        platform.courses["compulsory_for"].apply(lambda orgs: branch in list(orgs))
    ]["course_id"]
    assert len(pinned) > 0 and set(pinned) <= set(compulsory)
    # No course on the menu was completed by half of the group or more.
    ev = platform.events
    done = ev[(ev["event"] == "complete") & ev["member_id"].isin(ids)]
    share = done.groupby("course_id")["member_id"].nunique() / len(ids)
    assert (share.reindex(result.menu["course_id"]).fillna(0) < 0.5).all()
    must = platform.courses["course_id"].iloc[3]
    forced = order_for_group(model, branch, 5, must_include=[must], pin_compulsory=False)
    assert forced.menu["course_id"].iloc[0] == must
    # The pin rule's notes reach the result, in Chinese by default.
    assert any("必学课程大多数成员已学完，未置顶" in note for note in result.notes)
    none = order_for_group(model, branch, 20, max_pins=0, lang="en")
    assert not none.menu["pinned"].any()
    assert any("left out by max_pins=0" in note for note in none.notes)


def test_group_and_course_ids_are_read_as_validation_reads_them(
    model: rc.EASE, platform: rc.Platform
) -> None:
    ids = [str(m) for m in model.member_ids_.external_ids[:40]]
    written = [f" {m} " if i % 3 == 0 else m.replace("m", "ｍ") if i % 3 == 1 else m + "\u200b"
               for i, m in enumerate(ids)]  # fmt: skip
    must = str(platform.courses["course_id"].iloc[3])
    plain = order_for_group(model, ids, 10, must_include=[must], pin_compulsory=False)
    typed = order_for_group(
        model, written, 10, must_include=[f" {must}\u200b"], pin_compulsory=False
    )
    pd.testing.assert_frame_equal(typed.menu, plain.menu)
    assert typed.notes == plain.notes  # no member left out as unknown


def test_average_strategy_matches_brute_force(model: rc.EASE) -> None:
    """The one-pass sums equal per-member min-max normalisation done the slow way."""
    active = np.flatnonzero(model.history_.counts(np.arange(len(model.member_ids_))) > 0)
    ids = model.member_ids_.external_ids[active[:40]]
    result = order_for_group(
        model, list(ids), 3, strategy="average", pin_compulsory=False, exclude_completed=None
    )
    idx = model.member_ids_.to_index(ids)
    scores = model.score_block(idx).astype(np.float64)
    norm = (scores - scores.min(1, keepdims=True)) / np.ptp(scores, axis=1, keepdims=True)
    seen = model.history_.rows(idx).toarray() > 0
    norm[seen] = 0.0
    # Only published courses are candidates.
    courses = model.dataset_.courses
    published = courses["published_at"].isna() | (courses["published_at"] <= model.dataset_.now)
    mean = np.where(published.to_numpy(), norm.mean(0), -np.inf)
    best = model.course_ids_.external_ids[np.argsort(-mean, kind="stable")[:3]]
    assert list(result.menu["course_id"]) == list(best)
    assert result.menu["mean_score"].to_numpy() == pytest.approx(np.sort(mean)[::-1][:3], abs=1e-5)


@pytest.fixture(scope="module")
def als(model: rc.EASE) -> rc.ALS:
    return rc.ALS(n_factors=16, iterations=3).fit(model.dataset_)


def test_factor_model_means_equal_the_straightforward_sums(als: rc.ALS) -> None:
    """A factor model's mean normalised scores come from one GEMV on the aggregated member
    vectors; they equal normalising every member's full score row and averaging."""
    counts = als.history_.counts(np.arange(len(als.member_ids_)))
    active = np.flatnonzero(counts > 0)
    ids = als.member_ids_.external_ids[active[::3]]
    result = order_for_group(
        als, list(ids), 8, strategy="average", pin_compulsory=False, exclude_completed=None
    )
    idx = als.member_ids_.to_index(ids)
    f = als.factors()
    scores = f.members[idx].astype(np.float64) @ f.courses.T.astype(np.float64)
    scores += f.course_bias if f.course_bias is not None else 0.0
    courses = als.dataset_.courses
    published = (
        courses["published_at"].isna() | (courses["published_at"] <= als.dataset_.now)
    ).to_numpy()
    low = scores[:, published].min(1, keepdims=True)
    norm = (scores - low) / (scores[:, published].max(1, keepdims=True) - low)
    norm[als.history_.rows(idx).toarray() > 0] = 0.0
    mean = np.where(published, norm.mean(0), -np.inf)
    best = np.argsort(-mean, kind="stable")[:8]
    assert list(result.menu["course_id"]) == list(als.course_ids_.external_ids[best])
    np.testing.assert_allclose(result.menu["mean_score"], mean[best], atol=1e-5)
    # Satisfaction: each member's best normalised score among the menu courses.
    np.testing.assert_allclose(result.members["satisfaction"], norm[:, best].max(1), atol=1e-5)


def test_factor_and_generic_paths_agree(als: rc.ALS) -> None:
    """The factor path (kernel on factors, aggregated GEMV) and the generic path (score
    blocks summed one by one) give the same menu, cold-start members included."""

    class Generic(rc.ALS):
        def course_vectors(self) -> None:  # type: ignore[override]
            return None

        def score_block(self, member_idx: np.ndarray) -> np.ndarray:
            return rc.ALS.score_block(als, member_idx)

    generic = Generic(n_factors=16, iterations=3)
    generic.__dict__.update(als.__dict__)
    group = {"occupation": "retired"}
    for strategy in STRATEGIES:
        options = {
            "strategy": strategy,
            "budget_minutes": 150,
            "quotas": {"理论学习": 2},
            "max_pins": 1,
        }
        fast = order_for_group(als, group, 6, **options)
        slow = order_for_group(generic, group, 6, **options)
        assert list(fast.menu["course_id"]) == list(slow.menu["course_id"]), strategy
        np.testing.assert_allclose(fast.menu["group_score"], slow.menu["group_score"], atol=1e-5)
        pd.testing.assert_frame_equal(
            fast.members.drop(columns="satisfaction"), slow.members.drop(columns="satisfaction")
        )
    assert (fast.members["route"] != "personal").any()  # cold members were in the group


@pytest.mark.parametrize("m", [300, 2000])
def test_coverage_values_follow_the_direct_computation(m: int) -> None:
    """Pick by pick, the coverage values kept up to date equal the formula (small groups
    sum again at every pick, larger ones update the members a pick affects)."""
    from recommend.group.scoring import Served
    from recommend.group.strategies import Coverage

    rng = np.random.default_rng(3)
    u = rng.random((m, 40)).astype(np.float32) ** 3
    u[rng.random(u.shape) < 0.3] = 0.0
    served = rng.random(u.shape) < 0.05
    # Course 21 helps the few members course 20 helps, less: once 20 is picked (a pick
    # that raises few members), 21 must be worth exactly 0.
    u[:, 20] = np.where(np.arange(m) < 12, 0.9, 0.0)
    u[:, 21] = u[:, 20] / 2
    served[:, 20:22] = False
    rows, cols = np.nonzero(served)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=m))))
    coverage = Coverage(u, Served(served, indptr, cols))
    covered = np.zeros(m, dtype=bool)
    best = np.zeros(m)
    for j in [5, 17, 5, 0, 39, 20, 22, 23, 8, 11, 30, 2, 36]:
        newly = (served & ~covered[:, None]).sum(0)
        lift = (np.sqrt(np.maximum(u, best[:, None])) - np.sqrt(best)[:, None]).sum(0)
        expected = (newly + lift) / m
        np.testing.assert_allclose(coverage.values(), expected, rtol=1e-5, atol=1e-9)
        # A course that serves nobody new and lifts nobody is worth exactly nothing.
        assert (coverage.values()[expected == 0] == 0).all()
        coverage.take(j)
        covered |= served[:, j]
        best = np.maximum(best, u[:, j])
    assert coverage.values()[21] == 0.0


def test_menu_lecturers_are_the_courses_table_values(model: rc.EASE) -> None:
    from recommend.group.order import _lecturer_ids

    state = serving_state(model)
    column = model.dataset_.courses["lecturer_id"]
    assert column.isna().any() and column.notna().any()  # both paths below
    for courses in (np.flatnonzero(column.notna())[:7], np.arange(len(column))[::-3]):
        expected = column.to_numpy(dtype=object)[courses]
        got = _lecturer_ids(state, courses)
        assert pd.Series(got).equals(pd.Series(expected))


def test_shortest_courses_by_partition_equal_a_stable_sort() -> None:
    from recommend.group.scoring import smallest

    rng = np.random.default_rng(5)
    for size in (0, 1, 7, 30, 200, 250):
        values = rng.integers(0, 12, 200).astype(np.float64)  # many ties
        values[rng.random(200) < 0.1] = np.inf  # unknown durations
        expected = np.argsort(values, kind="stable")[:size]
        assert sorted(smallest(values, size).tolist()) == sorted(expected.tolist())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_gives_a_menu(model: rc.EASE, strategy: str) -> None:
    result = order_for_group(model, {"occupation": "retired"}, 5, strategy=strategy, max_pins=1)
    assert len(result.menu) == 5 and result.strategy == strategy
    assert result.menu["course_id"].is_unique


def test_approval_counts_personal_top_k(model: rc.EASE) -> None:
    ids = list(model.member_ids_.external_ids[:30])
    result = order_for_group(model, ids, 4, strategy="approval", personal_k=5, pin_compulsory=False)
    menus = rc.member_menu(model, ids, n=5, pin_compulsory=False, with_reasons=False)
    counts = menus["course_id"].value_counts()
    # The most approved course is picked first and serves exactly that many members.
    assert result.menu["course_id"].iloc[0] in set(counts.index[counts == counts.max()])
    assert result.menu["served"].iloc[0] == counts.max()


def test_bad_input(model: rc.EASE, platform: rc.Platform) -> None:
    branch = platform.members["org_id"].value_counts().index[0]
    with pytest.raises(DataError, match="no members"):
        order_for_group(model, [], 5)
    with pytest.raises(DataError, match="ghost"):
        order_for_group(model, ["ghost-1", "ghost-2"], 5)
    with pytest.raises(DataError, match="nowhere"):
        order_for_group(model, "nowhere", 5)
    known = list(model.member_ids_.external_ids[:5])
    result = order_for_group(model, [*known, "ghost-1"], 5, pin_compulsory=False)
    assert list(result.unknown) == ["ghost-1"] and "ghost-1" in " ".join(result.notes)
    with pytest.raises(ConfigError, match="理论学习"):
        order_for_group(model, branch, 3, quotas={"理论学习": 4}, pin_compulsory=False)
    with pytest.raises(ConfigError, match=r"理论学习.*budget leaves 20 minutes"):
        order_for_group(
            model, branch, 8, budget_minutes=20, quotas={"理论学习": 3}, pin_compulsory=False
        )
    with pytest.raises(ConfigError, match="not a channel"):
        order_for_group(model, branch, 3, quotas={"卡拉OK": 1})
    with pytest.raises(ConfigError, match="strategy"):
        order_for_group(model, branch, 3, strategy="dictator")


def test_group_options_are_checked_once_with_the_shared_checks() -> None:
    from recommend.group import GroupOptions

    with pytest.raises(ConfigError, match="compulsory_share"):
        GroupOptions(compulsory_share="half")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="exclude_completed"):
        GroupOptions(exclude_completed=0.0)
    with pytest.raises(ConfigError, match="max_pins"):
        GroupOptions(max_pins=-1)
    assert GroupOptions(max_pins=np.int64(2)).max_pins == 2  # numpy integers as ints


def test_lecturers_ranked_for_the_group(model: rc.EASE) -> None:
    result = order_for_group(model, {"occupation": "retired"}, 5, lecturers=3, max_pins=0)
    assert result.lecturers is not None and len(result.lecturers) == 3
    assert result.lecturers["score"].is_monotonic_decreasing


def test_coverage_beats_popularity_on_the_least_served(
    model: rc.EASE, platform: rc.Platform
) -> None:
    orgs = platform.orgs
    groups: dict[str, object] = {"retired": {"occupation": "retired"}}
    for org in orgs.loc[orgs["kind"] != "branch", "org_id"].iloc[:3]:
        groups[org] = org
    table = evaluate_group_strategies(
        model, platform, groups, 8, strategies=("coverage", "popularity", "random")
    )
    overall = table.loc["all"]
    assert (
        overall.loc["coverage", "p10_satisfaction"] > overall.loc["popularity", "p10_satisfaction"]
    )
    assert overall.loc["coverage", "coverage"] > overall.loc["popularity", "coverage"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, model: rc.EASE) -> Path:
    path = tmp_path_factory.mktemp("group") / "ease"
    rc.save(model, path)
    return path


def test_cli_order(
    artifact: Path,
    platform: rc.Platform,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    branch = platform.members["org_id"].value_counts().index[0]
    code = main(
        [
            *("order", "--model", str(artifact), "--branch", branch, "--n", "5", "--json"),
            *("--budget-minutes", "120", "--quota", "理论学习=1", "--max-pins", "1"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["menu"]) == 5

    assert main(["order", "--model", str(artifact), "--where", "occupation=retired"]) == 2
    assert "--members-table" in capsys.readouterr().err

    table = tmp_path / "members.csv"
    platform.members.drop(columns=["skills"]).to_csv(table, index=False)
    code = main(
        [
            *("order", "--model", str(artifact), "--where", "occupation=retired"),
            *("--members-table", str(table), "--n", "4", "--max-pins", "1"),
        ]
    )
    assert code == 0
    assert "coverage" in capsys.readouterr().out


def test_completions_folded_in_count_for_the_group(tiny_dataset: rc.Dataset) -> None:
    # b1 made c09 and c10 compulsory; two of the three b1 members complete c09 after
    # training: the group menu no longer pins it (completed by most of the group).
    model = FixedFactors().fit(tiny_dataset)
    group = ["m0", "m1", "m4"]

    def pinned() -> list[str]:
        menu = order_for_group(model, group, 4).menu
        return sorted(menu.loc[menu["pinned"], "course_id"])

    assert pinned() == ["c09", "c10"]
    for member in ("m0", "m1"):
        model.update(member, events_frame([(member, "c09", "complete", "2024-03-11")]))
    assert pinned() == ["c10"]
