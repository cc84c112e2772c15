"""!alerte: alert members of the circle (all of them, or those mentioned)."""

from __future__ import annotations

from coordination_bot.core import USER_ID, Command, CommandError, Context, Reply, build, register

USAGE = "!alerte [@utilisateur…] texte"
USAGE_EN = "!alert [@user…] text"


async def alerte(ctx: Context, args: list[str]) -> Reply:
    recipients: list[str] = []
    rest = list(args)
    while rest and rest[0].startswith("@"):
        who = rest.pop(0).rstrip(",;:")
        if not USER_ID.match(who):
            raise CommandError(
                ctx.t(
                    f"« {who} » n'est pas un identifiant Matrix", f"“{who}” is not a Matrix user id"
                )
            )
        if who not in recipients:
            recipients.append(who)
    text = " ".join(rest).strip()
    if not text:
        raise CommandError(ctx.t("le texte de l'alerte est vide", "the alert text is empty"))
    if len(text) > 2000:
        raise CommandError(
            ctx.t(
                "alerte trop longue (2000 caractères au plus)",
                "alert too long (2000 characters at most)",
            )
        )
    if len(recipients) > 50:
        raise CommandError(ctx.t("50 destinataires au plus", "50 recipients at most"))
    dossier_id = await ctx.dossier_id()
    body: dict[str, object] = {"text": text}
    if recipients:
        body["to"] = recipients
    alert = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.add_alert, dossier_id, body
    )
    to = alert["recipients"]
    return build(
        ctx.t(f"⚠️ Alerte de {ctx.sender} : {text}", f"⚠️ Alert from {ctx.sender}: {text}"),
        [ctx.t("Destinataires : ", "Recipients: ") + (", ".join(to) or "—")],
        mentions=tuple(to),
        dossier_id=dossier_id,
    )


register(
    Command(
        name="!alerte",
        english=("!alert",),
        usage_fr=USAGE,
        usage_en=USAGE_EN,
        help_fr="alerter le cercle (ou les personnes citées)",
        help_en="alert the circle (or the people mentioned)",
        handler=alerte,
    )
)
