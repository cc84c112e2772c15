"""A Synapse worker deployment (``maillon init --workers``), all real: PostgreSQL (private
cluster), a private Redis, nginx routing each endpoint to its worker, every Synapse worker,
Maillon's components. One deployment for the module (one startup)."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiosmtplib
import psycopg
import pytest
import yaml

from appservice.patient_rooms import set_circle_member
from maillon.shared.federation_peers import PEERS_FILE, Peer, read_peers, write_peers
from maillon.shared.homeserver_client import HomeserverError, request_json
from maillon.shared.lease import INSTANCE_ENV, read_state
from maillon.shared.settings import SynapseWorker
from maillon.wiring.supervisor import http_ok, redis_ping
from synapse_modules.audit import read_audit
from tests.harness.circle import (
    MakeClient,
    appservice,
    bind_professional,
    coordinated_room,
    cs,
    member_exchange,
    membership,
    open_dossier,
    professional,
    refusal,
    room_path,
    room_state,
    token_of,
    wait_for,
)
from tests.harness.dossier import (
    api,
    messages_count,
    new_dossier,
    recorded_messages,
    widget_session,
)
from tests.harness.mail import SENDER, build_mail, mail_of, room_events, thread_root, wait_mails
from tests.harness.postgres import create_database, drop_database
from tests.harness.processes import component_pids, wait_gone
from tests.harness.stack import Stack

STARTUP: dict[str, float] = {}


@pytest.fixture(scope="module")
def workers_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = create_database()
    stack = Stack.create(tmp_path_factory.mktemp("stack-workers"), database_url=url, workers=True)
    started = time.monotonic()
    try:
        stack.start(timeout=240)
        STARTUP["seconds"] = time.monotonic() - started
        print(f"\nworker deployment ready in {STARTUP['seconds']:.1f} s")
        print("".join(line for line in stack.output if "prêt :" in line))
        yield stack
        assert stack.stop() == 0
        assert wait_gone(stack.directory) == [], "a process of the deployment outlived stop"
        assert "Maillon est arrêté." in "".join(stack.output)
    finally:
        stack.stop()
        drop_database(url)


def _workers(stack: Stack) -> tuple[SynapseWorker, ...]:
    workers = stack.deployment.settings.homeserver.workers
    assert workers is not None
    return workers.processes


def _worker(stack: Stack, name: str) -> SynapseWorker:
    return next(w for w in _workers(stack) if w.name == name)


def _upstreams(stack: Stack, method: str, path_re: str) -> list[int]:
    """The worker ports nginx sent matching requests to (its access log)."""
    pattern = re.compile(rf'"{method} {path_re}" \d+ upstream=127\.0\.0\.1:(\d+)')
    log = (stack.directory / "logs" / "nginx-access.log").read_text()
    return [int(m.group(1)) for m in pattern.finditer(log)]


def _persisted_by(stack: Stack, room_id: str) -> set[str]:
    """Which event persisters wrote the room's events (Synapse records it per event)."""
    url = stack.database_url
    assert url is not None
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT instance_name FROM events WHERE room_id = %s", (room_id,)
        ).fetchall()
    return {str(row[0]) for row in rows}


