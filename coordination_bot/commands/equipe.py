"""!equipe: the resource teams serving the dossier's pathway, and soliciting one;
!sollicitation: the solicitations told to me (in my "Sollicitations" chat with the bot),
to accept or decline (``dossier_api.domain.teams``)."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register
from dossier_api.domain.models import LEVELS, LEVELS_EN, STEPS, STEPS_EN
from maillon.shared.text import digits

USAGE_SOLICIT = "!equipe solliciter ÉQUIPE motif… [attestation]"
USAGE_SOLICIT_EN = "!team solicit TEAM reason… [attestation]"
ATTESTATION = ("attestation", "atteste", "attesté", "attested")


async def _teams(ctx: Context) -> Reply:
    dossier_id = await ctx.dossier_id()
    dossier = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.get_dossier, dossier_id
    )
    rows = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.teams, dossier["pathway"])
    levels = LEVELS_EN if ctx.lang == "en" else LEVELS
    lines = [
        f"{t['slug']} — {t['name']} ({levels[t['level']]}"
        + (f", {t['expertise']}" if t["expertise"] else "")
        + f") — {t['address']}"
        for t in rows
    ]
    title = ctx.t(
        f"Équipes ressources de ce parcours : {len(rows)}",
        f"Resource teams of this pathway: {len(rows)}",
    )
    return build(title, lines, dossier_id=dossier_id)


async def _solicit(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_SOLICIT, USAGE_SOLICIT_EN)
    if len(args) < 2:
        raise CommandError(ctx.t("il faut une équipe puis un motif", "a team then a reason"), usage)
    attested = args[-1].lower() in ATTESTATION
    words = args[1:-1] if attested else args[1:]
    if not words:
        raise CommandError(ctx.t("il manque le motif", "the reason is missing"), usage)
    dossier_id = await ctx.dossier_id()
    body = {"team": args[0], "reason": " ".join(words), "kind": "avis", "attested": attested}
    made = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.solicit, dossier_id, body)
    return build(
        ctx.t(
            f"Sollicitation n° {made['id']} envoyée à « {made['team_name']} » : "
            f"{len(made['notified'])} membre(s) de garde prévenu(s).",
            f"Solicitation #{made['id']} sent to “{made['team_name']}”: "
            f"{len(made['notified'])} on-duty member(s) told.",
        ),
        dossier_id=dossier_id,
    )


async def equipe(ctx: Context, args: list[str]) -> Reply:
    if not args:
        return await _teams(ctx)
    if args[0].lower() in ("solliciter", "solicit"):
        return await _solicit(ctx, args[1:])
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (solliciter)",
            f"unknown subcommand “{args[0]}” (solicit)",
        )
    )


def _number(ctx: Context, args: list[str]) -> int:
    if len(args) != 2 or not digits(args[1]):
        raise CommandError(
            ctx.t("il faut le numéro de la sollicitation", "the solicitation's number is needed"),
            ctx.t("!sollicitation accepter N", "!solicitation accept N"),
        )
    return int(args[1])


USAGE_ANSWER = "!sollicitation repondre N question ; éléments pris en compte ; avis"
USAGE_ANSWER_EN = "!solicitation answer N question ; elements considered ; advice"


async def _answer(ctx: Context, args: list[str]) -> Reply:
    """The accepter's advice report, its three parts separated by semicolons."""
    usage = ctx.t(USAGE_ANSWER, USAGE_ANSWER_EN)
    if not args or not digits(args[0]):
        raise CommandError(ctx.t("il faut le numéro de la sollicitation", "a number"), usage)
    parts = [p.strip() for p in " ".join(args[1:]).split(";")]
    if len(parts) != 3 or not all(parts):
        raise CommandError(
            ctx.t(
                "il faut la question, les éléments pris en compte et l'avis, séparés par « ; »",
                "the question, the elements considered and the advice, separated by “;”",
            ),
            usage,
        )
    report = dict(zip(("question", "elements", "advice"), parts, strict=True))
    made = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.answer_solicitation, int(args[0]), report
    )
    return build(
        ctx.t(
            f"Compte rendu d'avis de la sollicitation n° {made['id']} enregistré dans le dossier.",
            f"Advice report of solicitation #{made['id']} saved in the record.",
        )
    )


