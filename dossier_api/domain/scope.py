"""The scope of a credential bound to one dossier room: the OpenID token a room's widget
receives (and, later, a widget session exchanged for it) reads only the dossier of that room,
and only while its holder is a joined member of the room. Every refusal is audited."""

from __future__ import annotations

from sqlalchemy import select

from dossier_api.domain.access import Access, Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import MEMBERSHIPS, Dossier, DossierRoom, RoomActivity
from dossier_api.domain.service import DossierService


def require_room_scope(
    svc: DossierService, caller: Caller, dossier_id: str, room_id: str, action: str
) -> Access:
    """Allow ``caller`` on ``dossier_id`` only as seen from ``room_id``: the room must be one
    of the dossier's rooms and the caller must have joined it (the room history the
    appservice records). Raise a 403 ``ApiError`` (audited) otherwise."""
    with svc.tx() as session:
        dossier = session.get(Dossier, dossier_id)
        if dossier is None:
            raise ApiError(404, "M_NOT_FOUND", "dossier inconnu")
        access = svc._access(session, caller, dossier)
        room = session.scalar(select(DossierRoom).where(DossierRoom.room_id == room_id))
        membership = session.scalar(
            select(RoomActivity.kind)
            .where(
                RoomActivity.room_id == room_id,
                RoomActivity.subject == caller.user_id,
                RoomActivity.kind.in_(MEMBERSHIPS),
            )
            .order_by(RoomActivity.at.desc(), RoomActivity.event_id.desc())
            .limit(1)
        )
        if room is None or room.dossier_id != dossier_id:
            reason = "ce widget n'est pas celui d'une salle de ce dossier"
        elif membership != "join":
            reason = "vous n'êtes pas membre de la salle de ce dossier"
        else:
            reason = None
        if reason is not None:
            svc.audit_entry(session, dossier_id, access, action, False, "hors de la salle")
    if reason is not None:
        raise ApiError(403, "M_FORBIDDEN", f"Accès refusé : {reason}.")
    return access
