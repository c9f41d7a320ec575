"""The exclusion rule (recommend.engine.exclusions): seen, completed or nothing, on the tiny
catalogue of ``helpers`` (m0 saw c00, completed, and c05; m2 saw c04 and c10, completed)."""

from __future__ import annotations

import numpy as np
from helpers import FixedFactors, events_frame, menu_lists, rank_members

from recommend.data.dataset import Dataset
from recommend.engine import exclusion_rows, history_rows, serving_state

IDX = np.array([0, 1, 2, -1], dtype=np.int64)  # m0, m1, m2, unknown


def _lists(rows) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [rows.row(i)[0].tolist() for i in range(rows.indptr.size - 1)]


def test_seen_excludes_the_whole_history(tiny_model: FixedFactors) -> None:
    seen = history_rows(tiny_model.history_, IDX)
    got = exclusion_rows(serving_state(tiny_model), tiny_model.history_, seen, IDX, "seen")
    assert got is seen
    assert _lists(got) == [[0, 5], [2, 3], [4, 10], []]


def test_completed_excludes_only_completions(tiny_model: FixedFactors) -> None:
    seen = history_rows(tiny_model.history_, IDX)
    got = exclusion_rows(serving_state(tiny_model), tiny_model.history_, seen, IDX, "completed")
    assert got is not None and _lists(got) == [[0], [], [10], []]


def test_none_excludes_nothing(tiny_model: FixedFactors) -> None:
    seen = history_rows(tiny_model.history_, IDX)
    assert exclusion_rows(serving_state(tiny_model), tiny_model.history_, seen, IDX, "none") is None


def test_menus_leave_out_what_the_rule_says(tiny_model: FixedFactors) -> None:
    # Scores 16, 15, ... for c00, c01, ...: the best courses not left out come first.
    (seen,) = menu_lists(rank_members(tiny_model, ["m0"], n=8, pin_compulsory=False))
    assert not {"c00", "c05"} & set(seen)
    assert seen[:3] == ["c01", "c02", "c03"]
    (completed,) = menu_lists(
        rank_members(tiny_model, ["m0"], n=8, exclude="completed", pin_compulsory=False)
    )
    assert "c00" not in completed  # completed
    assert completed[:5] == ["c01", "c02", "c03", "c04", "c05"]  # seen, not completed: back
    (everything,) = menu_lists(
        rank_members(tiny_model, ["m0"], n=3, exclude="none", pin_compulsory=False)
    )
    assert everything == ["c00", "c01", "c02"]


def test_completed_includes_completions_folded_in(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    model.update(
        "m1",
        events_frame(
            [("m1", "c02", "complete", "2024-03-11"), ("m1", "c03", "view", "2024-03-11")]
        ),
    )
    model.update("new", events_frame([("new", "c07", "complete", "2024-03-11")]))
    model.update("m2", events_frame([("m2", "c10", "view", "2024-03-11")]))  # no longer done
    idx = np.array([0, 1, 5, 2, -1], dtype=np.int64)  # m0, m1, new, m2, unknown
    seen = history_rows(model.history_, idx)
    got = exclusion_rows(serving_state(model), model.history_, seen, idx, "completed")
    assert got is not None and _lists(got) == [[0], [2], [7], [], []]
    (one,) = menu_lists(rank_members(model, ["m1"], n=4, exclude="completed", pin_compulsory=False))
    assert one == ["c00", "c01", "c03", "c04"]  # c02 completed, c03 only seen
