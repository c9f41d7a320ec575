"""Online experiments: did the members of an arm study more than those of the control?

:func:`analyse_experiment` takes what was served (``exposures``: one row per menu row shown,
with its ``arm``) and what members did afterwards (``outcomes``: events) and reports, per
arm, per member:

* **click-through** (``ctr``): exposed courses the member opened (a ``view`` of a course on
  their menu) over exposed courses, a ratio of sums with a delta-method interval;
* **starts**: courses opened (``view``), any course;
* **completions**: courses completed (``complete``);
* **study minutes**: per course the largest ``watch_seconds``, summed, in minutes;

each with a confidence interval; for every arm against the control the difference, its
interval and a two-sided z test (Welch, unequal variances: members are the unit, so
thousands per arm make the normal approximation sound); and a **sample-ratio mismatch**
check: a chi-square test of members per arm against the shares the experiment planned,
flagged below ``srm_alpha`` (a broken assignment or logging invalidates every difference).

Members are the unit of analysis: every member must be in exactly one arm. When both
tables carry ``timestamp``, only outcomes at or after the member's first exposure count.
:func:`log_experiment` writes the figures to MLflow (aggregates only, no ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from recommend.engine import Experiment
from recommend.errors import ConfigError, DataError
from recommend.schema import Columns as C
from recommend.tracking import ensure_experiment, log_batch, metric_key, mlflow_client, tracked_run

__all__ = ["METRICS", "ExperimentAnalysis", "analyse_experiment", "log_experiment", "power"]

#: The per-member metrics, in report order.
METRICS = ("ctr", "starts", "completions", "minutes")
ARM = "arm"


@dataclass(frozen=True)
class ExperimentAnalysis:
    """What :func:`analyse_experiment` found.

    Attributes
    ----------
    arms : DataFrame
        One row per arm: ``members``, ``exposures``, ``clicks`` and, per metric,
        ``<metric>``, ``<metric>_low``, ``<metric>_high``.
    tests : DataFrame
        One row per (arm, metric) against ``control``: ``control``, ``value``,
        ``control_value``, ``difference``, ``low``, ``high``, ``relative``, ``z``,
        ``p_value``, ``significant`` (at ``1 - confidence``).
    control : str
    confidence : float
    srm_p_value : float
        Chi-square test of members per arm against the planned shares.
    srm : bool
        ``srm_p_value < srm_alpha``: the split is not what was planned.
    """

    arms: pd.DataFrame
    tests: pd.DataFrame
    control: str
    confidence: float
    srm_p_value: float
    srm: bool

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow (``<arm>.<metric>``, ``<arm>.<metric>.p_value``...)."""
        out: dict[str, float] = {"srm_p_value": self.srm_p_value, "srm": float(self.srm)}
        for row in self.arms.itertuples(index=False):
            arm = str(row.arm)
            out[metric_key(f"{arm}.members")] = float(row.members)
            for metric in METRICS:
                out[metric_key(f"{arm}.{metric}")] = float(getattr(row, metric))
        for row in self.tests.itertuples(index=False):
            key = f"{row.arm}.{row.metric}"
            out[metric_key(f"{key}.difference")] = float(row.difference)
            out[metric_key(f"{key}.p_value")] = float(row.p_value)
        return {k: v for k, v in out.items() if np.isfinite(v)}


