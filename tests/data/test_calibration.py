"""The calibrated simulator preset and the statistics it is calibrated with
(``recommend.data.synthetic.calibration``); docs/simulator.md holds the table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.data.synthetic import PRESETS, Platform, SynthConfig, synthesize
from recommend.data.synthetic.calibration import (
    CALIBRATED_RANGES,
    compulsory_pair_share,
    gini,
    holdout,
    k_core,
    pair_statistics,
    platform_pairs,
    popularity_ndcg,
    read_lines,
)
from recommend.errors import ConfigError, DataError
from tests.helpers import SAMPLE


def _measure(platform: Platform) -> dict[str, float]:
    member, course, segments = platform_pairs(platform)
    stats = pair_statistics(member, course)
    train, test = holdout(*k_core(member, course), share=0.2, seed=0)
    ndcg = popularity_ndcg(train, test, segments)
    glob = ndcg.pop("global")
    stats["segment_lift"] = max(ndcg.values()) / glob
    stats["compulsory_share"] = compulsory_pair_share(platform)
    return stats


@pytest.fixture(scope="module")
def calibrated() -> dict[str, float]:
    """Statistics of the calibrated preset (8,000 members, 800 courses, seed 0)."""
    return _measure(synthesize("calibrated", seed=0))


@pytest.mark.parametrize("name", sorted(CALIBRATED_RANGES))
def test_calibrated_preset_falls_in_the_documented_ranges(
    calibrated: dict[str, float], name: str
) -> None:
    low, high = CALIBRATED_RANGES[name]
    assert low <= calibrated[name] <= high, (name, calibrated[name])


def test_calibrated_preset_has_few_compulsory_pairs(calibrated: dict[str, float]) -> None:
    # compulsory_share=0.05 of the sessions; pairs also count search clicks and drop rewatches.
    assert 0.02 <= calibrated["compulsory_share"] <= 0.08


def test_planted_sample_is_outside_the_calibrated_ranges(sample_platform: Platform) -> None:
    """The strong-segment sample keeps its planted structure: flat popularity and segments
    that beat global popularity by far, as the segment tests rely on."""
    stats = _measure(sample_platform)
    assert stats["segment_lift"] > 1.5
    assert stats["item_gini"] < CALIBRATED_RANGES["item_gini"][0]
    assert stats["compulsory_share"] > 0.15


def test_new_settings_leave_the_planted_presets_unchanged(sample_platform: Platform) -> None:
    """Defaults of the new settings reproduce the shipped sample (and so the golden files)
    event for event."""
    fresh = synthesize("sample", seed=0)
    pd.testing.assert_frame_equal(fresh.events, sample_platform.events)
    pd.testing.assert_frame_equal(fresh.courses, sample_platform.courses)


def test_segment_strength_and_compulsory_share_act() -> None:
    base = dataclasses.replace(PRESETS["small"], n_members=600)
    strong = _measure(synthesize(base, seed=2))
    weak = _measure(
        synthesize(dataclasses.replace(base, segment_strength=0.0, compulsory_share=0.02), seed=2)
    )
    # Pairs on compulsory courses also count organic choices of themed-day material, a
    # larger part of this small catalogue, so the pair share sits above the 2 % of sessions.
    assert weak["compulsory_share"] < 0.1 < 0.15 < strong["compulsory_share"]
    assert weak["segment_lift"] < strong["segment_lift"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"segment_strength": -0.1}, "segment_strength must be a finite number >= 0"),
        ({"segment_strength": float("nan")}, "segment_strength"),
        ({"taste_scale": -1.0}, "taste_scale must be a finite number >= 0"),
        ({"popularity_spread": float("inf")}, "popularity_spread"),
        ({"compulsory_share": 1.0}, r"compulsory_share must be None or a number in \[0, 1\)"),
        ({"compulsory_share": -0.2}, "compulsory_share"),
        ({"compulsory_share": "some"}, "got 'some'"),
        ({"compulsory_share": True}, "compulsory_share"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SynthConfig(**kwargs)  # type: ignore[arg-type]


def test_statistics_on_known_pairs() -> None:
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)
    # Course c has 64 / 2**c members: popularity halves from one rank to the next.
    counts = [64, 32, 16, 8, 4]
    member = np.concatenate([np.arange(n) for n in counts])
    course = np.repeat(np.arange(5), counts)
    stats = pair_statistics(member, course, min_count=1)
    assert stats["pairs"] == sum(counts) and stats["courses"] == 5
    assert stats["top10_share"] == pytest.approx(64 / 124)
    assert stats["density"] == pytest.approx(124 / (64 * 5))
    # Members 0..3 take five courses, 4..7 four, 8..15 three, 16..31 two, 32..63 one.
    assert (stats["member_q10"], stats["member_q50"], stats["member_q90"]) == (1, 1.5, 4)
    # Ranks 1..4 (10 % to 90 % of five courses, at least two): halving per rank.
    assert stats["slope"] == pytest.approx(-1.459, abs=0.001)


def test_k_core_drops_until_stable() -> None:
    # Member 9 takes only course 5, which nobody else takes: both go, and member 8 with them.
    member = np.array([0, 0, 1, 1, 2, 2, 8, 9])
    course = np.array([0, 1, 0, 1, 0, 1, 5, 5])
    m, c = k_core(member, course, min_count=2)
    assert set(m.tolist()) == {0, 1, 2} and set(c.tolist()) == {0, 1}
    with pytest.raises(DataError, match="no pairs left"):
        pair_statistics(member, course, min_count=50)


def test_holdout_keeps_every_member_in_train() -> None:
    member = np.repeat(np.arange(50), 10)
    course = np.tile(np.arange(10), 50)
    (tr_m, _), (te_m, _) = holdout(member, course, share=0.2, seed=1)
    assert np.bincount(te_m).tolist() == [2] * 50 and np.bincount(tr_m).tolist() == [8] * 50


def test_segment_popularity_wins_on_planted_segments() -> None:
    # Two segments of 40 members; each takes its own block of courses, so segment popularity
    # is perfect and global popularity ranks the other segment's courses first half the time.
    rng = np.random.default_rng(0)
    members, courses = [], []
    for u in range(80):
        block = np.arange(10) + (0 if u < 40 else 10) + (5 if u >= 40 else 0)
        picks = rng.choice(block, 6, replace=False)
        members += [u] * 6
        courses += picks.tolist()
    train, test = holdout(np.array(members), np.array(courses), 0.2, seed=0)
    label = np.where(np.arange(80) < 40, "a", "b")
    ndcg = popularity_ndcg(train, test, {"half": label}, k=5)
    assert ndcg["half"] > 1.2 * ndcg["global"]


def test_read_lines(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "train.txt"  # type: ignore[operator]
    path.write_text("0 3 4 4\n1 3\n\n", encoding="utf-8")
    member, course = read_lines(path)
    assert member.tolist() == [0, 0, 1] and course.tolist() == [3, 4, 3]
    path.write_text("0 3 x\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1"):
        read_lines(path)


def test_cli_default_preset_is_calibrated(tmp_path: pytest.TempPathFactory) -> None:
    from recommend.cli import main

    out = tmp_path / "p"  # type: ignore[operator]
    assert main(["data", "synth", "--members", "300", "--courses", "100", "--out", str(out)]) == 0
    assert rc.read_platform(out).config.segment_strength == PRESETS["calibrated"].segment_strength
    assert main(["data", "synth", "--preset", "huge", "--out", str(out)]) == 2


def test_sample_fixture_is_the_shipped_sample(sample_platform: Platform) -> None:
    assert rc.read_platform(SAMPLE).config == PRESETS["sample"]
