"""A secure mail sent from a dossier (the bot's ``!mail``, the dossier page's form): from
the dossier's own MSSanté address, with the sender's right to write to the dossier, queued in
the relay's durable outbox in the same transaction as the audit row (the relay sends it)."""

from __future__ import annotations

from typing import Any, TypedDict

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError, ServiceCore
from dossier_api.domain.directory import professionals
from dossier_api.domain.mail.outbox import (
    ADDRESS_RE,
    MailCommandError,
    TrustSpace,
    queue_mail,
    relay_marker,
)
from dossier_api.domain.mail.spool import Spool
from maillon.shared.sealed import key_ring

NOT_CONFIGURED = "l'envoi de courriels n'est pas configuré sur ce serveur (section mail.outbound)"


class MailQueuedOut(TypedDict):
    queued: bool  # False: this very mail (same source) was queued already
    to: str
    subject: str


class DossierMailing(ServiceCore):
    def mail_enabled(self) -> bool:
        mail = self._deployment.settings.mail
        return mail.enabled and mail.outbound is not None

    def send_mail(
        self,
        caller: Caller,
        dossier_id: str,
        body: dict[str, Any],
        source: str,
        room_id: str | None = None,
    ) -> MailQueuedOut:
        """Queue ``body`` (``to``, ``subject``, ``text``) from the dossier's address.
        ``source`` names what asked for it (a room event, a form's nonce): the same source
        twice queues one mail. Failures to send are told in ``room_id`` (default: the
        dossier's room)."""
        if not self.mail_enabled():
            raise ApiError(400, "M_NOT_CONFIGURED", NOT_CONFIGURED)
        to, subject, text = str(body["to"]).strip(), str(body["subject"]).strip(), body["text"]
        if not ADDRESS_RE.match(to):
            raise ApiError(400, "M_INVALID_PARAM", f"adresse de messagerie invalide : « {to} »")
        settings = self._deployment.settings
        domain = settings.mail_domain
        with self.acting(caller, "mail.send", dossier_id, "write") as act:
            act.detail = f"à {to}"
            me = professionals(act.session, [caller.user_id]).get(caller.user_id)
            name = me.display_name if me is not None and me.display_name else "Maillon"
            try:
                queued = queue_mail(
                    Spool(self._engine, key_ring()),
                    trust=TrustSpace(self._engine, settings.mail.allowed_sender_domains),
                    room_id=room_id or act.dossier.room_id or "",
                    source_event_id=source,
                    from_address=f"{act.dossier.mail_localpart}@{domain}",
                    from_name=f"{name} (Maillon)",
                    to=[to],
                    subject=subject,
                    text=text,
                    relay_marker=relay_marker(self._deployment),
                    domain=domain,
                    session=act.session,
                )
            except MailCommandError as exc:  # a recipient outside the MSSanté trust space
                raise ApiError(400, "M_INVALID_PARAM", str(exc)) from exc
            return MailQueuedOut(queued=queued is not None, to=to, subject=subject)
