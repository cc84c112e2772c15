"""The console's federation peers: the allow list of the other homeservers admitted into
patient rooms (regional administrators only). The list is the file the care-circle module
reads (``maillon.shared.federation_peers``): a change is written there, audited with its
before and after, and every dossier's rooms are queued so that the appservice brings their
``m.room.server_acl`` to the new list."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from dossier_api.domain.access import Caller
from dossier_api.domain.core import Act, ApiError, ServiceCore, audit_change
from dossier_api.domain.directory import people_json
from dossier_api.domain.models import DossierRoom
from dossier_api.domain.rooms import ROOMS, enqueue
from maillon.shared.circle import SERVER_NAME_RE
from maillon.shared.clock import utcnow
from maillon.shared.federation_peers import Peer, changing_peers, read_peers, write_peers

FORBIDDEN = "Cette page est réservée aux administrateurs."
MAX_REASON = 500


def check_server(server: str, own_server: str) -> str:
    """A server name as the console accepts it (the field is named in the refusal)."""
    server = server.strip()
    if not server or len(server) > 255 or not SERVER_NAME_RE.match(server):
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            f"champ « serveur » : nom de serveur invalide « {server[:80]} » (attendu : un nom "
            "d'hôte, avec un port facultatif, par exemple matrix.autre-region.fr:8448)",
        )
    if server == own_server:
        raise ApiError(
            400, "M_INVALID_PARAM", "champ « serveur » : c'est le serveur de cette région"
        )
    return server


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ApiError(
            400, "M_INVALID_PARAM", "champ « motif » : dites pourquoi ce serveur est admis"
        )
    if len(reason) > MAX_REASON:
        raise ApiError(400, "M_INVALID_PARAM", f"champ « motif » : {MAX_REASON} caractères au plus")
    return reason


class FederationPeers(ServiceCore):
    """List, add and remove the federation peers (the console's page)."""

    def _peers_path(self) -> Path:
        path = self._peers.path
        if path is None:
            raise ApiError(
                409,
                "M_CONFLICT",
                "ce déploiement fixe ses serveurs partenaires dans homeserver.yaml "
                "(« peer_servers », sans « peers_file ») : la console ne peut pas les changer",
            )
        return path

    def _require_admin(self, caller: Caller) -> None:
        if not caller.is_admin:
            raise ApiError(403, "M_FORBIDDEN", FORBIDDEN)

    def federation_peers(self, caller: Caller) -> dict[str, Any]:
        """The peers, with who added them (name and profession) and when."""
        with self.acting(caller, "admin.federation.read") as act:
            self._require_admin(caller)
            peers = self._peers.peers(fresh=True)
            people = people_json(act.session, {p.added_by for p in peers if p.added_by})
            return {
                "server_name": self._server_name,
                "editable": self._peers.path is not None,
                "refresh_seconds": self._peers.refresh_seconds,
                "peers": [
                    {
                        "server": p.server,
                        "reason": p.reason,
                        "added_by": None
                        if p.added_by is None
                        else people.get(p.added_by, {"display_name": None, "profession": None}),
                        "added_at": p.added_at,
                    }
                    for p in peers
                ],
            }

    def _peers_file_lock(self) -> contextlib.AbstractContextManager[None]:
        return changing_peers(self._peers_path())

    def _current(self) -> tuple[Peer, ...]:
        """The file as it stands, read strictly: a change never overwrites a file that
        could not be read (which admits no other server until someone repairs it)."""
        try:
            return read_peers(self._peers_path())
        except (OSError, ValueError) as exc:
            raise ApiError(
                409,
                "M_CONFLICT",
                f"le fichier des serveurs partenaires est illisible ({type(exc).__name__}) : "
                "réparez-le ou recréez-le avant de le modifier",
            ) from exc

    def _change(self, act: Act, before: tuple[Peer, ...], after: tuple[Peer, ...]) -> None:
        """Write the list, audit the change, and queue every dossier's rooms (their ACL),
        those being created too (``createRoom`` may have read the list just before)."""
        audit_change(
            act, [p.server for p in before], [p.server for p in after], "serveurs partenaires"
        )
        for dossier_id in set(
            act.session.scalars(
                select(DossierRoom.dossier_id).where(
                    or_(
                        DossierRoom.room_id.is_not(None),
                        DossierRoom.creation_started_at.is_not(None),
                    )
                )
            )
        ):
            enqueue(act.session, dossier_id, ROOMS)
        act.session.flush()
        write_peers(self._peers_path(), after)
        self._peers.servers(fresh=True)

    def add_peer(self, caller: Caller, server: str, reason: str) -> None:
        with self.acting(caller, "admin.federation.add") as act, self._peers_file_lock():
            self._require_admin(caller)
            server = check_server(server, self._server_name)
            reason = check_reason(reason)
            before = self._current()
            if any(p.server == server for p in before):
                raise ApiError(
                    409, "M_CONFLICT", f"champ « serveur » : « {server} » est déjà partenaire"
                )
            added = Peer(server, reason, caller.user_id, utcnow().isoformat(timespec="seconds"))
            self._change(act, before, (*before, added))

    def remove_peer(self, caller: Caller, server: str) -> None:
        with self.acting(caller, "admin.federation.remove") as act, self._peers_file_lock():
            self._require_admin(caller)
            before = self._current()
            after = tuple(p for p in before if p.server != server)
            if after == before:
                raise ApiError(404, "M_NOT_FOUND", "champ « serveur » : serveur non partenaire")
            self._change(act, before, after)
