"""Accounts for professionals of the national directory who have none yet.

- **Invitation**: a coordinator adds a directory entry without an account to a care circle.
  The entry is *pending*: no circle row exists, so neither the dossier, its room nor the
  care-circle module gives that person anything. Maillon mails, through the MSSanté relay
  (the durable outbox), a single-use link to the MSSanté address the directory lists for
  that RPPS; the mail names the inviter and their structure, never the patient. Following
  the link, the professional gives their RPPS (it must be the invited one) and a password:
  the account is created on the homeserver (shared-secret registration, as ``maillon user
  add`` does), bound to the directory entry, and the circle entry is written; the appservice
  then invites them into the patient room. The coordinator sees the invitation pending and
  may cancel it.
- **Self-enrolment**: a professional gives their RPPS; Maillon mails a code to the MSSanté
  address the directory lists for it (the proof that they hold that mailbox); with the
  code, the account is created bound to the entry. Requests are limited per RPPS and per
  source address.

Only a digest of a link's secret or of a code is stored, compared in constant time; the
row's id in the link finds it. Limits and lifetimes: ``enrolment`` in maillon.yaml."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dossier_api.domain import circle_members
from dossier_api.domain.access import Access, Caller
from dossier_api.domain.core import ApiError, ServiceCore, _iso
from dossier_api.domain.mail.models import MailOutbox
from dossier_api.domain.mail.outbox import RecipientRefused, TrustSpace, queue_mail, relay_marker
from dossier_api.domain.mail.spool import Spool
from dossier_api.domain.models import (
    CircleMember,
    DirectoryMailboxes,
    DirectoryRecord,
    Dossier,
    Enrolment,
    Professional,
    Structure,
    StructureStaff,
)
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.rooms import enqueue
from dossier_api.domain.shapes import InvitationOut
from maillon.shared.circle import RESTRICTED_ROLES
from maillon.shared.clock import utcnow
from maillon.shared.dates_fr import format_datetime
from maillon.shared.homeserver_client import HomeserverError, register_user
from maillon.shared.passwords import weakness
from maillon.shared.sealed import key_ring
from maillon.shared.text import digits, localpart_of, words

INVITATION, SELF = "invitation", "self"
RPPS_LENGTH = 11
CODE_DIGITS = 6
WINDOW = dt.timedelta(hours=1)  # the rate limits' sliding window
INVITATION_PATH = "/invitation/"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), _digest(given).encode())


def check_rpps(rpps: object) -> str:
    value = rpps.strip().replace(" ", "") if isinstance(rpps, str) else ""
    if len(value) != RPPS_LENGTH or not digits(value):
        raise ApiError(400, "M_INVALID_PARAM", "numéro RPPS invalide : 11 chiffres attendus")
    return value


@dataclass(frozen=True)
class Listed:
    """What the national directory says of one RPPS."""

    record: DirectoryRecord
    mailbox: str | None

    @property
    def display_name(self) -> str:
        data = self.record.data
        return f"{data.get('first_name', '')} {data['last_name']}".strip()

    @property
    def profession(self) -> str:
        return str(self.record.data.get("profession") or self.record.profession or "")


def listed(session: Session, rpps: str) -> Listed | None:
    """The listed directory entry of this RPPS and its first personal MSSanté mailbox."""
    record = session.scalar(
        select(DirectoryRecord).where(
            DirectoryRecord.id_type == "8",
            DirectoryRecord.identifier == rpps,
            DirectoryRecord.listed.is_(True),
        )
    )
    if record is None:
        return None
    boxes = session.scalar(
        select(DirectoryMailboxes).where(
            DirectoryMailboxes.national_id == record.national_id,
            DirectoryMailboxes.listed.is_(True),
        )
    )
    found = sorted(
        (kind != "PER", address)
        for address, kind in (boxes.data.get("mailboxes", []) if boxes else [])
    )
    return Listed(record, found[0][1] if found else None)


def masked(address: str) -> str:
    """``j…@pro.mssante.fr``: which mailbox, without writing it out."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


def _status(row: Enrolment, now: dt.datetime) -> str:
    if row.used_at is not None and row.user_id is not None:
        return "accepted"
    if row.cancelled_at is not None:
        return "cancelled"
    if row.expires_at <= now:
        return "expired"
    return "pending"


