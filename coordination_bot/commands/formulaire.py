"""!formulaire NOM: fill a pathway form in the chat, question by question (each answer is
checked; « annuler » stops); !formulaires: the pathway's forms and how often filled."""

from __future__ import annotations

from typing import Any

from coordination_bot.core import Command, CommandError, Context, Reply, build, esc, register
from coordination_bot.dates import DateError, fold, parse_date_text
from coordination_bot.models import BotFormDialogue
from dossier_api.domain.core import ApiError
from dossier_api.domain.pathways import PATHWAYS, FormDefinition, FormField, Pathway

USAGE = "!formulaire NOM"
USAGE_EN = "!form NAME"
CANCEL = {"annuler", "cancel", "stop"}
SKIP = {"-", "passer", "skip"}
YES = {"oui", "o", "yes", "y", "vrai", "true", "1"}
NO = {"non", "n", "no", "faux", "false", "0"}
TYPE_HINT = {
    "text": ("un texte", "a text"),
    "integer": ("un nombre entier", "a whole number"),
    "boolean": ("oui ou non", "yes or no"),
    "date": ("une date, par exemple 24/12/2026", "a date, e.g. 24/12/2026"),
    "choice": ("l'un de : {choices}", "one of: {choices}"),
}


def _hint(ctx: Context, field: FormField) -> str:
    fr, en = TYPE_HINT[field.type]
    return ctx.t(fr, en).format(choices=", ".join(field.choices))


def parse_answer(ctx: Context, field: FormField, text: str) -> Any:
    """The value of an answer for ``field``; CommandError says what is expected."""
    value = text.strip()
    word = fold(value)
    if field.type == "text":
        if not value or len(value) > 5000:
            raise CommandError(
                ctx.t(
                    "un texte de 1 à 5000 caractères est attendu",
                    "a text of 1 to 5000 characters is expected",
                )
            )
        return value
    if field.type == "integer":
        try:
            number = int(value)
        except ValueError:
            raise CommandError(
                ctx.t(f"« {value} » n'est pas un nombre entier", f"“{value}” is not a whole number")
            ) from None
        if abs(number) > 10**9:
            raise CommandError(ctx.t("nombre trop grand", "number too large"))
        return number
    if field.type == "boolean":
        if word in YES:
            return True
        if word in NO:
            return False
        raise CommandError(ctx.t("répondez oui ou non", "answer yes or no"))
    if field.type == "date":
        try:
            return parse_date_text(value, ctx.now).day.isoformat()
        except DateError as exc:
            raise CommandError(str(exc)) from None
    for choice in field.choices:
        if fold(choice) == word:
            return choice
    raise CommandError(
        ctx.t(
            f"« {value} » n'est pas l'un de : {', '.join(field.choices)}",
            f"“{value}” is not one of: {', '.join(field.choices)}",
        )
    )


def question(ctx: Context, form: FormDefinition, step: int, problem: str | None = None) -> Reply:
    field = form.fields[step]
    need = (
        ctx.t("obligatoire", "required")
        if field.required
        else ctx.t("facultatif : « - » pour passer", "optional: “-” to skip")
    )
    ask = ctx.t(
        f"Question {step + 1}/{len(form.fields)} — {field.label} ? ({_hint(ctx, field)} ; {need})",
        f"Question {step + 1}/{len(form.fields)} — {field.label}? ({_hint(ctx, field)}; {need})",
    )
    tip = ctx.t(
        "Répondez dans ce fil ; « annuler » pour arrêter.",
        "Answer in this thread; “annuler” (cancel) to stop.",
    )
    plain = "\n".join(x for x in (problem, ask, tip) if x)
    body = (f"<p>{esc(problem)}</p>" if problem else "") + (
        f"<p><strong>{esc(ask)}</strong></p><p>{esc(tip)}</p>"
    )
    return Reply(plain, body, ok=problem is None)


async def _pathway_of(ctx: Context, dossier_id: str) -> Pathway | None:
    """The version of its pathway the dossier follows."""
    dossier = await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.get_dossier, dossier_id
    )
    return PATHWAYS.version(str(dossier["pathway"]), dossier["pathway_version"])


