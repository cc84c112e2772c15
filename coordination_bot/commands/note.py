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


LIST_USAGE = "!notes"
LIST_USAGE_EN = "!notes"
SHOWN = 10
EXCERPT = 500


async def notes(ctx: Context, args: list[str]) -> Reply:
    """The latest notes of the cahier de liaison, as far as everyone in this room may read
    them (a note restricted to some roles is never posted where others read)."""
    if args:
        raise CommandError(
            ctx.t("!notes ne prend pas d'argument", "!notes takes no argument"),
            ctx.t(LIST_USAGE, LIST_USAGE_EN),
        )
    dossier_id = await ctx.dossier_id()
    shown, held = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.notes_in_room, dossier_id, ctx.room_id
    )
    latest = shown[-SHOWN:]
    lines = []
    names = await ctx.names(*{n["author"] for n in latest})
    for n in reversed(latest):
        text = n["text"] if len(n["text"]) <= EXCERPT else n["text"][:EXCERPT] + "…"
        when = ctx.when(n["created_at"])
        mark = ctx.t("URGENT · ", "URGENT · ") if n["urgent"] else ""
        lines.append(f"{mark}{when} — {names[n['author']]} : {text}")
    if held:
        lines.append(
            ctx.t(
                f"{held} note(s) réservée(s) à certains rôles ne sont pas affichées dans "
                "cette salle : consultez le widget du dossier.",
                f"{held} note(s) restricted to some roles are not shown in this room: "
                "open the dossier widget.",
            )
        )
    title = ctx.t(
        f"Cahier de liaison : {len(latest)} dernière(s) note(s) sur {len(shown)}",
        f"Liaison log: latest {len(latest)} of {len(shown)} note(s)",
    )
    if not shown:
        title = ctx.t("Aucune note à afficher ici.", "No note to show here.")
    return build(title, lines, dossier_id=dossier_id)


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
register(
    Command(
        name="!notes",
        usage_fr=LIST_USAGE,
        usage_en=LIST_USAGE_EN,
        help_fr="les dernières notes du cahier de liaison (celles que toute la salle peut lire)",
        help_en="the latest liaison-log notes (those everyone in the room may read)",
        handler=notes,
    )
)
