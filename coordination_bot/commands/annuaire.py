"""!annuaire: search the national directory (name, profession, town, department, structure)
from any room; each result says whether the professional already has a Maillon account."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register
from maillon.shared.text import digits

USAGE = "!annuaire texte (nom, profession, commune, structure ; ex. !annuaire durand infirm 31)"
USAGE_EN = "!directory text (name, profession, town, structure; e.g. !directory durand nurse)"
SHOWN = 10


async def annuaire(ctx: Context, args: list[str]) -> Reply:
    words = [w for w in args if w.strip()]
    if not words:
        raise CommandError(
            ctx.t("indiquez un nom ou une profession à chercher", "give a name or a profession")
        )
    # A department code typed among the words (31, 2A, 974) filters by department.
    departement = next((w for w in words if digits(w) and len(w) in (2, 3)), "")
    if not departement:
        departement = next((w for w in words if w.upper() in ("2A", "2B")), "")
    text = " ".join(w for w in words if w != departement)
    found = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.search_directory, text, "", departement, 1, SHOWN
    )
    results = found["results"]
    if not results:
        return build(ctx.t("Aucun professionnel trouvé.", "No professional found."))
    lines = []
    for r in results:
        places = ", ".join(
            sorted({f"{a.get('town', '')} ({a.get('departement', '')})" for a in r["activities"]})
        )
        number = f"RPPS {r['rpps']}" if r["rpps"] else f"ADELI {r['adeli']}"
        account = (
            ctx.t("compte Maillon", "Maillon account")
            if r["has_account"]
            else ctx.t("pas encore de compte", "no account yet")
        )
        lines.append(f"{r['display_name']} — {r['profession']}, {places} — {number} — {account}")
    more = ctx.t(" (et d'autres : précisez)", " (and more: narrow it down)")
    title = ctx.t(f"Annuaire : {len(results)} résultat(s)", f"Directory: {len(results)} result(s)")
    return build(title + (more if found["has_more"] else ""), lines)


register(
    Command(
        name="!annuaire",
        usage_fr=USAGE,
        usage_en=USAGE_EN,
        help_fr="chercher un professionnel dans l'annuaire national",
        help_en="search the national directory of professionals",
        handler=annuaire,
        english=("!directory",),
        needs_dossier=False,
    )
)
