"""Pro Santé Connect login (OpenID Connect, ``oidc_providers`` of homeserver.yaml): the
user-mapping provider that binds the Matrix account to the national directory's entry.

The professional's national id comes from PSC's ``SubjectNameID`` claim ("8" + RPPS, or
"0" + ADELI; ``preferred_username`` carries the same), beside ``SubjectRefPro`` (the
exercises: ``exercices[].codeProfession``, ``nomDexercice``, ``activities[]``...) and
``otherIds`` — the userinfo as PSC's own code models it (github.com/prosanteconnect/
psc-context-sharing-api, model/prosanteconnect: UserInfos, SubjectRefPro, Practice,
Activity, AlternativeIdentifier; PSC test userinfos read like ``"SubjectNameID":
"899700427885"``, ``"otherIds": [{"identifiant": …, "origine": "RPPS"}]``).

Synapse asks this provider once, for a new account: an identity without a listed entry in
the national directory imported by Maillon is refused, with a page that says why; an RPPS
that already has a Maillon account is refused too (log in with its password); else the
account is named after the person (``prenom.nom``, a number added when taken) and entered
in Maillon's directory with its RPPS, profession and MSSanté address before Synapse
creates it. One database read per login, none per event; every failure refuses the login
(fails closed) and is logged."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from maillon.shared.circle import (
    DIRECTORY_ALIAS_LOCALPART,
    DIRECTORY_EVENT,
    DirectoryEntry,
    user_state_key,
)
from maillon.shared.store import make_engine
from maillon.shared.text import localpart_of
from synapse_modules.synapse_private import MappingException

log = logging.getLogger(__name__)

NATIONAL_RE = re.compile(r"^(8[0-9]{11}|0[0-9][0-9AB][0-9]{7})$")
UNKNOWN = (
    "Votre identité Pro Santé Connect (n° {number}) n'est pas dans l'annuaire national des "
    "professionnels de santé importé par Maillon : aucun compte ne peut lui être associé. "
    "Adressez-vous au coordinateur de votre structure."
)
EXISTING = (
    "Un compte Maillon existe déjà pour votre numéro {number} : connectez-vous avec son "
    "identifiant et son mot de passe."
)
UNAVAILABLE = "Connexion Pro Santé Connect impossible pour le moment : réessayez plus tard."


@dataclass(frozen=True)
class PscMappingConfig:
    database_url: str
    appservice_user: str  # Maillon's service user: the writer of the directory room


@dataclass(frozen=True)
class Listed:
    national_id: str
    display_name: str
    profession: str
    mailbox: str | None
    account: str | None  # the Maillon account already bound to this number


def national_id_of(userinfo: Any) -> str:
    for claim in ("SubjectNameID", "preferred_username"):
        value = userinfo.get(claim)
        if isinstance(value, str) and NATIONAL_RE.match(value):
            return value
    raise MappingException(
        "Pro Santé Connect n'a pas transmis de numéro RPPS ou ADELI (SubjectNameID)."
    )


def _mailbox(data: Any) -> str | None:
    boxes = json.loads(data) if isinstance(data, str) else data or {}
    found = sorted((kind != "PER", address) for address, kind in boxes.get("mailboxes", []))
    return found[0][1] if found else None


class ProSanteConnectMapping:
    """Synapse's OIDC user-mapping provider interface (``parse_config``,
    ``get_remote_user_id``, ``map_user_attributes``, ``get_extra_attributes``)."""

    def __init__(self, config: PscMappingConfig, module_api: Any) -> None:
        self._config = config
        self._api = module_api
        self._engine: Engine | None = None

    @staticmethod
    def parse_config(config: dict[str, Any]) -> PscMappingConfig:
        url, writer = config.get("database_url"), config.get("appservice_user")
        if not isinstance(url, str) or not url:
            raise ValueError("user_mapping_provider.config.database_url : adresse de la base")
        if not isinstance(writer, str) or not writer.startswith("@"):
            raise ValueError("user_mapping_provider.config.appservice_user : @utilisateur:serveur")
        return PscMappingConfig(url, writer)

    def get_remote_user_id(self, userinfo: Any) -> str:
        return national_id_of(userinfo)

    def _store(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self._config.database_url, create_tables=False)
        return self._engine

    def _lookup(self, national_id: str) -> Listed | None:
        with self._store().connect() as conn:
            row = conn.execute(
                text(
                    "SELECT e.first_name, e.last_name, e.profession, e.id_type, e.identifier, "
                    "m.data FROM directory_entries e LEFT JOIN directory_mailboxes m "
                    "ON m.national_id = e.national_id AND m.listed = :yes "
                    "WHERE e.national_id = :national AND e.listed = :yes"
                ),
                {"national": national_id, "yes": True},
            ).first()
            if row is None:
                return None
            column = "rpps" if row.id_type == "8" else "adeli"
            account = conn.execute(
                text(f"SELECT user_id FROM professionals WHERE {column} = :number"),  # noqa: S608
                {"number": row.identifier},
            ).scalar()
        name = f"{row.first_name} {row.last_name}".strip()
        return Listed(national_id, name, row.profession, _mailbox(row.data), account)

    def _bind(self, user_id: str, entry: Listed) -> None:
        """Enter the account in Maillon's directory (a row left by a login that never
        created its account is replaced)."""
        column = "rpps" if entry.national_id.startswith("8") else "adeli"
        number = entry.national_id[1:]
        with self._store().begin() as conn:
            conn.execute(
                text(f"DELETE FROM professionals WHERE user_id = :user OR {column} = :number"),  # noqa: S608
                {"user": user_id, "number": number},
            )
            conn.execute(
                text(
                    f"INSERT INTO professionals (user_id, profession, {column}, mssante, "  # noqa: S608
                    "display_name) VALUES (:user, :profession, :number, :mailbox, :name)"
                ),
                {
                    "user": user_id,
                    "profession": entry.profession[:120],
                    "number": number,
                    "mailbox": entry.mailbox,
                    "name": entry.display_name[:200],
                },
            )

    async def map_user_attributes(self, userinfo: Any, token: Any, failures: int) -> dict[str, Any]:
        national_id = national_id_of(userinfo)
        try:
            entry = await self._api.defer_to_thread(self._lookup, national_id)
            if entry is None:
                log.info("Pro Santé Connect login refused: no directory entry")
                raise MappingException(UNKNOWN.format(number=national_id[1:]))
            if entry.account is not None and await self._api.check_user_exists(entry.account):
                raise MappingException(EXISTING.format(number=national_id[1:]))
            base = localpart_of(entry.display_name)
            localpart = base if failures == 0 else f"{base}{failures + 1}"
            user_id = self._api.get_qualified_user_id(localpart)
            if not await self._api.check_user_exists(user_id):
                await self._api.defer_to_thread(self._bind, user_id, entry)
                await self._publish(user_id, entry)
        except MappingException:
            raise
        except Exception as exc:  # fail closed: no account without its directory binding
            log.error("Pro Santé Connect mapping failed: %s", type(exc).__name__)
            raise MappingException(UNAVAILABLE) from exc
        return {
            "localpart": localpart,
            "confirm_localpart": False,
            "display_name": entry.display_name,
            "picture": None,
            "emails": [],
        }

    async def _publish(self, user_id: str, entry: Listed) -> None:
        """The entry in the directory room, as ``maillon user add`` publishes it, so the
        care-circle module knows the account for invites made from a Matrix client."""
        alias = f"#{DIRECTORY_ALIAS_LOCALPART}:{self._api.server_name}"
        room_id, _ = await self._api.lookup_room_alias(alias)
        number = entry.national_id[1:]
        rpps = number if entry.national_id.startswith("8") else None
        adeli = None if rpps else number
        published = DirectoryEntry(user_id, entry.profession, rpps, adeli, None, entry.mailbox)
        await self._api.create_and_send_event_into_room(
            {
                "type": DIRECTORY_EVENT,
                "room_id": room_id,
                "sender": self._config.appservice_user,
                "state_key": user_state_key(user_id),
                "content": published.to_content(),
            }
        )

    async def get_extra_attributes(self, userinfo: Any, token: Any) -> dict[str, Any]:
        return {}
