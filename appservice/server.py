"""aiohttp application of the appservice: transactions, ping, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from appservice.circle_keeper import CircleKeeper
from appservice.directory import bind_directory_entry, ensure_directory_room
from appservice.dossier_follower import DossierFollower
from appservice.dossier_rooms import DossierRooms
from appservice.mail.relay import mail_relay
from appservice.matrix_api import AppserviceApi, MatrixError
from appservice.metrics import Metrics
from appservice.room_purge import RoomPurger, daily_loop, purge_loop
from appservice.team_invites import TeamInvites
from appservice.transactions import (
    MAX_ATTEMPTS,
    EventHandler,
    MalformedTransaction,
    Routing,
    TransactionStore,
    retry_delay,
)
from dossier_api.domain import pathway_store
from dossier_api.domain.directory import directory_entry
from dossier_api.domain.rooms import RoomLinks
from dossier_api.domain.service import DossierService
from maillon.shared.clock import every
from maillon.shared.crypto import KeyRing
from maillon.shared.federation_peers import PeerList
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import Deployment
from maillon.shared.store import make_engine
from maillon.shared.web import (
    bearer_token,
    json_error,
    json_errors,
    read_json_object,
    token_matches,
)
from synapse_modules.audit import AuditLog
from synapse_modules.config import from_homeserver_config, peer_list
from synapse_modules.policy import PolicyContext

log = logging.getLogger(__name__)

DEPLOYMENT = web.AppKey("deployment", Deployment)
STORE = web.AppKey("store", TransactionStore)
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", Engine)
WAKE = web.AppKey("wake", asyncio.Event)
HANDLERS = web.AppKey("handlers", list)
PING = web.AppKey("ping", dict)
LINKS = web.AppKey("links", RoomLinks)
TEAMS = web.AppKey("teams", DossierService)
PURGER = web.AppKey("purger", RoomPurger)
ROOM_SYNC = web.AppKey("room_sync", dict)  # "rooms": DossierRooms, once running
OUTBOX_WAKE = web.AppKey("outbox_wake", asyncio.Event)
RETRY_AT = web.AppKey("retry_at", dict)  # seq of a failed event -> monotonic time of next try


def _authorized(request: web.Request) -> web.Response | None:
    token = bearer_token(request)
    if token is None:
        return json_error(401, "M_UNAUTHORIZED", "jeton du serveur d'accueil absent")
    if not token_matches(token, request.app[DEPLOYMENT].secrets.hs_token):
        return json_error(403, "M_FORBIDDEN", "jeton du serveur d'accueil invalide")
    return None


async def put_transaction(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    refused = _authorized(request)
    if refused is not None:
        metrics.transactions_rejected += 1
        return refused
    body = await read_json_object(request)
    txn_id = request.match_info["txn_id"]
    try:
        result = await asyncio.to_thread(request.app[STORE].store, txn_id, body)
    except MalformedTransaction as exc:
        metrics.transactions_rejected += 1
        return json_error(400, "M_BAD_JSON", f"transaction illisible : {exc}")
    metrics.transactions_received += 1
    if result.replayed:
        metrics.transactions_replayed += 1
    metrics.events_stored += result.new_events
    metrics.events_duplicate += result.duplicate_events
    metrics.events_processed += result.new_events - result.queued_events  # when stored
    if result.queued_events:
        request.app[WAKE].set()
    return web.json_response({})


async def ping(request: web.Request) -> web.Response:
    refused = _authorized(request)
    if refused is not None:
        return refused
    return web.json_response({})


async def unknown_user_or_alias(request: web.Request) -> web.Response:
    refused = _authorized(request)
    if refused is not None:
        return refused
    return json_error(404, "M_NOT_FOUND", "inconnu de Maillon")


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        backlog = await asyncio.to_thread(store.backlog)
    except Exception as exc:
        log.error("store check failed: %s", type(exc).__name__)
        return web.json_response({"status": "error", "store": "injoignable"}, status=503)
    return web.json_response(
        {"status": "ok", "store": "ok", "backlog": backlog, "homeserver_ping": request.app[PING]}
    )


async def sync_dossier(request: web.Request) -> web.Response:
    """Carry a dossier's pending changes into its rooms now (called by the dossier API and
    the bot right after a change, so the answer can show the room). Maillon-internal."""
    refused = _authorized_internal(request)
    if refused is not None:
        return refused
    rooms: DossierRooms | None = request.app[ROOM_SYNC].get("rooms")
    if rooms is None:
        return json_error(503, "M_NOT_READY", "le service d'application démarre")
    dossier_id = request.match_info["dossier_id"]
    try:
        handled, plan = await rooms.process_dossier(dossier_id)
    except Exception as exc:
        request.app[METRICS].room_sync_errors += 1
        request.app[OUTBOX_WAKE].set()
        return json_error(
            502, "M_UNAVAILABLE", f"salles non encore à jour ({type(exc).__name__}) ; nouvel essai"
        )
    request.app[METRICS].room_sync_jobs += handled
    if plan is None:  # nothing was pending (the outbox loop was first, say)
        plan = await asyncio.to_thread(request.app[LINKS].plan, dossier_id)
    if plan is None:
        return json_error(404, "M_NOT_FOUND", "dossier inconnu")
    return web.json_response(
        {"rooms": [{"key": r.key, "kind": r.kind, "room_id": r.room_id} for r in plan.rooms]}
    )


async def bind_professional(request: web.Request) -> web.Response:
    """Publish an account's directory entry, as the store holds it, in the directory room
    the Synapse module reads (called by the dossier API once an enrolment made the account).
    Maillon-internal."""
    refused = _authorized_internal(request)
    if refused is not None:
        return refused
    api: AppserviceApi | None = request.app[ROOM_SYNC].get("api")
    if api is None:
        return json_error(503, "M_NOT_READY", "le service d'application démarre")
    user_id = request.match_info["user_id"]
    entry = await asyncio.to_thread(directory_entry, request.app[ENGINE], user_id)
    if entry is None:
        return json_error(404, "M_NOT_FOUND", "compte absent de l'annuaire de Maillon")
    try:
        await bind_directory_entry(api, request.app[DEPLOYMENT].settings.server_name, entry)
    except MatrixError as exc:
        return json_error(
            502, "M_UNAVAILABLE", f"annuaire non publié ({exc.errcode or exc.status})"
        )
    return web.json_response({"user_id": user_id, "bound": True})


def _authorized_internal(request: web.Request) -> web.Response | None:
    token = bearer_token(request)
    if token is None or not token_matches(token, request.app[DEPLOYMENT].secrets.as_token):
        return json_error(403, "M_FORBIDDEN", "réservé aux composants de Maillon")
    return None


async def metrics_page(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    metrics.backlog = await asyncio.to_thread(request.app[STORE].backlog)
    metrics.room_sync_backlog = await asyncio.to_thread(request.app[LINKS].backlog)
    return web.Response(text=metrics.render(), content_type="text/plain")


async def _process_once(app: web.Application) -> int:
    """Process a batch of stored events in order; mark them processed in one commit.
    Handlers are idempotent per event, so a crash before the commit only replays them.
    A failed event is tried again later (``retry_delay``), never in a tight loop, and does
    not hold back the events after it. Returns how many events were tried."""
    store, metrics = app[STORE], app[METRICS]
    handlers: list[EventHandler] = app[HANDLERS]
    retry_at: dict[int, float] = app[RETRY_AT]
    now = time.monotonic()
    for seq in [s for s, at in retry_at.items() if at <= now]:
        del retry_at[seq]
    batch = await asyncio.to_thread(store.pending, 500, list(retry_at))
    done: list[int] = []
    for seq, event in batch:
        try:
            for handler in handlers:
                await handler(event)
        except Exception as exc:
            metrics.processing_errors += 1
            attempts = await asyncio.to_thread(store.mark_failed, seq, type(exc).__name__)
            if attempts >= MAX_ATTEMPTS:
                log.error(
                    "stored event #%s abandoned after %d failed tries: %s",
                    seq,
                    attempts,
                    type(exc).__name__,
                )
            else:
                retry_at[seq] = time.monotonic() + retry_delay(attempts)
                log.error(
                    "processing of stored event #%s failed (%s); try %d again in %.0f s",
                    seq,
                    type(exc).__name__,
                    attempts + 1,
                    retry_delay(attempts),
                )
            continue
        done.append(seq)
        ts = event.get("origin_server_ts")
        if isinstance(ts, int):
            metrics.last_lag_seconds = max(0.0, time.time() - ts / 1000)
    if done:
        await asyncio.to_thread(store.mark_processed, done)
        metrics.events_processed += len(done)
    return len(batch)


def _idle_timeout(app: web.Application) -> float:
    """How long the processor may sleep: until the next retry, at most 5 s."""
    retry_at: dict[int, float] = app[RETRY_AT]
    if not retry_at:
        return 5.0
    return max(0.05, min(5.0, min(retry_at.values()) - time.monotonic()))


async def _processor(app: web.Application) -> None:
    wake = app[WAKE]
    while True:
        try:
            done = await _process_once(app)
        except Exception:
            log.exception("event processing loop error; retrying")
            done = 0
        if done == 0:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=_idle_timeout(app))


async def _ping_homeserver(app: web.Application) -> None:
    """Ask the homeserver to ping us back (spec: appservice ping), with retries."""
    deployment = app[DEPLOYMENT]
    url = (
        f"{deployment.settings.homeserver.url}/_matrix/client/v1/appservice/"
        f"{deployment.settings.appservice.id}/ping"
    )
    headers = {"Authorization": f"Bearer {deployment.secrets.as_token}"}
    async with aiohttp.ClientSession() as session:
        for attempt in range(30):
            try:
                async with session.post(
                    url, json={"transaction_id": secrets.token_hex(8)}, headers=headers
                ) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 200:
                        app[PING].update(status="ok", duration_ms=body.get("duration_ms"))
                        log.info("homeserver ping ok")
                        return
                    app[PING].update(status="failed", error=body.get("error", resp.status))
            except (aiohttp.ClientError, ValueError) as exc:
                app[PING].update(status="failed", error=type(exc).__name__)
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    log.warning("homeserver ping failed: %s", app[PING].get("error"))


async def _outbox_loop(app: web.Application, rooms: DossierRooms) -> None:
    """Carry dossier changes into rooms; a failing dossier is retried after a pause."""
    wake, metrics = app[OUTBOX_WAKE], app[METRICS]
    while True:
        failed = False
        for dossier_id, _, _ in await asyncio.to_thread(app[LINKS].pending):
            try:
                metrics.room_sync_jobs += (await rooms.process_dossier(dossier_id))[0]
            except Exception:
                metrics.room_sync_errors += 1
                failed = True
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=5.0 if failed else 1.0)


def policy_context(deployment: Deployment) -> tuple[PolicyContext, PeerList]:
    """The policy's context, and the allow list it follows (the console's file)."""
    module = from_homeserver_config(
        str(deployment.path(deployment.settings.homeserver.config_file))
    )
    peers = peer_list(module)
    context = PolicyContext(
        server_name=deployment.settings.server_name,
        service_user=module.appservice_user,
        bot_user=module.bot_user,
        peer_servers=peers.servers(),
        exempt_users=module.exempt_users,
    )
    return context, peers


SERVICE_DISPLAY_NAME = "Maillon"


async def _until_done(action: Callable[[], Awaitable[Any]], what: str) -> None:
    """Do a start-up action once the homeserver accepts it (retried, backing off)."""
    delay = 1.0
    while True:
        try:
            await action()
            return
        except (MatrixError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s not done yet: %s", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _name_service_user(api: AppserviceApi) -> None:
    """Give the service user its display name once the homeserver accepts it."""
    await _until_done(
        lambda: api.set_display_name(SERVICE_DISPLAY_NAME), "display name of the service user"
    )


async def _background(app: web.Application) -> AsyncIterator[None]:
    deployment = app[DEPLOYMENT]
    ctx, peers = policy_context(deployment)
    async with AppserviceApi.for_deployment(deployment) as api:
        keeper = CircleKeeper(
            api, ctx, AuditLog(str(deployment.path("audit")), "appservice"), peers
        )
        rooms = DossierRooms(
            api,
            app[LINKS],
            deployment.settings.dossier_api.external_url,
            deployment.settings.bot.localpart,
            peers,
        )
        app[ROOM_SYNC]["rooms"] = rooms
        app[ROOM_SYNC]["api"] = api
        follower = DossierFollower(app[LINKS], frozenset({ctx.service_user, ctx.bot_user}))
        teams = TeamInvites(api, app[TEAMS], deployment.settings.server_name, ctx.peer_servers)
        # Handlers given to ``create_app`` see every event; Maillon's own say which they need
        # (the rest, messages above all, is settled when stored: ``Routing``).
        queue_all = bool(app[HANDLERS])
        app[HANDLERS].extend([keeper.handle, follower.handle, teams.handle])
        wanted = (keeper.wants, follower.wants, teams.wants)
        app[STORE].routing = Routing(
            queued=(lambda _: True) if queue_all else (lambda e: any(w(e) for w in wanted)),
            at_store=follower.at_store,
        )
        interval = deployment.settings.appservice.circle_expiry_check_seconds
        tasks = [
            asyncio.create_task(_processor(app)),
            asyncio.create_task(_outbox_loop(app, rooms)),
            asyncio.create_task(_ping_homeserver(app)),
            asyncio.create_task(every(interval, keeper.sweep, "care-circle sweep")),
            # Resource-team solicitations past their response time: the chain's next step
            # (or expired), run here by the one appservice process.
            asyncio.create_task(
                every(
                    interval,
                    lambda: asyncio.to_thread(app[TEAMS].escalate_due),
                    "resource-team escalation",
                )
            ),
            # Incoming solicitations of a peer region with an outcome: told back to its room.
            asyncio.create_task(every(interval, teams.relay_outcomes, "solicitation outcomes")),
            asyncio.create_task(_name_service_user(api)),
            # The directory room exists from the start: Pro Santé Connect logins publish
            # their entry in it from inside the homeserver (synapse_modules.psc_mapping).
            asyncio.create_task(
                _until_done(
                    lambda: ensure_directory_room(api, deployment.settings.server_name),
                    "directory room",
                )
            ),
            asyncio.create_task(purge_loop(app[PURGER])),
            asyncio.create_task(daily_loop(app[PURGER].engine)),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_app(
    deployment: Deployment, handlers: list[EventHandler] | None = None
) -> web.Application:
    keys = KeyRing.for_secrets(deployment.secrets)
    install_key_ring(keys)  # dossiers are read from the store; migrations may need the keys
    engine = make_engine(deployment.settings.database_url)
    pathway_store.bind(engine)  # the room templates of the versions dossiers follow
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024 * 1024)
    app[DEPLOYMENT] = deployment
    app[STORE] = TransactionStore(engine, keys)
    app[LINKS] = RoomLinks(engine)
    app[TEAMS] = DossierService(engine, deployment, component="appservice")
    app[ENGINE] = engine
    app[PURGER] = RoomPurger(deployment, engine)
    app[ROOM_SYNC] = {}
    app[OUTBOX_WAKE] = asyncio.Event()
    app[METRICS] = Metrics()
    app[WAKE] = asyncio.Event()
    app[RETRY_AT] = {}
    app[HANDLERS] = list(handlers or [])
    app[PING] = {"status": "pending"}
    for prefix in ("/_matrix/app/v1", ""):  # legacy unprefixed paths are still used
        app.router.add_put(prefix + "/transactions/{txn_id}", put_transaction)
        app.router.add_get(prefix + "/users/{user_id}", unknown_user_or_alias)
        app.router.add_get(prefix + "/rooms/{alias}", unknown_user_or_alias)
    app.router.add_post("/_matrix/app/v1/ping", ping)
    app.router.add_post("/_maillon/dossiers/{dossier_id}/sync", sync_dossier)
    app.router.add_post("/_maillon/directory/{user_id}/bind", bind_professional)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_page)
    app.cleanup_ctx.append(_background)
    app.cleanup_ctx.append(mail_relay(deployment))  # MSSanté / Medimail relay (appservice/mail/)
    return app


def run(deployment: Deployment) -> None:
    listener = deployment.settings.appservice.listener
    web.run_app(
        create_app(deployment),
        host=listener.host,
        port=listener.port,
        print=None,
        access_log=None,
        shutdown_timeout=5,
    )