def _sync_workers_of(stack: Stack, user_id: str) -> set[str]:
    """The Synapse processes whose request log shows a /sync of ``user_id``."""
    found = set()
    for log in (stack.directory / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        if re.search(r"\{" + re.escape(user_id) + r"\} Processed request.*\"GET [^ ]*/sync", text):
            found.add(log.stem)
    return found


def test_every_worker_runs_and_nginx_routes_to_them(workers_stack: Stack) -> None:
    stack = workers_stack
    roles = [w.role for w in _workers(stack)]
    for role in ("client", "sync", "federation_sender", "appservice_pusher", "background"):
        assert role in roles
    assert roles.count("event_persister") == 2 and roles.count("sync") == 2
    for worker in _workers(stack):
        assert http_ok(f"http://127.0.0.1:{worker.port}/health"), worker.name
    banner = "".join(stack.output)
    for worker in _workers(stack):
        assert re.search(rf"{worker.name} +127\.0\.0\.1:{worker.port} .*en marche", banner)
    homeserver = yaml.safe_load((stack.directory / "homeserver.yaml").read_text())
    assert homeserver["stream_writers"]["events"] == ["event_persister1", "event_persister2"]
    assert homeserver["redis"]["enabled"] is True
    # A client endpoint reaches the client worker through nginx, not the main process.
    assert http_ok(stack.url + "/_matrix/client/versions")
    assert _worker(stack, "client1").port in _upstreams(stack, "GET", "/_matrix/client/versions")
    # The admin API (shared-secret registration here) goes to the main process.
    stack.register("admin", admin=True, profession=None)
    main_port = stack.deployment.settings.homeserver.workers.main_port  # type: ignore[union-attr]
    assert set(_upstreams(stack, "POST", "/_synapse/admin/v1/register")) == {main_port}


def _status_from(source: str, url: str, path: str) -> int:
    """GET ``path`` with the connection's source address ``source``."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=10, source_address=(source, 0)
    )
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_admin_api_answers_this_machine_only(workers_stack: Stack) -> None:
    """nginx admits /_synapse/admin from 127.0.0.1 and ::1 only: from another address (here
    127.0.0.2, still loopback but not allowed) it is refused before reaching Synapse."""
    url = workers_stack.url
    admin = "/_synapse/admin/v1/server_version"
    assert _status_from("127.0.0.1", url, admin) == 200
    assert _status_from("127.0.0.2", url, admin) == 403
    assert _status_from("127.0.0.2", url, "/_synapse/admin/v1/register") == 403
    assert _status_from("127.0.0.2", url, "/_matrix/client/versions") == 200


async def test_two_professionals_exchange_encrypted_messages_and_sync_on_one_worker(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    coordinator, nurse, _, _ = await member_exchange(stack, make_client)

    sync_workers = {w.name for w in _workers(stack) if w.role == "sync"}
    for user in (coordinator, nurse):
        seen = _sync_workers_of(stack, user.user_id)
        assert len(seen) == 1 and seen <= sync_workers, (user.user_id, seen)
    send_ports = _upstreams(stack, "PUT", r"/_matrix/client/v3/rooms/[^/ ]+/send/[^ ]+")
    assert send_ports and set(send_ports) == {_worker(stack, "client1").port}


async def test_circle_refusals_hold_on_the_generic_worker_and_either_event_persister(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    coordinator, _ = await coordinated_room(stack, make_client)
    rooms: dict[str, str] = {}  # persister → a patient room whose events it writes
    for _ in range(24):
        room_id = await open_dossier(stack, coordinator.user_id)
        persisters = _persisted_by(stack, room_id)
        assert len(persisters) == 1, persisters  # sharded by room: one writer per room
        rooms.setdefault(persisters.pop(), room_id)
        if len(rooms) == 2:
            break
    assert set(rooms) == {"event_persister1", "event_persister2"}, rooms

    member = await professional(stack, make_client, "kine")
    outsider = await professional(stack, make_client, "curieux")
    for persister, room_id in sorted(rooms.items()):
        await coordinator.accept_invite(room_id)
        async with appservice(stack) as api:
            await set_circle_member(api, room_id, member.user_id, "KINE", coordinator.user_id)
            await api.invite(room_id, member.user_id)
        await member.accept_invite(room_id)
        before = {e["event_id"] for e in room_state(stack, token_of(coordinator), room_id)}

        invite = refusal(
            stack,
            token_of(member),
            "POST",
            room_path(room_id, "invite"),
            {"user_id": outsider.user_id},
        )
        assert invite.status == 403 and "ne fait pas partie du cercle de soins" in str(invite)
        join = refusal(stack, token_of(outsider), "POST", "/join/" + room_id, {})
        assert join.status == 403 and "réservé à son cercle" in str(join)
        plaintext = refusal(
            stack,
            token_of(member),
            "PUT",
            room_path(room_id, "send", "m.room.message", "clair1"),
            {"msgtype": "m.text", "body": "en clair"},
        )
        assert plaintext.status == 403 and "chiffrés" in str(plaintext)
        loosen = refusal(
            stack,
            token_of(coordinator),
            "PUT",
            room_path(room_id, "state", "m.room.join_rules", ""),
            {"join_rule": "public"},
        )
        assert loosen.status == 403, persister

        after = {e["event_id"] for e in room_state(stack, token_of(coordinator), room_id)}
        assert after == before, "nothing refused reached the room's state"
        assert membership(stack, token_of(coordinator), room_id, outsider.user_id) is None
        assert _persisted_by(stack, room_id) == {persister}
        denied = {
            (r.actor, r.action, r.worker)
            for r in read_audit(stack.directory / "audit", room_id)
            if not r.allowed
        }
        # The decisions were taken on the generic worker that received the requests.
        assert (member.user_id, "invite", "client1") in denied
        assert (outsider.user_id, "join", "client1") in denied
        assert (member.user_id, "m.room.message", "client1") in denied
        assert (coordinator.user_id, "state:m.room.join_rules", "client1") in denied


async def test_the_bot_answers_through_the_workers(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    user = make_client(stack, "coordinatrice")
    bot = stack.deployment.settings.bot_user_id
    room_id = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room_id, bot)
    assert user.client.rooms[room_id].encrypted
    sent = await user.send_text(room_id, "!aide")
    reply = await user.wait_for_text(room_id, lambda e: e.sender == bot)
    assert reply.decrypted and "commandes disponibles" in reply.body
    relation = reply.source["content"].get("m.relates_to", {})
    assert relation.get("rel_type") == "m.thread" and relation.get("event_id") == sent
    # The appservice's transactions came from the appservice/pusher worker.
    log = (stack.directory / "logs" / "appservice_pusher1.log").read_text(errors="replace")
    assert "/_matrix/app/v1/transactions/" in log


def test_up_only_runs_the_named_components(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`maillon up --only` (one component per container in docker/compose.yaml): here the
    private Redis alone; an unknown component is refused, naming the known ones."""
    stack = Stack.create(
        tmp_path_factory.mktemp("only"),
        database_url="postgresql://postgres@127.0.0.1:9/unused",  # Redis alone never uses it
        workers=True,
    )
    stack.start(argv=["up", "--dir", str(stack.directory), "--only", "redis"])
    try:
        assert redis_ping(stack.directory / "run" / "redis.sock")
        started = [line for line in stack.output if line.startswith("… démarrage")]
        assert started == ["… démarrage : Redis (réplication des workers Synapse)\n"]
    finally:
        assert stack.stop() == 0
    assert wait_gone(stack.directory) == []
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "maillon.wiring.cli",
            "up",
            "--dir",
            str(stack.directory),
            "--only",
            "synapse,nimporte",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "nimporte" in refused.stderr and "synapse_client1" in refused.stderr


async def test_a_mail_is_delivered_into_its_dossier_room(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    coordinator = make_client(stack, "coordinatrice")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    dossier = new_dossier(stack, coordinator.account.access_token)
    room_id = str(dossier["room_id"])
    await coordinator.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, stack.deployment.settings.bot_user_id)
    message_id, raw = build_mail(
        str(dossier["mail_address"]), "Compte rendu de sortie", "Sortie le 3, suivi IDE."
    )
    port = stack.deployment.settings.mail.inbound.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
        refused, _ = await smtp.sendmail(SENDER, [str(dossier["mail_address"])], raw)
    assert refused == {}
    events = await wait_mails(coordinator, room_id, {message_id})
    posted = next(e for e in events if (mail_of(e) or {}).get("message_id") == message_id)
    assert posted.decrypted and "Sortie le 3, suivi IDE." in posted.body


def _call(method: str, url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_the_dossier_api_runs_as_several_processes_behind_nginx(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    """nginx holds the dossier API's address and spreads requests over its processes; they
    share everything through the store (a session opened through one is known to the
    other, and ended through one it is ended for both); a process killed with -9 costs no
    request (nginx sends it to the other) and is restarted by the supervisor."""
    stack = workers_stack
    workers = stack.deployment.settings.homeserver.workers
    assert workers is not None and len(workers.dossier_api_ports) == 2
    first, second = workers.dossier_api_ports
    coordinator = make_client(stack, "coordinatrice")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    token = coordinator.account.access_token
    dossier = new_dossier(stack, token)
    await coordinator.accept_invite(dossier["room_id"])
    for _ in range(12):
        assert api(stack, token, "GET", f"/v1/dossiers/{dossier['id']}")["id"] == dossier["id"]
    served = _upstreams(stack, "GET", re.escape(f"/v1/dossiers/{dossier['id']}"))
    assert {first, second} <= set(served), served

    # A widget session opened through nginx, used on each process, ended on one of them.
    path = f"/_matrix/client/v3/user/{quote(coordinator.user_id)}/openid/request_token"
    openid = str(request_json("POST", stack.url + path, {}, token=token)["access_token"])
    session = widget_session(stack, openid)
    page = f"/widget/dossiers/{dossier['id']}?room={quote(dossier['room_id'])}"
    cookie = {"Cookie": session["Cookie"]}
    for port in (first, second):
        status, body = _call("GET", f"http://127.0.0.1:{port}{page}", cookie)
        assert status == 200 and dossier["reference"] in body, (port, status)

    # kill -9 of process 1 under a steady flow of reads: every read answered.
    answers: list[int] = []
    flowing = threading.Event()
    done = threading.Event()

    def reads() -> None:
        while not done.is_set():
            try:
                api(stack, token, "GET", f"/v1/dossiers/{dossier['id']}")
                answers.append(200)
            except HomeserverError as exc:
                answers.append(exc.status)
            if len(answers) >= 10:
                flowing.set()
            time.sleep(0.02)

    reader = threading.Thread(target=reads)
    reader.start()
    try:
        assert await asyncio.to_thread(flowing.wait, 30)
        killed = _instance_pid(stack, b"-m\0dossier_api", "1")
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        during = len(answers)

        def restarted() -> bool:
            pid = _instance_pid(stack, b"-m\0dossier_api", "1")
            return pid not in (None, killed) and http_ok(f"http://127.0.0.1:{first}/health")

        took = await wait_for(restarted, "dossier API n° 1 restarted", timeout=60)
        print(f"\ndossier API n° 1 back {took:.1f} s after kill -9")
        await wait_for(lambda: len(answers) > during + 20, "reads after the restart", 30)
    finally:
        done.set()
        reader.join(timeout=30)
    assert set(answers) == {200}, sorted(set(answers))

    # Ended through process 2, the session is ended for process 1 too.
    ending = {**cookie, "X-CSRF-Token": session["csrf_token"]}
    assert _call("DELETE", f"http://127.0.0.1:{second}/session", ending)[0] == 200
    assert _call("GET", f"http://127.0.0.1:{first}{page}", cookie)[0] == 401


def _server_pid(client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the TCP connection from ``client_port``
    (its socket's inode in /proc/net/tcp, found among the process' descriptors)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[len("socket:[") : -1]] = pid
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == client_port and fields[9] in inodes:
                return inodes[fields[9]]
    return None


def _instance_pid(stack: Stack, module: bytes, name: str) -> int | None:
    """The pid of instance ``name`` (MAILLON_INSTANCE) of a leased component."""
    for pid in component_pids(stack.directory, module):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{INSTANCE_ENV}={name}".encode() in environ:
            return pid
    return None


def _lease(stack: Stack, key: str, name: str) -> str:
    return read_state(stack.directory / "run" / f"{key}-{name}.lease")


# These kill the active appservice and bot of the module's deployment: they run last.
ROOMS, PER_ROOM, KILL_AFTER = 10, 50, 150  # 500 messages


@pytest.mark.timeout(600)  # 10 dossiers and a 500-event burst through the workers
async def test_kill_9_of_the_active_appservice_mid_burst_the_standby_takes_over(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    assert (_lease(stack, "appservice", "a"), _lease(stack, "appservice", "b")) == (
        "active",
        "standby",
    )
    standby = _instance_pid(stack, b"-m\0appservice", "b")
    sender = make_client(stack, "coordinatrice")
    t = token_of(sender)
    dossiers = [new_dossier(stack, t) for _ in range(ROOMS)]
    for d in dossiers:
        await sender.accept_invite(d["room_id"])
    sent: dict[str, set[str]] = {d["id"]: set() for d in dossiers}
    killed_at: float | None = None

    def send(dossier: dict[str, str], n: int) -> None:
        """One encrypted-looking event, as a client puts it (the burst needs no real keys:
        the appservice counts m.room.encrypted events without reading them)."""
        body = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": secrets.token_urlsafe(96),
            "sender_key": "c2VuZGVyLWtleQ",
            "session_id": "c2Vzc2lvbg",
            "device_id": sender.account.device_id,
        }
        path = room_path(dossier["room_id"], "send", "m.room.encrypted", f"burst{n}")
        event_id = str(cs(stack, t, "PUT", path, body)["event_id"])
        sent[dossier["id"]].add(event_id)

    def burst(first: int, last: int) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [pool.submit(send, dossiers[n % ROOMS], n) for n in range(first, last)]
            for job in jobs:
                job.result()

    began = time.monotonic()
    await asyncio.to_thread(burst, 0, KILL_AFTER)
    active = _instance_pid(stack, b"-m\0appservice", "a")
    assert active is not None
    os.kill(active, signal.SIGKILL)
    killed_at = time.monotonic()
    await asyncio.to_thread(burst, KILL_AFTER, ROOMS * PER_ROOM)
    sent_in = time.monotonic() - began
    assert sum(map(len, sent.values())) == ROOMS * PER_ROOM
    print(f"\n500 events sent in {sent_in:.1f} s")
    assert killed_at is not None
    took = await wait_for(
        lambda: _lease(stack, "appservice", "b") == "active", "the takeover", timeout=30
    )
    print(f"appservice standby active {took:.2f} s after the burst ended")
    assert _instance_pid(stack, b"-m\0appservice", "b") == standby, "taken over, not restarted"
    counted = await wait_for(
        lambda: all(messages_count(stack, t, d) >= PER_ROOM for d in sent),
        "every message counted",
        timeout=120,
    )
    print(f"every event counted {counted:.1f} s after the takeover")
    url = stack.database_url
    assert url is not None
    assert {d: recorded_messages(url)[d] for d in sent} == sent, "each message once"
    assert all(messages_count(stack, t, d) == PER_ROOM for d in sent)
    # The killed instance came back as the new standby.
    await wait_for(lambda: _lease(stack, "appservice", "a") == "standby", "a new standby", 60)


async def test_mails_taken_by_each_smtp_intake_process_are_all_delivered_once(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    """Several SMTP intake processes share the port and the spool; the active poster (in
    the appservice) posts what each of them accepted, each mail once, also when it is
    killed (-9) mid-burst and its standby takes over (the intake goes on meanwhile)."""
    stack = workers_stack
    intakes = component_pids(stack.directory, b"-m\0appservice.mail.smtp_intake")
    assert len(intakes) == stack.deployment.settings.mail.inbound.processes == 2
    coordinator = make_client(stack, "coordinatrice")
    await bind_professional(stack, coordinator.user_id, "infirmière coordinatrice")
    dossier = new_dossier(stack, coordinator.account.access_token)
    room_id, address = str(dossier["room_id"]), str(dossier["mail_address"])
    await coordinator.accept_invite(room_id)
    await coordinator.wait_for_member(room_id, stack.deployment.settings.bot_user_id)
    port = stack.deployment.settings.mail.inbound.port
    taken_by: dict[str, int | None] = {}
    active = "a" if _lease(stack, "appservice", "a") == "active" else "b"
    standby = "b" if active == "a" else "a"
    for n in range(24):
        if n == 8:
            pid = _instance_pid(stack, b"-m\0appservice\0", active)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        message_id, raw = build_mail(address, f"Courriel {n}", f"Texte du courriel {n}.")
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
            assert smtp.transport is not None
            local_port = smtp.transport.get_extra_info("sockname")[1]
            taken_by[message_id] = _server_pid(local_port, intakes)
            refused, _ = await smtp.sendmail(SENDER, [address], raw)
        assert refused == {}
    assert set(taken_by.values()) == set(intakes), "each intake process took mails"
    await wait_for(
        lambda: _lease(stack, "appservice", standby) == "active", "the takeover", timeout=60
    )
    events = await wait_mails(coordinator, room_id, set(taken_by))
    posted = [m["message_id"] for m in (mail_of(e) for e in events) if m]
    assert sorted(posted) == sorted(taken_by), "every mail once"


async def test_kill_9_of_the_active_bot_the_standby_answers_each_command_once(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    stack = workers_stack
    assert _lease(stack, "coordination_bot", "a") == "active"
    standby = _instance_pid(stack, b"-m\0coordination_bot", "b")
    user = make_client(stack, "coordinatrice")
    bot = stack.deployment.settings.bot_user_id
    room_id = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room_id, bot)
    first = await user.send_text(room_id, "!aide")
    active = _instance_pid(stack, b"-m\0coordination_bot", "a")
    assert active is not None
    os.kill(active, signal.SIGKILL)
    await wait_for(
        lambda: _lease(stack, "coordination_bot", "b") == "active", "the takeover", timeout=30
    )
    assert _instance_pid(stack, b"-m\0coordination_bot", "b") == standby
    await wait_for(lambda: _lease(stack, "coordination_bot", "a") == "standby", "new standby", 90)
    second = await user.send_text(room_id, "!help")
    await user.wait_for_text(room_id, lambda e: e.sender == bot and thread_root(e) == second)
    await user.wait_for_text(room_id, lambda e: e.sender == bot and thread_root(e) == first)
    events = await room_events(user, room_id)
    answers = [e for e in events if getattr(e, "sender", "") == bot and thread_root(e) == first]
    assert len(answers) == 1, "the command sent as the bot died is answered once"


async def test_the_consoles_allow_list_reaches_every_worker(
    workers_stack: Stack, make_client: MakeClient
) -> None:
    """The allow list's file (what ``/admin/federation`` writes; homeserver.yaml untouched)
    decides on the workers within ``peers_refresh_seconds``: a server added there stops
    being refused as not a partner, and is refused again once removed."""
    stack = workers_stack
    peers_file = stack.directory / PEERS_FILE
    homeserver = (stack.directory / "homeserver.yaml").read_text()
    coordinator, room_id = await coordinated_room(stack, make_client)
    remote = f"@expert{secrets.token_hex(2)}:region-x.test"

    def invite_reason() -> str:
        refused = refusal(
            stack, token_of(coordinator), "POST", room_path(room_id, "invite"), {"user_id": remote}
        )
        assert refused.status == 403
        return str(refused)

    assert "n'est pas autorisé" in invite_reason()
    write_peers(peers_file, [*read_peers(peers_file), Peer("region-x.test", "essai")])
    took = await wait_for(
        lambda: "n'est pas autorisé" not in invite_reason(), "the workers admitting X", 5 + 3
    )
    assert "professionnel connu" in invite_reason()  # now the circle rule answers
    write_peers(peers_file, [p for p in read_peers(peers_file) if p.server != "region-x.test"])
    await wait_for(lambda: "n'est pas autorisé" in invite_reason(), "the workers refusing X", 8)
    decided_by = {
        r.worker
        for r in read_audit(stack.directory / "audit", room_id)
        if r.target == remote and r.code == "server_not_allowed"
    }
    assert decided_by and "main" not in decided_by, decided_by
    assert (stack.directory / "homeserver.yaml").read_text() == homeserver
    print(f"\nallow list picked up by the workers in {took:.1f} s")
