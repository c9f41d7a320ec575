"""A seeded simulator of volunteer service: volunteers on Hangzhou's districts (with
coordinates), requests of the four kinds, a history of services taken the "grab" way, and
the truth of who accepts a dispatched request, so that dispatch is evaluated against it.

The truth: a volunteer accepts a request with probability
``sigmoid(a + b * willingness[kind] + c * skills held - d * km - e * recent hours
+ f * served this person before (弱势群体帮扶))``. Willingness per kind is hidden but shows
in the history (who served which kinds, and no-shows); eager volunteers grabbed many
requests, so their recent hours are high and they are tired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from recommend.checks import positive_int
from recommend.volunteer.geo import HANGZHOU
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["SKILLS", "VolunteerTruth", "VolunteerWorld", "simulate_volunteering"]

V = VolunteerColumns

#: Skills offered, by the kind of service they serve best.
SKILLS_BY_KIND: Final = (
    ("急救", "应急救援", "驾驶", "心理疏导"),
    ("秩序维护", "交通疏导", "活动组织", "摄影宣传"),
    ("助老陪护", "家政服务", "心理疏导", "辅导功课"),
    ("法律咨询", "医疗健康", "家电维修", "水电维修", "电脑维修", "辅导功课", "理发", "财税咨询"),
)
SKILLS: Final = tuple(dict.fromkeys(s for group in SKILLS_BY_KIND for s in group))
_CONTENT: Final = (
    ("突发汛情，急需志愿者协助转移群众", "山林火情扑救后勤保障", "暴雨积水，协助疏散和排涝"),
    ("大型赛事现场秩序维护", "社区文化节志愿服务", "场馆周边交通疏导", "主题党日活动保障"),
    ("独居老人定期上门探访陪护", "帮扶困难家庭孩子辅导功课", "残疾人日常生活照料"),
    ("居民需要{skill}志愿服务", "请懂{skill}的党员志愿者上门帮忙", "{skill}公益咨询"),
)
_WINDOWS: Final = (
    ("每天 18:00-21:00",),
    ("6 08:00-18:00", "7 08:00-18:00"),
    ("1 08:00-17:00", "2 08:00-17:00", "3 08:00-17:00", "4 08:00-17:00", "5 08:00-17:00"),
    ("每天 07:00-22:00",),
    (),
)
_WINDOW_P: Final = np.array([0.25, 0.25, 0.2, 0.2, 0.1])
_KIND_P: Final = np.array([0.08, 0.22, 0.4, 0.3])
_HOURS: Final = np.array([4.0, 4.0, 2.0, 1.5])
_DISTRICT_W: Final = np.array([12, 12, 11, 7, 12, 12, 6, 6, 5, 4, 2, 2, 2], dtype=float)
_KM_PER_DEG_LAT: Final = 111.0
_KM_PER_DEG_LON: Final = 96.0


@dataclass(frozen=True, eq=False)
class VolunteerTruth:
    """Hidden behaviour of the simulated volunteers (aligned with the volunteers table)."""

    ids: pd.Index
    willingness: np.ndarray  # (n, 4) in [0, 1]
    fatigue: np.ndarray  # (n,) per recent hour

    def acceptance(
        self,
        assignments: pd.DataFrame,
        requests: pd.DataFrame,
        volunteers: pd.DataFrame,
        services: pd.DataFrame,
        now: pd.Timestamp,
    ) -> np.ndarray:
        """The true probability that each assigned volunteer accepts (and shows up)."""
        if assignments.empty:
            return np.zeros(0)
        v = self.ids.get_indexer(assignments[V.VOLUNTEER])
        req = requests.set_index(V.REQUEST).loc[assignments[V.REQUEST]]
        kind = pd.Index(KINDS).get_indexer(req[V.KIND])
        held = [
            len(set(need) & set(have)) / len(need) if len(need) else 1.0
            for need, have in zip(
                req[V.SKILLS], volunteers[V.SKILLS].to_numpy(object)[v], strict=True
            )
        ]
        recent = services[
            (services[V.SERVED_AT] < now) & (services[V.SERVED_AT] >= now - pd.Timedelta(days=28))
        ]
        hours = recent[~recent[V.NO_SHOW]].groupby(V.VOLUNTEER)[V.HOURS].sum()
        recent_h = hours.reindex(assignments[V.VOLUNTEER]).fillna(0.0).to_numpy()
        # hours handed out in the same batch before this one tire too
        batch_h = (
            assignments.groupby(V.VOLUNTEER).cumcount().to_numpy() * assignments[V.HOURS].to_numpy()
        )
        pairs = set(
            zip(
                services.loc[~services[V.NO_SHOW], V.VOLUNTEER],
                services.loc[~services[V.NO_SHOW], V.PERSON],
                strict=True,
            )
        )
        cont = np.array(
            [(a, p) in pairs for a, p in zip(assignments[V.VOLUNTEER], req[V.PERSON], strict=True)],
            dtype=float,
        )
        km = assignments[V.DISTANCE_KM].to_numpy(float)
        logit = (
            -1.2
            + 3.0 * self.willingness[v, kind]
            + 1.5 * np.asarray(held)
            - 0.12 * km
            - self.fatigue[v] * (recent_h + batch_h)
            + 1.8 * cont * (kind == 2)
        )
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)


@dataclass(frozen=True, eq=False)
class VolunteerWorld:
    """Simulated volunteer tables, the truth behind them, and when dispatch starts."""

    volunteers: pd.DataFrame
    requests: pd.DataFrame
    services: pd.DataFrame
    truth: VolunteerTruth
    now: pd.Timestamp


def simulate_volunteering(
    n_volunteers: int = 3_000,
    n_requests: int = 600,
    *,
    days: int = 28,
    history_services: int | None = None,
    persons: int | None = None,
    simultaneous: bool = False,
    members: pd.DataFrame | None = None,
    start: str = "2025-07-07",
    seed: int = 0,
) -> VolunteerWorld:
    """A simulated volunteer platform.

    Parameters
    ----------
    n_volunteers, n_requests
        Registered volunteers (about 5 % branches sending several people) and requests.
    days
        Requests start over ``days`` days from ``start`` (dispatch time ``now``);
        ``simultaneous`` puts them all in the same two hours instead.
    history_services
        Past services in the 8 weeks before ``now`` (default ``2 * n_volunteers``), taken
        the "grab" way: eager volunteers took most.
    persons
        People helped by 弱势群体帮扶 requests, who ask again and again (default
        ``n_requests // 4``).
    members
        A ``members`` table (e.g. ``synthesize(...).members``): volunteers are drawn from
        its members and take their ``member_id``, ``org_id`` and district.
    """
    positive_int(n_volunteers, "n_volunteers")
    positive_int(n_requests, "n_requests")
    rng = np.random.default_rng(seed)
    now = pd.Timestamp(start)
    vol, truth = _volunteers(n_volunteers, members, rng)
    n_persons = persons or max(1, n_requests // 4)
    person_d = rng.choice(len(_DISTRICT_W), n_persons, p=_DISTRICT_W / _DISTRICT_W.sum())
    person_xy = _jitter(person_d, 2.5, rng)
    req = _requests(n_requests, days, simultaneous, now, person_d, person_xy, rng)
    n_hist = 2 * n_volunteers if history_services is None else history_services
    srv = _history(vol, truth, n_hist, now, person_d, rng)
    return VolunteerWorld(vol, req, srv, truth, now)


def _jitter(district: np.ndarray, km: float, rng: np.random.Generator) -> np.ndarray:
    lat = HANGZHOU.lat[district] + rng.normal(0, km, district.size) / _KM_PER_DEG_LAT
    lon = HANGZHOU.lon[district] + rng.normal(0, km, district.size) / _KM_PER_DEG_LON
    return np.column_stack([lat, lon])


def _volunteers(
    n: int, members: pd.DataFrame | None, rng: np.random.Generator
) -> tuple[pd.DataFrame, VolunteerTruth]:
    names = np.array(HANGZHOU.names, dtype=object)
    if members is not None:
        take = rng.choice(len(members), min(n, len(members)), replace=False)
        n = take.size
        district = HANGZHOU.codes(members["district"].to_numpy(object)[take].tolist(), "members")
        member_ids = members["member_id"].to_numpy(object)[take]
        org_ids = members["org_id"].to_numpy(object)[take]
    else:
        district = rng.choice(len(_DISTRICT_W), n, p=_DISTRICT_W / _DISTRICT_W.sum())
        member_ids = np.array([f"m{i:06d}" for i in range(n)], dtype=object)
        org_ids = np.array([f"o{i // 30:05d}" for i in range(n)], dtype=object)
    xy = _jitter(district, 3.0, rng)
    branch = rng.random(n) < 0.05
    # taste for kinds: a main kind, some interest in the others
    main = rng.choice(4, n, p=[0.15, 0.3, 0.3, 0.25])
    willing = rng.beta(1.5, 3.0, (n, 4))
    willing[np.arange(n), main] = rng.beta(4.0, 1.5, n)
    skills = []
    for i in range(n):
        own = rng.choice(SKILLS_BY_KIND[main[i]], rng.integers(1, 3), replace=False).tolist()
        if rng.random() < 0.3:
            own.append(str(rng.choice(SKILLS)))
        skills.append(sorted(set(own)))
    windows = [list(_WINDOWS[w]) for w in rng.choice(len(_WINDOWS), n, p=_WINDOW_P)]
    ids = np.array([f"v{i:06d}" for i in range(n)], dtype=object)
    description = ["擅长" + "、".join(s) + "，愿意为群众服务" for s in skills]
    frame = pd.DataFrame(
        {
            V.VOLUNTEER: ids,
            V.VOLUNTEER_KIND: np.where(branch, "branch", "member"),
            V.MEMBER: np.where(branch, None, member_ids),
            V.ORG: org_ids,
            V.SKILLS: skills,
            V.DESCRIPTION: description,
            V.DISTRICT: names[district],
            V.LAT: xy[:, 0].round(5),
            V.LON: xy[:, 1].round(5),
            V.AVAILABILITY: windows,
            V.WEEKLY_HOURS: rng.choice([4.0, 6.0, 8.0, 10.0, 16.0], n),
            V.FITNESS: rng.random(n) < 0.6,
            V.CAPACITY: np.where(branch, rng.integers(2, 6, n), 1),
        }
    )
    fatigue = rng.uniform(0.05, 0.2, n)
    return frame, VolunteerTruth(pd.Index(ids), willing, fatigue)


def _requests(
    n: int,
    days: int,
    simultaneous: bool,
    now: pd.Timestamp,
    person_d: np.ndarray,
    person_xy: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    kind = rng.choice(4, n, p=_KIND_P)
    district = rng.choice(len(_DISTRICT_W), n, p=_DISTRICT_W / _DISTRICT_W.sum())
    person = np.where(kind == 2, rng.integers(0, len(person_d), n), -1)
    district = np.where(person >= 0, person_d[np.maximum(person, 0)], district)
    xy = _jitter(district, 3.0, rng)
    xy[person >= 0] = person_xy[person[person >= 0]]
    if simultaneous:
        offset_h = rng.uniform(0, 2, n)
    else:
        day = rng.integers(0, days, n)
        offset_h = day * 24 + rng.choice([8, 9, 10, 14, 15, 18, 19], n)
    start = now + pd.to_timedelta(np.round(offset_h * 60), unit="min")
    hours = _HOURS[kind] * np.where(kind == 1, 1.0, 1.0)
    headcount = np.select(
        [kind == 0, kind == 1], [rng.integers(3, 9, n), rng.integers(2, 8, n)], default=1
    )
    skills, content = [], []
    for k in kind:
        options = SKILLS_BY_KIND[k]
        need = [] if (k == 1 and rng.random() < 0.5) else [str(rng.choice(options))]
        skills.append(need)
        text = str(rng.choice(_CONTENT[k]))
        content.append(text.format(skill=need[0] if need else "志愿"))
    posted = start - pd.to_timedelta(np.where(kind == 0, 1.0, rng.uniform(24, 96, n)), unit="h")
    names = np.array(HANGZHOU.names, dtype=object)
    return pd.DataFrame(
        {
            V.REQUEST: [f"r{i:06d}" for i in range(n)],
            V.KIND: np.array(KINDS, dtype=object)[kind],
            V.CONTENT: content,
            V.SKILLS: skills,
            V.DISTRICT: names[district],
            V.LAT: xy[:, 0].round(5),
            V.LON: xy[:, 1].round(5),
            V.START: start,
            V.END: start + pd.to_timedelta(hours, unit="h"),
            V.HEADCOUNT: headcount,
            V.URGENCY: np.where(kind == 0, 1.0, 0.0),
            V.REQUESTER_KIND: rng.choice(["resident", "organisation", "branch"], n),
            V.PERSON: [f"p{p:05d}" if p >= 0 else None for p in person],
            V.POSTED_AT: posted,
        }
    )


def _history(
    vol: pd.DataFrame,
    truth: VolunteerTruth,
    n: int,
    now: pd.Timestamp,
    person_d: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Past services taken the grab way: eager volunteers took most of them, mostly of
    the kinds they like; no-shows where willingness is low."""
    columns = [
        V.VOLUNTEER,
        V.REQUEST,
        V.KIND,
        V.SERVED_AT,
        V.HOURS,
        V.NO_SHOW,
        V.SKILLS,
        V.PERSON,
        V.DISTRICT,
    ]
    if n == 0:
        return pd.DataFrame({c: [] for c in columns})
    eager = rng.pareto(1.2, len(vol)) + 0.05
    who = rng.choice(len(vol), n, p=eager / eager.sum())
    w = truth.willingness[who] ** 2
    kind = (rng.random(n)[:, None] > np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)).sum(1)
    kind = np.minimum(kind, 3)
    skills = [[str(rng.choice(SKILLS_BY_KIND[k]))] for k in kind]
    served = now - pd.to_timedelta(rng.uniform(1, 56 * 24, n), unit="h")
    no_show = rng.random(n) > 0.55 + 0.45 * truth.willingness[who, kind]
    # 弱势群体帮扶 services go to people in the volunteer's district
    code = HANGZHOU.codes(vol[V.DISTRICT].to_numpy(object)[who].tolist(), "volunteers")
    person = []
    for k, d in zip(kind, code, strict=True):
        local = np.flatnonzero(person_d == d)
        person.append(f"p{int(rng.choice(local)):05d}" if k == 2 and local.size else None)
    return pd.DataFrame(
        {
            V.VOLUNTEER: vol[V.VOLUNTEER].to_numpy(object)[who],
            V.REQUEST: [f"h{i:06d}" for i in range(n)],
            V.KIND: np.array(KINDS, dtype=object)[kind],
            V.SERVED_AT: served,
            V.HOURS: np.where(no_show, 0.0, _HOURS[kind]),
            V.NO_SHOW: no_show,
            V.SKILLS: skills,
            V.PERSON: person,
            V.DISTRICT: vol[V.DISTRICT].to_numpy(object)[who],
        }
    )
