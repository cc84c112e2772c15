"""!mail: send a secure mail (MSSanté) from the dossier's own address; the relay in the
appservice sends it, retries temporary failures and reports a final failure in this thread."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register
from dossier_api.domain.mail.outbox import MailCommandError, parse_mail_command

USAGE = "!mail adresse@exemple.mssante.fr objet\n(le texte du courriel sur les lignes suivantes)"
USAGE_EN = "!mail address@example.mssante.fr subject\n(the mail's text on the next lines)"


async def mail(ctx: Context, args: list[str]) -> Reply:
    raw = str(ctx.extra.get("raw_args", " ".join(args)))
    try:
        address, subject, text = parse_mail_command("!mail " + raw)
    except MailCommandError as exc:
        if "Usage" in str(exc):
            raise CommandError(
                ctx.t("il faut une adresse et un objet", "an address and a subject are needed")
            ) from exc
        raise CommandError(str(exc)) from exc
    if not text:
        raise CommandError(
            ctx.t(
                "le texte du courriel est vide : écrivez-le sur les lignes suivantes",
                "the mail is empty: write its text on the next lines",
            )
        )
    dossier_id = await ctx.dossier_id()
    # A recipient outside the MSSanté trust space, mail not configured: the service's
    # refusal, said with the usage line.
    queued = await ctx.services.queue_mail(
        ctx.sender, dossier_id, ctx.room_id, ctx.event_id, address, subject, text
    )
    title = (
        ctx.t("Courriel sécurisé mis en file d'envoi.", "Secure mail queued for sending.")
        if queued
        else ctx.t("Ce courriel est déjà en file d'envoi.", "This mail is already queued.")
    )
    return build(
        title,
        [
            ctx.t(f"À : {address}", f"To: {address}"),
            ctx.t(f"Objet : {subject}", f"Subject: {subject}"),
            ctx.t(
                "Un échec d'envoi sera signalé dans ce fil.",
                "A failure to send will be reported in this thread.",
            ),
        ],
        dossier_id=dossier_id,
    )


register(
    Command(
        name="!mail",
        usage_fr=USAGE,
        usage_en=USAGE_EN,
        help_fr="envoyer un courriel sécurisé (MSSanté) depuis l'adresse du dossier",
        help_en="send a secure mail (MSSanté) from the dossier's address",
        handler=mail,
        aliases=("!courriel",),
        raw_text=True,
    )
)
