"""!ppcs: the dossier's current Plan Personnalisé de Coordination en Santé."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register
from dossier_api.domain.core import ApiError


async def ppcs(ctx: Context, args: list[str]) -> Reply:
    if args:
        raise CommandError(
            ctx.t(
                "!ppcs ne prend pas d'argument (le PPCS se rédige dans le dossier)",
                "!ppcs takes no argument",
            )
        )
    dossier_id = await ctx.dossier_id()
    try:
        plan = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.get_ppcs, dossier_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return build(
            ctx.t("Pas encore de PPCS pour ce dossier.", "No PPCS for this dossier yet."),
            dossier_id=dossier_id,
        )
    lines = []
    for problem in plan.get("problems", []):
        goals = "; ".join(problem.get("goals", []))
        lines.append(
            ctx.t(f"Problème : {problem['problem']}", f"Problem: {problem['problem']}")
            + (ctx.t(f" — objectifs : {goals}", f" — goals: {goals}") if goals else "")
        )
    people = plan.get("people", {})
    for action in plan.get("actions", []):
        when = f" ({action['when']})" if action.get("when") else ""
        who = action["who"]
        who = ctx.person(people.get(who), who) if who.startswith("@") else who
        lines.append(
            ctx.t(
                f"Action : {action['action']} — {who}{when}",
                f"Action: {action['action']} — {who}{when}",
            )
        )
    author = ctx.person(people.get(plan["author"]), plan["author"])
    for goal in plan.get("unmet_goals", []) or []:
        lines.append(ctx.t(f"Objectif non atteint : {goal}", f"Unmet goal: {goal}"))
    return build(
        ctx.t(
            f"PPCS version {plan['version']} (par {author})",
            f"PPCS version {plan['version']} (by {author})",
        ),
        lines,
        dossier_id=dossier_id,
    )


register(
    Command(
        name="!ppcs",
        english=("!careplan",),
        usage_fr="!ppcs",
        usage_en="!careplan",
        help_fr="le PPCS en vigueur (problèmes, objectifs, actions)",
        help_en="the current care plan (problems, goals, actions)",
        handler=ppcs,
    )
)
