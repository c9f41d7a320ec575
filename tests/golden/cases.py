"""The requests whose answers the equivalence tests pin down (see ``capture.py``).

Each function serves one product from a loaded model and returns one flat frame, with a
``case`` column naming the request, so that captured and current outputs compare row by
row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recommend as rc
from recommend.batch import run_batch
from recommend.group import order_for_group
from recommend.search import search

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
MODELS = ("als", "ease")
NOW = "2025-05-01"

# Option sets every product that takes them is asked with.
MENU_OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "completed_channel": {"exclude": "completed", "channel": "理论学习"},
    "short": {"max_minutes": 15, "exclude": "none"},
    "diverse": {"diversity": 0.5, "n": 12},
    "no_pins": {"pin_compulsory": False},
    "one_pin": {"max_pins": 1, "now": NOW},
    "channels_now": {"channel": ["党员教育", "技能培训"], "now": NOW, "only_published": True},
    # English reasons and every compulsory course pinned: the menus as served before the
    # message catalogue and the two-pin default (equal to the rows captured then).
    "english_all_pins": {"lang": "en", "max_pins": None},
}


def _members(model: rc.Recommender) -> list[Any]:
    ids = model.member_ids_.external_ids
    picked = list(ids[:: max(1, len(ids) // 150)])
    return [*picked, "ghost-1", "ghost-2"]


def _cold_attributes() -> pd.DataFrame:
    members = pd.read_parquet(SAMPLE / "members.parquet")
    rows = members.iloc[[0, 7, 60, 400]].copy()
    rows["member_id"] = [f"new-{i}" for i in range(len(rows))]
    return rows.drop(columns=["skills"], errors="ignore")


def menus(model: rc.Recommender) -> pd.DataFrame:
    members = _members(model)
    cold = _cold_attributes()
    parts = []
    for case, options in MENU_OPTIONS.items():
        opts = {"n": 10, **options}
        menu = rc.member_menu(model, members, **opts)
        parts.append(menu.assign(case=case))
        cold_menu = rc.member_menu(model, cold["member_id"], member_attributes=cold, **opts)
        parts.append(cold_menu.assign(case=f"{case}/attributes"))
    return pd.concat(parts, ignore_index=True)


def lecturers(model: rc.Recommender) -> pd.DataFrame:
    parts = []
    for member in [*_members(model)[:20:4], "ghost-1"]:
        for case, options in (("default", {}), ("short", {"max_minutes": 20})):
            frame = rc.lecturer_menu(model, member, n=5, **options)
            parts.append(frame.assign(case=case, member_id=str(member)))
    return pd.concat(parts, ignore_index=True)


def groups(model: rc.Recommender) -> pd.DataFrame:
    members = pd.read_parquet(SAMPLE / "members.parquet")
    branch = str(members["org_id"].iloc[0])
    requests: dict[str, tuple[Any, dict[str, Any]]] = {
        "branch": (branch, {}),
        "branch_budget": (branch, {"budget_minutes": 120, "quotas": {"理论学习": 2}}),
        "retired": (
            {"occupation": "retired"},
            {"strategy": "average", "n": 6, "member_table": members},
        ),
        "ids_borda": ([*list(members["member_id"].iloc[:40]), "ghost"], {"strategy": "borda"}),
        "misery_now": (branch, {"strategy": "least_misery", "now": NOW, "max_pins": 1}),
    }
    parts = []
    for case, (spec, options) in requests.items():
        result = order_for_group(model, spec, **{"n": 8, **options})
        menu = result.menu.assign(case=case, part="menu")
        served = result.members.assign(case=case, part="members")
        parts.extend([menu, served])
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({c: str for c in frame.columns if frame[c].dtype == object})


def batch(model: rc.Recommender, tmp: Path) -> pd.DataFrame:
    parts = []
    for case, options in (
        ("default", {"with_reasons": True}),
        ("fast", {"with_reasons": False, "max_pins": 2}),
        ("filtered", {"channel": "理论学习", "exclude": "completed", "max_minutes": 30}),
    ):
        out = tmp / case
        run_batch(
            model, out, n=10, chunk_size=1000, progress=False, model_version="golden", **options
        )
        frame = pd.read_parquet(out).drop(columns=["generated_at"])
        parts.append(frame.assign(case=case))
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({c: str for c in ("member_id", "course_id", "route", "model_version")})


def searches(model: rc.Recommender) -> pd.DataFrame:
    queries = ("三会一课", "党史 学习", "办公软件", "理论", "乡村振兴 政策")
    parts = []
    for i, member in enumerate([*_members(model)[:30:3], "ghost-1"]):
        query = queries[i % len(queries)]
        for case, options in (("default", {}), ("short", {"max_minutes": 20, "now": NOW})):
            frame = search(model, member, query, n=8, **options)
            parts.append(pd.DataFrame(frame).assign(case=case, query=query, member=str(member)))
    frame = pd.concat(parts, ignore_index=True)
    return frame


def _text(values: np.ndarray) -> np.ndarray:
    """Values as text, missing ones (None, NaN, NA) as one marker."""
    series = pd.Series(values, dtype=object)
    return series.where(series.notna(), "<missing>").astype(str).to_numpy(dtype=object)


def compare(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    """Same rows and columns; float columns equal within float32 rounding."""
    assert list(got.columns) == list(want.columns), f"{what}: columns differ"
    assert len(got) == len(want), f"{what}: {len(got)} rows, expected {len(want)}"
    for column in want.columns:
        a, b = got[column].to_numpy(), want[column].to_numpy()
        if want[column].dtype.kind == "f":
            np.testing.assert_allclose(
                a.astype(np.float64),
                b.astype(np.float64),
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"{what}: column {column}",
            )
        else:
            same = _text(a) == _text(b)
            if not same.all():
                first = int(np.flatnonzero(~same)[0])
                raise AssertionError(
                    f"{what}: column {column} differs at row {first}: {a[first]!r} != {b[first]!r}"
                )


def spark_batch(spark: Any, model: rc.Recommender, tmp: Path) -> pd.DataFrame:
    """The Spark batch job on the same options as :func:`batch` (factor models only)."""
    from recommend.spark import spark_batch as run

    parts = []
    for case, options in (
        ("fast", {"max_pins": 2}),
        ("filtered", {"channel": "理论学习", "exclude": "completed", "max_minutes": 30}),
    ):
        out = tmp / case
        run(spark, model, str(out), n=10, model_version="golden", **options)
        frame = pd.read_parquet(out).drop(columns=["generated_at"])
        frame = frame.sort_values(["member_id", "rank"], kind="stable", ignore_index=True)
        parts.append(frame.assign(case=case))
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({c: str for c in ("member_id", "course_id", "route", "model_version")})
