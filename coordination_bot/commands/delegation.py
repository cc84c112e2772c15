"""!delegation: let a colleague act with my rights until a date (end of that day)."""

from __future__ import annotations

import datetime as dt

from coordination_bot.core import Command, CommandError, Context, Reply, build, register, user_arg
from coordination_bot.dates import DateError, fold, parse_when

USAGE = "!delegation @utilisateur jusqu'au DATE"
USAGE_EN = "!delegate @user until DATE"
USAGE_REVOKE = "!delegation révoquer @utilisateur"
USAGE_REVOKE_EN = "!delegate revoke @user"
UNTIL = {"jusqu'au", "jusqu'a", "jusqua", "jusquau", "until", "au"}


REVOKE = {"revoquer", "retirer", "annuler", "revoke", "cancel"}


async def _revoke(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_REVOKE, USAGE_REVOKE_EN)
    if len(args) != 1:
        raise CommandError(ctx.t("il faut la personne", "the colleague is needed"), usage)
    to_user = user_arg(ctx, args[0], usage)
    mine = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.delegations)
    ids = [d["id"] for d in mine["given"] if d["to_user"] == to_user]
    if not ids:
        raise CommandError(
            ctx.t(
                f"aucune délégation en cours à {to_user}",
                f"no current delegation to {to_user}",
            ),
            usage,
        )
    for delegation_id in ids:
        await ctx.services.as_sender(
            ctx.sender, ctx.services.dossiers.revoke_delegation, delegation_id
        )
    who = (await ctx.names(to_user))[to_user]
    return build(
        ctx.t(
            f"Délégation à {who} révoquée : cette personne n'agit plus avec vos droits.",
            f"Delegation to {who} revoked: they no longer act with your rights.",
        )
    )


async def delegation(ctx: Context, args: list[str]) -> Reply:
    if args and fold(args[0]) in REVOKE:
        return await _revoke(ctx, args[1:])
    if len(args) < 2:
        raise CommandError(
            ctx.t(
                "il faut la personne et la date de fin", "the colleague and the end date are needed"
            )
        )
    to_user = user_arg(ctx, args[0])
    rest = args[1:]
    if rest and fold(rest[0]) in UNTIL:
        rest = rest[1:]
    elif len(rest) > 1 and fold(rest[0]) == "jusqu" and fold(rest[1]) in ("au", "a"):
        rest = rest[2:]
    try:
        when, used = parse_when(rest, ctx.now)
    except DateError as exc:
        raise CommandError(str(exc)) from None
    if used != len(rest):
        raise CommandError(
            ctx.t(
                f"« {' '.join(rest[used:])} » en trop après la date",
                f"“{' '.join(rest[used:])}” after the date",
            )
        )
    # "jusqu'au 24/12": the whole of that day, unless a time was given.
    until = when.at(dt.time(23, 59, 59)) if when.time is None else when.at()
    if until <= ctx.now:
        raise CommandError(ctx.t("la date de fin doit être à venir", "the end must be ahead"))
    if to_user == ctx.sender:
        raise CommandError(
            ctx.t("on ne se délègue pas à soi-même", "you cannot delegate to yourself")
        )
    await ctx.services.as_sender(
        ctx.sender,
        ctx.services.dossiers.delegate,
        {"to_user": to_user, "until": until.isoformat()},
    )
    who = (await ctx.names(to_user))[to_user]
    return build(
        ctx.t(
            f"Délégation à {who} jusqu'au {ctx.when(until)}.",
            f"Delegation to {who} until {ctx.when(until)}.",
        ),
        [
            ctx.t(
                "Cette personne agit avec vos droits sur vos dossiers jusqu'à cette date.",
                "They act with your rights on your dossiers until then.",
            )
        ],
    )


register(
    Command(
        name="!delegation",
        aliases=("!délégation",),
        english=("!delegate",),
        usage_fr=f"{USAGE}\n{USAGE_REVOKE}",
        usage_en=f"{USAGE_EN}\n{USAGE_REVOKE_EN}",
        help_fr="déléguer vos droits à un confrère jusqu'à une date ; révoquer",
        help_en="delegate your rights to a colleague until a date; revoke",
        details_fr=(
            "déléguer vos droits à un confrère de l'annuaire jusqu'à une date (90 jours au plus)",
            "révoquer la délégation faite à ce confrère",
        ),
        details_en=(
            "delegate your rights to a directory colleague until a date (at most 90 days)",
            "revoke the delegation to this colleague",
        ),
        handler=delegation,
        needs_dossier=False,
    )
)
