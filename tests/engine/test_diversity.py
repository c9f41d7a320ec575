"""Diversity (recommend.engine.diversity): greedy MMR across channels, worked by hand, and
on menus of the tiny catalogue of ``helpers`` (channels in runs of four courses)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CHANNEL_OF, FixedFactors, menu_lists, rank_members

from recommend.engine import MMR_POOL, mmr
from recommend.schema import CHANNELS

NO_PINS = np.empty(0, dtype=np.int32)


def _mmr(scores: list[float], channels: list[int], need: int, weight: float, pinned=()) -> list:  # type: ignore[no-untyped-def]
    got = mmr(
        np.array(scores, dtype=np.float32),
        np.array(channels, dtype=np.int32),
        np.array(pinned, dtype=np.int32),
        need,
        weight,
    )
    assert got.dtype == np.int64
    return got.tolist()


def test_full_weight_takes_a_new_channel_first() -> None:
    # Relevance (s - 0.1) / 0.9 = 1, 0.89, 0.78, 0: once channel 0 is picked, the second
    # course of channel 0 drops to -0.11, below every other channel.
    assert _mmr([1.0, 0.9, 0.8, 0.1], [0, 0, 1, 2], 3, 1.0) == [0, 2, 3]
    assert _mmr([1.0, 0.9, 0.8, 0.1], [0, 0, 1, 2], 4, 1.0) == [0, 2, 3, 1]


def test_weight_trades_relevance_for_a_new_channel() -> None:
    scores, channels = [1.0, 0.9, 0.8, 0.1], [0, 0, 1, 2]
    assert _mmr(scores, channels, 3, 0.0) == [0, 1, 2]  # the kernel's order
    assert _mmr(scores, channels, 3, 0.1) == [0, 1, 2]  # 0.89 - 0.1 > 0.78
    assert _mmr(scores, channels, 3, 0.2) == [0, 2, 1]  # 0.89 - 0.2 < 0.78


def test_pinned_channels_count_as_picked() -> None:
    # Channel 0 is pinned: both its courses start at relevance - 1.
    assert _mmr([1.0, 0.9, 0.8, 0.1], [0, 0, 1, 2], 3, 1.0, pinned=[0]) == [2, 0, 3]
    # Unknown pinned channels (-1) cover nothing.
    assert _mmr([1.0, 0.9, 0.8, 0.1], [0, 0, 1, 2], 3, 1.0, pinned=[-1]) == [0, 2, 3]


def test_unknown_channels_are_never_alike() -> None:
    assert _mmr([3.0, 2.0, 1.0], [-1, -1, 0], 3, 1.0) == [0, 1, 2]
    assert _mmr([3.0, 2.0, 1.0], [0, 0, 1], 3, 1.0) == [0, 2, 1]


def test_need_is_capped_and_equal_scores_keep_their_order() -> None:
    assert _mmr([2.0, 1.0], [0, 1], 5, 0.5) == [0, 1]
    assert _mmr([1.0, 1.0, 1.0], [0, 0, 1], 3, 1.0) == [0, 2, 1]
    assert _mmr([1.0, 1.0, 1.0], [0, 0, 1], 3, 0.0) == [0, 1, 2]


# ---------------------------------------------------------------------------- on a menu


def test_no_diversity_equals_the_kernel_order(tiny_model: FixedFactors) -> None:
    idx = tiny_model.member_ids_.to_index(["m3"])
    kernel = tiny_model.topk(idx, 6, exclude=tiny_model.history_.rows(idx)).indices[0]
    rows = rank_members(tiny_model, ["m3"], n=6, pin_compulsory=False, only_published=False)
    assert rows.course.tolist() == kernel.tolist()


def test_full_diversity_spreads_channels(tiny_model: FixedFactors) -> None:
    (plain,) = menu_lists(rank_members(tiny_model, ["m1"], n=4, pin_compulsory=False))
    assert plain == ["c00", "c01", "c04", "c05"]  # two channels
    rows = rank_members(tiny_model, ["m1"], n=4, pin_compulsory=False, diversity=1.0)
    # The pool is m1's 3 n = 12 best (c02, c03 seen, c15 unpublished): c00 first, then the
    # best course of each channel not yet covered.
    assert menu_lists(rows) == [["c00", "c04", "c08", "c12"]]
    assert len({CHANNEL_OF[c] for c in menu_lists(rows)[0]}) == 4
    np.testing.assert_array_equal(rows.score, [16.0, 12.0, 8.0, 4.0])  # the model's scores
    assert MMR_POOL == 3


def test_diversity_counts_pinned_channels(tiny_model: FixedFactors) -> None:
    # m1's pins c09 and c10 cover the third channel: the rest comes from the others.
    (menu,) = menu_lists(rank_members(tiny_model, ["m1"], n=5, diversity=1.0))
    assert menu == ["c09", "c10", "c00", "c04", "c12"]
    assert {CHANNEL_OF[c] for c in menu[2:]} == {CHANNELS[0], CHANNELS[1], CHANNELS[3]}


@pytest.mark.parametrize("dense", [True, False])
def test_some_diversity_on_the_menu(tiny_model: FixedFactors, dense: bool) -> None:
    # m1's pool runs from c00 (16) to c13 (3): relevance (s - 3) / 13. With weight 0.25,
    # after c00: c04 (0.69) beats c01 (0.92 - 0.25); then c01 (0.67); then c08 (0.38)
    # beats c05 (0.62 - 0.25).
    rows = rank_members(tiny_model, ["m1"], n=4, pin_compulsory=False, diversity=0.25, dense=dense)
    assert menu_lists(rows) == [["c00", "c04", "c01", "c08"]]
    # With 0.2, c01 (0.92 - 0.2) still beats c04 and c05 (0.62 - 0.2) beats c08.
    rows = rank_members(tiny_model, ["m1"], n=4, pin_compulsory=False, diversity=0.2, dense=dense)
    assert menu_lists(rows) == [["c00", "c01", "c04", "c05"]]
