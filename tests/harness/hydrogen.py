"""Hydrogen (the Matrix web client by Element, 0.5.1) in Debian's headless Chromium, driven
by Playwright: a professional as they would use Maillon from a browser.

The built client is in ``shared/clients/hydrogen-web-0.5.1/`` beside the repository; the
tests serve a copy with their own ``config.json`` from a loopback HTTP server.

Known limit of Hydrogen (element-hq/hydrogen-web#1115): it does not send room keys to
devices created after its encryption session for a room started. The tests log every device
in before the first encrypted message of a room, and say so where they rely on it.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from maillon.shared.homeserver_client import HomeserverError, register_user, request_json
from tests.harness.matrix import ENCRYPTION_STATE
from tests.harness.stack import Stack

REPOSITORY = Path(__file__).resolve().parents[2]
HYDROGEN_BUILD = REPOSITORY.parent / "shared" / "clients" / "hydrogen-web-0.5.1"
CHROMIUM = "/usr/lib/chromium/chromium"
UI_TIMEOUT_MS = 60_000  # two cores shared with other stacks: generous, but a deadline

# What Hydrogen 0.5.1 shows (its own English strings).
UNDECRYPTABLE = "The sender hasn't sent us the key for this message yet."
KICKED = "You were kicked from the room"


@dataclass(frozen=True)
class Person:
    """An account with a password, to log in through a client's login screen."""

    user_id: str
    password: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


def register_person(
    stack: Stack,
    prefix: str,
    display_name: str,
    profession: str | None = "infirmier",
    admin: bool = False,
) -> Person:
    """An account with a password (for the login screen); with a ``profession`` (the
    default), a professional of the dossier store's directory under their name."""
    localpart = f"{prefix}{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    account = register_user(
        stack.url,
        stack.deployment.secrets.registration_shared_secret,
        localpart,
        password,
        admin=admin,
        displayname=display_name,
    )
    if profession is not None:
        stack.bind_directory(account.user_id, profession, display_name)
    return Person(account.user_id, password, account.access_token, account.device_id)


def create_direct_chat(stack: Stack, person: Person, other: str) -> str:
    """A direct chat created as Element creates one (Hydrogen has no screen for it): a
    trusted private chat, ``is_direct`` on the invite, encryption in the initial state, and
    the room recorded in the creator's ``m.direct`` account data."""
    base = stack.url + "/_matrix/client/v3"
    room_id = str(
        request_json(
            "POST",
            base + "/createRoom",
            {
                "preset": "trusted_private_chat",
                "visibility": "private",
                "is_direct": True,
                "invite": [other],
                "initial_state": [ENCRYPTION_STATE],
            },
            token=person.access_token,
        )["room_id"]
    )
    path = f"/user/{quote(person.user_id)}/account_data/m.direct"
    try:
        direct = request_json("GET", base + path, token=person.access_token)
    except HomeserverError:  # no m.direct yet: a 404
        direct = {}
    direct.setdefault(other, []).append(room_id)
    request_json("PUT", base + path, direct, token=person.access_token)
    return room_id


