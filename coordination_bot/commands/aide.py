"""!aide / !help [commande]: the list of commands, or one command's usage and help."""

from __future__ import annotations

from coordination_bot.core import (
    ORDER,
    REGISTRY,
    Command,
    CommandError,
    Context,
    Reply,
    esc,
    register,
)

FIRST = (
    "!aide",
    "!dossier",
    "!cercle",
    "!note",
    "!notes",
    "!tache",
    "!taches",
    "!agenda",
    "!formulaire",
    "!formulaires",
    "!ppcs",
    "!alerte",
    "!delegation",
)


def _ordered() -> list[Command]:
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(ORDER, key=lambda c: rank.get(c.name, len(FIRST)))


def command_list(lang: str) -> Reply:
    title = (
        "Maillon coordination bot — available commands:"
        if lang == "en"
        else "Bot de coordination Maillon — commandes disponibles :"
    )
    plain = [title]
    items = []
    for cmd in _ordered():
        for usage, summary in cmd.entries(lang):
            plain.append(f"• {usage} — {summary}")
            items.append(f"<li><code>{esc(usage)}</code> — {esc(summary)}</li>")
    footer = (
        "Dates: 24/12, 24/12/2026, tomorrow 2pm as “demain 14h”, “lundi 9h30” (Paris time)."
        if lang == "en"
        else "Dates : 24/12, 24/12/2026, demain 14h, lundi 9h30, aujourd'hui 18h (heure de Paris)."
    )
    plain.append(footer)
    body = f"<p><strong>{esc(title)}</strong></p><ul>{''.join(items)}</ul><p>{esc(footer)}</p>"
    return Reply("\n".join(plain), body)


def command_help(cmd: Command, lang: str) -> Reply:
    name = cmd.english[0] if lang == "en" and cmd.english else cmd.name
    others = ", ".join(w for w in cmd.words if w != name)
    label = "Usage:" if lang == "en" else "Usage :"
    aka = ("Also: " if lang == "en" else "Aussi : ") + others if others else ""
    entries = cmd.entries(lang)
    lines = (
        [f"{usage} — {what}" for usage, what in entries] if len(entries) > 1 else [entries[0][0]]
    )
    plain = "\n".join([f"{name} — {cmd.help(lang)}", label, *lines, aka]).strip()
    items = "".join(
        f"<li><code>{esc(usage)}</code>" + (f" — {esc(what)}" if len(entries) > 1 else "") + "</li>"
        for usage, what in entries
    )
    body = (
        f"<p><strong>{esc(name)}</strong> — {esc(cmd.help(lang))}</p>"
        f"<p>{esc(label)}</p><ul>{items}</ul>" + (f"<p>{esc(aka)}</p>" if aka else "")
    )
    return Reply(plain, body)


async def aide(ctx: Context, args: list[str]) -> Reply:
    if not args:
        return command_list(ctx.lang)
    if len(args) > 1:
        raise CommandError(ctx.t("une seule commande à la fois", "one command at a time"))
    word = args[0].lower()
    word = word if word.startswith("!") else "!" + word
    found = REGISTRY.get(word)
    if found is None:
        raise CommandError(ctx.t(f"pas de commande « {args[0]} »", f"no command “{args[0]}”"))
    return command_help(found, ctx.lang)


register(
    Command(
        name="!aide",
        english=("!help",),
        usage_fr="!aide [commande]",
        usage_en="!help [command]",
        help_fr="affiche cette aide, ou l'usage d'une commande",
        help_en="shows this help, or how to use one command",
        handler=aide,
        needs_dossier=False,
    )
)
