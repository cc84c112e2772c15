"""!cercle: the care circle of the room's dossier; add or remove a member (coordinators)."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register, user_arg
from maillon.shared.circle import ROLES

USAGE_ADD = "!cercle ajouter @utilisateur RÔLE"
USAGE_REMOVE = "!cercle retirer @utilisateur"
USAGE_ADD_EN = "!circle add @user ROLE"
USAGE_REMOVE_EN = "!circle remove @user"


async def _list(ctx: Context) -> Reply:
    dossier_id = await ctx.dossier_id()
    rows = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.circle, dossier_id)
    active = [m for m in rows if m["active"]]
    lines = [
        f"{m['user_id']} — {m['role']} ({ROLES.get(m['role'], m['role'])})"
        + (ctx.t(", coordinateur", ", coordinator") if m["coordinator"] else "")
        for m in active
    ]
    return build(
        ctx.t(
            f"Cercle de soins : {len(active)} membre(s)", f"Care circle: {len(active)} member(s)"
        ),
        lines,
        dossier_id=dossier_id,
    )


async def _add(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_ADD, USAGE_ADD_EN)
    if len(args) != 2:
        raise CommandError(
            ctx.t(
                "il faut un identifiant Matrix puis un rôle",
                "a Matrix user id then a role are needed",
            ),
            usage,
        )
    user_id = user_arg(ctx, args[0], usage)
    role = args[1].upper()
    if role not in ROLES:
        raise CommandError(
            ctx.t(
                f"rôle « {args[1]} » inconnu ; rôles : {', '.join(ROLES)}",
                f"unknown role “{args[1]}”; roles: {', '.join(ROLES)}",
            ),
            usage,
        )
    dossier_id = await ctx.dossier_id()
    body = {"user_id": user_id, "role": role, "coordinator": role == "COORD"}
    await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.add_member, dossier_id, body)
    await ctx.services.sync_rooms(dossier_id)  # invited into the dossier's rooms
    return build(
        ctx.t(
            f"{user_id} ajouté(e) au cercle de soins ({role} — {ROLES[role]}).",
            f"{user_id} added to the care circle ({role} — {ROLES[role]}).",
        ),
        dossier_id=dossier_id,
    )


async def _remove(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_REMOVE, USAGE_REMOVE_EN)
    if len(args) != 1:
        raise CommandError(
            ctx.t("il faut un identifiant Matrix", "a Matrix user id is needed"), usage
        )
    user_id = user_arg(ctx, args[0], usage)
    dossier_id = await ctx.dossier_id()
    await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.remove_member, dossier_id, user_id
    )
    await ctx.services.sync_rooms(dossier_id)  # removed from the dossier's rooms
    return build(
        ctx.t(
            f"{user_id} retiré(e) du cercle de soins.", f"{user_id} removed from the care circle."
        ),
        dossier_id=dossier_id,
    )


async def cercle(ctx: Context, args: list[str]) -> Reply:
    if not args:
        return await _list(ctx)
    sub = args[0].lower()
    if sub in ("ajouter", "add"):
        return await _add(ctx, args[1:])
    if sub in ("retirer", "enlever", "remove"):
        return await _remove(ctx, args[1:])
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (ajouter, retirer)",
            f"unknown subcommand “{args[0]}” (add, remove)",
        )
    )


register(
    Command(
        name="!cercle",
        english=("!circle",),
        usage_fr=f"!cercle\n{USAGE_ADD}\n{USAGE_REMOVE}",
        usage_en=f"!circle\n{USAGE_ADD_EN}\n{USAGE_REMOVE_EN}",
        help_fr="le cercle de soins ; ajouter ou retirer un membre (coordinateurs)",
        help_en="the care circle; add or remove a member (coordinators)",
        details_fr=(
            "le cercle de soins du dossier",
            "ajouter un membre avec son rôle (coordinateurs)",
            "retirer un membre (coordinateurs)",
        ),
        details_en=(
            "the dossier's care circle",
            "add a member with their role (coordinators)",
            "remove a member (coordinators)",
        ),
        handler=cercle,
    )
)