class HydrogenServer:
    """A copy of the built Hydrogen, configured for one homeserver, on a loopback port."""

    def __init__(self, root: Path, homeserver_url: str) -> None:
        if not (HYDROGEN_BUILD / "index.html").exists():
            raise RuntimeError(f"Hydrogen introuvable : {HYDROGEN_BUILD}")
        shutil.copytree(HYDROGEN_BUILD, root)
        config = json.loads((root / "config.json").read_text())
        config["defaultHomeServer"] = homeserver_url
        (root / "config.json").write_text(json.dumps(config, indent=1))

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class HydrogenClient:
    """One person's Hydrogen in its own browser profile (a Playwright context): closing the
    page and opening a new one in the same context is a client restart with the same
    storage (IndexedDB, local storage)."""

    name: str
    context: BrowserContext
    url: str
    page: Page | None = None
    console: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, browser: Browser, name: str, url: str) -> HydrogenClient:
        context = await browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
        client = cls(name, context, url)
        await client.new_page()
        return client

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console.append(f"[pageerror] {error}"))
        self.page = page
        await page.goto(self.url)
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    @property
    def p(self) -> Page:
        assert self.page is not None, "no page open"
        return self.page

    async def login(self, person: Person) -> None:
        page = self.p
        await page.fill("#username", person.user_id)
        await page.fill("#password", person.password)
        await page.click("form button[type=submit]")
        await expect(page.locator(".SessionView")).to_be_visible(timeout=UI_TIMEOUT_MS)
        # Hydrogen has uploaded its device keys once it is syncing ("SessionStatusView" is
        # hidden again after the first sync).
        await expect(page.locator(".SessionView .RoomList")).to_be_visible(timeout=UI_TIMEOUT_MS)

    async def restart(self, reload: bool = True) -> None:
        """Restart the client: reload the page, or close it and open a new one on the same
        storage (where Hydrogen picks up the stored session)."""
        if reload:
            await self.p.reload()
        else:
            await self.p.close()
            await self.new_page()
            picker = self.p.locator(".SessionPickerView .session-info, .SessionPickerView li a")
            session = self.p.locator(".SessionView")
            await expect(picker.first.or_(session)).to_be_visible(timeout=UI_TIMEOUT_MS)
            if not await session.is_visible():
                await picker.first.click()
        await expect(self.p.locator(".SessionView .RoomList")).to_be_visible(timeout=UI_TIMEOUT_MS)

    def room_link(self, room_id: str) -> Any:
        return self.p.locator(f'.RoomList a[href$="/{room_id}"]')

    async def open_room(self, room_id: str) -> None:
        link = self.room_link(room_id)
        await expect(link).to_be_visible(timeout=UI_TIMEOUT_MS)
        await link.click()
        await expect(self.p.locator(".RoomView, .InviteView").first).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )

    async def accept_invite(self, room_id: str) -> None:
        """Open the invitation in the room list and press "Accept"."""
        await self.open_room(room_id)
        accept = self.p.locator(".InviteView button", has_text="Accept")
        await expect(accept).to_be_visible(timeout=UI_TIMEOUT_MS)
        await accept.click()
        await expect(self.composer).to_be_visible(timeout=UI_TIMEOUT_MS)

    @property
    def composer(self) -> Any:
        return self.p.locator(".RoomView .MessageComposer textarea")

    async def send(self, text: str) -> str:
        """Type a message in the open room, send it, and give back its event id once the
        homeserver has accepted it (Hydrogen then shows the real id on the tile)."""
        box = self.composer
        await expect(box).to_be_enabled(timeout=UI_TIMEOUT_MS)
        await box.fill(text)
        await box.press("Enter")
        tile = self.own_message(text)
        await expect(tile).to_have_attribute(
            "data-event-id", re.compile(r"^\$"), timeout=UI_TIMEOUT_MS
        )
        event_id = await tile.get_attribute("data-event-id")
        assert event_id, "the sent message has its event id"
        return event_id

    def own_message(self, text: str) -> Any:
        return self.p.locator(
            ".Timeline li.Timeline_message.own:not(.disabled)", has_text=text
        ).last

    def message(self, text: str) -> Any:
        """A decrypted message's tile: its body shows the text (undecryptable tiles show
        Hydrogen's status message instead)."""
        return (
            self.p.locator(".Timeline li.Timeline_message:not(.disabled)")
            .filter(
                has=self.p.locator(
                    ":scope > .Timeline_messageBody:not(.statusMessage)", has_text=text
                )
            )
            .last
        )

    async def expect_message(self, text: str) -> str:
        """Wait until the message is shown decrypted; its event id."""
        tile = self.message(text)
        await expect(tile).to_be_visible(timeout=UI_TIMEOUT_MS)
        event_id = await tile.get_attribute("data-event-id")
        assert event_id, f"{text!r} has an event id"
        return event_id

    def tile(self, event_id: str) -> Any:
        return self.p.locator(f'.Timeline li[data-event-id="{event_id}"]')

    async def expect_undecryptable(self, event_id: str) -> None:
        """The positive signal that an event arrived and could not be decrypted."""
        await expect(self.tile(event_id).locator(".statusMessage")).to_contain_text(
            UNDECRYPTABLE, timeout=UI_TIMEOUT_MS
        )

    async def inbound_megolm_sessions(self) -> list[dict[str, Any]]:
        """The room keys this device holds, read from Hydrogen's own IndexedDB store:
        ``{"roomId", "sessionId", "hasKey"}`` (an entry without key is a missing one)."""
        script = """async () => {
            const found = [];
            for (const info of await indexedDB.databases()) {
                if (!info.name.startsWith("hydrogen_session_")) continue;
                const db = await new Promise((ok, ko) => {
                    const r = indexedDB.open(info.name);
                    r.onsuccess = () => ok(r.result);
                    r.onerror = () => ko(r.error);
                });
                if (!db.objectStoreNames.contains("inboundGroupSessions")) { db.close(); continue; }
                const rows = await new Promise((ok, ko) => {
                    const tx = db.transaction("inboundGroupSessions", "readonly");
                    const r = tx.objectStore("inboundGroupSessions").getAll();
                    r.onsuccess = () => ok(r.result);
                    r.onerror = () => ko(r.error);
                });
                db.close();
                for (const row of rows) {
                    found.push({roomId: row.roomId, sessionId: row.sessionId,
                                hasKey: typeof row.session === "string"});
                }
            }
            return found;
        }"""
        sessions: list[dict[str, Any]] = await self.p.evaluate(script)
        return sessions

    async def save_artifacts(self, directory: Path) -> list[Path]:
        """A screenshot of every open page and the browser console, for a failed test."""
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        saved = []
        for index, page in enumerate(self.context.pages):
            shot = directory / f"{self.name}-{index}.png"
            try:
                await page.screenshot(path=str(shot), full_page=True)
                saved.append(shot)
            except Exception as exc:  # keep the other artifacts
                self.console.append(f"[artifact] screenshot failed: {exc}")
        log = directory / f"{self.name}-console.log"
        await asyncio.to_thread(log.write_text, "\n".join(self.console) + "\n")
        saved.append(log)
        return saved

    async def close(self) -> None:
        await self.context.close()
