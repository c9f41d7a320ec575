"""Member selection: who a group is, from ids, an org subtree or an attribute filter.

Group menus (``recommend.group``) and organiser insights (``recommend.insights``) select
members the same way through this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.data.dataset import age_band
from recommend.errors import ConfigError, DataError
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["MemberSpec", "describe", "filter_mask", "group_members", "members_table", "org_members"]

C = Columns

MemberSpec = Any  # list of member ids | org id | Mapping of attribute filters | callable


def group_members(
    model: Recommender, members: MemberSpec, *, member_table: pd.DataFrame | None = None
) -> np.ndarray:
    """Member ids of a group description.

    Parameters
    ----------
    model
        A fitted (or loaded) ``Recommender``: its training members table and orgs tree.
    members
        A list/array of member ids (kept as given, duplicates dropped); a single org id
        (``str`` or ``int``): the members of that org and of all orgs below it in the orgs
        tree (``parent_id``); a mapping of attribute filters, e.g. ``{"occupation":
        "retired", "mobile": True, "age_band": ["60-69", "70+"], "district": "萧山区"}``
        (a list means any of; ``age_band`` is derived from ``birth_year``); or a callable
        taking the members table and returning a boolean mask.
    member_table
        Members table to filter on; the model's training members by default (a loaded
        artifact keeps only ``member_id`` and ``org_id``, so attribute filters need this).

    Returns
    -------
    ndarray of object, shape (m,)

    Raises
    ------
    ConfigError
        A filter names a column the members table does not have.
    DataError
        The org id is unknown.
    """
    model.check_fitted()
    if isinstance(members, Mapping) or callable(members):
        table = members_table(model, member_table)
        mask = filter_mask(table, members, model.dataset_.now)
        return np.asarray(table[C.MEMBER].to_numpy(dtype=object)[mask], dtype=object)
    if isinstance(members, str | int | np.integer):
        return org_members(model, members, member_table)
    if isinstance(members, pd.DataFrame):
        raise ConfigError("members: pass a list of member ids, an org id or a filter mapping")
    ids = pd.unique(pd.Series(list(members), dtype=object)).astype(object)
    return np.asarray(ids, dtype=object)


def members_table(model: Recommender, given: pd.DataFrame | None) -> pd.DataFrame:
    """The members table to select from: ``given``, else the model's training members."""
    if given is not None:
        if C.MEMBER not in given.columns:
            raise ConfigError(f"member_table has no {C.MEMBER} column")
        return given
    table = model.dataset_.members
    if table is None:
        raise ConfigError(
            "the model has no members table: pass member_table= (CLI: --members-table FILE)"
        )
    return table


def filter_mask(table: pd.DataFrame, where: Any, now: pd.Timestamp) -> NDArray[np.bool_]:
    """Rows of ``table`` that pass an attribute filter (a mapping, see
    :func:`group_members`) or a callable returning a boolean mask.

    ``age_band`` is derived from ``birth_year`` at ``now``; values also match as text, so
    ``"true"`` or ``"1960"`` from a command line match booleans and integers.
    """
    if callable(where):
        mask = np.asarray(where(table), dtype=bool)
        if mask.shape != (len(table),):
            raise ConfigError(
                f"the member filter returned shape {mask.shape}; expected ({len(table)},)"
            )
        return mask
    mask = np.ones(len(table), dtype=bool)
    for key, wanted in where.items():
        if key == "age_band":
            if "birth_year" not in table.columns:
                raise ConfigError(
                    "filter age_band needs a birth_year column in the members table: pass "
                    "member_table= (CLI: --members-table FILE)"
                )
            values = pd.Series(age_band(table["birth_year"], pd.Timestamp(now).year))
        elif key in table.columns:
            values = table[key].reset_index(drop=True)
        else:
            raise ConfigError(
                f"filter {key}={wanted!r}: the members table has no column {key!r} (columns: "
                f"{sorted(table.columns)}); pass member_table= with member attributes "
                "(CLI: --members-table FILE)"
            )
        options = list(wanted) if isinstance(wanted, list | tuple | set | frozenset) else [wanted]
        # Compare as text too, so "true", "1960" from a command line match booleans/ints.
        text = {str(o).lower() for o in options}
        hit = values.isin(options).to_numpy() | values.astype(str).str.lower().isin(text).to_numpy()
        mask &= hit & values.notna().to_numpy()
    return mask


def org_members(model: Recommender, org: object, given: pd.DataFrame | None) -> np.ndarray:
    """Ids of the members of org ``org`` and of every org below it in the orgs tree."""
    table = given if given is not None else model.dataset_.members
    if table is None or C.ORG not in table.columns:
        raise ConfigError(
            f"org {org!r}: the members table has no {C.ORG} column; pass member_table= "
            "(CLI: --members-table FILE)"
        )
    orgs = model.dataset_.orgs
    wanted = {str(org)}
    if orgs is not None and C.ORG in orgs.columns and "parent_id" in orgs.columns:
        # Walk down the tree level by level: a branch, its general branch, its committee.
        parent = orgs["parent_id"].astype(str).to_numpy()
        child = orgs[C.ORG].astype(str).to_numpy()
        frontier = {str(org)}
        while frontier:
            below = set(child[np.isin(parent, list(frontier))].tolist()) - wanted
            wanted |= below
            frontier = below
        known_org = str(org) in set(child.tolist())
    else:
        known_org = False
    member_orgs = table[C.ORG].astype(str)
    mask = member_orgs.isin(wanted).to_numpy()
    if not known_org and not mask.any():
        raise DataError(f"org {org!r} is unknown: no such org_id in the orgs tree or members")
    return np.asarray(table[C.MEMBER].to_numpy(dtype=object)[mask], dtype=object)


def describe(members: MemberSpec) -> str:
    """How a group description reads in a message ("org 'b1'", "where ...")."""
    if isinstance(members, str | int | np.integer):
        return f"org {members!r}"
    if isinstance(members, Mapping):
        return "where " + ", ".join(f"{k}={v!r}" for k, v in members.items())
    if callable(members):
        return "of the member filter"
    return "of the given member ids"
