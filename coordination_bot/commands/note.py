"""!note: write in the cahier de liaison (urgent or not). A threaded reply to the note's
confirmation adds a reply to that note (see ``reply_to_note``)."""

from __future__ import annotations

from coordination_bot.core import Command, CommandError, Context, Reply, build, register

USAGE = "!note texte\n!note urgent texte"
USAGE_EN = "!note text\n!note urgent text"
MAX_TEXT = 20000


def _text(ctx: Context, text: str) -> str:
    text = text.strip()
    if not text:
        raise CommandError(ctx.t("le texte de la note est vide", "the note is empty"))
    if len(text) > MAX_TEXT:
        raise CommandError(
            ctx.t(
                f"note trop longue ({MAX_TEXT} caractères au plus)",
                f"note too long ({MAX_TEXT} characters at most)",
            )
        )
    return text


async def note(ctx: Context, args: list[str]) -> Reply:
    # The author's own line breaks and quotes are kept: the raw text after the command.
    raw = str(ctx.extra.get("raw_args", " ".join(args))).strip()
    parts = raw.split(None, 1)
    urgent = bool(parts) and parts[0].lower() == "urgent"
    text = _text(ctx, (parts[1] if len(parts) > 1 else "") if urgent else raw)
    dossier_id = await ctx.dossier_id()
    created = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.add_note, dossier_id, {"text": text, "urgent": urgent}
    )
    title = (
        ctx.t(
            "Note URGENTE enregistrée dans le cahier de liaison.",
            "URGENT note saved in the liaison log.",
        )
        if urgent
        else ctx.t("Note enregistrée dans le cahier de liaison.", "Note saved in the liaison log.")
    )
    return build(
        title,
        [
            ctx.t(
                "Répondez dans ce fil pour répondre à la note.",
                "Reply in this thread to answer the note.",
            )
        ],
        note_id=created["id"],
        dossier_id=dossier_id,
    )


async def reply_to_note(ctx: Context, dossier_id: str, note_id: str, text: str) -> Reply:
    """A message in a note's thread: a reply to the note in the cahier de liaison."""
    body = {"text": _text(ctx, text), "reply_to": note_id}
    created = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.add_note, dossier_id, body
    )
    return build(
        ctx.t(
            "Réponse ajoutée à la note du cahier de liaison.",
            "Reply added to the liaison-log note.",
        ),
        note_id=created["id"],
        dossier_id=dossier_id,
    )


register(
    Command(
        name="!note",
        usage_fr=USAGE,
        usage_en=USAGE_EN,
        help_fr="écrire dans le cahier de liaison (répondre dans le fil pour répondre à la note)",
        help_en="write in the liaison log (reply in the thread to answer the note)",
        details_fr=(
            "écrire dans le cahier de liaison (répondre dans le fil pour répondre à la note)",
            "écrire une note marquée urgente",
        ),
        details_en=(
            "write in the liaison log (reply in the thread to answer the note)",
            "write a note marked urgent",
        ),
        handler=note,
        raw_text=True,
    )
)
