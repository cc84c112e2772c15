"""!agenda: the shared agenda of the dossier (upcoming appointments; add one)."""

from __future__ import annotations

import datetime as dt

from coordination_bot.core import (
    USER_ID,
    Command,
    CommandError,
    Context,
    Reply,
    bounded_text,
    build,
    register,
)
from coordination_bot.dates import DateError, parse_duration, parse_when
from maillon.shared.dates_fr import format_duration

USAGE_ADD = "!agenda ajouter QUAND [DURÉE] titre [@participant…]"
USAGE_ADD_EN = "!calendar add WHEN [DURATION] title [@participant…]"
EXAMPLE = "!agenda ajouter lundi 9h30 45min Visite à domicile @ide:serveur"
DEFAULT_DURATION = dt.timedelta(hours=1)
SHOWN = 20


async def _add(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(f"{USAGE_ADD}\n(exemple : {EXAMPLE})", USAGE_ADD_EN)
    try:
        when, used = parse_when(args, ctx.now)
    except DateError as exc:
        raise CommandError(str(exc), usage) from None
    if when.time is None:
        raise CommandError(
            ctx.t(
                "l'heure du rendez-vous manque (par exemple « 14h30 »)",
                "the time of the appointment is missing (e.g. “14h30”)",
            ),
            usage,
        )
    rest = args[used:]
    duration = DEFAULT_DURATION
    if rest:
        try:
            parsed = parse_duration(rest[0])
        except DateError as exc:
            raise CommandError(str(exc), usage) from None
        if parsed is not None:
            duration, rest = parsed, rest[1:]
    participants = [w.rstrip(",;") for w in rest if w.startswith("@")]
    for who in participants:
        if not USER_ID.match(who):
            raise CommandError(
                ctx.t(
                    f"« {who} » n'est pas un identifiant Matrix", f"“{who}” is not a Matrix user id"
                ),
                usage,
            )
    words = " ".join(w for w in rest if not w.startswith("@"))
    title = bounded_text(ctx, words, ("le titre du rendez-vous", "the title"), 200, usage)
    start = when.at()
    if start < ctx.now - dt.timedelta(minutes=5):
        raise CommandError(
            ctx.t(f"le {ctx.when(start)} est passé", f"{ctx.when(start)} is past"),
            usage,
        )
    dossier_id = await ctx.dossier_id()
    body = {
        "title": title,
        "start": start.isoformat(),
        "end": (start + duration).isoformat(),
        "participants": sorted(set(participants)),
    }
    await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.add_appointment, dossier_id, body
    )
    lasts = format_duration(start, start + duration)
    names = await ctx.names(*participants)
    return build(
        ctx.t(
            f"Rendez-vous ajouté le {ctx.when(start)} ({lasts}) : {title}",
            f"Appointment added on {ctx.when(start)} ({lasts}): {title}",
        ),
        [", ".join(names[p] for p in participants)] if participants else [],
        dossier_id=dossier_id,
    )


async def agenda(ctx: Context, args: list[str]) -> Reply:
    if args:
        if args[0].lower() in ("ajouter", "add", "nouveau"):
            return await _add(ctx, args[1:])
        raise CommandError(
            ctx.t(
                f"sous-commande « {args[0]} » inconnue (ajouter)",
                f"unknown subcommand “{args[0]}” (add)",
            )
        )
    dossier_id = await ctx.dossier_id()
    rows = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.appointments, dossier_id)
    now = ctx.now.astimezone(dt.UTC)
    upcoming = [
        a for a in rows if not a["cancelled"] and dt.datetime.fromisoformat(a["end"]) >= now
    ]
    lines = []
    names = await ctx.names(*{p for a in upcoming[:SHOWN] for p in a["participants"]})
    for a in upcoming[:SHOWN]:
        who = ", ".join(names[p] for p in a["participants"])
        lasts = format_duration(
            dt.datetime.fromisoformat(a["start"]), dt.datetime.fromisoformat(a["end"])
        )
        lines.append(
            f"{ctx.when(a['start'])} ({lasts}) — {a['title']}" + (f" ({who})" if who else "")
        )
    if not upcoming:
        title = ctx.t("Aucun rendez-vous à venir.", "No upcoming appointment.")
    else:
        title = ctx.t(
            f"Rendez-vous à venir : {len(upcoming)}", f"Upcoming appointments: {len(upcoming)}"
        )
    return build(title, lines, dossier_id=dossier_id)


register(
    Command(
        name="!agenda",
        english=("!calendar",),
        usage_fr=f"!agenda\n{USAGE_ADD}",
        usage_en=f"!calendar\n{USAGE_ADD_EN}",
        help_fr="les rendez-vous à venir du dossier ; en ajouter un",
        help_en="the dossier's upcoming appointments; add one",
        details_fr=("les rendez-vous à venir du dossier", "ajouter un rendez-vous"),
        details_en=("the dossier's upcoming appointments", "add an appointment"),
        handler=agenda,
    )
)
