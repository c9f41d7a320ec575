"""The org tree: party committees, general branches and branches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.vocabulary import DISTRICTS, INDUSTRIES, INDUSTRY_WEIGHT

IntArray = np.ndarray


@dataclass(frozen=True)
class Orgs:
    """The org tree, indexed by org position (parents precede their children)."""

    kind: IntArray  # (n_orgs,) index into ORG_KINDS
    parent: IntArray  # (n_orgs,) -1 for committees
    industry: IntArray
    district: IntArray
    committee: IntArray  # committee at the top of each org's subtree
    branches: IntArray  # org indices of the branches


def simulate_orgs(cfg: SynthConfig, rng: np.random.Generator) -> Orgs:
    """An org tree of committees, general branches and branches sized for the members,
    with industries and districts mostly inherited from the parent."""
    n_branches = max(1, math.ceil(cfg.n_members / cfg.members_per_branch))
    direct = rng.random(n_branches) < cfg.direct_branch_share
    n_under_general = int((~direct).sum())
    n_generals = math.ceil(n_under_general / cfg.branches_per_general)
    # Committees hold general branches and, directly, some branches.
    n_committees = max(1, math.ceil((n_generals + direct.sum() / 2) / cfg.generals_per_committee))

    committees = np.arange(n_committees)
    generals = n_committees + np.arange(n_generals)
    branches = n_committees + n_generals + np.arange(n_branches)
    n_orgs = n_committees + n_generals + n_branches

    parent = np.full(n_orgs, -1, dtype=np.int64)
    # Balanced assignment: every committee gets a general branch and every general branch
    # a branch wherever there are enough of them.
    parent[generals] = rng.permutation(np.arange(n_generals) % n_committees)
    if n_generals:
        parent[branches[~direct]] = generals[
            rng.permutation(np.arange(n_under_general) % n_generals)
        ]
    parent[branches[direct]] = rng.integers(0, n_committees, int(direct.sum()))

    kind = np.repeat(np.arange(3, dtype=np.int64), [n_committees, n_generals, n_branches])
    # Parents always precede children, so one pass in id order resolves the top committee
    # and inherited attributes level by level.
    committee = np.arange(n_orgs, dtype=np.int64)
    committee[generals] = parent[generals]
    committee[branches] = committee[parent[branches]]

    industry = np.empty(n_orgs, dtype=np.int64)
    industry[committees] = rng.choice(len(INDUSTRIES), n_committees, p=INDUSTRY_WEIGHT)
    for level in (generals, branches):
        inherit = rng.random(level.size) < 0.8
        own = rng.choice(len(INDUSTRIES), level.size, p=INDUSTRY_WEIGHT)
        industry[level] = np.where(inherit, industry[parent[level]], own)

    district = np.empty(n_orgs, dtype=np.int64)
    district[committees] = rng.integers(0, len(DISTRICTS), n_committees)
    for level, keep in ((generals, 1.0), (branches, 0.85)):
        inherit = rng.random(level.size) < keep
        own = rng.integers(0, len(DISTRICTS), level.size)
        district[level] = np.where(inherit, district[parent[level]], own)
    return Orgs(kind, parent, industry, district, committee, branches)