def _need(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{name} must be a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")


def _per_member(exposures: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per exposed member: arm, exposures, clicks, starts, completions, minutes."""
    shown = exposures[[C.MEMBER, C.COURSE, ARM]].drop_duplicates([C.MEMBER, C.COURSE])
    arms = exposures.groupby(C.MEMBER, sort=False)[ARM].nunique()
    if (arms > 1).any():
        raise DataError(
            f"exposures: {int((arms > 1).sum())} member(s) were served by more than one arm; "
            "members are the unit of the analysis and must stay in one arm"
        )
    members = exposures.drop_duplicates(C.MEMBER)[[C.MEMBER, ARM]].set_index(C.MEMBER)
    ev = outcomes[outcomes[C.MEMBER].isin(members.index)]
    if C.TIMESTAMP in exposures.columns and C.TIMESTAMP in ev.columns:
        first = pd.to_datetime(exposures[C.TIMESTAMP]).groupby(exposures[C.MEMBER]).min()
        ev = ev[
            pd.to_datetime(ev[C.TIMESTAMP]).to_numpy() >= first.reindex(ev[C.MEMBER]).to_numpy()
        ]
    views = ev.loc[ev[C.EVENT] == "view", [C.MEMBER, C.COURSE]].drop_duplicates()
    done = ev.loc[ev[C.EVENT] == "complete", [C.MEMBER, C.COURSE]].drop_duplicates()
    out = members.copy()
    out["exposures"] = shown.groupby(C.MEMBER).size()
    clicked = shown.merge(views, on=[C.MEMBER, C.COURSE], how="inner")
    out["clicks"] = clicked.groupby(C.MEMBER).size()
    out["starts"] = views.groupby(C.MEMBER).size()
    out["completions"] = done.groupby(C.MEMBER).size()
    if C.WATCH_SECONDS in ev.columns:
        watched = ev.groupby([C.MEMBER, C.COURSE])[C.WATCH_SECONDS].max()
        out["minutes"] = watched.groupby(level=0).sum() / 60.0
    else:
        out["minutes"] = 0.0
    return out.fillna(0.0).reset_index()


def _ratio(clicks: np.ndarray, shown: np.ndarray) -> tuple[float, float]:
    """Ratio of sums and its delta-method variance (members independent)."""
    n = clicks.size
    if n == 0 or shown.sum() == 0:
        return np.nan, np.nan
    r = clicks.sum() / shown.sum()
    if n < 2:
        return float(r), np.nan
    resid = clicks - r * shown
    return float(r), float(resid.var(ddof=1) / (n * shown.mean() ** 2))


def _mean(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    if n == 0:
        return np.nan, np.nan
    if n < 2:
        return float(values.mean()), np.nan
    return float(values.mean()), float(values.var(ddof=1) / n)


def _estimate(frame: pd.DataFrame, metric: str) -> tuple[float, float]:
    if metric == "ctr":
        return _ratio(frame["clicks"].to_numpy(float), frame["exposures"].to_numpy(float))
    return _mean(frame[metric].to_numpy(float))


def analyse_experiment(
    exposures: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    control: str | None = None,
    experiment: Experiment | None = None,
    confidence: float = 0.95,
    srm_alpha: float = 0.001,
) -> ExperimentAnalysis:
    """Per-arm figures of an online experiment, each arm against the control.

    Parameters
    ----------
    exposures : DataFrame
        ``member_id``, ``course_id``, ``arm`` (the menus served: ``experiment_menu`` or
        batch rows with ``arm``), optionally ``timestamp``.
    outcomes : DataFrame
        Events after serving: ``member_id``, ``course_id``, ``event``, optionally
        ``timestamp`` and ``watch_seconds``.
    control
        The control arm (default: the experiment's first arm, else the first in name
        order).
    experiment
        The experiment served (its planned shares for the sample-ratio check; equal shares
        over the arms seen without it).
    confidence
        Coverage of the intervals; ``1 - confidence`` is the test's level.
    srm_alpha
        The sample-ratio mismatch flag's level (strict: the check runs on every analysis).

    Raises
    ------
    DataError
        A table lacks a column, or a member is in more than one arm.
    ConfigError
        ``control`` is not an arm, or ``confidence``/``srm_alpha`` is not in (0, 1).
    """
    _need(exposures, "exposures", (C.MEMBER, C.COURSE, ARM))
    _need(outcomes, "outcomes", (C.MEMBER, C.COURSE, C.EVENT))
    for name, value in (("confidence", confidence), ("srm_alpha", srm_alpha)):
        if not 0.0 < float(value) < 1.0:
            raise ConfigError(f"{name}={value!r}; expected a number in (0, 1)")
    per = _per_member(exposures, outcomes)
    seen = sorted(per[ARM].astype(str).unique().tolist())
    arms = list(experiment.arms) if experiment is not None else seen
    strange = sorted(set(seen) - set(arms))
    if strange:
        raise DataError(f"exposures: arm(s) {strange} are not arms of the experiment {arms}")
    control = arms[0] if control is None else str(control)
    if control not in arms:
        raise ConfigError(f"control={control!r} is not an arm; arms: {arms}")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    per[ARM] = per[ARM].astype(str)
    groups = {arm: per[per[ARM] == arm] for arm in arms}

    rows: list[dict[str, Any]] = []
    estimates: dict[tuple[str, str], tuple[float, float]] = {}
    for arm, g in groups.items():
        row: dict[str, Any] = {
            ARM: arm,
            "members": len(g),
            "exposures": int(g["exposures"].sum()),
            "clicks": int(g["clicks"].sum()),
        }
        for metric in METRICS:
            value, var = _estimate(g, metric)
            estimates[arm, metric] = (value, var)
            half = z * np.sqrt(var) if np.isfinite(var) else np.nan
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = (
                value,
                value - half,
                value + half,
            )
        rows.append(row)
    table = pd.DataFrame(rows)

    tests: list[dict[str, Any]] = []
    for arm in arms:
        if arm == control:
            continue
        for metric in METRICS:
            value, var = estimates[arm, metric]
            base, base_var = estimates[control, metric]
            diff = value - base
            se = float(np.sqrt(var + base_var)) if np.isfinite(var + base_var) else np.nan
            stat = diff / se if se and np.isfinite(se) and se > 0 else np.nan
            p = float(2.0 * norm.sf(abs(stat))) if np.isfinite(stat) else np.nan
            tests.append(
                {
                    ARM: arm,
                    "metric": metric,
                    "control": control,
                    "value": value,
                    "control_value": base,
                    "difference": diff,
                    "low": diff - z * se,
                    "high": diff + z * se,
                    "relative": diff / base if base else np.nan,
                    "z": stat,
                    "p_value": p,
                    "significant": bool(np.isfinite(p) and p < 1.0 - confidence),
                }
            )

    counts = table["members"].to_numpy(float)
    shares = experiment.shares if experiment is not None else np.full(len(arms), 1.0 / len(arms))
    expected = shares * counts.sum()
    if counts.sum() > 0:
        stat = float((((counts - expected) ** 2) / expected).sum())
        srm_p = float(chi2.sf(stat, df=len(arms) - 1))
    else:
        srm_p = np.nan
    return ExperimentAnalysis(
        arms=table,
        tests=pd.DataFrame(tests),
        control=control,
        confidence=float(confidence),
        srm_p_value=srm_p,
        srm=bool(np.isfinite(srm_p) and srm_p < srm_alpha),
    )


def power(difference: float, sd: float, members_per_arm: int, alpha: float = 0.05) -> float:
    """Power of the two-sided z test of :func:`analyse_experiment` to find ``difference``
    in a per-member metric of standard deviation ``sd`` with this many members per arm."""
    if sd <= 0 or members_per_arm < 2:
        raise ConfigError("power needs sd > 0 and at least 2 members per arm")
    se = sd * np.sqrt(2.0 / members_per_arm)
    crit = norm.ppf(1.0 - alpha / 2.0)
    shift = abs(difference) / se
    return float(norm.sf(crit - shift) + norm.cdf(-crit - shift))


def log_experiment(
    analysis: ExperimentAnalysis,
    name: str,
    *,
    uri: str | None = None,
    experiment: Experiment | None = None,
) -> str:
    """Log an analysis to MLflow (experiment ``name``); returns the run id.

    Params: the control, the confidence and the experiment's arms, shares and salt;
    metrics: :meth:`ExperimentAnalysis.metrics`; the per-arm and test tables as CSV
    artifacts. Only aggregates: no member id reaches MLflow.
    """
    client = mlflow_client(uri)
    exp_id = ensure_experiment(client, name)
    params = {"control": analysis.control, "confidence": str(analysis.confidence)}
    if experiment is not None:
        params["arms"] = ",".join(experiment.arms)
        params["shares"] = ",".join(f"{s:.4f}" for s in experiment.shares)
        params["salt"] = experiment.salt
    with tracked_run(client, exp_id, run_name="online-experiment") as run_id:
        log_batch(client, run_id, params, analysis.metrics())
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            for label, frame in (("arms", analysis.arms), ("tests", analysis.tests)):
                path = Path(tmp) / f"{label}.csv"
                frame.to_csv(path, index=False)
                client.log_artifact(run_id, str(path), "experiment")
    return run_id
