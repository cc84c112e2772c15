"""Resource teams on a real PostgreSQL store, through the dossier service (the API's and
the bot's operations): the rota with an injected clock (10:00 on a Tuesday reaches exactly
the members on duty; an exception day overrides the pattern), consent (refused without
consent or attestation, an opposition blocks even with one), escalation along the chain
(next level, coordinator, structure account, then expired), two accepts at once (one
circle entry), and every step in the dossier's timeline and audit."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordination_bot.services import Services
from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import AuditEntry, CircleMember
from dossier_api.domain.service import DossierService
from dossier_api.domain.teams import on_duty, parse_rota
from maillon.shared.dates_fr import PARIS
from tests.harness.bot import InProcessBot, deployment, professionals, store
from tests.harness.postgres import create_database, drop_database

SERVER = "sante.test"
ADMIN = Caller(f"@admin:{SERVER}", True, "token")
COORD = Caller(f"@coord:{SERVER}", False, "token")
DAY, NIGHT, BACKUP, CHIEF = (f"@{n}:{SERVER}" for n in ("jour", "nuit", "renfort", "cheffe"))
ACCOUNT = f"@usp-accueil:{SERVER}"
# Tuesday 1 December 2026, 10:00 in Paris (09:00 UTC); the next Tuesday is an exception.
TUESDAY_10 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS).astimezone(dt.UTC)
ROTA = {
    "weekly": [
        {"day": "mardi", "start": "08:00", "end": "18:00", "members": [DAY]},
        {"day": "mardi", "start": "18:00", "end": "24:00", "members": [NIGHT]},
        {"day": "mardi", "start": "08:00", "end": "18:00", "members": [BACKUP], "level": 2},
    ],
    "exceptions": [{"date": "2026-12-08", "start": "00:00", "end": "24:00", "members": [NIGHT]}],
}


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DossierService]:
    url = create_database("maillon_teams")
    engine = store(url)
    professionals(engine, COORD.user_id, DAY, NIGHT, BACKUP, CHIEF, ACCOUNT)
    base: Path = tmp_path_factory.mktemp("teams-deployment")
    svc = DossierService(engine, deployment(base / "d", SERVER))
    svc.add_team(
        ADMIN,
        {
            "slug": "usp-31",
            "name": "Équipe mobile de soins palliatifs 31",
            "level": "departementale",
            "expertise": "soins palliatifs",
            "pathways": ["dac"],
            "response_seconds": 600,
            "structure_account": ACCOUNT,
            "members": [
                {"user_id": DAY, "role": "médecin"},
                {"user_id": NIGHT, "role": "infirmière"},
                {"user_id": BACKUP, "role": "médecin"},
                {"user_id": CHIEF, "role": "cadre", "coordinator": True},
            ],
            "rota": ROTA,
        },
    )
    try:
        yield svc
    finally:
        engine.dispose()
        drop_database(url)


def _dossier(service: DossierService, **consent: bool) -> str:
    identity = {"birth_name": "Garnier", "first_names": "Paul", "sex": "M"}
    created = service.create_dossier(COORD, {"pathway": "dac", "identity": identity})
    if consent:
        service.patch_dossier(COORD, created["id"], {**consent, "consent_note": "recueilli"})
    return str(created["id"])


def _solicit(service: DossierService, dossier_id: str, **extra: Any) -> dict[str, Any]:
    body = {"team": "usp-31", "kind": "avis", "reason": "douleurs rebelles, avis sur la PCA"}
    return service.solicit(COORD, dossier_id, {**body, **extra})


def _as(user_id: str) -> Caller:
    return Caller(user_id, False, "token")


def _told(service: DossierService, user_id: str, dossier_id: str) -> list[int]:
    return [
        s["id"] for s in service.my_solicitations(_as(user_id)) if s["dossier_id"] == dossier_id
    ]


def test_the_rota_picks_who_is_on_duty_in_paris_time() -> None:
    rota = parse_rota(ROTA)
    members = [DAY, NIGHT, BACKUP, CHIEF]
    assert on_duty(rota, members, TUESDAY_10) == {1: [DAY], 2: [BACKUP]}
    assert on_duty(rota, members, TUESDAY_10 + dt.timedelta(hours=9)) == {1: [NIGHT]}
    assert on_duty(rota, members, TUESDAY_10 + dt.timedelta(days=1)) == {}  # Wednesday
    assert on_duty(rota, members, TUESDAY_10 + dt.timedelta(days=7)) == {1: [NIGHT]}
    assert on_duty(None, members, TUESDAY_10) == {1: sorted(members)}
    with pytest.raises(ApiError, match="jour inconnu"):
        parse_rota({"weekly": [{"day": "mardy", "members": [DAY]}]})
    with pytest.raises(ApiError, match="doit suivre"):
        parse_rota({"weekly": [{"day": "mardi", "start": "18:00", "end": "08:00", "members": []}]})


def test_consent_is_needed_and_an_opposition_always_blocks(service: DossierService) -> None:
    service.clock = Clock(TUESDAY_10)
    bare = _dossier(service)
    with pytest.raises(ApiError, match="hors de l'équipe de soins") as refused:
        _solicit(service, bare)
    assert refused.value.status == 403
    attested = _solicit(service, bare, attested=True)
    assert attested["status"] == "envoyee" and attested["attested"]
    history = service.consent_history(COORD, bare)["history"]
    assert [h["field"] for h in history] == ["attestation"]
    assert service.close_solicitation(COORD, attested["id"])["status"] == "close"

    opposed = _dossier(service, opposition=True)
    with pytest.raises(ApiError, match="opposée") as blocked:
        _solicit(service, opposed, attested=True)
    assert blocked.value.status == 403


def test_a_tuesday_morning_solicitation_reaches_the_day_member_then_escalates(
    service: DossierService,
) -> None:
    clock = Clock(TUESDAY_10)
    service.clock = clock
    dossier_id = _dossier(service, consent_share_outside=True)
    sent = _solicit(service, dossier_id)
    assert sent["notified"] == [DAY]
    assert sent["requester"]["profession"] == "infirmier"
    # Nobody of the team sees the dossier before accepting.
    with pytest.raises(ApiError) as outside:
        service.get_dossier(_as(DAY), dossier_id)
    assert outside.value.status == 403
    assert _told(service, DAY, dossier_id) == [sent["id"]]
    assert _told(service, NIGHT, dossier_id) == []
    seen = service.see_solicitation(_as(DAY), sent["id"])
    assert seen["status"] == "vue"

    assert service.escalate_due() == 0  # within the response time
    clock.now += dt.timedelta(seconds=601)
    assert service.escalate_due() == 1
    assert _told(service, BACKUP, dossier_id) == [sent["id"]], "level 2 after the delay"
    clock.now += dt.timedelta(seconds=601)
    service.escalate_due()
    clock.now += dt.timedelta(seconds=601)
    service.escalate_due()
    last = service.dossier_solicitations(COORD, dossier_id)[0]
    assert last["notified"] == sorted([DAY, BACKUP, CHIEF, ACCOUNT])
    clock.now += dt.timedelta(seconds=601)
    service.escalate_due()
    expired = service.dossier_solicitations(COORD, dossier_id)[0]
    assert expired["status"] == "expiree"
    steps = [e["status"] for e in expired["events"]]
    assert steps == ["envoyee", "vue", "escalade", "escalade", "escalade", "expiree"]
    timeline = service.timeline(COORD, dossier_id, kinds=frozenset({"solicitation"}))
    titles = [e["title"] for e in timeline["entries"]]
    assert "Équipe ressource « Équipe mobile de soins palliatifs 31 » : expirée" in titles


def test_an_exception_day_overrides_the_weekly_pattern(service: DossierService) -> None:
    service.clock = Clock(TUESDAY_10 + dt.timedelta(days=7))
    dossier_id = _dossier(service, consent_share_outside=True)
    assert _solicit(service, dossier_id)["notified"] == [NIGHT]


def test_two_accepts_at_once_make_one_circle_entry(service: DossierService) -> None:
    service.clock = Clock(TUESDAY_10)
    dossier_id = _dossier(service, consent_share_outside=True)
    sent = _solicit(service, dossier_id, kind="prise_en_charge")
    service.clock = Clock(TUESDAY_10 + dt.timedelta(seconds=601))
    service.escalate_due()  # DAY and BACKUP are both told now
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def accept(user_id: str) -> None:
        barrier.wait()
        try:
            results[user_id] = service.accept_solicitation(_as(user_id), sent["id"])
        except ApiError as exc:
            results[user_id] = exc

    threads = [threading.Thread(target=accept, args=(u,)) for u in (DAY, BACKUP)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results.values() if isinstance(r, ApiError)]
    assert len(errors) == 1 and errors[0].status == 409
    assert "déjà prise en charge" in errors[0].message
    winner = next(u for u, r in results.items() if not isinstance(r, ApiError))
    with Session(service._engine) as session:
        ers = session.scalars(
            select(CircleMember).where(
                CircleMember.dossier_id == dossier_id, CircleMember.role == "ERS"
            )
        ).all()
        audited = session.scalar(
            select(func.count()).where(
                AuditEntry.dossier_id == dossier_id,
                AuditEntry.action == "solicitation.accept",
                AuditEntry.allowed.is_(True),
            )
        )
        # The second accept, refused, is in the dossier's audit too.
        refused = session.scalars(
            select(AuditEntry.actor).where(
                AuditEntry.dossier_id == dossier_id,
                AuditEntry.action == "solicitation.accept",
                AuditEntry.allowed.is_(False),
            )
        ).all()
    assert [m.user_id for m in ers] == [winner] and audited == 1
    assert refused == [({DAY, BACKUP} - {winner}).pop()]
    assert service.get_dossier(_as(winner), dossier_id)["access"] == "member"
    closed = service.close_solicitation(COORD, sent["id"])
    assert closed["status"] == "close"
    with Session(service._engine) as session:
        member = session.get(CircleMember, ers[0].id)
        assert member is not None and member.until is not None


async def test_the_bot_lists_solicits_accepts_and_declines(service: DossierService) -> None:
    """The same operations from the bot: ``!equipe`` in the patient room, ``!sollicitation``
    in the member's own chat with the bot."""
    service.clock = Clock(TUESDAY_10)
    deploy = deployment(Path(service._decision_log).parent.parent / "bot-deployment", SERVER)
    bot = InProcessBot(Services(service._engine, deploy))
    bot.services.dossiers.clock = Clock(TUESDAY_10)
    dossier_id = _dossier(service)
    room = f"!patient{dossier_id[:6]}:{SERVER}"
    bot.link_room(dossier_id, room)
    listed = await bot.say(COORD.user_id, room, "!equipe")
    assert listed.ok and "usp-31 — Équipe mobile de soins palliatifs 31 (départementale" in (
        listed.plain
    )
    refused = await bot.say(COORD.user_id, room, "!equipe solliciter usp-31 douleurs")
    assert not refused.ok and "consentement" in refused.plain
    sent = await bot.say(COORD.user_id, room, "!team solicit usp-31 douleurs, PCA attestation")
    assert sent.ok and "1 on-duty member(s)" in sent.plain, sent.plain
    number = int(sent.plain.split("#")[1].split()[0])
    chat = f"!sollicitations-{DAY[1:5]}:{SERVER}"
    mine = await bot.say(DAY, chat, "!sollicitation")
    assert (
        mine.ok and f"n° {number} — Équipe mobile" in mine.plain and "douleurs, PCA" in mine.plain
    )
    assert (await bot.say(NIGHT, chat, f"!sollicitation accepter {number}")).ok is False
    declined = await bot.say(DAY, chat, f"!sollicitation refuser {number}")
    assert declined.ok and "déclinée" in declined.plain
    # Everyone told declined: the chain goes on to the next level at once.
    assert not (await bot.say(CHIEF, chat, f"!sollicitation accepter {number}")).ok
    taken = await bot.say(BACKUP, chat, f"!sollicitation accepter {number}")
    assert taken.ok and "rôle ERS" in taken.plain
    assert service.get_dossier(_as(BACKUP), dossier_id)["access"] == "member"
    half = await bot.say(BACKUP, chat, f"!sollicitation repondre {number} douleurs ; EVA 7")
    assert not half.ok and "séparés par" in half.plain
    line = f"!sollicitation répondre {number} douleurs ? ; EVA 7, morphine ; rotation d'opioïde"
    answered = await bot.say(BACKUP, chat, line)
    assert answered.ok and "Compte rendu d'avis" in answered.plain, answered.plain
    [row] = service.dossier_solicitations(COORD, dossier_id)
    assert row["status"] == "repondue" and row["report"]["advice"] == "rotation d'opioïde"
    assert row["report"]["author"] == BACKUP


def test_the_rota_is_kept_by_the_team_coordinator(service: DossierService) -> None:
    week = {"weekly": [{"day": "mardi", "members": [DAY]}]}
    with pytest.raises(ApiError, match="coordinateur") as refused:
        service.set_rota(_as(DAY), "usp-31", week)
    assert refused.value.status == 403
    with pytest.raises(ApiError, match="pas membres") as stranger:
        service.set_rota(
            _as(CHIEF), "usp-31", {"weekly": [{"day": "lundi", "members": [COORD.user_id]}]}
        )
    assert stranger.value.status == 400
    try:
        kept = service.set_rota(_as(CHIEF), "usp-31", week)
        assert kept["rota"] == week
    finally:
        service.set_rota(ADMIN, "usp-31", ROTA)
    with pytest.raises(ApiError, match="inconnue") as unknown:
        service.set_rota(ADMIN, "nulle-part", week)
    assert unknown.value.status == 404
