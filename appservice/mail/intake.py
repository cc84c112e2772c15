"""What to do with an incoming mail (SMTP or IMAP): refuse it with a clear reason and
nothing stored, ignore it (one of ours), or store it durably for its dossier(s).
Blocking (database): call from a thread."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from appservice.mail.authenticate import Peer, authenticate
from appservice.mail.parse import MalformedMail, ParsedMail, parse_mail
from appservice.mail.xdm import XdmTooLarge, ins_from_attachments
from dossier_api.domain.mail.routing import Router, Target, domain_allowed
from dossier_api.domain.mail.spool import Spool, message_id_hash
from maillon.shared.settings import MailSettings


class Refusal(Exception):
    """A permanent refusal: ``reply`` is the SMTP reply line (5xx)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


SENDER_REFUSED = (
    "550 5.7.1 Expéditeur non autorisé : seules les messageries de santé (MSSanté) "
    "configurées sont acceptées / sender domain not allowed"
)
UNKNOWN_DOSSIER = (
    "550 5.1.1 Adresse inconnue : aucun dossier ouvert à cette adresse / unknown dossier address"
)
NO_SINGLE_INS = (
    "550 5.1.1 Aucun dossier unique pour le patient (INS des métadonnées IHE_XDM) : "
    "écrivez à l'adresse du dossier / no single dossier for the patient's INS"
)
INS_DUPLICATE = (
    "550 5.1.1 Plusieurs dossiers portent l'INS des métadonnées IHE_XDM (doublon possible, "
    "à résoudre par l'identitovigilance) : écrivez à l'adresse du dossier / several dossiers "
    "carry the patient's INS"
)
NULL_SENDER = (
    "550 5.7.1 Expéditeur vide accepté pour les seuls avis de non-remise de nos courriels "
    "/ null sender only for delivery reports about our mails"
)
OURS = "250 2.0.0 Courriel émis par Maillon : ignoré / our own mail, ignored"
ACCEPTED = "250 2.0.0 Courriel accepté pour le dossier / accepted"
DUPLICATE = "250 2.0.0 Courriel déjà reçu / already received"


@dataclass(frozen=True)
class Accepted:
    reply: str
    spool_ids: tuple[int, ...]


class Intake:
    def __init__(
        self, spool: Spool, router: Router, settings: MailSettings, relay_marker: str
    ) -> None:
        self.spool = spool
        self.router = router
        self.settings = settings
        self.relay_marker = relay_marker

    def too_big(self) -> str:
        return (
            f"552 5.3.4 Courriel trop volumineux (au plus {self.settings.max_message_bytes} "
            "octets) / message too big"
        )

    def sender_allowed(self, address: str) -> bool:
        return domain_allowed(address, self.settings.allowed_sender_domains)

    def check_recipient(self, address: str, null_sender: bool) -> str | None:
        """None if we take mail for this address, else the SMTP refusal."""
        if self.router.is_relay_address(address) and not null_sender:
            return None
        if self.router.by_address(address) is not None:
            return None
        return UNKNOWN_DOSSIER

    def _targets(self, mail: ParsedMail, recipients: list[str], session: Session) -> list[Target]:
        targets: dict[str, Target] = {}
        for address in recipients:
            if self.router.is_relay_address(address):
                try:
                    matricules = ins_from_attachments(mail.attachments)
                except XdmTooLarge as exc:
                    reply = f"552 5.3.4 Paquet IHE_XDM refusé : {exc} / XDM package too large"
                    raise Refusal(reply) from exc
                if self.router.ins_duplicated(matricules, session):
                    raise Refusal(INS_DUPLICATE)
                target = self.router.by_ins(matricules, session)
                if target is None:
                    raise Refusal(NO_SINGLE_INS)
            else:
                target = self.router.by_address(address, session)
                if target is None:
                    raise Refusal(UNKNOWN_DOSSIER)
            targets[target.dossier_id] = target
        return list(targets.values())

    def accept(
        self,
        raw: bytes,
        envelope_from: str | None,
        recipients: list[str],
        source: str,
        peer: Peer | None = None,
    ) -> Accepted:
        """Store the mail for its dossiers or raise :class:`Refusal`.
        ``envelope_from`` is None for a mail read from a mailbox (no envelope); ``peer``
        is the SMTP client (how its sender is authenticated is stored with the mail).

        One transaction reads what the decision needs (ours? which dossiers?) and stores
        the mail, committed before the answer. The sender is authenticated (DNS) before
        it, so no transaction waits on DNS; the checks keep their order (a mail of ours
        is ignored, whoever its sender)."""
        if len(raw) > self.settings.max_message_bytes:
            raise Refusal(self.too_big())
        try:
            mail = parse_mail(raw)
        except MalformedMail as exc:
            raise Refusal(f"554 5.6.0 Courriel mal formé : {exc}") from exc
        if mail.relay_marker == self.relay_marker:
            return Accepted(OURS, ())  # never re-import what we sent
        if envelope_from == "":
            return self._report(raw, mail, recipients, source)
        allowed = (
            envelope_from is None or self.sender_allowed(envelope_from)
        ) and self.sender_allowed(mail.from_address)
        if not allowed:
            if self.spool.is_ours(mail.message_id):
                return Accepted(OURS, ())
            raise Refusal(SENDER_REFUSED)
        dedup = (
            message_id_hash(mail.message_id) if mail.message_id else hashlib.sha256(raw).hexdigest()
        )
        auth = authenticate(raw, mail.from_address, peer, envelope_from)
        meta = {"envelope_from": envelope_from, "auth": auth}

        def store(session: Session) -> Accepted:
            if self.spool.is_ours(mail.message_id, session):
                return Accepted(OURS, ())
            targets = self._targets(mail, recipients, session)
            if not targets:
                raise Refusal(UNKNOWN_DOSSIER)
            ids = self.spool.add(session, raw, meta, targets, dedup, "mail", source)
            return Accepted(ACCEPTED if ids else DUPLICATE, tuple(ids))

        return self.spool.in_transaction(store)

    def _report(self, raw: bytes, mail: ParsedMail, recipients: list[str], source: str) -> Accepted:
        """A delivery status notification about one of our mails: shown in its thread
        (read and stored in one transaction)."""

        def store(session: Session) -> Accepted:
            if self.spool.is_ours(mail.message_id, session):
                return Accepted(OURS, ())
            origin = self.spool.outbox_for(mail.report_for, session) if mail.report_for else None
            if origin is None:
                raise Refusal(NULL_SENDER)
            room_id, source_event, root, to = origin
            dossier = next(
                (
                    t
                    for t in (self.router.by_address(a, session) for a in recipients)
                    if t is not None
                ),
                None,
            )
            target = Target(dossier.dossier_id if dossier else "-", room_id)
            meta = {
                "envelope_from": "",
                "report_event": source_event,
                "report_root": root,
                "report_to": to,
            }
            dedup = hashlib.sha256(raw).hexdigest()
            ids = self.spool.add(session, raw, meta, [target], dedup, "bounce", source)
            return Accepted(ACCEPTED if ids else DUPLICATE, tuple(ids))

        return self.spool.in_transaction(store)
