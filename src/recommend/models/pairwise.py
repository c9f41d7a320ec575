"""The pairwise (BPR) solves of fold-in: one member's vector, or one new course's vector
and bias, by damped Newton steps on the BPR objective with the other side fixed."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

__all__ = [
    "BPR_COURSE_PAIRS",
    "BPR_FOLD_IN_ITERATIONS",
    "BPR_FOLD_IN_NEGATIVES",
    "bpr_member_solve",
    "course_logistic_solve",
    "sample_negatives",
]

#: Negatives drawn (uniformly, outside the history) for a BPR fold-in.
BPR_FOLD_IN_NEGATIVES = 128
#: Newton iterations of the BPR fold-in: a small concave problem, and a ranking does not
#: need the optimum to many digits (more steps changed recall@10 by < 0.005 on the sample).
BPR_FOLD_IN_ITERATIONS = 4
#: Random courses each learner of a new course is asked to rank below it (BPR).
BPR_COURSE_PAIRS = 16


def course_logistic_solve(
    x_pos: np.ndarray,
    off_pos: np.ndarray,
    x_neg: np.ndarray,
    off_neg: np.ndarray,
    prior: np.ndarray,
    l2: float,
) -> np.ndarray:
    """``w = [y, b]`` maximising the mean ``log σ`` of the learners' pairs (margin
    ``x·y + b + off_pos``, (P, J)) and of the other members' pairs (margin
    ``off_neg − x·y − b``, (N,)), each group weighing one half, minus
    ``(l2/2)|w − prior|²``. Damped Newton from ``prior``; returns (f + 1,) float64."""
    f = prior.size - 1
    zp = np.hstack([x_pos, np.ones((x_pos.shape[0], 1))])
    zn = np.hstack([x_neg, np.ones((x_neg.shape[0], 1))])
    n_pos, n_neg = max(off_pos.size, 1), max(off_neg.size, 1)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        mp = (zp @ w)[:, None] + off_pos
        mn = off_neg - zn @ w
        value = -log_expit(mp).sum() / n_pos - log_expit(mn).sum() / n_neg
        return float(value + 0.5 * l2 * np.sum((w - prior) ** 2)), mp, mn

    w = prior.astype(np.float64).copy()
    current, mp, mn = loss(w)
    for _ in range(8):
        gp, gn = expit(-mp), expit(-mn)
        grad = -zp.T @ gp.sum(axis=1) / n_pos + zn.T @ gn / n_neg + l2 * (w - prior)
        hp, hn = (gp * (1 - gp)).sum(axis=1), gn * (1 - gn)
        hess = (zp.T * hp) @ zp / n_pos + (zn.T * hn) @ zn / n_neg + l2 * np.eye(f + 1)
        step = np.linalg.solve(hess, grad)
        for _ in range(20):
            value, cand_p, cand_n = loss(w - step)
            if value <= current:
                break
            step = step / 2
        else:
            break
        converged = current - value < 1e-9 * max(1.0, abs(current))
        w, current, mp, mn = w - step, value, cand_p, cand_n
        if converged:
            break
    return w


def sample_negatives(
    rng: np.random.Generator, n_courses: int, positives: np.ndarray, n: int
) -> np.ndarray:
    """About ``n`` course indices drawn uniformly outside ``positives`` (sorted, unique),
    int64; all of them when there are no more than ``n``."""
    if n_courses - positives.size <= n:
        return np.setdiff1d(np.arange(n_courses, dtype=np.int64), positives)
    draws = rng.integers(0, n_courses, size=n + positives.size)
    return draws[~np.isin(draws, positives)][:n].astype(np.int64)


def bpr_member_solve(
    course_factors: np.ndarray,
    course_bias: np.ndarray | None,
    positives: np.ndarray,
    negatives: np.ndarray,
    l2: float,
) -> np.ndarray:
    """Member vector maximising ``mean_(i,j) log σ(s_i − s_j) − (l2/2)|x|^2``.

    ``s = Y x + b``; ``i`` over ``positives`` (P,), ``j`` over ``negatives`` (N,), all
    pairs. Damped Newton from ``x = 0``: the gradient and Hessian need only the (P, N)
    matrix of pair terms, never the (P*N, f) pair differences. Returns (f,) float32.
    """
    qp = course_factors[positives].astype(np.float64)
    qn = course_factors[negatives].astype(np.float64)
    f = qp.shape[1]
    bias = np.zeros(0) if course_bias is None else course_bias.astype(np.float64)
    bp = bias[positives] if bias.size else np.zeros(positives.size)
    bn = bias[negatives] if bias.size else np.zeros(negatives.size)
    pairs = float(positives.size * negatives.size)

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        margin = (qp @ x + bp)[:, None] - (qn @ x + bn)[None, :]
        return float(-log_expit(margin).sum() / pairs + 0.5 * l2 * x @ x), margin

    x = np.zeros(f)
    current, margin = loss(x)
    for _ in range(BPR_FOLD_IN_ITERATIONS):
        g = expit(-margin)  # -d loss / d margin, per pair
        grad = -(qp.T @ g.sum(axis=1) - qn.T @ g.sum(axis=0)) / pairs + l2 * x
        h = g * (1.0 - g)  # d2 loss / d margin2, per pair
        cross = qp.T @ h @ qn
        hess = (
            (qp.T * h.sum(axis=1)) @ qp + (qn.T * h.sum(axis=0)) @ qn - cross - cross.T
        ) / pairs + l2 * np.eye(f)
        step = np.linalg.solve(hess, grad)
        # Halve a full Newton step that overshoots (far from the optimum).
        for _ in range(20):
            value, candidate_margin = loss(x - step)
            if value <= current:
                break
            step = step / 2
        else:
            break
        converged = current - value < 1e-9 * max(1.0, abs(current))
        x, current, margin = x - step, value, candidate_margin
        if converged:
            break
    return x.astype(np.float32)
