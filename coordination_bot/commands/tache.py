"""!tache / !taches: tasks of the dossier (add, list with numbers, mark done)."""

from __future__ import annotations

import datetime as dt

from coordination_bot.core import (
    Command,
    CommandError,
    Context,
    Reply,
    bounded_text,
    build,
    parse_index,
    register,
    user_arg,
)
from coordination_bot.dates import DateError, When, parse_when

USAGE_ADD = '!tache ajouter @utilisateur "titre" [échéance]'
USAGE_DONE = "!tache fait N"
USAGE_LIST = "!taches"
USAGE_ADD_EN = '!task add @user "title" [due date]'
USAGE_DONE_EN = "!task done N"
USAGE_LIST_EN = "!tasks"
STATUS = {
    "todo": ("à faire", "to do"),
    "done": ("faite", "done"),
    "cancelled": ("annulée", "cancelled"),
}


def split_trailing_date(tokens: list[str], now: dt.datetime) -> tuple[list[str], When | None]:
    """Words before a date that ends the list, and that date (None when there is none)."""
    for start in range(1, len(tokens)):
        try:
            when, used = parse_when(tokens[start:], now)
        except DateError:
            continue
        if start + used == len(tokens):
            return tokens[:start], when
    return tokens, None


async def _add(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_ADD, USAGE_ADD_EN)
    if len(args) < 2:
        raise CommandError(
            ctx.t(
                "il faut la personne puis le titre de la tâche",
                "the assignee then the task title are needed",
            ),
            usage,
        )
    assignee = user_arg(ctx, args[0], usage)
    words, due = split_trailing_date(args[1:], ctx.now)
    title = bounded_text(ctx, " ".join(words), ("le titre", "the title"), 200, usage)
    if due is not None and due.day < ctx.now.date():
        raise CommandError(
            ctx.t(
                f"l'échéance du {ctx.when(due.day)} est passée",
                f"the due date {ctx.when(due.day)} is past",
            ),
            usage,
        )
    dossier_id = await ctx.dossier_id()
    body = {"title": title, "assignee": assignee}
    if due is not None:
        body["due"] = due.day.isoformat()
    await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.add_task, dossier_id, body)
    who = (await ctx.names(assignee))[assignee]
    when = ctx.t(f", échéance le {ctx.when(due.day)}", f", due {ctx.when(due.day)}") if due else ""
    return build(
        ctx.t(
            f"Tâche créée pour {who}{when} : {title}",
            f"Task created for {who}{when}: {title}",
        ),
        dossier_id=dossier_id,
    )


async def _done(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_DONE, USAGE_DONE_EN)
    if len(args) != 1:
        raise CommandError(
            ctx.t(
                "il faut le numéro de la tâche (voir !taches)",
                "the task number is needed (see !tasks)",
            ),
            usage,
        )
    dossier_id = await ctx.dossier_id()
    svc = ctx.services.dossiers
    tasks = await ctx.services.as_sender(ctx.sender, svc.tasks, dossier_id)
    try:
        index = parse_index(ctx, args[0], len(tasks), "tâche", "task")
    except CommandError as exc:
        raise CommandError(exc.message, usage) from None
    task = tasks[index]
    if task["status"] == "done":
        raise CommandError(
            ctx.t(f"la tâche {index + 1} est déjà faite", f"task {index + 1} is already done"),
            usage,
        )
    await ctx.services.as_sender(
        ctx.sender, svc.patch_task, dossier_id, task["id"], {"status": "done"}
    )
    return build(
        ctx.t(
            f"Tâche {index + 1} faite : {task['title']}", f"Task {index + 1} done: {task['title']}"
        ),
        dossier_id=dossier_id,
    )


async def tache(ctx: Context, args: list[str]) -> Reply:
    if not args:
        raise CommandError(
            ctx.t("que faire de la tâche ? (ajouter, fait)", "what about the task? (add, done)")
        )
    sub = args[0].lower()
    if sub in ("ajouter", "nouvelle", "add"):
        return await _add(ctx, args[1:])
    if sub in ("fait", "faite", "done"):
        return await _done(ctx, args[1:])
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (ajouter, fait)",
            f"unknown subcommand “{args[0]}” (add, done)",
        )
    )


async def taches(ctx: Context, args: list[str]) -> Reply:
    if args:
        raise CommandError(ctx.t("!taches ne prend pas d'argument", "!tasks takes no argument"))
    dossier_id = await ctx.dossier_id()
    tasks = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.tasks, dossier_id)
    lines = []
    names = await ctx.names(*{t["assignee"] for t in tasks})
    for number, task in enumerate(tasks, start=1):
        fr, en = STATUS.get(task["status"], (task["status"], task["status"]))
        due = ""
        if task["due"]:
            day = ctx.when(task["due"])
            due = ctx.t(f", échéance {day}", f", due {day}")
        mark = "✓ " if task["status"] == "done" else ""
        lines.append(
            f"{number}. {mark}{task['title']} — {names[task['assignee']]}{due} ({ctx.t(fr, en)})"
        )
    title = ctx.t(f"Tâches du dossier : {len(tasks)}", f"Dossier tasks: {len(tasks)}")
    if not tasks:
        title = ctx.t("Aucune tâche dans ce dossier.", "No task in this dossier.")
    return build(title, lines, dossier_id=dossier_id)


register(
    Command(
        name="!tache",
        aliases=("!tâche",),
        english=("!task",),
        usage_fr=f"{USAGE_ADD}\n{USAGE_DONE}",
        usage_en=f"{USAGE_ADD_EN}\n{USAGE_DONE_EN}",
        help_fr="créer une tâche pour un membre du cercle, ou la marquer faite",
        help_en="create a task for a circle member, or mark it done",
        details_fr=("créer une tâche pour un membre du cercle", "marquer la tâche N comme faite"),
        details_en=("create a task for a circle member", "mark task N as done"),
        handler=tache,
    )
)
register(
    Command(
        name="!taches",
        aliases=("!tâches",),
        english=("!tasks",),
        usage_fr=USAGE_LIST,
        usage_en=USAGE_LIST_EN,
        help_fr="les tâches du dossier, numérotées",
        help_en="the dossier's tasks, numbered",
        handler=taches,
    )
)
