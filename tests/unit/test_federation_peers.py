"""The federation allow list as one fact: the file the console writes and every process
reads (refreshed at most every N seconds, fail closed on a broken file); the console's
operations (administrators only, validated naming the field, audited with before and
after, every dossier's rooms queued for their server ACL); the dossier service and the
bot's ``!cercle ajouter`` following the same list; ``maillon init`` seeding it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from coordination_bot.services import Services
from dossier_api.domain.access import Caller
from dossier_api.domain.administration import Administration
from dossier_api.domain.core import ApiError
from dossier_api.domain.models import AuditEntry, RoomSyncJob
from dossier_api.domain.rooms import ROOMS
from maillon.shared.care_circle_config import from_homeserver_config
from maillon.shared.federation_peers import PEERS_FILE, Peer, PeerList, read_peers, write_peers
from maillon.wiring.init_deployment import InitOptions, init_deployment
from tests.harness.bot import InProcessBot, deployment, professionals, store

ADMIN = Caller("@admin:localhost", True, "token")
COORD = "@coord:localhost"
DOCTOR = "@dr.peer:region-c.test:8448"
PEER = "region-c.test:8448"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_list_is_read_again_at_most_every_n_seconds(tmp_path: Path) -> None:
    path = tmp_path / PEERS_FILE
    write_peers(path, [Peer("a.test", "premier")])
    clock = Clock()
    peers = PeerList(path, (), refresh_seconds=5.0, clock=clock)
    assert peers.servers() == ("a.test",)
    write_peers(path, [Peer("b.test:8448", "second")])
    clock.now += 4.9
    assert peers.servers() == ("a.test",)  # not looked at again yet
    assert peers.servers(fresh=True) == ("b.test:8448",)  # unless asked to
    write_peers(path, [])
    clock.now += 5.0
    assert peers.servers() == ()
    assert read_peers(tmp_path / "absent.json") == ()
    assert PeerList(None, ("fixe.test",)).servers() == ("fixe.test",)


def test_a_new_peer_is_settled_once_every_module_follows_it(tmp_path: Path) -> None:
    path = tmp_path / PEERS_FILE
    added = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
    write_peers(path, [Peer("ancien.test", "init"), Peer("b.test", "x", None, added.isoformat())])
    peers = PeerList(path, (), refresh_seconds=5.0)
    assert peers.settled(added + dt.timedelta(seconds=5.9)) == ("ancien.test",)
    assert peers.settled(added + dt.timedelta(seconds=6)) == ("ancien.test", "b.test")


def test_a_broken_file_admits_no_other_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / PEERS_FILE
    write_peers(path, [Peer("a.test", "premier")])
    clock = Clock()
    peers = PeerList(path, ("fixe.test",), refresh_seconds=1.0, clock=clock)
    assert peers.servers() == ("a.test",)
    for broken in ("{pas du json", json.dumps({"version": 1, "peers": [{"server": "x y"}]})):
        write_peers(path, [Peer("a.test", "premier")])
        clock.now += 1.0
        assert peers.servers() == ("a.test",)
        path.write_text(broken)
        clock.now += 1.0
        with caplog.at_level(logging.ERROR):
            assert peers.servers() == ()
        assert "no other server admitted" in caplog.text
        assert "x y" not in caplog.text and "pas du json" not in caplog.text


def test_init_seeds_the_file_the_module_is_configured_with(tmp_path: Path) -> None:
    root = init_deployment(
        InitOptions(
            directory=tmp_path / "d",
            server_name="localhost",
            peer_servers=("autre.test:8448", "troisieme.test"),
            testing=True,
        )
    )
    module = from_homeserver_config(str(root / "homeserver.yaml"))
    assert module.peers_file == str(root / PEERS_FILE) and module.peer_servers == ()
    assert module.peers_refresh_seconds == 5.0
    peers = read_peers(root / PEERS_FILE)
    assert [p.server for p in peers] == ["autre.test:8448", "troisieme.test"]
    assert all("maillon init" in p.reason for p in peers)
    assert (root / PEERS_FILE).stat().st_mode & 0o077 == 0


def _audit(engine: object, action: str) -> list[AuditEntry]:
    with Session(engine) as session:  # type: ignore[call-overload]
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def test_console_changes_are_the_list_the_service_and_the_bot_follow(
    tmp_path: Path,
) -> None:
    engine = store(f"sqlite:///{tmp_path}/store.db")
    professionals(engine, COORD, DOCTOR)
    deploy = deployment(tmp_path / "deployment")
    admin = Administration(engine, deploy, component="admin")
    bot = InProcessBot(Services(engine, deploy))
    opened = await bot.say(
        COORD, "!direct:localhost", "!dossier nouveau Martin Jeanne 12/03/1941 F dac"
    )
    assert opened.dossier_id is not None
    room = "!patient:localhost"
    bot.link_room(opened.dossier_id, room)

    refused = await bot.say(COORD, room, f"!cercle ajouter {DOCTOR} MT")
    assert not refused.ok and "n'est pas un serveur partenaire" in refused.plain

    # Refusals name the field; nothing is written.
    for server, reason, says in (
        ("pas un serveur", "convention", "champ « serveur » : nom de serveur invalide"),
        ("localhost", "convention", "champ « serveur » : c'est le serveur de cette région"),
        (PEER, "  ", "champ « motif »"),
    ):
        with pytest.raises(ApiError) as bad:
            admin.add_peer(ADMIN, server, reason)
        assert bad.value.status == 400 and says in bad.value.message
    assert read_peers(deploy.path(PEERS_FILE)) == ()
    with pytest.raises(ApiError) as forbidden:
        admin.add_peer(Caller(COORD, False, "t"), PEER, "convention")
    assert forbidden.value.status == 403
    assert [r.allowed for r in _audit(engine, "admin.federation.add")] == [False] * 4

    with Session(engine) as session:
        queued = len(session.scalars(select(RoomSyncJob)).all())
    admin.add_peer(ADMIN, PEER, "Convention GHT Sud — équipe de gériatrie")
    [peer] = read_peers(deploy.path(PEERS_FILE))
    assert (peer.server, peer.added_by) == (PEER, ADMIN.user_id)
    done = [r for r in _audit(engine, "admin.federation.add") if r.allowed]
    assert json.loads(str(done[0].detail)) == {
        "objet": "serveurs partenaires",
        "avant": [],
        "apres": [PEER],
    }
    with Session(engine) as session:
        jobs = session.scalars(select(RoomSyncJob).offset(queued)).all()
    assert [(j.dossier_id, j.subject) for j in jobs] == [(opened.dossier_id, ROOMS)]
    with pytest.raises(ApiError) as twice:
        admin.add_peer(ADMIN, PEER, "encore")
    assert twice.value.status == 409 and "déjà partenaire" in twice.value.message

    # The bot's service reads the same file: it follows within its refresh delay.
    async def added() -> bool:
        return (await bot.say(COORD, room, f"!cercle ajouter {DOCTOR} MT")).ok

    deadline = time.monotonic() + 15
    while not await added():
        assert time.monotonic() < deadline, "the bot never saw the new peer"
        await asyncio.sleep(0.5)
    listing = admin.federation_peers(ADMIN)
    assert [p["server"] for p in listing["peers"]] == [PEER]

    # A file that cannot be read is never overwritten by a change.
    good = deploy.path(PEERS_FILE).read_text()
    deploy.path(PEERS_FILE).write_text("{cassé")
    with pytest.raises(ApiError) as broken:
        admin.remove_peer(ADMIN, PEER)
    assert broken.value.status == 409 and "illisible" in broken.value.message
    assert deploy.path(PEERS_FILE).read_text() == "{cassé"
    deploy.path(PEERS_FILE).write_text(good)

    admin.remove_peer(ADMIN, PEER)
    removed = [r for r in _audit(engine, "admin.federation.remove") if r.allowed]
    assert json.loads(str(removed[0].detail))["apres"] == []
    # The service that made the change sees it at once.
    with pytest.raises(ApiError) as gone:
        admin.remove_peer(ADMIN, PEER)
    assert gone.value.status == 404
    again = "@autre.peer:region-c.test:8448"
    professionals(engine, again)
    deadline = time.monotonic() + 15
    while (reply := await bot.say(COORD, room, f"!cercle ajouter {again} IDE")).ok:
        assert time.monotonic() < deadline, "the bot still admits the removed peer"
        await bot.say(COORD, room, f"!cercle retirer {again}")
        await asyncio.sleep(0.5)
    assert "n'est pas un serveur partenaire" in reply.plain
