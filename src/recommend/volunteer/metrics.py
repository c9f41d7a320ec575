"""Organiser metrics of dispatch: fill rate, time to fill, distance, load balance (Gini of
hours) and continuity of 弱势群体帮扶, overall and per district and kind."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommend.errors import ConfigError
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["continuity", "dispatch_metrics", "gini", "hours_by_volunteer"]

V = VolunteerColumns
METRICS = (
    "requests",
    "needed",
    "filled",
    "fill_rate",
    "time_to_fill_h",
    "mean_km",
    "hours_gini",
    "continuity",
)


def gini(values: np.ndarray | Sequence[float]) -> float:
    """Gini index of non-negative values (0: all equal, towards 1: one holds all); 0 for
    an empty or all-zero input."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or x.sum() <= 0:
        return 0.0
    if (x < 0).any():
        raise ConfigError("gini: values must be >= 0")
    n = x.size
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * x).sum()) / (n * x.sum()) - (n + 1.0) / n)


def hours_by_volunteer(
    volunteer_ids: Sequence[object] | pd.Series,
    assignments: pd.DataFrame | None = None,
    services: pd.DataFrame | None = None,
    *,
    since: pd.Timestamp | None = None,
) -> np.ndarray:
    """Hours per volunteer (in ``volunteer_ids`` order, zeros included): dispatched
    ``hours`` of ``assignments`` plus served hours of ``services`` (no-shows excluded) from
    ``since`` on."""
    index = pd.Index(volunteer_ids)
    out = np.zeros(len(index))
    if assignments is not None and len(assignments):
        pos = index.get_indexer(assignments[V.VOLUNTEER])
        np.add.at(out, pos[pos >= 0], assignments[V.HOURS].to_numpy(float)[pos >= 0])
    if services is not None and len(services):
        keep = ~services[V.NO_SHOW].to_numpy(bool)
        if since is not None:
            keep &= (services[V.SERVED_AT] >= since).to_numpy()
        pos = index.get_indexer(services.loc[keep, V.VOLUNTEER])
        hours = services.loc[keep, V.HOURS].to_numpy(float)
        np.add.at(out, pos[pos >= 0], hours[pos >= 0])
    return out


def continuity(
    assignments: pd.DataFrame, requests: pd.DataFrame, services: pd.DataFrame
) -> np.ndarray:
    """Per assignment: True when the volunteer served the request's person before
    (``services`` without no-shows); False for requests without a person."""
    if assignments.empty or services is None or services.empty:
        return np.zeros(len(assignments), dtype=bool)
    person = requests.set_index(V.REQUEST)[V.PERSON].reindex(assignments[V.REQUEST])
    done = services[~services[V.NO_SHOW].astype(bool) & services[V.PERSON].notna()]
    pairs = pd.MultiIndex.from_arrays([done[V.VOLUNTEER], done[V.PERSON]])
    asked = pd.MultiIndex.from_arrays([assignments[V.VOLUNTEER].to_numpy(), person.to_numpy()])
    known = person.notna().to_numpy(dtype=bool)
    found: np.ndarray = np.asarray(asked.isin(pairs), dtype=bool) & known
    return found


def dispatch_metrics(
    requests: pd.DataFrame,
    assignments: pd.DataFrame,
    *,
    services: pd.DataFrame | None = None,
    volunteers: pd.DataFrame | None = None,
    by: Sequence[str] = (V.DISTRICT, V.KIND),
) -> pd.DataFrame:
    """The organiser's table: one row per group of ``by`` and a last row ``全部`` (all).

    Columns: ``requests``, ``needed`` (people), ``filled``, ``fill_rate``,
    ``time_to_fill_h`` (mean hours from posting to the first assignment, filled requests),
    ``mean_km``, ``hours_gini`` (Gini of dispatched hours over the group's volunteers; over
    every registered volunteer, with their ``services`` hours, in the overall row when
    ``volunteers`` is given) and ``continuity`` (share of 弱势群体帮扶 assignments whose
    volunteer served the same person before, per ``services``; NaN without such requests).
    ``requests`` and ``assignments`` are the validated requests and a dispatch result's
    assignments.
    """
    for col in by:
        if col not in (V.DISTRICT, V.KIND, V.REQUESTER_KIND):
            raise ConfigError(f"by={col!r}; expected district, kind or requester_kind")
    req = requests[
        [V.REQUEST, V.KIND, V.DISTRICT, V.HEADCOUNT, V.POSTED_AT, V.REQUESTER_KIND, V.PERSON]
    ].copy()
    got = assignments.groupby(V.REQUEST).agg(
        filled=(V.VOLUNTEER, "size"), first=(V.ASSIGNED_AT, "min"), km=(V.DISTANCE_KM, "sum")
    )
    req = req.join(got, on=V.REQUEST)
    req["filled"] = np.minimum(req["filled"].fillna(0), req[V.HEADCOUNT])
    req["wait_h"] = (req["first"] - req[V.POSTED_AT]).dt.total_seconds() / 3600.0
    asg = assignments.merge(req[[V.REQUEST, V.REQUESTER_KIND]], on=V.REQUEST, how="left")
    srv = services if services is not None else None
    asg["continued"] = continuity(assignments, requests, srv) if srv is not None else False
    rows = []
    groups = [(key, req.index[idx]) for key, idx in req.groupby(list(by)).indices.items()]
    for key, index in groups:
        part = req.loc[index]
        mine = asg[asg[V.REQUEST].isin(part[V.REQUEST])]
        rows.append((*np.atleast_1d(key), *_row(part, mine, None)))
    everyone = None
    if volunteers is not None:
        everyone = hours_by_volunteer(volunteers[V.VOLUNTEER], assignments, services)
    rows.append((*(["全部"] * len(by)), *_row(req, asg, everyone)))
    return pd.DataFrame(rows, columns=[*by, *METRICS]).set_index(list(by))


def _row(req: pd.DataFrame, asg: pd.DataFrame, everyone: np.ndarray | None) -> tuple[object, ...]:
    needed = int(req[V.HEADCOUNT].sum())
    filled = int(req["filled"].sum())
    hours = everyone if everyone is not None else asg.groupby(V.VOLUNTEER)[V.HOURS].sum()
    kind3 = asg[asg[V.KIND] == KINDS[2]]
    return (
        len(req),
        needed,
        filled,
        filled / needed if needed else np.nan,
        float(req["wait_h"].mean()) if req["wait_h"].notna().any() else np.nan,
        float(asg[V.DISTANCE_KM].mean()) if len(asg) else np.nan,
        gini(np.asarray(hours, dtype=float)),
        float(kind3["continued"].mean()) if len(kind3) else np.nan,
    )
