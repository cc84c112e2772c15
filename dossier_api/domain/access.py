"""Who may do what on a dossier (secret partagé): computed from the care circle, the
owning structure's staff, delegations and the administrator flag. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from dossier_api.domain.models import CircleMember, Delegation


@dataclass(frozen=True)
class Caller:
    """Who is acting: a Matrix user, through which authentication path."""

    user_id: str
    is_admin: bool
    via: str  # "token" or "openid"


@dataclass(frozen=True)
class Access:
    user_id: str
    basis: str  # coordinator, member, delegate, structure, admin, none
    on_behalf_of: str | None = None
    read: bool = False
    write: bool = False
    manage: bool = False  # circle, status of the dossier
    audit: bool = False

    @property
    def any(self) -> bool:
        return self.read


NONE = "none"


def _member_rights(user_id: str, entry: CircleMember, basis: str, behalf: str | None) -> Access:
    return Access(
        user_id,
        basis,
        behalf,
        read=True,
        write=True,
        manage=entry.coordinator,
        audit=entry.coordinator,
    )


def _ranked(access: Access) -> int:
    return (access.read, access.write, access.manage, access.audit).count(True)


def decide(
    user_id: str,
    circle: Iterable[CircleMember],
    now: dt.datetime,
    structure_staff: bool,
    delegations_to_user: Iterable[Delegation],
    is_admin: bool,
) -> Access:
    """The rights of ``user_id`` on one dossier, with the basis they rest on."""
    active = {m.user_id: m for m in circle if m.active(now)}
    own = active.get(user_id)
    if own is not None:
        basis = "coordinator" if own.coordinator else "member"
        return _member_rights(user_id, own, basis, None)
    best = Access(user_id, NONE)
    for delegation in delegations_to_user:
        if delegation.revoked_at is not None or delegation.until <= now:
            continue
        entry = active.get(delegation.from_user)
        if entry is not None:
            candidate = _member_rights(user_id, entry, "delegate", delegation.from_user)
            if _ranked(candidate) > _ranked(best):
                best = candidate
    if best.basis != NONE:
        return best
    if structure_staff:
        return Access(user_id, "structure", read=True)
    if is_admin:
        return Access(user_id, "admin", read=True, audit=True)
    return best
