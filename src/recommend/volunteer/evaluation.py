"""Dispatch policies compared on the simulator against its truth.

The simulated requests are dispatched round by round (consecutive weeks); after each round
the truth decides who accepts (the same random draw for the same volunteer and request
under every policy), accepted services join the history the next round learns from, and
refusals are recorded as no-shows. Per policy: fill rate, acceptance (mean true
probability), mean distance, Gini of hours over all volunteers, and continuity of
弱势群体帮扶.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommend.checks import positive_int
from recommend.volunteer.dispatch import POLICIES, Policy, dispatch
from recommend.volunteer.metrics import continuity, gini, hours_by_volunteer
from recommend.volunteer.pool import RequestBatch, VolunteerPool
from recommend.volunteer.rules import DispatchOptions
from recommend.volunteer.simulate import VolunteerWorld
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["compare_policies", "realise"]

log = logging.getLogger(__name__)
V = VolunteerColumns


def realise(
    world: VolunteerWorld,
    assignments: pd.DataFrame,
    services: pd.DataFrame,
    now: pd.Timestamp,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """True acceptance probabilities of ``assignments`` and the services they become
    (accepted: served hours; refused: a no-show), drawn with one uniform per
    (volunteer, request, seed) so that every policy meets the same luck."""
    p = world.truth.acceptance(assignments, world.requests, world.volunteers, services, now)
    keys = assignments[V.VOLUNTEER].astype(str) + "|" + assignments[V.REQUEST].astype(str)
    u = pd.util.hash_pandas_object(keys + f"|{seed}", index=False).to_numpy(np.uint64)
    accepted = (u / np.float64(2**64)) < p
    req = world.requests.set_index(V.REQUEST).loc[assignments[V.REQUEST]]
    new = pd.DataFrame(
        {
            V.VOLUNTEER: assignments[V.VOLUNTEER].to_numpy(),
            V.REQUEST: assignments[V.REQUEST].to_numpy(),
            V.KIND: assignments[V.KIND].to_numpy(),
            V.SERVED_AT: req[V.START].to_numpy(),
            V.HOURS: np.where(accepted, assignments[V.HOURS].to_numpy(float), 0.0),
            V.NO_SHOW: ~accepted,
            V.SKILLS: req[V.SKILLS].to_numpy(),
            V.PERSON: req[V.PERSON].to_numpy(),
            V.DISTRICT: req[V.DISTRICT].to_numpy(),
        }
    )
    return p, new


def compare_policies(
    world: VolunteerWorld,
    *,
    policies: Sequence[Policy] = POLICIES,
    rounds: int = 4,
    options: DispatchOptions | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per policy: ``fill_rate``, ``acceptance``, ``mean_km``, ``hours_gini``,
    ``continuity`` (弱势群体帮扶), ``assignments`` and ``dispatch_s`` (see module)."""
    positive_int(rounds, "rounds")
    options = options or DispatchOptions()
    starts = world.requests[V.START]
    edges = pd.date_range(
        starts.min().floor("D"), starts.max().ceil("D") + pd.Timedelta("1D"), periods=rounds + 1
    )
    rows = []
    for policy in policies:
        services = world.services.copy()
        probs, kinds, kms, cont, seconds = [], [], [], [], 0.0
        needed = filled = 0
        for lo, hi in itertools.pairwise(edges):
            part = world.requests[(starts >= lo) & (starts < hi)]
            if part.empty:
                continue
            pool = VolunteerPool.build(world.volunteers, services, now=lo, options=options)
            batch = RequestBatch.build(part, pool)
            result = dispatch(pool, batch, options=options, policy=policy, seed=seed, reasons=False)
            seconds += result.seconds
            asg = result.assignments
            needed += int(part[V.HEADCOUNT].sum())
            filled += len(asg)
            cont.append(continuity(asg, world.requests, services)[asg[V.KIND] == KINDS[2]])
            p, new = realise(world, asg, services, lo, seed=seed)
            probs.append(p)
            kms.append(asg[V.DISTANCE_KM].to_numpy(float))
            kinds.append(asg[V.KIND].to_numpy())
            services = pd.concat([services, new], ignore_index=True)
        end = edges[-1]
        hours = hours_by_volunteer(
            world.volunteers[V.VOLUNTEER],
            None,
            services[services[V.SERVED_AT] < end],
            since=end - pd.Timedelta(days=28),
        )
        rows.append(
            {
                "policy": policy,
                "fill_rate": filled / needed if needed else np.nan,
                "acceptance": float(np.concatenate(probs).mean()) if probs else np.nan,
                "mean_km": float(np.concatenate(kms).mean()) if kms else np.nan,
                "hours_gini": gini(hours),
                "continuity": float(np.concatenate(cont).mean()) if cont else np.nan,
                "assignments": filled,
                "dispatch_s": seconds,
            }
        )
        log.info("policy %s: %s", policy, rows[-1])
    return pd.DataFrame(rows).set_index("policy")
