"""``synthesize``: the simulation stages, each with its own random stream, in order."""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import pandas as pd

from recommend.data.synthetic.behaviour import (
    concat_sessions,
    planned_compulsory,
    session_rate,
    simulate_choices,
    simulate_compulsory,
    simulate_funnel,
    thin_compulsory,
)
from recommend.data.synthetic.catalogue import simulate_courses, simulate_lecturers
from recommend.data.synthetic.config import SynthConfig, resolve_config
from recommend.data.synthetic.ids import Ids
from recommend.data.synthetic.members import simulate_members
from recommend.data.synthetic.orgs import simulate_orgs
from recommend.data.synthetic.platform import Platform
from recommend.data.synthetic.searches import plant_queries, simulate_searches
from recommend.data.synthetic.series import plant_series
from recommend.data.synthetic.tables import build_tables, to_pandas
from recommend.data.synthetic.timing import DAY, Period
from recommend.data.synthetic.truth import make_truth
from recommend.errors import ConfigError

logger = logging.getLogger(__name__)

_STAGES: Final = (
    "orgs",
    "members",
    "lecturers",
    "courses",
    "truth",
    "compulsory",
    "choices",
    "searches",
    "funnel",
    "planted",  # after the others: spawned streams are keyed by position, so adding
    "series",  # stages at the end leaves the streams of the others the same
)


def synthesize(config: SynthConfig | str = "sample", *, seed: int = 0) -> Platform:
    """Simulate a platform.

    Parameters
    ----------
    config
        A :class:`SynthConfig` or the name of a preset in :data:`PRESETS`
        (``"small"``, ``"sample"``, ``"city"``: strong planted segments; ``"calibrated"``:
        statistics like real enrolments).
    seed
        Seed of the random streams; the same seed gives the same platform.

    Returns
    -------
    Platform
    """
    cfg = resolve_config(config)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    # One independent stream per stage, so a change in one stage leaves the others alone.
    streams = dict(zip(_STAGES, np.random.SeedSequence(int(seed)).spawn(len(_STAGES)), strict=True))
    rngs = {name: np.random.Generator(np.random.PCG64(s)) for name, s in streams.items()}

    start = int(np.datetime64(cfg.start, "D").astype("datetime64[s]").astype(np.int64))
    period = Period(start, start + cfg.days * DAY)

    orgs = simulate_orgs(cfg, rngs["orgs"])
    members = simulate_members(cfg, rngs["members"], orgs, period)
    lecturers = simulate_lecturers(cfg, rngs["lecturers"])
    courses = simulate_courses(cfg, rngs["courses"], orgs, period, lecturers)
    truth = make_truth(cfg, rngs["truth"], orgs, members, courses)

    compulsory = simulate_compulsory(rngs["compulsory"], members, courses, period)
    planned = planned_compulsory(cfg, compulsory.member.size, truth.member_activity)
    rate = session_rate(cfg, truth.member_activity, planned)
    organic, targets = simulate_choices(cfg, rngs["choices"], truth, members, courses, period, rate)
    searches, clicked = simulate_searches(
        rngs["searches"], truth, members, courses, period, targets
    )
    n_other = organic.member.size + clicked.member.size
    compulsory = thin_compulsory(cfg, rngs["compulsory"], compulsory, n_other)
    sessions = concat_sessions([organic, compulsory, clicked])
    events = simulate_funnel(rngs["funnel"], truth, members, courses, sessions, period)

    ids = Ids.make(cfg, len(orgs.kind), len(lecturers.channel))
    tables = build_tables(ids, events, courses, members, orgs, searches, lecturers)
    frames = {name: to_pandas(name, table) for name, table in tables.items()}
    if cfg.plant_queries:
        start_ts, end_ts = (pd.Timestamp(t, unit="s") for t in (period.start, period.end))
        frames["searches"] = plant_queries(
            rngs["planted"], frames["searches"], frames["members"], frames["courses"],
            start_ts, end_ts,
        )  # fmt: skip
    if cfg.plant_series:
        frames["courses"], frames["events"] = plant_series(
            rngs["series"], frames["courses"], frames["events"], pd.Timestamp(period.end, unit="s")
        )
    logger.info(
        "simulated %d members, %d courses, %d events, %d searches (seed %d)",
        cfg.n_members,
        cfg.n_courses,
        len(frames["events"]),
        len(frames["searches"]),
        seed,
    )
    return Platform(**frames, truth=truth, config=cfg, seed=int(seed))
