"""!dossier: open a dossier (and its patient room), summarise the room's dossier, close it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from coordination_bot.core import Command, CommandError, Context, Reply, build, register
from coordination_bot.dates import DateError, parse_birth_date
from dossier_api.domain.core import ApiError
from dossier_api.domain.ins import IDENTITY_STATUS_WORDS, display_name
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.domain.rooms import reference
from dossier_api.domain.vigilance import DUPLICATE, OVERRIDE
from maillon.shared.dates_fr import born as born_word
from maillon.shared.dates_fr import format_birth_date, parse_iso

ROOM_WAIT_SECONDS = 30.0
SEXES = {"F": "F", "M": "M", "H": "M", "I": "I"}
USAGE_NEW = "!dossier nouveau NOM Prénom JJ/MM/AAAA SEXE [parcours] [doublon motif]"
USAGE_CLOSE = "!dossier fermer motif"
USAGE_NEW_EN = "!file new SURNAME Firstname DD/MM/YYYY SEX [pathway] [duplicate reason]"
DUPLICATE_WORDS = ("doublon", "duplicate")
USAGE_CLOSE_EN = "!file close reason"
STATUSES = {
    "fr": {"open": "ouvert", "closed": "clos", "archived": "archivé"},
    "en": {"open": "open", "closed": "closed", "archived": "archived"},
}


def _split_override(args: list[str]) -> tuple[list[str], str | None]:
    """The words before « doublon », and the reason after it (None without the word)."""
    for i, word in enumerate(args):
        if i >= 4 and word.lower() in DUPLICATE_WORDS:
            return args[:i], " ".join(args[i + 1 :]).strip()
    return args, None


def _duplicate_error(ctx: Context, exc: ApiError, usage: str) -> CommandError:
    """A possible duplicate, said in the room: the dossiers the sender may read by their
    reference (no patient name in a room), the others by their structure; how to confirm."""
    data = exc.data or {}
    statuses = STATUSES[ctx.lang]
    lines = [
        f"dossier {reference(c['id'])} ({ctx.pathway(c['pathway'])}, "
        # « ouvert le … » says the state of an open one; another says its state first.
        + ("" if c["status"] == "open" else f"{statuses.get(c['status'], c['status'])}, ")
        + ctx.t(f"ouvert le {ctx.when(c['opened_at'])})", f"opened {ctx.when(c['opened_at'])})")
        for c in data.get("candidates", [])
    ]
    lines.extend(str(s) for s in data.get("elsewhere", []))
    return CommandError(
        ctx.t(
            "doublon possible : " + " ; ".join(lines) + ". Pour ouvrir tout de même un "
            "dossier, ajoutez « doublon » et le motif à la fin de la commande",
            "possible duplicate: " + "; ".join(lines) + ". To open a dossier anyway, add "
            "“duplicate” and the reason at the end of the command",
        ),
        usage,
    )


async def _new(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_NEW, USAGE_NEW_EN)
    args, override = _split_override(args)
    if override is not None and len(override) < 3:
        raise CommandError(
            ctx.t(
                "le motif du doublon confirmé est obligatoire (3 caractères au moins)",
                "the reason for confirming a duplicate is required (3 characters at least)",
            ),
            usage,
        )
    if len(args) < 4:
        raise CommandError(
            ctx.t(
                "il faut le nom, le prénom, la date de naissance et le sexe",
                "surname, first name, birth date and sex are needed",
            ),
            usage,
        )
    if len(args) > 5:
        raise CommandError(
            ctx.t(
                f"trop de mots : « {' '.join(args[5:])} » (mettez un nom composé entre guillemets)",
                f"too many words: “{' '.join(args[5:])}” (quote a compound name)",
            ),
            usage,
        )
    surname, first, born_text, sex_text = args[:4]
    pathway = args[4].lower() if len(args) == 5 else "dac"
    for value, fr, en in ((surname, "nom", "surname"), (first, "prénom", "first name")):
        if not value or len(value) > 200 or not any(c.isalpha() for c in value):
            raise CommandError(
                ctx.t(f"{fr} invalide : « {value} »", f"invalid {en}: “{value}”"), usage
            )
    try:
        born = parse_birth_date(born_text, ctx.now.date())
    except DateError as exc:
        raise CommandError(str(exc), usage) from None
    sex = SEXES.get(sex_text.upper())
    if sex is None:
        raise CommandError(
            ctx.t(
                f"sexe « {sex_text} » inconnu : F, M (ou H) ou I",
                f"unknown sex “{sex_text}”: F, M or I",
            ),
            usage,
        )
    if pathway not in PATHWAYS:
        raise CommandError(
            ctx.t(
                f"parcours « {pathway} » inconnu (parcours : {', '.join(sorted(PATHWAYS))})",
                f"unknown pathway “{pathway}” (pathways: {', '.join(sorted(PATHWAYS))})",
            ),
            usage,
        )
    body: dict[str, object] = {
        "pathway": pathway,
        "identity": {
            "birth_name": surname.upper(),
            "first_names": first,
            "sex": sex,
            "birth_date": born.isoformat(),
            "identity_status": "PROV",
        },
    }
    if override is not None:
        body[OVERRIDE] = {"reason": override}
    try:
        created = await ctx.services.as_sender(
            ctx.sender, ctx.services.dossiers.create_dossier, body
        )
    except ApiError as exc:
        if exc.errcode == DUPLICATE:
            raise _duplicate_error(ctx, exc, usage) from None
        raise
    dossier_id = created["id"]
    name = display_name(created["identity"])
    referent = ctx.person((await ctx.people(ctx.sender)).get(ctx.sender), ctx.sender)

    async def room_created() -> Reply | None:
        deadline = time.monotonic() + ROOM_WAIT_SECONDS
        room_id = await ctx.services.sync_rooms(dossier_id)
        while time.monotonic() < deadline:
            room_id = room_id or await ctx.services.room_of(dossier_id)
            if room_id:
                return build(
                    ctx.t(
                        f"Salle du patient {name} créée : vous y êtes invité(e).",
                        f"Patient room for {name} created: you are invited.",
                    ),
                    [room_id],
                    dossier_id=dossier_id,
                )
            await asyncio.sleep(0.3)
        return build(
            ctx.t(
                "La salle du patient n'est pas encore créée ; elle le sera dès que le "
                "service Maillon sera disponible.",
                "The patient room is not created yet; it will be when Maillon's service is "
                "available.",
            ),
            ok=False,
        )

    return build(
        ctx.t(
            f"Dossier ouvert pour {name} ({born_word(sex)} le {format_birth_date(born)}).",
            f"Dossier opened for {name} (born {format_birth_date(born, 'en')}).",
        ),
        [
            ctx.t(f"Référence : {created['reference']}", f"Reference: {created['reference']}"),
            ctx.t(f"Parcours : {ctx.pathway(pathway)}", f"Pathway: {ctx.pathway(pathway)}"),
            ctx.t(f"Référent : {referent}", f"Referent: {referent}"),
            ctx.t(
                f"Adresse de messagerie du dossier : {created['mail_address']}",
                f"Dossier mail address: {created['mail_address']}",
            ),
            IDENTITY_STATUS_WORDS[ctx.lang]["PROV"] + ".",
        ],
        dossier_id=dossier_id,
        follow_up=room_created,
    )


async def _summary(ctx: Context) -> Reply:
    dossier_id = await ctx.dossier_id()
    svc = ctx.services.dossiers
    d = await ctx.services.as_sender(ctx.sender, svc.get_dossier, dossier_id)
    circle = await ctx.services.as_sender(ctx.sender, svc.circle, dossier_id)
    tasks = await ctx.services.as_sender(ctx.sender, svc.tasks, dossier_id)
    identity = d["identity"]
    birth = parse_iso(identity.get("birth_date"))
    born_on = format_birth_date(birth, ctx.lang) if isinstance(birth, dt.date) else "—"
    sex = identity.get("sex")
    sex_words = {"F": ("femme", "female"), "M": ("homme", "male"), "I": ("indéterminé", "unknown")}
    sex_fr, sex_en = sex_words.get(str(sex), ("?", "?"))
    active = [m for m in circle if m["active"]]
    open_tasks = [t for t in tasks if t["status"] == "todo"]
    status = STATUSES[ctx.lang].get(d["status"], d["status"])
    if d["status"] != "open" and d.get("status_reason"):
        status += f" ({d['status_reason']})"
    referent = ctx.person((await ctx.people(d["referent"])).get(d["referent"]), d["referent"])
    words = IDENTITY_STATUS_WORDS[ctx.lang]
    return build(
        ctx.t(f"Dossier de {display_name(identity)}", f"Dossier of {display_name(identity)}"),
        [
            ctx.t(
                f"{born_word(sex).capitalize()} le {born_on}, sexe : {sex_fr}",
                f"Born {born_on}, sex: {sex_en}",
            ),
            words.get(d["identity_status"], d["identity_status"]),
            ctx.t(
                f"Parcours : {ctx.pathway(d['pathway'], d['pathway_version'])}",
                f"Pathway: {ctx.pathway(d['pathway'], d['pathway_version'])}",
            ),
            ctx.t(
                f"État : {status} depuis le {ctx.when(d['opened_at'])}"
                if d["status"] == "open"
                else f"État : {status}",
                f"Status: {status} since {ctx.when(d['opened_at'])}"
                if d["status"] == "open"
                else f"Status: {status}",
            ),
            ctx.t(f"Référent : {referent}", f"Referent: {referent}"),
            ctx.t(
                f"Cercle de soins : {len(active)} membre(s)",
                f"Care circle: {len(active)} member(s)",
            ),
            ctx.t(f"Tâches ouvertes : {len(open_tasks)}", f"Open tasks: {len(open_tasks)}"),
            ctx.t(
                f"Adresse de messagerie du dossier : {d['mail_address']}",
                f"Dossier mail address: {d['mail_address']}",
            ),
            ctx.t(f"Référence : {d['reference']}", f"Reference: {d['reference']}"),
        ],
        dossier_id=dossier_id,
    )


async def _close(ctx: Context, args: list[str]) -> Reply:
    usage = ctx.t(USAGE_CLOSE, USAGE_CLOSE_EN)
    reason = " ".join(args).strip()
    if not reason:
        raise CommandError(
            ctx.t("le motif de clôture est obligatoire", "a reason for closing is required"), usage
        )
    if len(reason) > 500:
        raise CommandError(
            ctx.t(
                "motif trop long (500 caractères au plus)",
                "reason too long (500 characters at most)",
            ),
            usage,
        )
    dossier_id = await ctx.dossier_id()
    body = {"status": "closed", "status_reason": reason}
    await ctx.services.as_sender(ctx.sender, ctx.services.dossiers.patch_dossier, dossier_id, body)

    async def read_only_room() -> None:
        # After the answer is sent: the closed dossier's room becomes read-only.
        await ctx.services.sync_rooms(dossier_id)

    return build(
        ctx.t(f"Dossier clos : {reason}", f"Dossier closed: {reason}"),
        dossier_id=dossier_id,
        follow_up=read_only_room,
    )


async def dossier(ctx: Context, args: list[str]) -> Reply:
    if not args:
        return await _summary(ctx)
    sub = args[0].lower()
    if sub in ("nouveau", "new", "ouvrir"):
        return await _new(ctx, args[1:])
    if sub in ("fermer", "clore", "close"):
        return await _close(ctx, args[1:])
    raise CommandError(
        ctx.t(
            f"sous-commande « {args[0]} » inconnue (nouveau, fermer)",
            f"unknown subcommand “{args[0]}” (new, close)",
        )
    )


register(
    Command(
        name="!dossier",
        english=("!file",),
        usage_fr=f"!dossier\n{USAGE_NEW}\n{USAGE_CLOSE}",
        usage_en=f"!file\n{USAGE_NEW_EN}\n{USAGE_CLOSE_EN}",
        help_fr="résumé du dossier de la salle ; ouvrir un dossier (et sa salle) ; le clore",
        help_en="summary of the room's dossier; open a dossier (and its room); close it",
        details_fr=(
            "résumé du dossier de la salle",
            "ouvrir un dossier et sa salle patient",
            "clore le dossier (coordinateurs)",
        ),
        details_en=(
            "summary of the room's dossier",
            "open a dossier and its patient room",
            "close the dossier (coordinators)",
        ),
        handler=dossier,
        needs_dossier=False,
    )
)