async def sollicitation(ctx: Context, args: list[str]) -> Reply:
    dossiers = ctx.services.dossiers
    if not args:
        rows = await ctx.services.as_sender(ctx.sender, dossiers.my_solicitations)
        steps = STEPS_EN if ctx.lang == "en" else STEPS
        lines = [
            f"n° {s['id']} — {s['team_name']} — {steps[s['status']]} — "
            + (
                f"{ctx.pathway(s['pathway_id'], s['pathway_version'])} — "
                if s["pathway_id"]
                else ""
            )
            + f"{ctx.person(s['requester'])} : {s['reason']}"
            for s in rows
        ]
        return build(
            ctx.t(f"Mes sollicitations : {len(rows)}", f"My solicitations: {len(rows)}"), lines
        )
    sub = args[0].lower()
    if sub in ("accepter", "accept"):
        made = await ctx.services.as_sender(
            ctx.sender, dossiers.accept_solicitation, _number(ctx, args)
        )
        if made["dossier_id"] is None:  # a peer region's room: its server invites you
            return build(
                ctx.t(
                    f"Sollicitation n° {made['id']} acceptée : la région qui l'a envoyée vous "
                    "inscrit au cercle de soins (rôle ERS) ; son invitation dans la salle du "
                    "patient arrive.",
                    f"Solicitation #{made['id']} accepted: the region that sent it adds you to "
                    "the care circle (role ERS); its invitation to the patient's room is on "
                    "its way.",
                )
            )
        await ctx.services.sync_rooms(made["dossier_id"])  # invited into the patient room
        return build(
            ctx.t(
                f"Sollicitation n° {made['id']} acceptée : vous entrez dans le cercle de soins "
                "(rôle ERS) ; l'invitation dans la salle du patient arrive.",
                f"Solicitation #{made['id']} accepted: you join the care circle (role ERS); "
                "the invitation to the patient's room is on its way.",
            )
        )
    if sub in ("repondre", "répondre", "answer"):
        return await _answer(ctx, args[1:])
    if sub in ("refuser", "decliner", "décliner", "decline"):
        made = await ctx.services.as_sender(
            ctx.sender, dossiers.decline_solicitation, _number(ctx, args)
        )
        return build(
            ctx.t(
                f"Sollicitation n° {made['id']} déclinée.", f"Solicitation #{made['id']} declined."
            )
        )
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (accepter, refuser, repondre)",
            f"unknown subcommand “{args[0]}” (accept, decline, answer)",
        )
    )


register(
    Command(
        name="!equipe",
        aliases=("!équipe",),
        english=("!team",),
        usage_fr=f"!equipe\n{USAGE_SOLICIT}",
        usage_en=f"!team\n{USAGE_SOLICIT_EN}",
        help_fr="les équipes ressources du parcours ; en solliciter une",
        help_en="the pathway's resource teams; solicit one",
        details_fr=(
            "les équipes ressources qui servent le parcours du dossier",
            "solliciter une équipe (attestation : personne informée, sans opposition)",
        ),
        details_en=(
            "the resource teams serving the dossier's pathway",
            "solicit a team (attestation: the person was informed and did not object)",
        ),
        handler=equipe,
    )
)
register(
    Command(
        name="!sollicitation",
        english=("!solicitation",),
        usage_fr="!sollicitation\n!sollicitation accepter N\n!sollicitation refuser N\n"
        + USAGE_ANSWER,
        usage_en="!solicitation\n!solicitation accept N\n!solicitation decline N\n"
        + USAGE_ANSWER_EN,
        help_fr="mes sollicitations d'équipe ressource ; les accepter ou les refuser",
        help_en="my resource-team solicitations; accept or decline them",
        details_fr=(
            "les sollicitations qui me sont adressées ou que j'ai prises en charge",
            "accepter : entrer dans le cercle de soins (rôle ERS)",
            "refuser la sollicitation",
            "répondre : le compte rendu d'avis (membre qui l'a prise en charge)",
        ),
        details_en=(
            "the solicitations told to me or that I took",
            "accept: join the care circle (role ERS)",
            "decline the solicitation",
            "answer: the advice report (the member who took it)",
        ),
        handler=sollicitation,
        needs_dossier=False,
    )
)
