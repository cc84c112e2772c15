"""From a message's text to a reply: find the command, run it as the sender, turn every
failure into a clear error with the usage line. Never raises (a bad command is an answer)."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re

import coordination_bot.commands  # noqa: F401  (registers every command family)
from coordination_bot.core import REGISTRY, Command, CommandError, Context, Reply, esc, lookup
from coordination_bot.core import tokenize as split_words
from coordination_bot.dates import DateError
from coordination_bot.services import Services
from dossier_api.domain.core import ApiError

log = logging.getLogger(__name__)
MAX_INPUT = 30000


def is_command(body: str) -> bool:
    text = body.lstrip()
    return text.startswith("!") and len(text) > 1 and not text[1].isspace()


def closest(word: str) -> str | None:
    matches = difflib.get_close_matches(word.lower(), list(REGISTRY), n=1, cutoff=0.6)
    return matches[0] if matches else None


def error_reply(lang: str, message: str, usage: str | None) -> Reply:
    label = "Usage:" if lang == "en" else "Usage :"
    message = message[:1].upper() + message[1:]
    plain = f"❌ {message}"
    html = f"<p>❌ {esc(message)}</p>"
    if usage:
        plain += f"\n{label} " + "\n".join(usage.splitlines())
        html += f"<p>{esc(label)}</p><pre>{esc(usage)}</pre>"
    return Reply(plain, html, ok=False)


def unknown(word: str, lang: str) -> Reply:
    guess = closest(word)
    if lang == "en":
        message = f"Unknown command “{word}”."
        if guess:
            message += f" Did you mean {guess}?"
        message += " Type !help for the list of commands."
    else:
        message = f"Commande inconnue « {word} »."
        if guess:
            message += f" Vouliez-vous dire {guess} ?"
        message += " Tapez !aide pour la liste des commandes."
    usage = REGISTRY[guess].usage(lang) if guess else None
    return error_reply(lang, message, usage)


async def dispatch(
    services: Services,
    sender: str,
    room_id: str,
    event_id: str,
    body: str,
    default_lang: str = "fr",
    thread_root: str | None = None,
    now: dt.datetime | None = None,
) -> Reply | None:
    """The reply to a command message (None when the text is not a command)."""
    if not is_command(body):
        return None
    match = re.match(r"(\S+)\s*(.*)", body.strip(), re.DOTALL)
    assert match is not None  # is_command: a non-blank word
    word, rest = match.group(1), match.group(2)
    found = lookup(word)
    if found is None:
        return unknown(word[:60], default_lang)
    command, word_lang = found
    lang = "en" if word_lang == "en" else default_lang
    ctx = Context(sender, room_id, event_id, lang, services, command=command)
    if now is not None:
        ctx.now = now
    ctx.extra["raw_args"] = rest
    ctx.extra["thread_root"] = thread_root or event_id
    return await run(command, ctx, rest)


async def run(command: Command, ctx: Context, rest: str) -> Reply:
    usage = command.usage(ctx.lang)
    try:
        if len(rest) > MAX_INPUT:
            raise CommandError(ctx.t("message trop long", "message too long"))
        if "\x00" in rest:
            raise CommandError(ctx.t("caractère nul refusé", "NUL character refused"))
        args = rest.split() if command.raw_text else split_words(rest)
        return await command.handler(ctx, args)
    except CommandError as exc:
        return error_reply(ctx.lang, exc.message, exc.usage or usage)
    except DateError as exc:
        return error_reply(ctx.lang, str(exc), usage)
    except ApiError as exc:
        return error_reply(ctx.lang, exc.message, usage)
    except Exception:
        log.exception("command %s failed", command.name)
        return error_reply(
            ctx.lang,
            ctx.t(
                "erreur interne du bot ; la commande n'a peut-être pas abouti, vérifiez "
                "le dossier avant de la refaire",
                "internal error of the bot; the command may not have been done, check the "
                "dossier before trying again",
            ),
            usage,
        )