class EnrolmentOperations(ServiceCore):
    """Invitations (coordinators' side and the link's), and self-enrolment."""

    # -- mail ----------------------------------------------------------------------------

    def _queue(self, session: Session, row: Enrolment, subject: str, text: str) -> None:
        """Queue the mail in the relay's outbox, in this transaction; a directory address
        outside the MSSanté trust space is refused in words."""
        try:
            self._queue_mail(session, row, subject, text)
        except RecipientRefused as exc:
            raise ApiError(400, "M_INVALID_PARAM", str(exc)) from exc

    def _queue_mail(self, session: Session, row: Enrolment, subject: str, text: str) -> None:
        settings = self._deployment.settings
        domain = settings.mail_domain
        assert row.mailbox is not None
        queue_mail(
            Spool(self._engine, key_ring()),
            trust=TrustSpace(self._engine, settings.mail.allowed_sender_domains),
            room_id="",
            source_event_id=f"maillon.enrolment.{row.id}",
            from_address=f"{settings.mail.relay_localpart}@{domain}",
            from_name="Maillon",
            to=[row.mailbox],
            subject=subject,
            text=text,
            relay_marker=relay_marker(self._deployment),
            domain=domain,
            generated=True,
            session=session,
        )

    # -- invitations (coordinators) ------------------------------------------------------

    def invite(self, caller: Caller, dossier_id: str, body: dict[str, Any]) -> InvitationOut:
        """Invite the professional of this RPPS, who has no account, into the circle."""
        role = body["role"]
        settings = self._deployment.settings
        with self.acting(caller, "circle.invite", dossier_id, "manage") as act:
            session, dossier = act.session, act.dossier
            rpps = check_rpps(body.get("rpps"))
            act.detail = f"RPPS {rpps}"
            pathway = PATHWAYS.version(dossier.pathway, dossier.pathway_version)
            circle_members.may_change(act.access, pathway)
            if role in RESTRICTED_ROLES:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    "l'invitation par l'annuaire est pour un professionnel (rôle "
                    f"{role} : ajoutez le patient ou ses proches avec leur compte)",
                )
            circle_members.check_role(pathway, role, dossier)
            entry = listed(session, rpps)
            if entry is None:
                raise ApiError(
                    404, "M_NOT_FOUND", f"le numéro RPPS {rpps} n'est pas dans l'annuaire national"
                )
            account = session.scalar(select(Professional).where(Professional.rpps == rpps))
            if account is not None:
                raise ApiError(
                    409,
                    "M_CONFLICT",
                    f"{entry.display_name} a déjà un compte Maillon : ajoutez-le directement "
                    "au cercle de soins",
                    {"user_id": account.user_id},
                )
            now = utcnow()
            pending = session.scalar(
                select(Enrolment.id).where(
                    Enrolment.kind == INVITATION,
                    Enrolment.dossier_id == dossier_id,
                    Enrolment.rpps == rpps,
                    Enrolment.used_at.is_(None),
                    Enrolment.cancelled_at.is_(None),
                    Enrolment.expires_at > now,
                )
            )
            if pending is not None:
                raise ApiError(409, "M_CONFLICT", "une invitation est déjà en attente pour ce RPPS")
            if entry.mailbox is None:
                raise ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"l'annuaire ne connaît aucune adresse MSSanté pour {entry.display_name} "
                    f"(RPPS {rpps}) : l'invitation ne peut pas lui être envoyée",
                )
            secret = secrets.token_urlsafe(32)
            row = Enrolment(
                kind=INVITATION,
                rpps=rpps,
                national_id=entry.record.national_id,
                mailbox=entry.mailbox,
                dossier_id=dossier_id,
                role=role,
                coordinator=bool(body.get("coordinator")),
                invited_by=caller.user_id,
                secret_digest=_digest(secret),
                created_at=now,
                expires_at=now + dt.timedelta(hours=settings.enrolment.invitation_hours),
                attempts=0,
            )
            session.add(row)
            session.flush()
            inviter, structure = self._inviter(session, caller.user_id, dossier.structure_id)
            link = f"{settings.dossier_api.external_url}{INVITATION_PATH}{row.id}.{secret}"
            self._queue(
                session,
                row,
                f"Invitation à rejoindre Maillon de la part de {inviter}",
                invitation_text(entry, inviter, structure, link, row.expires_at),
            )
            return self._invitation_json(session, row, now)

    @staticmethod
    def _inviter(session: Session, user_id: str, structure_id: str | None) -> tuple[str, str]:
        """The inviter's name (and profession) and structure, as the mail says them."""
        pro = session.get(Professional, user_id)
        name = (pro.display_name if pro else None) or user_id.split(":")[0].lstrip("@")
        if pro is not None and pro.profession:
            name = f"{name} ({pro.profession})"
        structure = session.get(Structure, structure_id) if structure_id else None
        if structure is None:
            structure = session.scalar(
                select(Structure)
                .join(StructureStaff, StructureStaff.structure_id == Structure.id)
                .where(StructureStaff.user_id == user_id)
                .order_by(Structure.name)
                .limit(1)
            )
        return name, structure.name if structure is not None else ""

    @staticmethod
    def _invitation_json(session: Session, row: Enrolment, now: dt.datetime) -> InvitationOut:
        record = session.scalar(
            select(DirectoryRecord).where(DirectoryRecord.national_id == row.national_id)
        )
        data = record.data if record is not None else {}
        mail = session.scalar(
            select(MailOutbox).where(MailOutbox.source_event_id == f"maillon.enrolment.{row.id}")
        )
        mail_status = (
            "queued"
            if mail is None or (mail.sent_at is None and mail.failed_at is None)
            else ("sent" if mail.sent_at is not None else "failed")
        )
        return {
            "id": row.id,
            "rpps": row.rpps,
            "display_name": f"{data.get('first_name', '')} {data.get('last_name', '')}".strip(),
            "profession": data.get("profession", ""),
            "role": row.role,
            "coordinator": row.coordinator,
            "mailbox": row.mailbox,
            "invited_by": row.invited_by,
            "created_at": _iso(row.created_at),
            "expires_at": _iso(row.expires_at),
            "status": _status(row, now),
            "mail": mail_status,
            "user_id": row.user_id,
        }

    def invitations(self, caller: Caller, dossier_id: str) -> list[InvitationOut]:
        """The dossier's invitations, pending ones first, with their mail's fate."""
        now = utcnow()
        with self.acting(caller, "circle.invitations", dossier_id, "read") as act:
            rows = act.session.scalars(
                select(Enrolment)
                .where(Enrolment.kind == INVITATION, Enrolment.dossier_id == dossier_id)
                .order_by(Enrolment.created_at.desc())
            ).all()
            found = [self._invitation_json(act.session, r, now) for r in rows]
            return sorted(found, key=lambda i: i["status"] != "pending")

    def cancel_invitation(
        self, caller: Caller, dossier_id: str, invitation_id: str
    ) -> InvitationOut:
        now = utcnow()
        with self.acting(caller, "circle.invitation_cancel", dossier_id, "manage") as act:
            row = act.session.get(Enrolment, invitation_id)
            if row is None or row.kind != INVITATION or row.dossier_id != dossier_id:
                raise ApiError(404, "M_NOT_FOUND", "invitation inconnue dans ce dossier")
            act.detail = f"RPPS {row.rpps}"
            status = _status(row, now)
            if status == "accepted":
                raise ApiError(
                    409,
                    "M_CONFLICT",
                    "invitation déjà acceptée : retirez la personne du cercle de soins",
                )
            if status == "cancelled":
                raise ApiError(409, "M_CONFLICT", "invitation déjà annulée")
            row.cancelled_at, row.cancelled_by = now, caller.user_id
            return self._invitation_json(act.session, row, now)

    # -- following the link --------------------------------------------------------------

    def _by_link(self, session: Session, token: str, now: dt.datetime) -> Enrolment:
        """The invitation of a link, usable now; else the refusal, in words."""
        row_id, _, secret = token.partition(".")
        row = session.get(Enrolment, row_id) if 0 < len(row_id) <= 32 and secret else None
        if row is None or row.kind != INVITATION or not _matches(row.secret_digest, secret):
            raise ApiError(404, "M_NOT_FOUND", "Lien d'invitation inconnu ou incomplet.")
        if row.used_at is not None:
            raise ApiError(410, "M_GONE", "Ce lien d'invitation a déjà servi : connectez-vous.")
        if row.cancelled_at is not None:
            raise ApiError(410, "M_GONE", "Cette invitation a été annulée par son auteur.")
        if row.expires_at <= now:
            raise ApiError(
                410,
                "M_GONE",
                "Ce lien d'invitation a expiré : demandez une nouvelle invitation au "
                "coordinateur du dossier.",
            )
        if row.attempts >= self._deployment.settings.enrolment.code_attempts:
            raise ApiError(
                410, "M_GONE", "Trop d'essais avec ce lien : demandez une nouvelle invitation."
            )
        return row

    def invitation_page(self, token: str) -> dict[str, Any]:
        """What the link's page says: who is invited, by whom, from which structure (never
        the patient)."""
        with self.tx() as session:
            row = self._by_link(session, token, utcnow())
            entry = listed(session, row.rpps)
            assert row.invited_by is not None and row.dossier_id is not None
            dossier = session.get(Dossier, row.dossier_id)
            structure_id = dossier.structure_id if dossier is not None else None
            inviter, structure = self._inviter(session, row.invited_by, structure_id)
            return {
                "display_name": entry.display_name if entry else "",
                "profession": entry.profession if entry else "",
                "inviter": inviter,
                "structure": structure,
                "expires_at": _iso(row.expires_at),
            }

    def accept_invitation(self, token: str, rpps: str, password: str) -> tuple[str, str]:
        """Create the invited professional's account and write their circle entry:
        (user id, dossier id). Refused if the RPPS is not the invited one."""
        now = utcnow()
        given = check_rpps(rpps)
        with self.tx() as session:
            row = self._by_link(session, token, now)
            if not hmac.compare_digest(row.rpps.encode(), given.encode()):
                row.attempts += 1
                refusal = ApiError(
                    403,
                    "M_FORBIDDEN",
                    "Ce lien d'invitation a été envoyé à un autre professionnel : le numéro "
                    "RPPS ne correspond pas.",
                )
            else:
                refusal = None
            row_id = row.id
        if refusal is not None:
            raise refusal
        user_id, dossier_id = self._enrol(row_id, password, now)
        assert dossier_id is not None
        return user_id, dossier_id

    # -- self-enrolment ------------------------------------------------------------------

    def request_code(self, rpps: str, source: str) -> dict[str, Any]:
        """Mail a code to the MSSanté address of this RPPS: the request's id, where the
        code went (masked) and until when it is valid."""
        settings = self._deployment.settings.enrolment
        given = check_rpps(rpps)
        now = utcnow()
        refusal: ApiError | None = None
        with self.tx() as session:
            since = now - WINDOW
            recent = select(func.count()).select_from(Enrolment)
            recent = recent.where(Enrolment.kind == SELF, Enrolment.created_at > since)
            per_source = session.scalar(recent.where(Enrolment.source == source[:64])) or 0
            if per_source >= settings.requests_per_source:
                raise ApiError(
                    429,
                    "M_LIMIT_EXCEEDED",
                    "Trop de demandes d'inscription depuis cette adresse : réessayez dans une "
                    "heure.",
                )
            if (session.scalar(recent.where(Enrolment.rpps == given)) or 0) >= (
                settings.requests_per_rpps
            ):
                raise ApiError(
                    429,
                    "M_LIMIT_EXCEEDED",
                    "Trop de codes demandés pour ce numéro RPPS : réessayez dans une heure.",
                )
            row = Enrolment(
                kind=SELF,
                rpps=given,
                source=source[:64],
                created_at=now,
                expires_at=now + dt.timedelta(minutes=settings.code_minutes),
                attempts=0,
                coordinator=False,
            )
            session.add(row)  # counted by the limits, whatever the outcome
            entry = listed(session, given)
            if entry is None:
                refusal = ApiError(
                    404,
                    "M_NOT_FOUND",
                    f"Le numéro RPPS {given} n'est pas dans l'annuaire national des "
                    "professionnels de santé importé par Maillon : vérifiez-le.",
                )
            elif session.scalar(select(Professional.user_id).where(Professional.rpps == given)):
                refusal = ApiError(
                    409,
                    "M_CONFLICT",
                    "Un compte Maillon existe déjà pour ce numéro RPPS : connectez-vous.",
                )
            elif entry.mailbox is None:
                refusal = ApiError(
                    400,
                    "M_INVALID_PARAM",
                    "L'annuaire ne connaît aucune adresse de messagerie sécurisée de santé "
                    "(MSSanté) pour ce numéro RPPS : le code ne peut pas vous être envoyé. "
                    "Demandez à un coordinateur de votre structure de vous inviter.",
                )
            else:
                code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
                row.national_id, row.mailbox = entry.record.national_id, entry.mailbox
                session.flush()
                row.secret_digest = _digest(f"{row.id}:{code}")
                until = format_datetime(row.expires_at)
                self._queue(
                    session,
                    row,
                    "Votre code d'inscription à Maillon",
                    f"Bonjour {entry.display_name},\n\n"
                    f"Votre code d'inscription à Maillon : {code}\n"
                    f"Il est valable jusqu'au {until}.\n\n"
                    "Si vous n'avez pas demandé de compte Maillon, ignorez ce message : "
                    "aucun compte ne sera créé sans ce code.\n",
                )
                result = {
                    "request_id": row.id,
                    "mailbox": masked(entry.mailbox),
                    "expires_at": _iso(row.expires_at),
                    "display_name": entry.display_name,
                }
        if refusal is not None:
            raise refusal
        return result

    def enrol_with_code(self, request_id: str, code: str, password: str) -> str:
        """Create the account of a self-enrolment whose code is right: its user id."""
        settings = self._deployment.settings.enrolment
        now = utcnow()
        with self.tx() as session:
            row = session.get(Enrolment, request_id) if 0 < len(request_id) <= 32 else None
            if row is None or row.kind != SELF or not row.secret_digest:
                raise ApiError(404, "M_NOT_FOUND", "Demande d'inscription inconnue.")
            if row.used_at is not None:
                raise ApiError(410, "M_GONE", "Ce code a déjà servi : connectez-vous.")
            if row.expires_at <= now:
                raise ApiError(410, "M_GONE", "Code expiré : demandez un nouveau code.")
            if row.attempts >= settings.code_attempts:
                raise ApiError(410, "M_GONE", "Trop de codes erronés : demandez un nouveau code.")
            if not _matches(row.secret_digest, f"{row.id}:{code.strip()}"):
                row.attempts += 1
                left = settings.code_attempts - row.attempts
                refusal: ApiError | None = ApiError(
                    400,
                    "M_INVALID_PARAM",
                    f"Code incorrect : il vous reste {left} essai(s)."
                    if left
                    else "Code incorrect ; plus aucun essai : demandez un nouveau code.",
                )
            else:
                refusal = None
        if refusal is not None:
            raise refusal
        user_id, _ = self._enrol(request_id, password, now)
        return user_id

    # -- the account ---------------------------------------------------------------------

    def _enrol(self, row_id: str, password: str, now: dt.datetime) -> tuple[str, str | None]:
        """Claim the enrolment (once), create the account, bind it to the directory entry
        and, for an invitation, write its circle entry."""
        with self.tx() as session:
            row = session.get(Enrolment, row_id)
            assert row is not None
            entry = listed(session, row.rpps)
            if entry is None:
                raise ApiError(
                    410, "M_GONE", "Ce professionnel n'est plus inscrit à l'annuaire national."
                )
            names = words(entry.display_name)
            weak = weakness(password, [*names, row.rpps, "maillon"])
            if weak is not None:
                raise ApiError(400, "M_WEAK_PASSWORD", weak[0].upper() + weak[1:] + ".")
            claimed = session.execute(
                update(Enrolment)
                .where(
                    Enrolment.id == row_id,
                    Enrolment.used_at.is_(None),
                    Enrolment.cancelled_at.is_(None),
                )
                .values(used_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise ApiError(410, "M_GONE", "Ce lien ou ce code a déjà servi : connectez-vous.")
        try:
            user_id = self._register(names, password, entry.display_name)
        except HomeserverError:
            with self.tx() as session:
                session.execute(
                    update(Enrolment).where(Enrolment.id == row_id).values(used_at=None)
                )
            raise ApiError(
                503,
                "M_UNAVAILABLE",
                "Le serveur de messagerie n'a pas pu créer le compte : réessayez dans un moment.",
            ) from None
        with self.tx() as session:
            row = session.get(Enrolment, row_id)
            assert row is not None
            row.user_id = user_id
            pro = session.get(Professional, user_id) or Professional(user_id=user_id)
            pro.profession, pro.rpps = entry.profession, row.rpps
            pro.mssante, pro.display_name = row.mailbox, entry.display_name
            session.add(pro)
            if row.kind == INVITATION and row.dossier_id is not None:
                self._join_circle(session, row, user_id, now)
            else:
                access = Access(user_id, "enrolment")
                self.audit_entry(session, None, access, "account.enrol", True, f"RPPS {row.rpps}")
            return user_id, row.dossier_id

    def _join_circle(
        self, session: Session, row: Enrolment, user_id: str, now: dt.datetime
    ) -> None:
        """The invitation's circle entry, now that its professional has an account."""
        assert row.dossier_id is not None and row.role is not None and row.invited_by
        session.add(
            CircleMember(
                dossier_id=row.dossier_id,
                user_id=user_id,
                role=row.role,
                coordinator=row.coordinator,
                since=now,
                added_by=row.invited_by,
            )
        )
        enqueue(session, row.dossier_id, user_id)
        access = Access(user_id, "enrolment")
        self.audit_entry(session, row.dossier_id, access, "circle.enrol", True, f"RPPS {row.rpps}")

    def claim_invitations(self, user_id: str) -> list[str]:
        """The pending invitations of this account's RPPS, accepted: its identity was just
        proven by Pro Santé Connect (e-CPS), as the link would have. The dossiers joined."""
        now = utcnow()
        with self.tx() as session:
            pro = session.get(Professional, user_id)
            if pro is None or not pro.rpps:
                return []
            rows = session.scalars(
                select(Enrolment)
                .where(
                    Enrolment.kind == INVITATION,
                    Enrolment.rpps == pro.rpps,
                    Enrolment.used_at.is_(None),
                    Enrolment.cancelled_at.is_(None),
                    Enrolment.expires_at > now,
                )
                .order_by(Enrolment.created_at)
            ).all()
            joined = []
            for row in rows:
                row.used_at, row.user_id = now, user_id
                if not circle_members.active_members(session, row.dossier_id or "", user_id, now):
                    self._join_circle(session, row, user_id, now)
                    joined.append(row.dossier_id or "")
            return joined

    def _register(self, names: list[str], password: str, display_name: str) -> str:
        """A new account named after the person (``prenom.nom``, a number added if taken)."""
        settings, secret = self._deployment.settings, self._deployment.secrets
        base = localpart_of(" ".join(names))
        for attempt in range(6):
            localpart = base if attempt == 0 else f"{base}.{secrets.randbelow(900) + 100}"
            try:
                return register_user(
                    settings.homeserver.url,
                    secret.registration_shared_secret,
                    localpart,
                    password,
                    displayname=display_name,
                ).user_id
            except HomeserverError as exc:
                if exc.errcode != "M_USER_IN_USE":
                    raise
        raise HomeserverError("aucun identifiant libre", "M_USER_IN_USE")


def invitation_text(
    entry: Listed, inviter: str, structure: str, link: str, expires_at: dt.datetime
) -> str:
    """The invitation mail: who invites, from which structure, the link; never the patient."""
    who = f"{inviter}, de la structure « {structure} »," if structure else f"{inviter}"
    return (
        f"Bonjour {entry.display_name},\n\n"
        f"{who} vous invite à rejoindre, sur Maillon, le cercle de soins d'une personne "
        "que vous accompagnez (messagerie sécurisée et dossier de coordination).\n\n"
        "Pour créer votre compte, suivez ce lien personnel, à usage unique, valable "
        f"jusqu'au {format_datetime(expires_at)} :\n{link}\n\n"
        "Votre numéro RPPS vous sera demandé. Si vous n'attendiez pas cette invitation, "
        "ignorez ce message.\n"
    )
