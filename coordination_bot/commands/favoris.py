"""!favoris: my groups of colleagues (groupes de favoris, ``dossier_api.domain.favourites``):
list them, create one, add or remove people (a Matrix id or an RPPS of the national
directory), delete one, and invite one into the room's dossier — each person gets a circle
entry as ``!cercle ajouter`` (or ``!cercle inviter`` for an RPPS) would make it, so only a
coordinator may, and the answer says what happened for each."""

from __future__ import annotations

from typing import Any

from coordination_bot.commands.cercle import _role
from coordination_bot.commands.equipe import ATTESTATION
from coordination_bot.core import Command, CommandError, Context, Reply, build, register, user_arg
from dossier_api.domain.shapes import FavouriteGroupOut, FavouriteMemberOut
from maillon.shared.text import digits

USAGE_CREATE = "!favoris creer NOM @utilisateur|RPPS…"
USAGE_ADD = "!favoris ajouter NOM @utilisateur|RPPS…"
USAGE_REMOVE = "!favoris retirer NOM @utilisateur|RPPS"
USAGE_DELETE = "!favoris supprimer NOM"
USAGE_INVITE = "!favoris inviter NOM [RÔLE] [attestation]"
USAGE_CREATE_EN = "!favourites create NAME @user|RPPS…"
USAGE_ADD_EN = "!favourites add NAME @user|RPPS…"
USAGE_REMOVE_EN = "!favourites remove NAME @user|RPPS"
USAGE_DELETE_EN = "!favourites delete NAME"
USAGE_INVITE_EN = "!favourites invite NAME [ROLE] [attestation]"
OUTCOMES_EN = {
    "added": "added to the care circle",
    "invited": "invitation sent (entry pending until they enrol)",
    "already": "already in the care circle or already invited",
    "refused": "refused",
}


def _people(ctx: Context, words: list[str], usage: str) -> list[dict[str, str]]:
    """Each word a person: an RPPS (11 digits) or a Matrix id."""
    if not words:
        raise CommandError(
            ctx.t("il faut au moins une personne (@nom:serveur ou RPPS)", "at least one person"),
            usage,
        )
    return [
        {"rpps": w} if digits(w) and len(w) == 11 else {"user_id": user_arg(ctx, w, usage)}
        for w in words
    ]


def _member(ctx: Context, m: FavouriteMemberOut) -> str:
    who = ctx.person(m, m["user_id"] or f"RPPS {m['rpps']}")
    extra = "" if m["has_account"] else ctx.t(" — pas encore de compte", " — no account yet")
    role = m["role"]
    return who + (f" ({ctx.role(role)})" if role else "") + extra


async def _list(ctx: Context) -> Reply:
    groups = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.favourites)
    lines = [
        f"{g['name']} : " + (", ".join(_member(ctx, m) for m in g["members"]) or "—")
        for g in groups
    ]
    return build(
        ctx.t(f"Mes groupes de favoris : {len(groups)}", f"My favourites groups: {len(groups)}"),
        lines,
    )


def _group_reply(ctx: Context, group: FavouriteGroupOut, fr: str, en: str) -> Reply:
    return build(ctx.t(fr, en), [_member(ctx, m) for m in group["members"]])


def _changed(ctx: Context, group: FavouriteGroupOut) -> Reply:
    n = len(group["members"])
    return _group_reply(
        ctx,
        group,
        f"Groupe « {group['name']} » : {n} personne(s).",
        f"Group “{group['name']}”: {n} person(s).",
    )


async def _create(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_CREATE, USAGE_CREATE_EN)
    if not args:
        raise CommandError(ctx.t("il faut le nom du groupe", "the group's name is needed"), usage)
    body = {"name": args[0], "members": _people(ctx, args[1:], usage)}
    group = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.create_favourites, body)
    n = len(group["members"])
    return _group_reply(
        ctx,
        group,
        f"Groupe de favoris « {group['name']} » créé : {n} personne(s).",
        f"Favourites group “{group['name']}” created: {n} person(s).",
    )


async def _add(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_ADD, USAGE_ADD_EN)
    if len(args) < 2:
        raise CommandError(
            ctx.t("il faut le nom du groupe puis des personnes", "a group then people"), usage
        )
    people = _people(ctx, args[1:], usage)
    group = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.add_favourites, args[0], people
    )
    return _changed(ctx, group)


