"""What every command family shares: the command registry, the context a handler gets,
replies (HTML with a plain-text fallback), errors that show the usage line, tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coordination_bot.dates import PARIS
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.shapes import People
from maillon.shared.circle import USER_ID_RE, role_label
from maillon.shared.dates_fr import format_iso, format_moment
from maillon.shared.text import digits

if TYPE_CHECKING:
    from coordination_bot.services import Services


class CommandError(Exception):
    """The command cannot be done; ``message`` says why (shown with the usage line)."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


OK_MARK = "✅"


@dataclass
class Reply:
    """What the bot answers: plain text and its HTML twin; ``ok``: a success, shown
    beginning with ✅ (an error begins with ❌: ``dispatch.error_reply``)."""

    plain: str
    html: str
    ok: bool = True
    mentions: tuple[str, ...] = ()
    note_id: str | None = None  # a liaison note this reply confirms (thread replies)
    dossier_id: str | None = None
    follow_up: Callable[[], Awaitable[Reply | None]] | None = None  # after the answer

    def shown(self) -> tuple[str, str]:
        """The text and HTML sent. A success begins with ✅: the answer, in the command's
        thread (and in its summary under the command), is the acknowledgement — no
        reaction, which was a second event (sent, stored, synced) for every command."""
        if not self.ok:
            return self.plain, self.html
        if self.html.startswith("<p>"):
            html = f"<p>{OK_MARK} {self.html[3:]}"
        else:
            html = f"<p>{OK_MARK}</p>{self.html}"
        return f"{OK_MARK} {self.plain}", html


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def build(title: str, lines: Sequence[str] = (), ok: bool = True, **extra: Any) -> Reply:
    """A reply with a bold title and an optional bullet list (lines are plain text)."""
    plain = "\n".join([title, *(f"• {line}" for line in lines)])
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    body = f"<p><strong>{esc(title)}</strong></p>" + (f"<ul>{items}</ul>" if lines else "")
    return Reply(plain, body, ok, **extra)


Handler = Callable[["Context", list[str]], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    """One command family: French name and aliases, English aliases, usage and help."""

    name: str
    usage_fr: str
    usage_en: str
    help_fr: str
    help_en: str
    handler: Handler
    aliases: tuple[str, ...] = ()  # French variants (accents…)
    english: tuple[str, ...] = ()
    needs_dossier: bool = True
    raw_text: bool = False  # free text: arguments are split on blanks, quotes kept as typed
    # One description per usage line (a line in parentheses continues the line above);
    # a family with a single usage line may rely on its help alone.
    details_fr: tuple[str, ...] = ()
    details_en: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for lang in ("fr", "en"):
            lines, details = self.usage_lines(lang), self.details(lang)
            if len(lines) > 1 and len(details) != len(lines):
                raise ValueError(f"{self.name}: one {lang} description per usage line")

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.aliases, *self.english)

    def usage(self, lang: str) -> str:
        return self.usage_en if lang == "en" else self.usage_fr

    def help(self, lang: str) -> str:
        return self.help_en if lang == "en" else self.help_fr

    def details(self, lang: str) -> tuple[str, ...]:
        return self.details_en if lang == "en" else self.details_fr

    def usage_lines(self, lang: str) -> list[str]:
        """Usage lines, each with its continuation lines (those in parentheses) folded in."""
        lines: list[str] = []
        for line in self.usage(lang).splitlines():
            if line.startswith("(") and lines:
                lines[-1] += f" {line}"
            else:
                lines.append(line)
        return lines

    def entries(self, lang: str) -> list[tuple[str, str]]:
        """(usage line, what it does) for each usage line of the family."""
        lines = self.usage_lines(lang)
        details = self.details(lang) or (self.help(lang),)
        return list(zip(lines, details, strict=True))


REGISTRY: dict[str, Command] = {}
ORDER: list[Command] = []


def register(command: Command) -> Command:
    for word in command.words:
        if word in REGISTRY:
            raise ValueError(f"command word {word} registered twice")
        REGISTRY[word] = command
    ORDER.append(command)
    return command


def lookup(word: str) -> tuple[Command, str] | None:
    """The command for a typed word, and the language the word belongs to."""
    command = REGISTRY.get(word.lower())
    if command is None:
        return None
    return command, ("en" if word.lower() in command.english else "fr")


