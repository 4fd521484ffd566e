"""The one staff-role check.

Four roles form a ladder, each allowed everything the one below it is:

    viewer < marketer < approver < admin

``viewer`` reads reports; ``marketer`` runs campaigns, audiences, pushes and channels;
``approver`` does everything a marketer does plus approving pushes and publishing
campaigns; ``admin`` everything, plus staff. ``manager`` (a customer manager of one
branch) stands outside the ladder: it may use only what an endpoint names in ``also``,
and that endpoint checks that the thing asked for is the manager's own (its channels).
"""

from __future__ import annotations

from collections.abc import Iterable

VIEWER, MARKETER, APPROVER, ADMIN, MANAGER = "viewer", "marketer", "approver", "admin", "manager"
LADDER = (VIEWER, MARKETER, APPROVER, ADMIN)
ROLES = (*LADDER, MANAGER)


def check_requirement(min_role: str, also: Iterable[str] = ()) -> None:
    """ValueError unless ``min_role`` is on the ladder and ``also`` names roles: a typo in a
    decorator fails when the module is imported, not when someone is refused."""
    if min_role not in LADDER:
        hint = " (it is outside the ladder: pass it in also=)" if min_role == MANAGER else ""
        raise ValueError(f"min_role must be one of {LADDER}, not {min_role!r}{hint}")
    unknown = set(also) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles in also: {sorted(unknown)}")


def allows(role: str, min_role: str, also: Iterable[str] = ()) -> bool:
    """Whether a staff member of ``role`` may do what needs ``min_role`` (or one of ``also``)."""
    if role in also:
        return True
    return role in LADDER and LADDER.index(role) >= LADDER.index(min_role)
