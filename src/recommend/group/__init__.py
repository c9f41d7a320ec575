"""Group menus (top-down order-by-menu): courses an organisation orders for a target group.

A branch secretary or a higher organisation orders courses for a group of members: one
branch with its sub-branches, members picked by attributes (retired, mobile, an age band,
a district), or an explicit list. The members' predicted preferences are aggregated into
one menu of ``n`` courses that serves the whole group, within the organisation's
constraints, and the result says how well each member is served.

Scores and normalisation
------------------------
Each member's scores come from the same routes as their own menu (``recommend.menu``):
the model for members with a history, cold-start popularity for the others. Scores are
min-max normalised per member over the candidate courses, so a heavy learner (whose raw
scores are larger) counts as much as anyone. A course the member has already studied is
worth 0 to them: the group menu should bring something new. A member's **personal
top-k** (``personal_k``) is what their own menu would hold (seen courses excluded).

Strategies
----------
``average``       mean normalised score over the group.
``least_misery``  the lowest normalised score in the group (ties: the mean).
``borda``         Borda count over the candidate pool: each member gives a course the
                  number of pool courses they rank below it.
``approval``      share of members with the course in their personal top-k (ties: mean).
``coverage``      greedy: each pick maximises the members newly served (course in their
                  personal top-k) plus the gain in ``sum(sqrt(best score so far))`` over
                  members; the square root favours the least-served members.
``popularity``, ``random``  baselines (platform popularity; a seeded random order) under the
                  same constraints, for evaluation.

Constraints
-----------
A time budget (sum of durations), channel quotas (at least ``q`` courses of a channel),
compulsory courses always included (those compulsory for the branches of at least
``compulsory_share`` of the group, plus ``must_include``), and courses already completed by
at least ``exclude_completed`` of the group left out. Selection is greedy over the pool
with a feasibility check at every pick: a course is taken only if the unmet quotas can
still be filled within the remaining slots and budget by the shortest eligible courses.

How a call runs, and why it is fast: pass 1 scores the members in blocks through the
shared top-k kernel (``recommend.topk``), on the candidate courses only, for their personal
top-k; a hook on each raw block records every member's normalisation (lowest and highest
score), so the full (members x courses) matrix never exists. The per-course sum of the
normalised scores is linear in the scores: for a factor model it is one GEMV on the group's
aggregated member vector (``sum_i scale_i u_i``) instead of a second pass over the blocks;
other models add up each block as it goes by. The best courses by mean score and by
approval (plus pins and quota candidates) form a pool of a few hundred courses; pass 2
scores the members on the pool only (a small GEMM for factor models), and every strategy
works on that (members x pool) matrix, coverage updating its values only for the members
each pick affects. Means and values are float64 sums; they agree with a direct computation
to within float32 rounding of the scores (about 1e-6), which can only reorder courses whose
values tie to that precision.
"""

from __future__ import annotations

from recommend.group.order import (
    GroupMenu,
    GroupOptions,
    evaluate_group_strategies,
    order_for_group,
    serve_group_menu,
)
from recommend.group.strategies import BASELINES, STRATEGIES
from recommend.selection import group_members

__all__ = [
    "BASELINES",
    "STRATEGIES",
    "GroupMenu",
    "GroupOptions",
    "evaluate_group_strategies",
    "group_members",
    "order_for_group",
    "serve_group_menu",
]
