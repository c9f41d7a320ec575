"""Shortlists, kind rules and batch dispatch (``recommend.volunteer.dispatch`` and
``scoring``) on hand-made volunteers and requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import KM_LON, LON, T0, request, service, volunteer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend.errors import ConfigError
from recommend.volunteer import DispatchOptions, RequestBatch, VolunteerPool, dispatch, shortlist


def pool_of(*rows: dict, services: list[dict] | None = None) -> VolunteerPool:
    srv = pd.DataFrame(services) if services else None
    return VolunteerPool.build(pd.DataFrame(list(rows)), srv, now=T0 - pd.Timedelta(hours=1))


def ids(frame: pd.DataFrame) -> list[str]:
    return frame["volunteer_id"].tolist()


# ---- kind rules in the shortlist --------------------------------------------------------------


def test_skill_match_dominates_professional_help() -> None:
    pool = pool_of(
        volunteer(1, km=0.5),
        volunteer(2, km=8.0, skills=["法律咨询"]),
        volunteer(3, km=3.0, skills=["家电维修"]),
    )
    req = pd.DataFrame(
        [request(1, kind="专业技能互助", skills=["法律咨询"], content="租房合同纠纷")]
    )
    out = shortlist(pool, req, n=5)
    assert ids(out) == ["v2"]  # only holders of the skill, however near the others are
    assert "具备所需技能：法律咨询" in out.loc[0, "reason"]


def test_emergency_takes_the_nearest_fit_volunteers() -> None:
    pool = pool_of(
        volunteer(1, km=6.0),
        volunteer(2, km=0.5),
        volunteer(3, km=0.2, fitness=False),
        volunteer(4, km=2.0),
    )
    out = shortlist(pool, pd.DataFrame([request(1, kind="应急救助", headcount=3)]), n=5)
    assert ids(out) == ["v2", "v4", "v1"]  # v3 is not fit for physical work
    assert out["distance_km"].is_monotonic_increasing
    assert "距离约0.5公里" in out.loc[0, "reason"]


def test_support_for_vulnerable_people_keeps_the_same_volunteer() -> None:
    history = [service("v1", 1, kind="弱势群体帮扶", person_id="p7", days_ago=20)]
    pool = pool_of(volunteer(1, km=2.5), volunteer(2, km=0.5), services=history)
    req = pd.DataFrame([request(1, kind="弱势群体帮扶", person_id="p7")])
    out = shortlist(pool, req, n=2)
    assert ids(out) == ["v1", "v2"]
    assert "曾服务过这位群众" in out.loc[0, "reason"]
    other = shortlist(pool, req.assign(person_id="p8"), n=2)
    assert ids(other) == ["v2", "v1"]  # for someone else, the nearer one


def test_public_service_needs_the_whole_shift_in_the_volunteers_hours() -> None:
    pool = pool_of(
        volunteer(1, availability=["1 09:00-10:00"]),
        volunteer(2, availability=["1 08:00-12:00"]),
        volunteer(3),
    )
    out = shortlist(pool, pd.DataFrame([request(1, kind="公共服务", hours=2)]), n=5)
    assert sorted(ids(out)) == ["v2", "v3"]  # v1 has only the first of the two hours


def test_recent_hours_lower_the_rank_and_the_weekly_cap_excludes() -> None:
    history = [service("v1", i, hours=3.0, days_ago=10 + i) for i in range(4)]
    pool = pool_of(
        volunteer(1, km=1.0),
        volunteer(2, km=1.0),
        volunteer(3, km=1.0, weekly_hours=4),
        services=[*history, service("v3", 9, hours=3.0, days_ago=2)],
    )
    out = shortlist(pool, pd.DataFrame([request(1, hours=2)]), n=5)
    assert ids(out) == ["v2", "v1"]  # v3 would pass its 4 hours this week
    assert out.loc[0, "score"] > out.loc[1, "score"]


# ---- bad input and unfillable requests --------------------------------------------------------


def test_no_feasible_volunteer_gives_an_empty_shortlist_with_why() -> None:
    pool = pool_of(volunteer(1, km=30.0))
    out = shortlist(pool, pd.DataFrame([request(1, kind="弱势群体帮扶")]), n=5)
    assert out.empty and out.attrs["why"] == "too_far"
    assert out.attrs["why_text"] == "10公里内没有具备所需技能或条件的志愿者"


def test_unknown_skill_is_reported() -> None:
    pool = pool_of(volunteer(1, skills=["急救"]))
    req = pd.DataFrame([request(1, kind="专业技能互助", skills=["修飞机"])])
    result = dispatch(pool, req)
    assert result.assignments.empty
    row = result.unfilled.iloc[0]
    assert row["why"] == "unknown_skill" and row["why_text"] == "没有志愿者登记技能「修飞机」"


def test_headcount_above_supply_is_filled_as_far_as_it_goes() -> None:
    pool = pool_of(*(volunteer(i) for i in range(3)))
    result = dispatch(pool, pd.DataFrame([request(1, headcount=5)]))
    assert len(result.assignments) == 3
    row = result.unfilled.iloc[0]
    assert (row["needed"], row["assigned"], row["missing"], row["why"]) == (5, 3, 2, "short_supply")
    assert row["why_text"] == "需要5人，符合条件的志愿者只有3人"
    assert result.fill_rate == pytest.approx(3 / 5)


def test_overlapping_shifts_never_share_a_volunteer() -> None:
    pool = pool_of(volunteer(1))
    later = T0 + pd.Timedelta(hours=1)
    overlapping = pd.DataFrame([request(1), request(2, start=later)])
    result = dispatch(pool, overlapping)
    assert len(result.assignments) == 1
    assert result.unfilled["why"].tolist() == ["taken"]
    assert result.unfilled["why_text"].iloc[0] == "合适的志愿者已派往同一时段的其他需求"
    apart = pd.DataFrame([request(1), request(2, start=T0 + pd.Timedelta(hours=3))])
    both = dispatch(pool, apart)
    assert both.assignments["volunteer_id"].tolist() == ["v1", "v1"] and both.unfilled.empty


def test_weekly_cap_counts_the_hours_handed_out_in_the_same_dispatch() -> None:
    pool = pool_of(volunteer(1, weekly_hours=3))
    apart = pd.DataFrame([request(1), request(2, start=T0 + pd.Timedelta(hours=3))])
    result = dispatch(pool, apart)
    assert len(result.assignments) == 1 and result.unfilled["why"].tolist() == ["at_cap"]


def test_requests_waiting_for_approval_are_not_dispatched() -> None:
    pool = pool_of(volunteer(1))
    result = dispatch(pool, pd.DataFrame([request(1, approved=False)]))
    assert result.assignments.empty and result.unfilled["why"].tolist() == ["not_approved"]


# ---- the optimiser ----------------------------------------------------------------------------


def test_emergencies_are_served_first() -> None:
    pool = pool_of(volunteer(1))
    both = pd.DataFrame([request(1, kind="公共服务", urgency=0.0), request(2, kind="应急救助")])
    result = dispatch(pool, both)
    assert result.assignments["request_id"].tolist() == ["r2"]


def test_matching_fills_what_best_first_greedy_leaves_empty() -> None:
    # v1 suits both requests best, v2 only the first; best-first greedy gives v1 to r1 and
    # leaves r2 empty, the matching sends v2 to r1 and v1 to r2.
    pool = pool_of(
        volunteer(1, km=0.5, skills=["法律咨询", "财税咨询"], description="执业律师"),
        volunteer(2, km=20.0, skills=["法律咨询"]),
    )
    west = LON - 10.0 / KM_LON  # r2 is 10 km west: v1 suits r1 better than r2
    reqs = pd.DataFrame(
        [
            request(1, kind="专业技能互助", skills=["法律咨询"], content="找律师"),
            request(2, kind="专业技能互助", skills=["财税咨询"], lon=west),
        ]
    )
    result = dispatch(pool, reqs)
    assert result.solver == "matching"
    pairs = dict(
        zip(result.assignments["request_id"], result.assignments["volunteer_id"], strict=False)
    )
    assert pairs == {"r1": "v2", "r2": "v1"}
    # with the optimiser's time used up by an earlier group, the pair is filled greedily
    earlier = request(0, kind="专业技能互助", skills=["法律咨询"], start=T0 - pd.Timedelta(hours=5))
    both = pd.concat([pd.DataFrame([earlier]), reqs], ignore_index=True)
    greedy = dispatch(pool, both, options=DispatchOptions(time_limit_s=1e-9))
    assert greedy.solver == "matching+greedy"
    assert sorted(greedy.assignments["request_id"]) == ["r0", "r1"]


def test_a_branch_sends_several_people() -> None:
    pool = pool_of(volunteer(1, volunteer_kind="branch", capacity=3), volunteer(2, km=9.0))
    result = dispatch(pool, pd.DataFrame([request(1, headcount=4)]))
    assert sorted(result.assignments["volunteer_id"]) == ["v1", "v1", "v1", "v2"]


def test_baselines_respect_the_same_limits() -> None:
    pool = pool_of(volunteer(1, km=0.5), volunteer(2, km=3.0), volunteer(3, km=30.0))
    req = pd.DataFrame([request(1, headcount=1)])
    nearest = dispatch(pool, req, policy="nearest")
    assert nearest.assignments["volunteer_id"].tolist() == ["v1"]
    randoms = {
        dispatch(pool, req, policy="random", seed=s).assignments["volunteer_id"].iloc[0]
        for s in range(20)
    }
    assert randoms == {"v1", "v2"}  # never the one 30 km away
    with pytest.raises(ConfigError, match="policy"):
        dispatch(pool, req, policy="grab")  # type: ignore[arg-type]


def test_dispatch_is_deterministic_and_takes_a_prebuilt_batch() -> None:
    pool = pool_of(*(volunteer(i, km=0.3 * i) for i in range(12)))
    reqs = pd.DataFrame(
        [request(j, headcount=2, start=T0 + pd.Timedelta(minutes=30 * j)) for j in range(6)]
    )
    batch = RequestBatch.build(reqs, pool)
    a, b = dispatch(pool, reqs), dispatch(pool, batch)
    pd.testing.assert_frame_equal(a.assignments, b.assignments)
    assert a.assignments.groupby("request_id").size().eq(2).all()
    # a volunteer serves once among overlapping requests
    starts = a.assignments.merge(reqs[["request_id", "start"]], on="request_id")
    for _, rows in starts.groupby("volunteer_id"):
        times = np.sort(rows["start"].to_numpy())
        assert (np.diff(times) >= np.timedelta64(2, "h")).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 6))
def test_dispatch_invariants_on_random_instances(seed: int, n_vol: int, n_req: int) -> None:
    rng = np.random.default_rng(seed)
    kinds = ["公共服务", "弱势群体帮扶", "专业技能互助"]
    skills = ["法律咨询", "急救", "理发"]
    vols = pd.DataFrame(
        [
            volunteer(
                i,
                km=float(rng.uniform(0, 12)),
                weekly_hours=float(rng.choice([2, 4, 40])),
                skills=list(rng.choice(skills, rng.integers(0, 3), replace=False)),
            )
            for i in range(n_vol)
        ]
    )
    reqs = pd.DataFrame(
        [
            request(
                j,
                kind=str(rng.choice(kinds)),
                headcount=int(rng.integers(1, 4)),
                skills=[str(rng.choice(skills))],
                start=T0 + pd.Timedelta(minutes=int(m)),
            )
            for j, m in enumerate(rng.integers(0, 90, n_req))
        ]
    )  # every request overlaps every other: one group, one matching
    pool = VolunteerPool.build(vols, None, now=T0 - pd.Timedelta(hours=1))
    best = dispatch(pool, reqs)
    asg = best.assignments
    # never more than the headcount, never one volunteer twice at the same time
    per_request = asg.groupby("request_id").size()
    needed = reqs.set_index("request_id")["headcount"]
    assert (per_request <= needed.reindex(per_request.index)).all()
    assert not asg["volunteer_id"].duplicated().any()
    # every hard limit holds: distance, weekly cap
    limits = {"公共服务": 20.0, "弱势群体帮扶": 10.0, "专业技能互助": 40.0}
    assert (asg["distance_km"] <= asg["kind"].map(limits) + 1e-6).all()
    cap = vols.set_index("volunteer_id")["weekly_hours"]
    assert (asg["hours"] <= cap.reindex(asg["volunteer_id"]).to_numpy() + 1e-9).all()
    # and the matching fills at least as many places as either greedy baseline
    for policy in ("nearest", "random"):
        other = dispatch(pool, reqs, policy=policy, seed=seed)  # type: ignore[arg-type]
        assert len(asg) >= len(other.assignments)
    missing = best.unfilled.set_index("request_id")["missing"]
    assert (needed.reindex(missing.index) - missing == per_request.reindex(missing.index,
            fill_value=0)).all()  # fmt: skip


def test_history_learns_who_takes_which_kind_from_similar_volunteers() -> None:
    # v3 and v4 served both 公共服务 and 弱势群体帮扶; v1 only 公共服务, v2 only 专业技能互助:
    # for a 弱势群体帮扶 request the collaborative signal puts v1 (like v3, v4) above v2.
    old = {"days_ago": 40.0}  # outside the fairness window
    history = [
        service("v1", 1, kind="公共服务", **old),
        service("v2", 2, kind="专业技能互助", **old),
        *(service(v, j, kind=k, **old) for v, j in (("v3", 3), ("v4", 5))
          for k in ("公共服务", "弱势群体帮扶")),
    ]  # fmt: skip
    far = {"km": 9.0}
    pool = pool_of(volunteer(1), volunteer(2), volunteer(3, **far), volunteer(4, **far),
                   services=history)  # fmt: skip
    out = shortlist(pool, pd.DataFrame([request(1, kind="弱势群体帮扶")]), n=2)
    assert ids(out) == ["v1", "v2"]
    assert out.loc[0, "score"] > out.loc[1, "score"]


def test_emergencies_ignore_weekly_windows() -> None:
    pool = pool_of(volunteer(1, availability=["6 09:00-12:00"]))  # Saturdays only
    out = shortlist(pool, pd.DataFrame([request(1, kind="应急救助")]), n=3)  # a Monday
    assert ids(out) == ["v1"]
    assert shortlist(pool, pd.DataFrame([request(1, kind="公共服务")]), n=3).empty
