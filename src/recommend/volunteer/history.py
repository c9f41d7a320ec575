"""What past services say about each volunteer: recent hours (fairness, weekly caps),
reliability (no-shows), who they served before (continuity) and which kinds of request they
accept and complete (a collaborative signal from the library's EASE model)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommend.data.dataset import Dataset
from recommend.models.ease import EASE
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["History", "item_keys", "learn_history"]

log = logging.getLogger(__name__)
V = VolunteerColumns


def item_keys(kind: str, skills: list[str]) -> list[str]:
    """The items a request of ``kind`` needing ``skills`` stands for in the collaborative
    model: the kind, and the kind with each skill."""
    return [kind, *(f"{kind}|{s}" for s in skills)]


@dataclass(frozen=True)
class History:
    """Per-volunteer history, aligned with the pool's volunteer order.

    Attributes
    ----------
    recent_hours, week_hours : (n,) float64
        Hours served in the recent window and in the last 7 days before ``now``.
    reliability : (n,) float64
        ``(shows + 1) / (services + 2)``: 0.5 without history.
    completed : (n, 4) int64
        Completed services by kind (:data:`KINDS` order).
    affinity : (n_rows, n_items) float32
        Collaborative affinity (own history plus EASE scores, scaled to [0, 1] per item);
        the last row is zeros (volunteers without history).
    affinity_row : (n,) int64
        Row of each volunteer in ``affinity``.
    items : dict
        Item key -> column of ``affinity``.
    served : dict
        Person id -> sorted volunteer indices that served them (without a no-show).
    """

    recent_hours: np.ndarray
    week_hours: np.ndarray
    reliability: np.ndarray
    completed: np.ndarray
    affinity: np.ndarray
    affinity_row: np.ndarray
    items: dict[str, int]
    served: dict[object, np.ndarray]


def learn_history(
    services: pd.DataFrame,
    volunteer_ids: pd.Series,
    now: pd.Timestamp,
    recent_days: int,
    *,
    l2: float = 50.0,
) -> History:
    """``History`` of the volunteers ``volunteer_ids`` from the validated ``services``
    before ``now``."""
    n = len(volunteer_ids)
    index = pd.Index(volunteer_ids)
    srv = services[services[V.SERVED_AT] < now]
    pos = index.get_indexer(srv[V.VOLUNTEER])
    srv, pos = srv[pos >= 0], pos[pos >= 0]
    hours = srv[V.HOURS].to_numpy(float)
    shown = ~srv[V.NO_SHOW].to_numpy(bool)
    age_days = (now - srv[V.SERVED_AT]).dt.total_seconds().to_numpy() / 86400.0
    recent = np.bincount(pos, weights=hours * shown * (age_days <= recent_days), minlength=n)
    week = np.bincount(pos, weights=hours * shown * (age_days <= 7), minlength=n)
    total = np.bincount(pos, minlength=n).astype(float)
    shows = np.bincount(pos, weights=shown.astype(float), minlength=n)
    reliability = (shows + 1.0) / (total + 2.0)
    kind_code = pd.Index(KINDS).get_indexer(srv[V.KIND])
    completed = np.zeros((n, len(KINDS)), dtype=np.int64)
    np.add.at(completed, (pos[shown], kind_code[shown]), 1)
    served: dict[object, np.ndarray] = {}
    person = srv[V.PERSON].to_numpy(object)
    has_person = shown & pd.notna(srv[V.PERSON]).to_numpy()
    if has_person.any():
        frame = pd.DataFrame({"p": person[has_person], "v": pos[has_person]})
        for key, group in frame.groupby("p", sort=False)["v"]:
            served[key] = np.unique(group.to_numpy())
    affinity, rows, items = _affinity(srv[shown], pos[shown], n, l2)
    return History(recent, week, reliability, completed, affinity, rows, items, served)


def _affinity(
    srv: pd.DataFrame, pos: np.ndarray, n: int, l2: float
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """EASE over (volunteer x kind / kind|skill) completions: who is likely to take and
    complete which kind of request, including kinds they have not done yet but volunteers
    like them have."""
    empty: tuple[np.ndarray, np.ndarray, dict[str, int]] = (
        np.zeros((1, 0), np.float32),
        np.zeros(n, np.int64),
        {},
    )
    if srv.empty:
        return empty
    keys = [item_keys(k, list(s)) for k, s in zip(srv[V.KIND], srv[V.SKILLS], strict=True)]
    lengths = np.fromiter((len(k) for k in keys), np.int64, len(keys))
    events = pd.DataFrame(
        {
            "member_id": np.repeat(pos, lengths),
            "course_id": [k for ks in keys for k in ks],
            "event": "complete",
            "timestamp": np.repeat(srv[V.SERVED_AT].to_numpy(), lengths),
        }
    )
    if events["course_id"].nunique() < 2:
        return empty
    dataset = Dataset.from_frames(events)
    model = EASE(l2=l2).fit(dataset)
    member_pos = np.asarray(dataset.member_ids.external_ids, dtype=np.int64)
    own = dataset.interactions.toarray().astype(np.float32)
    scores = model.score(np.arange(len(member_pos))) + own
    scale = np.maximum(scores.max(axis=0, keepdims=True), 1e-6)
    affinity = np.clip(scores / scale, 0.0, 1.0).astype(np.float32)
    affinity = np.vstack([affinity, np.zeros((1, affinity.shape[1]), np.float32)])
    rows = np.full(n, len(member_pos), dtype=np.int64)
    rows[member_pos] = np.arange(len(member_pos))
    items = {str(k): i for i, k in enumerate(dataset.course_ids.external_ids)}
    log.info("collaborative affinity: %d volunteers x %d items", len(member_pos), len(items))
    return affinity, rows, items
