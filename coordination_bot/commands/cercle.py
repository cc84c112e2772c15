"""!cercle: the care circle of the room's dossier (with its pending invitations); add or
remove a member, or invite by RPPS a professional of the national directory who has no
account yet (coordinators)."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register, user_arg
from maillon.shared.circle import ROLES
from maillon.shared.text import digits

USAGE_ADD = "!cercle ajouter @utilisateur RÔLE"
USAGE_REMOVE = "!cercle retirer @utilisateur"
USAGE_INVITE = "!cercle inviter RPPS RÔLE"
USAGE_ADD_EN = "!circle add @user ROLE"
USAGE_INVITE_EN = "!circle invite RPPS ROLE"
USAGE_REMOVE_EN = "!circle remove @user"


async def _list(ctx: Context) -> Reply:
    dossier_id = await ctx.dossier_id()
    rows = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.circle, dossier_id)
    invited = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.invitations, dossier_id
    )
    active = [m for m in rows if m["active"]]
    lines = [
        f"{ctx.person(m, m['user_id'])} — {ctx.role(m['role'])}"
        # « coordinateur / référent » already says it; other roles tell the coordination.
        + (
            ctx.t(", coordination", ", coordination")
            if m["coordinator"] and m["role"] != "COORD"
            else ""
        )
        + ctx.t(f", depuis le {ctx.when(m['since'])}", f", since {ctx.when(m['since'])}")
        + (
            ctx.t(f", jusqu'au {ctx.when(m['until'])}", f", until {ctx.when(m['until'])}")
            if m["until"]
            else ""
        )
        for m in active
    ]
    lines += [
        f"{ctx.person(i, i['rpps'])} — {ctx.role(i['role'] or '—')} — "
        + ctx.t("invitation en attente", "invitation pending")
        for i in invited
        if i["status"] == "pending"
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
    role = _role(ctx, args[1], usage)
    dossier_id = await ctx.dossier_id()
    body = {"user_id": user_id, "role": role, "coordinator": role == "COORD"}
    await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.add_member, dossier_id, body)
    await ctx.services.sync_rooms(dossier_id)  # invited into the dossier's rooms
    who = (await ctx.names(user_id))[user_id]
    return build(
        ctx.t(
            f"{who} entre dans le cercle de soins ({ctx.role(role)}).",
            f"{who} joins the care circle ({ctx.role(role)}).",
        ),
        dossier_id=dossier_id,
    )


def _role(ctx: Context, arg: str, usage: str) -> str:
    role = arg.upper()
    if role not in ROLES:
        raise CommandError(
            ctx.t(
                f"rôle « {arg} » inconnu ; rôles : {', '.join(ROLES)}",
                f"unknown role “{arg}”; roles: {', '.join(ROLES)}",
            ),
            usage,
        )
    return role


async def _invite(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_INVITE, USAGE_INVITE_EN)
    if len(args) != 2 or not (digits(args[0]) and len(args[0]) == 11):
        raise CommandError(
            ctx.t(
                "il faut un numéro RPPS (11 chiffres) puis un rôle",
                "an RPPS number (11 digits) then a role are needed",
            ),
            usage,
        )
    role = _role(ctx, args[1], usage)
    dossier_id = await ctx.dossier_id()
    body = {"rpps": args[0], "role": role, "coordinator": role == "COORD"}
    sent = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.invite, dossier_id, body)
    who = ctx.person(sent)
    until = ctx.when(sent["expires_at"])
    label = ctx.role(role)
    return build(
        ctx.t(
            f"Invitation envoyée à {who} à son adresse MSSanté ; son entrée du cercle ({label}) "
            f"reste en attente jusqu'à son inscription (lien valable jusqu'au {until}).",
            f"Invitation sent to {who} at their MSSanté address; their circle entry ({label}) "
            f"stays pending until they enrol (link valid until {until}).",
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
    who = (await ctx.names(user_id))[user_id]
    return build(
        ctx.t(f"{who} quitte le cercle de soins.", f"{who} leaves the care circle."),
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
    if sub in ("inviter", "invite"):
        return await _invite(ctx, args[1:])
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (ajouter, retirer, inviter)",
            f"unknown subcommand “{args[0]}” (add, remove, invite)",
        )
    )


register(
    Command(
        name="!cercle",
        english=("!circle",),
        usage_fr=f"!cercle\n{USAGE_ADD}\n{USAGE_REMOVE}\n{USAGE_INVITE}",
        usage_en=f"!circle\n{USAGE_ADD_EN}\n{USAGE_REMOVE_EN}\n{USAGE_INVITE_EN}",
        help_fr="le cercle de soins ; ajouter ou retirer un membre (coordinateurs)",
        help_en="the care circle; add or remove a member (coordinators)",
        details_fr=(
            "le cercle de soins du dossier",
            "ajouter un membre avec son rôle (coordinateurs)",
            "retirer un membre (coordinateurs)",
            "inviter par son RPPS un professionnel de l'annuaire sans compte (coordinateurs)",
        ),
        details_en=(
            "the dossier's care circle",
            "add a member with their role (coordinators)",
            "remove a member (coordinators)",
            "invite by RPPS a directory professional without an account (coordinators)",
        ),
        handler=cercle,
    )
)
