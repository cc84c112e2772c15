"""Callers are Matrix users: a Matrix access token (checked with the homeserver, cached
briefly) or a Matrix OpenID token (widgets). No separate password. A token without a device
(a server administrator's "login as user") is refused and audited."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote

import aiohttp
from aiohttp import web

from dossier_api.domain.access import Caller
from maillon.shared.web import bearer_token, json_error

CACHE_SECONDS = 60.0


class AuthError(Exception):
    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(message)
        self.response = json_error(status, errcode, message)


class ImpersonationRefused(AuthError):
    """A token Synapse issued to a server administrator "logging in as" the user (admin API
    ``POST /_synapse/admin/v1/users/<user>/login``): such tokens have no device, every real
    login has one. Refused, so that a dossier access recorded as a professional is theirs."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            403,
            "M_FORBIDDEN",
            "jeton sans appareil (connexion d'un administrateur du serveur « en tant que » "
            f"{user_id}) : refusé sur l'API dossier, chaque accès doit être celui de la "
            "personne elle-même",
        )
        self.user_id = user_id


class Authenticator:
    def __init__(self, homeserver_url: str) -> None:
        self._hs = homeserver_url.rstrip("/")
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def _get(self, url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._http().get(url, headers=headers) as resp:
                data = await resp.json(content_type=None)
                return resp.status, data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthError(503, "M_UNAVAILABLE", "serveur d'accueil injoignable") from exc

    async def caller(self, request: web.Request) -> Caller:
        openid = request.headers.get("X-Matrix-OpenID")
        token = bearer_token(request)
        if not token and not openid:
            raise AuthError(401, "M_MISSING_TOKEN", "authentification requise (jeton Matrix)")
        secret = openid or token or ""
        key = ("o:" if openid else "t:") + hashlib.sha256(secret.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if openid:
            caller = await self._openid(openid)
        else:
            caller = await self._access_token(secret)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_SECONDS, caller)
        return caller

    async def _access_token(self, token: str) -> Caller:
        status, who = await self._get(f"{self._hs}/_matrix/client/v3/account/whoami", token)
        user_id = who.get("user_id")
        if status != 200 or not isinstance(user_id, str):
            raise AuthError(401, "M_UNKNOWN_TOKEN", "jeton Matrix inconnu ou expiré")
        if not isinstance(who.get("device_id"), str):
            raise ImpersonationRefused(user_id)
        status, admin = await self._get(
            f"{self._hs}/_synapse/admin/v1/users/{quote(user_id)}/admin", token
        )
        return Caller(user_id, status == 200 and admin.get("admin") is True, "token")

    async def _openid(self, token: str) -> Caller:
        status, info = await self._get(
            f"{self._hs}/_matrix/federation/v1/openid/userinfo?access_token={quote(token)}"
        )
        sub = info.get("sub")
        if status != 200 or not isinstance(sub, str):
            raise AuthError(401, "M_UNKNOWN_TOKEN", "jeton OpenID inconnu ou expiré")
        return Caller(sub, False, "openid")