async def formulaire(ctx: Context, args: list[str]) -> Reply:
    if len(args) != 1:
        raise CommandError(
            ctx.t(
                "il faut le nom d'un formulaire (voir !formulaires)",
                "a form name is needed (see !forms)",
            )
        )
    dossier_id = await ctx.dossier_id()
    pathway = await _pathway_of(ctx, dossier_id)
    form = pathway.form(args[0].lower()) if pathway else None
    if form is None or pathway is None:
        known = ", ".join(f.id for f in pathway.forms) if pathway else ""
        raise CommandError(
            ctx.t(
                f"formulaire « {args[0]} » inconnu dans ce parcours"
                + (f" (formulaires : {known})" if known else " (aucun formulaire)"),
                f"unknown form “{args[0]}” in this pathway"
                + (f" (forms: {known})" if known else " (no form)"),
            )
        )
    # The right to fill it in is the API's own (checked and audited as the sender).
    await ctx.services.as_sender(
        ctx.sender, ctx.services.dossiers.check, dossier_id, "forms.open", "write"
    )
    thread_root = str(ctx.extra.get("thread_root", ctx.event_id))
    await ctx.services.save_dialogue(
        BotFormDialogue(
            room_id=ctx.room_id,
            user_id=ctx.sender,
            dossier_id=dossier_id,
            form_id=form.id,
            thread_root=thread_root,
            step=0,
            answers={},
            lang=ctx.lang,
        )
    )
    first = question(ctx, form, 0)
    intro = ctx.t(
        f"Formulaire « {form.title} » : {len(form.fields)} question(s).",
        f"Form “{form.title}”: {len(form.fields)} question(s).",
    )
    first.plain = intro + "\n" + first.plain
    first.html = f"<p>{esc(intro)}</p>" + first.html
    first.dossier_id = dossier_id
    return first


async def answer(ctx: Context, row: BotFormDialogue, text: str) -> Reply:
    """One answer of a dialogue in progress (the bot calls it for the author's messages)."""
    pathway = await _pathway_of(ctx, row.dossier_id)
    form = pathway.form(row.form_id) if pathway else None
    if fold(text.strip()) in CANCEL or form is None:
        await ctx.services.end_dialogue(row.room_id, row.user_id)
        return build(
            ctx.t(
                "Formulaire annulé : rien n'a été enregistré.", "Form cancelled: nothing was saved."
            )
        )
    field = form.fields[row.step]
    answers = dict(row.answers)
    if fold(text.strip()) in SKIP and not field.required:
        answers.pop(field.id, None)
    else:
        try:
            answers[field.id] = parse_answer(ctx, field, text)
        except CommandError as exc:
            return question(ctx, form, row.step, problem=exc.message)
    row.answers = answers
    row.step += 1
    if row.step < len(form.fields):
        await ctx.services.save_dialogue(row)
        return question(ctx, form, row.step)
    await ctx.services.end_dialogue(row.room_id, row.user_id)
    try:
        saved = await ctx.services.as_sender(
            ctx.sender,
            ctx.services.dossiers.submit_form,
            row.dossier_id,
            form.id,
            {"answers": answers},
        )
    except ApiError as exc:
        return build(
            ctx.t(f"Formulaire non enregistré : {exc.message}", f"Form not saved: {exc.message}"),
            ok=False,
        )
    labels = {f.id: f.label for f in form.fields}
    lines = [f"{labels[k]} : {_show(ctx, v)}" for k, v in saved["answers"].items()]
    return build(
        ctx.t(f"Formulaire « {form.title} » enregistré.", f"Form “{form.title}” saved."),
        lines,
        dossier_id=row.dossier_id,
    )


def _show(ctx: Context, value: Any) -> str:
    if value is True:
        return ctx.t("oui", "yes")
    if value is False:
        return ctx.t("non", "no")
    return str(value)


async def formulaires(ctx: Context, args: list[str]) -> Reply:
    if args:
        raise CommandError(
            ctx.t("!formulaires ne prend pas d'argument", "!forms takes no argument")
        )
    dossier_id = await ctx.dossier_id()
    pathway = await _pathway_of(ctx, dossier_id)
    filled = await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.forms, dossier_id)
    lines = []
    for form in pathway.forms if pathway else ():
        mine = [f for f in filled if f["form_id"] == form.id]
        last = ""
        if mine:
            when = ctx.when(mine[-1]["created_at"])
            last = ctx.t(f", dernier le {when}", f", last on {when}")
        lines.append(
            ctx.t(
                f"{form.id} — {form.title} (rempli {len(mine)} fois{last})",
                f"{form.id} — {form.title} (filled {len(mine)} times{last})",
            )
        )
    title = (
        ctx.t("Formulaires du parcours :", "Pathway forms:")
        if lines
        else ctx.t("Ce parcours n'a pas de formulaire.", "This pathway has no form.")
    )
    return build(title, lines, dossier_id=dossier_id)


register(
    Command(
        name="!formulaire",
        english=("!form",),
        usage_fr=USAGE,
        usage_en=USAGE_EN,
        help_fr="remplir un formulaire du parcours, question par question",
        help_en="fill in a pathway form, question by question",
        handler=formulaire,
    )
)
register(
    Command(
        name="!formulaires",
        english=("!forms",),
        usage_fr="!formulaires",
        usage_en="!forms",
        help_fr="les formulaires du parcours et combien de fois ils ont été remplis",
        help_en="the pathway's forms and how often they were filled in",
        handler=formulaires,
    )
)
