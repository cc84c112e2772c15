"""Help texts of the bot, French first with English available."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandHelp:
    usage_fr: str
    summary_fr: str
    usage_en: str
    summary_en: str


# Only the commands the bot really answers are listed.
COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp("!aide [commande]", "affiche cette aide", "!help [command]", "shows this help"),
)


def help_message(language: str) -> tuple[str, str]:
    """Return (plain text, HTML) of the command list."""
    english = language == "en"
    title = (
        "Maillon coordination bot — available commands:"
        if english
        else "Bot de coordination Maillon — commandes disponibles :"
    )
    plain_lines = [title]
    html_items = []
    for cmd in COMMANDS:
        usage = cmd.usage_en if english else cmd.usage_fr
        summary = cmd.summary_en if english else cmd.summary_fr
        plain_lines.append(f"• {usage} — {summary}")
        html_items.append(f"<li><code>{_escape(usage)}</code> — {_escape(summary)}</li>")
    html = f"<p><strong>{_escape(title)}</strong></p><ul>{''.join(html_items)}</ul>"
    return "\n".join(plain_lines), html


def unknown_command(language: str, word: str) -> str:
    if language == "en":
        return f"Unknown command “{word}”. Type !help for the list of commands."
    return f"Commande inconnue « {word} ». Tapez !aide pour la liste des commandes."


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