async def _remove(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_REMOVE, USAGE_REMOVE_EN)
    if len(args) != 2:
        raise CommandError(
            ctx.t("il faut le nom du groupe puis une personne", "a group then one person"), usage
        )
    who = next(iter(_people(ctx, args[1:], usage)[0].values()))
    group = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.remove_favourite, args[0], who
    )
    return _changed(ctx, group)


async def _delete(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_DELETE, USAGE_DELETE_EN)
    if len(args) != 1:
        raise CommandError(ctx.t("il faut le nom du groupe", "the group's name is needed"), usage)
    done = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.delete_favourites, args[0]
    )
    return build(
        ctx.t(
            f"Groupe de favoris « {done['name']} » supprimé.",
            f"Favourites group “{done['name']}” deleted.",
        )
    )


async def _invite(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_INVITE, USAGE_INVITE_EN)
    attested = bool(args) and args[-1].lower() in ATTESTATION
    rest = args[:-1] if attested else args
    if not 1 <= len(rest) <= 2:
        raise CommandError(
            ctx.t("il faut le nom du groupe (puis un rôle)", "the group's name (then a role)"),
            usage,
        )
    body: dict[str, Any] = {"attested": attested}
    if len(rest) == 2:
        body["role"] = _role(ctx, rest[1], usage)
    dossier_id = await ctx.dossier_id()
    made = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.invite_favourites, dossier_id, rest[0], body
    )
    if made["counts"]["added"]:
        await ctx.services.sync_rooms(dossier_id)  # invited into the dossier's rooms
    lines = []
    for r in made["results"]:
        label = r["label"] if ctx.lang != "en" else OUTCOMES_EN[r["outcome"]]
        who = ctx.person(r, r.get("user_id") or f"RPPS {r.get('rpps')}")
        said = f" : {r['message']}" if r["message"] else ""
        lines.append(f"{who} ({ctx.role(r['role'])}) — {label}{said}")
    counts = made["counts"]
    return build(
        ctx.t(
            f"Groupe « {made['group']} » invité : {counts['added']} ajout(s) au cercle, "
            f"{counts['invited']} invitation(s), {counts['already']} déjà présent(s), "
            f"{counts['refused']} refus.",
            f"Group “{made['group']}” invited: {counts['added']} added to the circle, "
            f"{counts['invited']} invitation(s), {counts['already']} already there, "
            f"{counts['refused']} refused.",
        ),
        lines,
        dossier_id=dossier_id,
    )


SUBCOMMANDS = {
    "creer": _create,
    "créer": _create,
    "create": _create,
    "ajouter": _add,
    "add": _add,
    "retirer": _remove,
    "enlever": _remove,
    "remove": _remove,
    "supprimer": _delete,
    "delete": _delete,
    "inviter": _invite,
    "invite": _invite,
}


async def favoris(ctx: Context, args: list[str]) -> Reply:
    if not args:
        return await _list(ctx)
    handler = SUBCOMMANDS.get(args[0].lower())
    if handler is None:
        raise CommandError(
            ctx.t(
                f"sous-commande « {args[0]} » inconnue (creer, ajouter, retirer, supprimer, "
                "inviter)",
                f"unknown subcommand “{args[0]}” (create, add, remove, delete, invite)",
            )
        )
    return await handler(ctx, args[1:])


register(
    Command(
        name="!favoris",
        aliases=("!favori",),
        english=("!favourites", "!favorites"),
        usage_fr="\n".join(
            ("!favoris", USAGE_CREATE, USAGE_ADD, USAGE_REMOVE, USAGE_DELETE, USAGE_INVITE)
        ),
        usage_en="\n".join(
            (
                "!favourites",
                USAGE_CREATE_EN,
                USAGE_ADD_EN,
                USAGE_REMOVE_EN,
                USAGE_DELETE_EN,
                USAGE_INVITE_EN,
            )
        ),
        help_fr="mes groupes de favoris ; inviter un groupe au cercle (coordinateurs)",
        help_en="my favourites groups; invite a group into the circle (coordinators)",
        details_fr=(
            "mes groupes de collègues",
            "créer un groupe nommé (personnes de l'annuaire : @compte ou RPPS)",
            "ajouter des personnes au groupe",
            "retirer une personne du groupe",
            "supprimer le groupe",
            "inviter le groupe au cercle du dossier, chacun avec son rôle (coordinateurs)",
        ),
        details_en=(
            "my groups of colleagues",
            "create a named group (directory people: @account or RPPS)",
            "add people to the group",
            "remove a person from the group",
            "delete the group",
            "invite the group into the dossier's circle, each with their role (coordinators)",
        ),
        handler=favoris,
        needs_dossier=False,
    )
)