@dataclass
class Context:
    sender: str
    room_id: str
    event_id: str
    lang: str
    services: Services
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(PARIS))
    command: Command | None = None
    # Set by the bot for a message replying in a note's thread, etc.
    extra: dict[str, Any] = field(default_factory=dict)

    def t(self, fr: str, en: str) -> str:
        return en if self.lang == "en" else fr

    def when(self, value: str | dt.date | None) -> str:
        """A day or moment (an ISO text of the API, a date or a date-time) in the
        command's language, Paris time, with its weekday (« — » when none)."""
        if isinstance(value, dt.date):
            return format_moment(value, self.lang)
        return format_iso(value, self.lang) or "—"

    def role(self, code: str) -> str:
        return role_label(code, self.lang)

    def pathway(self, pathway_id: str, version: int | None = None) -> str:
        """The pathway's name (of the dossier's version) in the command's language."""
        found = PATHWAYS.version(pathway_id, version)
        return found.label(self.lang) if found is not None else pathway_id

    def person(self, who: Mapping[str, Any] | None, user_id: str = "") -> str:
        """A person by name and profession from the directory; the Matrix id only for an
        account the directory does not know."""
        name = (who or {}).get("display_name")
        if not name:
            return user_id or self.t("personne hors annuaire", "person not in the directory")
        profession = (who or {}).get("profession")
        return f"{name} ({profession})" if profession else str(name)

    async def people(self, *user_ids: str) -> People:
        """Directory entries (name, profession) of these accounts."""
        return await asyncio.to_thread(self.services.dossiers.people, set(user_ids))

    async def names(self, *user_ids: str) -> dict[str, str]:
        """Each account as people read it: « Marie Durand (Infirmier) »."""
        found = await self.people(*user_ids)
        return {u: self.person(found.get(u), u) for u in user_ids}

    async def dossier_id(self) -> str:
        dossier_id = await self.services.dossier_for_room(self.room_id)
        if dossier_id is None:
            raise CommandError(
                self.t(
                    "cette salle n'est liée à aucun dossier de coordination : écrivez la "
                    "commande dans la salle du patient",
                    "this room is not linked to a coordination dossier: use the command in "
                    "the patient's room",
                )
            )
        return dossier_id


# -- tokens ------------------------------------------------------------------------------

_QUOTES = {'"': '"', "«": "»", "“": "”", "'": "'"}
USER_ID = USER_ID_RE  # the commands' name for the one user-id check


def tokenize(text: str) -> list[str]:
    """Split on blanks; "double", « French » or “curly” quotes keep words together.
    An unclosed quote is an error (said in French)."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        opener = text[i]
        if opener in _QUOTES and opener != "'":
            closer = _QUOTES[opener]
            end = text.find(closer, i + 1)
            if end < 0:
                raise CommandError(f"guillemet {opener} non refermé")
            tokens.append(text[i + 1 : end].strip())
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def bounded_text(
    ctx: Context, text: str, what: tuple[str, str], limit: int, usage: str | None = None
) -> str:
    """A required free text (title, reason…) of at most ``limit`` characters."""
    text = text.strip()
    if not text:
        raise CommandError(ctx.t(f"{what[0]} manque", f"{what[1]} is missing"), usage)
    if len(text) > limit:
        raise CommandError(
            ctx.t(
                f"{what[0]} trop long ({limit} caractères au plus)",
                f"{what[1]} too long ({limit} characters at most)",
            ),
            usage,
        )
    return text


def user_arg(ctx: Context, word: str | None, usage: str | None = None) -> str:
    if word is None:
        raise CommandError(
            ctx.t(
                "identifiant Matrix manquant (@nom:serveur)",
                "Matrix user id missing (@name:server)",
            ),
            usage,
        )
    word = word.strip().rstrip(",;")
    if not USER_ID.match(word):
        raise CommandError(
            ctx.t(
                f"« {word} » n'est pas un identifiant Matrix (forme attendue : @nom:serveur)",
                f"“{word}” is not a Matrix user id (expected: @name:server)",
            ),
            usage,
        )
    return word


def parse_index(ctx: Context, word: str | None, count: int, what_fr: str, what_en: str) -> int:
    if word is None or not digits(word):
        raise CommandError(ctx.t(f"numéro de {what_fr} attendu", f"{what_en} number expected"))
    index = int(word)
    if not 1 <= index <= count:
        raise CommandError(
            ctx.t(
                f"pas de {what_fr} n° {index} (il y en a {count})",
                f"no {what_en} #{index} (there are {count})",
            )
        )
    return index - 1
