"""Callers are Matrix users: a Matrix access token on the API (checked with the homeserver,
cached briefly for reads, checked again for every write); a Matrix OpenID token only at the
widget's session exchange (``dossier_api.http.sessions``); the workspace's password login
is the homeserver's. No separate password. A token without a device (a server
administrator's "login as user") is refused and audited."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from dossier_api.domain.access import Caller
from maillon.shared.web import bearer_token, json_error

log = logging.getLogger(__name__)
CACHE_SECONDS = 60.0  # for reads only
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthError(Exception):
    def __init__(
        self, status: int, errcode: str, message: str, refused: Caller | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.errcode, self.message = status, errcode, message
        self.response = json_error(status, errcode, message)
        self.refused = refused  # a known holder refused (their refusal is audited)


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

    async def password_login(self, username: str, password: str) -> Caller:
        """The Matrix account of this user name and password (the homeserver's password
        login, from the server side). The Matrix session it opens is only used to learn who
        logged in (and whether they administer the server), then logged out: Maillon keeps
        no Matrix token, its own session stands for the user."""
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        }
        return await self._login(body, "identifiant ou mot de passe incorrect")

    async def token_login(self, login_token: str) -> Caller:
        """The account a homeserver's single-sign-on login token stands for (Pro Santé
        Connect): the token is single-use and short-lived; the same as a password login
        from then on."""
        body = {"type": "m.login.token", "token": login_token}
        return await self._login(body, "connexion expirée ou déjà utilisée : recommencez")

    async def _login(self, body: dict[str, Any], refused: str) -> Caller:
        body = {**body, "initial_device_display_name": "Maillon — espace de travail"}
        try:
            async with self._http().post(f"{self._hs}/_matrix/client/v3/login", json=body) as r:
                data = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthError(503, "M_UNAVAILABLE", "serveur d'accueil injoignable") from exc
        if not isinstance(data, dict) or status != 200 or "access_token" not in data:
            if status == 429:
                raise AuthError(429, "M_LIMIT_EXCEEDED", "trop d'essais : réessayez plus tard")
            raise AuthError(401, "M_FORBIDDEN", refused)
        token, user_id = str(data["access_token"]), str(data.get("user_id", ""))
        try:
            admin_status, admin = await self._get(
                f"{self._hs}/_synapse/admin/v1/users/{quote(user_id)}/admin", token
            )
        finally:
            try:
                headers = {"Authorization": f"Bearer {token}"}
                async with self._http().post(
                    f"{self._hs}/_matrix/client/v3/logout", headers=headers, json={}
                ):
                    pass
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The device stays listed in the account until it is removed; it holds no key.
                log.warning("logout of the login's Matrix session failed: %s", type(exc).__name__)
        return Caller(user_id, admin_status == 200 and admin.get("admin") is True, "session")

    async def openid_holder(self, token: str) -> Caller:
        """Who holds this Matrix OpenID token (asked to the homeserver every time: the
        exchange endpoint is the only place an OpenID token is accepted)."""
        return await self._openid(token)

    async def caller(self, request: web.Request) -> Caller:
        """The caller of an API route: a Matrix access token only. OpenID tokens are handed
        to widgets and integration managers: they are traded for a widget session at
        ``POST /session/openid``, never accepted by the API."""
        openid = request.headers.get("X-Matrix-OpenID")
        if openid is not None:
            # Whose token it is (if it is one) goes to the audit: a refusal names its author.
            try:
                holder: Caller | None = await self._cached("o:", openid, self._openid, "GET")
            except AuthError:
                holder = None  # not a token at all: refused the same way, nobody to name
            raise AuthError(
                401,
                "M_UNKNOWN_TOKEN",
                "un jeton OpenID (widget) ne s'échange que contre la session du widget "
                "(POST /session/openid) : utilisez votre jeton d'accès Matrix pour l'API",
                refused=holder,
            )
        token = bearer_token(request)
        if not token:
            raise AuthError(401, "M_MISSING_TOKEN", "authentification requise (jeton Matrix)")
        return await self._cached("t:", token, self._access_token, request.method)

    async def _cached(
        self, kind: str, secret: str, check: Callable[[str], Awaitable[Caller]], method: str
    ) -> Caller:
        key = kind + hashlib.sha256(secret.encode()).hexdigest()
        cached = self._cache.get(key)
        # A write always asks the homeserver: a token logged out a second ago writes nothing.
        if cached is not None and cached[0] > time.monotonic() and method in READS:
            return cached[1]
        self._cache.pop(key, None)
        caller = await check(secret)
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
