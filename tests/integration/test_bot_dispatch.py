"""Every command family through the bot's dispatcher, in-process against a real store
(SQLite and PostgreSQL): results checked through the dossier service, rights and audit are
the API's (as the sender, component "bot"); 2,000 random and malformed commands (hypothesis)
each get a clear answer and never crash the dispatcher."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination_bot.commands import formulaire, note
from coordination_bot.core import REGISTRY, Context
from coordination_bot.dates import PARIS
from coordination_bot.dispatch import dispatch, is_command
from coordination_bot.services import Services
from dossier_api.domain.rooms import reference
from tests.harness.bot import InProcessBot, deployment, professionals, store
from tests.harness.postgres import create_database, drop_database

COORD = "@coord:localhost"
IDE = "@ide.martin:localhost"
KINE = "@kine:localhost"
OUTSIDER = "@curieux:localhost"
DM = "!direct:localhost"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)  # a Monday


@pytest.fixture(params=["sqlite", "postgresql"])
def bot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InProcessBot]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = create_database("maillon_bot")
    engine = store(url)
    professionals(engine, COORD, IDE, KINE)
    try:
        yield InProcessBot(Services(engine, deployment(tmp_path / "deployment")))
    finally:
        engine.dispose()
        if request.param == "postgresql":
            drop_database(url)


async def _open(bot: InProcessBot) -> tuple[str, str]:
    reply = await bot.say(COORD, DM, "!dossier nouveau Martin Jeanne 12/03/1941 F dac")
    assert reply.ok, reply.plain
    assert reply.dossier_id is not None and reply.dossier_id not in reply.plain
    assert f"Référence : {reference(reply.dossier_id)}" in reply.plain  # the room's
    assert "MARTIN Jeanne" in reply.plain and "@localhost" in reply.plain  # mail address
    room_id = f"!patient{secrets.token_hex(3)}:localhost"
    bot.link_room(reply.dossier_id, room_id)
    return reply.dossier_id, room_id


async def test_every_command_family_as_the_sender(bot: InProcessBot) -> None:
    svc = bot.services.dossiers
    caller = bot.services.caller
    dossier_id, room = await _open(bot)

    summary = await bot.say(COORD, room, "!dossier")
    assert summary.ok and "MARTIN Jeanne" in summary.plain
    assert svc.get_dossier(caller(COORD), dossier_id)["mail_address"] in summary.plain

    # Care circle: the coordinator adds; a member cannot; an outsider sees nothing.
    assert (await bot.say(COORD, room, f"!cercle ajouter {IDE} IDE")).ok
    refused = await bot.say(IDE, room, f"!cercle ajouter {KINE} KINE")
    assert not refused.ok and "ne permet pas" in refused.plain and "Usage" in refused.plain
    assert (await bot.say(COORD, room, f"!cercle ajouter {KINE} kine")).ok
    assert (await bot.say(COORD, room, f"!cercle retirer {KINE}")).ok
    circle = {m["user_id"]: m for m in svc.circle(caller(COORD), dossier_id) if m["active"]}
    assert set(circle) == {COORD, IDE} and circle[IDE]["role"] == "IDE"
    listing = await bot.say(IDE, room, "!cercle")
    assert IDE in listing.plain and COORD in listing.plain and KINE not in listing.plain
    outsider = await bot.say(OUTSIDER, room, "!cercle")
    assert not outsider.ok and "cercle de soins" in outsider.plain

    # Cahier de liaison, and a reply to a note.
    urgent = await bot.say(IDE, room, "!note urgent Chute ce matin, « douleur » hanche")
    assert urgent.ok and urgent.note_id
    ctx = Context(COORD, room, "$reply", "fr", bot.services)
    answered = await note.reply_to_note(ctx, dossier_id, urgent.note_id, "Je passe à 17h")
    assert answered.ok
    notes = svc.notes(caller(COORD), dossier_id)
    assert notes[0]["urgent"] and notes[0]["text"] == "Chute ce matin, « douleur » hanche"
    assert notes[1]["reply_to"] == notes[0]["id"] and notes[1]["author"] == COORD
    assert not (await bot.say(OUTSIDER, room, "!note je lis")).ok

    # Tasks, numbered, marked done; dates as French people write them.
    added = await bot.say(COORD, room, f'!tache ajouter {IDE} "Passer la voir" demain', NOW)
    assert added.ok, added.plain
    assert (await bot.say(COORD, room, f"!tache ajouter {IDE} Appeler la fille 24/12", NOW)).ok
    tasks = svc.tasks(caller(COORD), dossier_id)
    assert [(t["title"], t["due"]) for t in tasks] == [
        ("Passer la voir", "2026-11-24"),
        ("Appeler la fille", "2026-12-24"),
    ]
    listed = await bot.say(IDE, room, "!taches")
    assert "1. Passer la voir" in listed.plain and "2. Appeler la fille" in listed.plain
    assert (await bot.say(IDE, room, "!tache fait 2")).ok
    assert [t["status"] for t in svc.tasks(caller(COORD), dossier_id)] == ["todo", "done"]
    again = await bot.say(IDE, room, "!tache fait 2")
    assert not again.ok and "déjà faite" in again.plain
    missing = await bot.say(IDE, room, "!tache fait 9")
    assert not missing.ok and "n° 9" in missing.plain and "!tache fait N" in missing.plain

    # Agenda in Paris time.
    meeting = await bot.say(
        COORD, room, f"!agenda ajouter lundi 9h30 45min Visite à domicile {IDE}", NOW
    )
    assert meeting.ok, meeting.plain
    [appointment] = svc.appointments(caller(COORD), dossier_id)
    start = dt.datetime.fromisoformat(appointment["start"]).astimezone(PARIS)
    assert start == dt.datetime(2026, 11, 30, 9, 30, tzinfo=PARIS)
    assert dt.datetime.fromisoformat(appointment["end"]) - start == dt.timedelta(minutes=45)
    assert appointment["participants"] == [IDE] and appointment["title"] == "Visite à domicile"
    assert "Visite à domicile" in (await bot.say(IDE, room, "!agenda", NOW)).plain

    # A form, question by question, with validation and a skip.
    started = await bot.say(IDE, room, "!formulaire evaluation-autonomie")
    assert started.ok and "GIR" in started.plain
    for text, accepted in [
        ("7", False),
        ("4", True),
        ("peut-être", False),
        ("oui", True),
        ("-", True),
        ("deux", False),
        ("2", True),
        ("31/02/2026", False),
        ("20/11/2026", True),
    ]:
        row = await bot.services.dialogue(room, IDE)
        assert row is not None
        step = await formulaire.answer(Context(IDE, room, "$a", "fr", bot.services), row, text)
        assert step.ok is accepted, (text, step.plain)
    assert await bot.services.dialogue(room, IDE) is None
    [form] = svc.forms(caller(COORD), dossier_id)
    assert form["author"] == IDE
    assert form["answers"] == {
        "gir": "4",
        "vit_seul": True,
        "chutes_6_mois": 2,
        "date_evaluation": "2026-11-20",
    }
    assert "rempli 1 fois" in (await bot.say(COORD, room, "!formulaires")).plain
    cancelled = await bot.say(IDE, room, "!formulaire evaluation-autonomie")
    row = await bot.services.dialogue(room, IDE)
    assert cancelled.ok and row is not None
    ctx = Context(IDE, room, "$c", "fr", bot.services)
    assert "annulé" in (await formulaire.answer(ctx, row, "annuler")).plain
    assert len(svc.forms(caller(COORD), dossier_id)) == 1

    # PPCS, alert, delegation.
    assert "Pas encore de PPCS" in (await bot.say(IDE, room, "!ppcs")).plain
    svc.put_ppcs(
        caller(COORD),
        dossier_id,
        {
            "problems": [{"problem": "Chutes", "goals": ["Sécuriser le domicile"]}],
            "actions": [{"action": "Barres d'appui", "who": "ergothérapeute"}],
        },
    )
    plan = await bot.say(IDE, room, "!ppcs")
    assert "Chutes" in plan.plain and "Barres d'appui" in plan.plain
    alert = await bot.say(COORD, room, f"!alerte {IDE} Chute, rappeler la famille")
    assert alert.ok and alert.mentions == (IDE,)
    stranger = await bot.say(COORD, room, f"!alerte {OUTSIDER} hors cercle")
    assert not stranger.ok and "hors du cercle" in stranger.plain
    delegated = await bot.say(COORD, DM, f"!delegation {IDE} jusqu'au 31/12", NOW)
    assert delegated.ok, delegated.plain
    [given_] = svc.delegations(caller(COORD))["given"]
    assert given_["to_user"] == IDE
    until = dt.datetime.fromisoformat(given_["until"]).astimezone(PARIS)
    assert until.date() == dt.date(2026, 12, 31)

    # Closing: coordinators only, with a reason.
    assert not (await bot.say(IDE, room, "!dossier fermer déménagement")).ok
    no_reason = await bot.say(COORD, room, "!dossier fermer")
    assert not no_reason.ok and "motif" in no_reason.plain
    assert (await bot.say(COORD, room, "!dossier fermer entrée en EHPAD")).ok
    closed = svc.get_dossier(caller(COORD), dossier_id)
    assert closed["status"] == "closed" and closed["status_reason"] == "entrée en EHPAD"

    # Everything audited as the sender, by the bot component; refusals too.
    entries = svc.audit(caller(COORD), dossier_id, 200)
    by_bot = [e for e in entries if e["component"] == "bot"]
    assert {e["actor"] for e in by_bot} == {COORD, IDE, OUTSIDER}
    assert any(
        e["actor"] == IDE and e["action"] == "circle.add" and not e["allowed"] for e in by_bot
    )
    assert any(e["actor"] == OUTSIDER and not e["allowed"] for e in by_bot)
    assert not any(e["actor"].startswith("@coordination") for e in entries)


async def test_commands_outside_a_patient_room_and_unknown_ones(bot: InProcessBot) -> None:
    no_room = await bot.say(COORD, DM, "!taches")
    assert not no_room.ok and "aucun dossier" in no_room.plain and "!taches" in no_room.plain
    typo = await bot.say(COORD, DM, "!tach ajouter")
    assert not typo.ok and "Vouliez-vous dire !tache ?" in typo.plain
    english = await bot.say(COORD, DM, "!tsks")
    assert "!tasks" in english.plain or "!taches" in english.plain
    assert "available commands" in (await bot.say(COORD, DM, "!help")).plain
    task_help = await bot.say(COORD, DM, "!aide tache")
    assert task_help.ok and "!tache fait N" in task_help.plain
    bad_date = await bot.say(COORD, DM, "!dossier nouveau Martin Jeanne 31/02/1941 F")
    assert not bad_date.ok and "n'existe pas" in bad_date.plain
    assert "!dossier nouveau NOM Prénom JJ/MM/AAAA SEXE [parcours]" in bad_date.plain
    english_usage = await bot.say(COORD, DM, "!file new Martin")
    assert "Usage:" in english_usage.plain and "!file new SURNAME" in english_usage.plain


# -- 2,000 random and malformed commands ------------------------------------------------

WORDS = sorted(REGISTRY)
pieces = st.one_of(
    st.sampled_from(
        [
            "nouveau",
            "fermer",
            "ajouter",
            "retirer",
            "fait",
            "urgent",
            "jusqu'au",
            "IDE",
            "COORD",
            "PATIENT",
            "xx",
            "demain",
            "lundi",
            "14h",
            "24/12",
            "31/02",
            "99h99",
            "0",
            "-1",
            "999999999999",
            '"',
            "«",
            "»",
            "“titre”",
            '"titre entier"',
            IDE,
            OUTSIDER,
            "@",
            "@bad",
            "@x:",
            "evaluation-autonomie",
            "F",
            "M",
            "H",
            "Z",
            "12/03/1941",
            "01/01/3000",
            "dac",
            "cpts",
            "inconnu",
            "45min",
            "25h",
            "\n",
            "\u0000",
            "🙂",
            "<b>gras</b>",
            "&amp;",
            "'",
            "-",
            "--",
            "!",
        ]
    ),
    st.text(max_size=30),
)
commands = st.builds(
    lambda word, args: " ".join([word, *args]),
    st.one_of(
        st.sampled_from(WORDS),
        st.sampled_from(WORDS).map(lambda w: w[:-1]),
        st.sampled_from(WORDS).map(str.upper),
        st.text(min_size=1, max_size=12).map(lambda t: "!" + t),
    ),
    st.lists(pieces, max_size=8),
)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessBot, str]]:
    engine = store(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/store.db")
    professionals(engine, COORD, IDE, KINE)
    target = InProcessBot(Services(engine, deployment(tmp_path_factory.mktemp("deployment"))))
    loop = asyncio.new_event_loop()
    try:
        reply = loop.run_until_complete(
            target.say(COORD, DM, "!dossier nouveau Durand Paul 02/02/1950 M")
        )
        assert reply.dossier_id is not None
        target.link_room(reply.dossier_id, "!fuzz:localhost")
        loop.run_until_complete(target.say(COORD, "!fuzz:localhost", f"!cercle ajouter {IDE} IDE"))
        target.loop = loop  # type: ignore[attr-defined]
        yield target, "!fuzz:localhost"
    finally:
        loop.close()
        engine.dispose()


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=commands, sender=st.sampled_from([COORD, IDE, OUTSIDER]))
def test_random_commands_each_get_a_clear_answer(
    fuzz_target: tuple[InProcessBot, str], text: str, sender: str
) -> None:
    target, room = fuzz_target
    loop: asyncio.AbstractEventLoop = target.loop  # type: ignore[attr-defined]
    reply = loop.run_until_complete(dispatch(target.services, sender, room, "$fuzz", text, now=NOW))
    if not is_command(text):  # "! blah" or "!" alone is prose, not a command
        assert reply is None
        return
    assert reply is not None and reply.plain and reply.html
    if not reply.ok:
        assert reply.plain.startswith("❌"), reply.plain
        assert "erreur interne" not in reply.plain, (text, reply.plain)
        assert "Usage" in reply.plain or "!aide" in reply.plain or "!help" in reply.plain, (
            text,
            reply.plain,
        )
