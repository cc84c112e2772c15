"""Client-server API calls made by the appservice with its as_token (optionally as a user
of its namespace, via ``user_id``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from maillon.shared.settings import Deployment


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(f"HTTP {status} {errcode}: {message}")
        self.status = status
        self.errcode = errcode
        self.message = message


class AppserviceApi:
    def __init__(self, homeserver_url: str, as_token: str, sender: str) -> None:
        self._base = homeserver_url.rstrip("/") + "/_matrix/client/v3"
        self._token = as_token
        self.sender = sender
        self._session: aiohttp.ClientSession | None = None
        self._registered: set[str] = set()

    @classmethod
    def for_deployment(cls, deployment: Deployment) -> AppserviceApi:
        s = deployment.settings
        return cls(
            s.homeserver.url, deployment.secrets.as_token, s.user_id(s.appservice.sender_localpart)
        )

    async def __aenter__(self) -> AppserviceApi:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, as_user: str | None = None
    ) -> dict[str, Any]:
        data = await self.call_any(method, path, body, as_user)
        return data if isinstance(data, dict) else {}

    async def call_any(
        self, method: str, path: str, body: dict[str, Any] | None = None, as_user: str | None = None
    ) -> Any:
        assert self._session is not None, "use AppserviceApi as an async context manager"
        params = {"user_id": as_user} if as_user else None
        async with self._session.request(
            method,
            self._base + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self._token}"},
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                err = data if isinstance(data, dict) else {}
                raise MatrixError(resp.status, err.get("errcode", ""), err.get("error", ""))
            return data

    async def ensure_registered(self, localpart: str) -> str:
        """Register a user of the appservice's namespace (ghost or bot) if it does not exist
        yet; returns its user id. Registered once per process run."""
        user_id = f"@{localpart}:{self.sender.split(':', 1)[1]}"
        if user_id in self._registered:
            return user_id
        try:
            await self.call(
                "POST",
                "/register",
                {
                    "type": "m.login.application_service",
                    "username": localpart,
                    "inhibit_login": True,
                },
            )
        except MatrixError as exc:
            if exc.errcode != "M_USER_IN_USE":
                raise
        self._registered.add(user_id)
        return user_id

    async def set_display_name(self, name: str) -> None:
        """The service user's display name: invitations come from « Maillon », not an id."""
        await self.call("PUT", f"/profile/{quote(self.sender)}/displayname", {"displayname": name})

    async def send_notice(
        self, room_id: str, txn_id: str, body: str, html: str | None = None
    ) -> str:
        """A notice from Maillon's service user (no health data: it is not end-to-end
        encrypted). The transaction id makes a retry after a crash a no-op."""
        content: dict[str, Any] = {"msgtype": "m.notice", "body": body}
        if html:
            content.update(format="org.matrix.custom.html", formatted_body=html)
        path = f"/rooms/{quote(room_id)}/send/m.room.message/{quote(txn_id, safe='')}"
        return str((await self.call("PUT", path, content))["event_id"])

    async def create_room(self, body: dict[str, Any]) -> str:
        return str((await self.call("POST", "/createRoom", body))["room_id"])

    async def put_state(
        self, room_id: str, etype: str, state_key: str, content: dict[str, Any]
    ) -> str:
        path = f"/rooms/{quote(room_id)}/state/{quote(etype)}/{quote(state_key, safe='')}"
        return str((await self.call("PUT", path, content))["event_id"])

    async def get_state(
        self, room_id: str, etype: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        path = f"/rooms/{quote(room_id)}/state/{quote(etype)}/{quote(state_key, safe='')}"
        try:
            return await self.call("GET", path)
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        state = await self.call_any("GET", f"/rooms/{quote(room_id)}/state")
        return state if isinstance(state, list) else []

    async def invite(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"user_id": user_id}
        if reason:
            body["reason"] = reason
        await self.call("POST", f"/rooms/{quote(room_id)}/invite", body)

    async def kick(self, room_id: str, user_id: str, reason: str) -> None:
        await self.call(
            "POST", f"/rooms/{quote(room_id)}/kick", {"user_id": user_id, "reason": reason}
        )

    async def unban(self, room_id: str, user_id: str, reason: str) -> None:
        await self.call(
            "POST", f"/rooms/{quote(room_id)}/unban", {"user_id": user_id, "reason": reason}
        )

    async def joined_rooms(self) -> list[str]:
        return list((await self.call("GET", "/joined_rooms")).get("joined_rooms", []))

    async def resolve_alias(self, alias: str) -> str | None:
        try:
            return str((await self.call("GET", f"/directory/room/{quote(alias)}"))["room_id"])
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise
