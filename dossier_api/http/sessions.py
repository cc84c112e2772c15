"""Sessions of Maillon's own origin, shared by every page (workspace, administration):
login with the Matrix account (the homeserver's password login, from the server side),
logout, the exchange of a widget's Matrix OpenID token for a short-lived session, and the
CSRF check of every write.

The browser gets an HttpOnly, SameSite=Strict cookie holding a random id; the server keeps
its digest (``dossier_api.domain.sessions``). Every write carries the session's CSRF token
(form field ``csrf`` or header ``X-CSRF-Token``): without it, 403. An OpenID token is
accepted here, at ``POST /session/openid``, and nowhere else: it proves to the homeserver
who holds it, and Maillon answers with its own session (see the README on how OpenID tokens,
not bound to an audience, are bounded)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from dossier_api.domain.access import Caller
from dossier_api.domain.sessions import SessionInfo, SessionStore, csrf_matches
from dossier_api.http.auth import Authenticator, AuthError
from dossier_api.http.pages import problem_page, render
from maillon.shared.web import json_error

log = logging.getLogger(__name__)

COOKIE = "maillon_session"
LOGIN_COOKIE = "maillon_login"  # CSRF of the login form (before any session exists)
CSRF_HEADER = "X-CSRF-Token"
SESSIONS = web.AppKey("sessions", SessionStore)
AUTHENTICATOR = web.AppKey("session_auth", Authenticator)
SECURE_COOKIES = web.AppKey("secure_cookies", bool)
SSO_URL = web.AppKey("sso_url", str)
AfterSso = Callable[[str], Awaitable[str]]
AFTER_SSO: web.AppKey[AfterSso] = web.AppKey("after_sso")


async def _home(_user_id: str) -> str:
    return "/"


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Current:
    """The session of a request and its caller."""

    secret: str
    info: SessionInfo

    @property
    def caller(self) -> Caller:
        return Caller(self.info.user_id, self.info.is_admin, self.info.kind)


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _set_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="Strict",
        secure=request.app[SECURE_COOKIES],
        path="/",
    )


async def current(request: web.Request) -> Current | None:
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    info = await asyncio.to_thread(request.app[SESSIONS].get, secret)
    return None if info is None else Current(secret, info)


async def csrf_ok(request: web.Request, session: Current) -> bool:
    """The CSRF token of the session, from the header or the form field."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    return csrf_matches(session.info.csrf_token, given)


async def session_or_login(request: web.Request) -> Current | web.Response:
    """The session of a page's read; or the way to the login page (then back here)."""
    session = await current(request)
    if session is None:
        return redirect("/login?" + urlencode({"next": request.path_qs}))
    return session


async def writing(request: web.Request) -> Current | web.Response:
    """The session of a page's write (a form posted), its CSRF token checked; or the page
    that says why not (401 expired, 403 CSRF)."""
    session = await current(request)
    if session is None:
        return problem_page(request, 401, "Session expirée : reconnectez-vous.")
    if not await csrf_ok(request, session):
        return problem_page(
            request, 403, "Jeton anti-falsification (CSRF) manquant ou incorrect.", session=session
        )
    return session


def _local_path(target: str | None) -> str:
    """Where to go after login: a path of this site only (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def form_page(
    request: web.Request, template: str, cookie: str, path: str, status: int = 200, **context: Any
) -> web.Response:
    """A page whose form is posted before any session exists (login, enrolment): its CSRF
    token is in the form (``form_csrf``) and in an HttpOnly cookie of ``path``."""
    token = secrets.token_urlsafe(24)
    response = render(request, template, status=status, session=None, form_csrf=token, **context)
    response.set_cookie(
        cookie,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.app[SECURE_COOKIES],
        path=path,
        max_age=3600,
    )
    return response


def form_csrf_ok(request: web.Request, form: Mapping[str, Any], cookie: str) -> bool:
    """The form's CSRF token is the one its page set in ``cookie`` (constant time)."""
    expected, given = request.cookies.get(cookie), form.get("csrf")
    return bool(expected) and isinstance(given, str) and csrf_matches(str(expected), given)


async def open_session(
    request: web.Request, response: web.StreamResponse, caller: Caller, kind: str = "password"
) -> None:
    """Log the browser in (a new session's cookie on ``response``)."""
    secret, _ = await asyncio.to_thread(
        request.app[SESSIONS].open, caller.user_id, caller.is_admin, kind
    )
    _set_cookie(request, response, secret)


async def login_page(
    request: web.Request, message: str | None = None, status: int = 200
) -> web.Response:
    return form_page(
        request,
        "login.html",
        LOGIN_COOKIE,
        "/login",
        status,
        message=message,
        next=_local_path(request.query.get("next")),
        sso_url=request.app[SSO_URL],
    )


async def sso_login(request: web.Request) -> web.Response:
    """Back from the homeserver's single sign-on (Pro Santé Connect) with a login token."""
    token = request.query.get("loginToken", "")
    if not 0 < len(token) <= 512:
        return await login_page(request, "Connexion Pro Santé Connect interrompue.", 400)
    try:
        caller = await request.app[AUTHENTICATOR].token_login(token)
    except AuthError as exc:
        return await login_page(request, exc.message, exc.status)
    response = redirect(await request.app[AFTER_SSO](caller.user_id))
    await open_session(request, response, caller, "sso")
    return response


async def show_login(request: web.Request) -> web.Response:
    session = await current(request)
    if session is not None:
        return redirect(_local_path(request.query.get("next")))
    return await login_page(request)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if not form_csrf_ok(request, form, LOGIN_COOKIE):
        return problem_page(
            request, 403, "Formulaire de connexion expiré ou venu d'ailleurs : rechargez la page."
        )
    username, password = form.get("username"), form.get("password")
    if (
        not isinstance(username, str)
        or not isinstance(password, str)
        or not username
        or not password
    ):
        return await login_page(request, "Identifiant et mot de passe requis.", 400)
    if len(username) > 255 or len(password) > 1024:
        return await login_page(request, "Identifiant ou mot de passe trop long.", 400)
    try:
        caller = await request.app[AUTHENTICATOR].password_login(username.strip(), password)
    except AuthError as exc:
        return await login_page(request, exc.message, exc.status)
    target = form.get("next")
    response = redirect(_local_path(target if isinstance(target, str) else None))
    await open_session(request, response, caller)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.Response:
    session = await current(request)
    if session is None:
        return redirect("/login")
    if not await csrf_ok(request, session):
        return problem_page(request, 403, "Jeton anti-falsification (CSRF) manquant ou incorrect.")
    await asyncio.to_thread(request.app[SESSIONS].end, session.secret)
    response = redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response


async def exchange_openid(request: web.Request) -> web.Response:
    """A widget trades the Matrix OpenID token Element gave it for a Maillon session.
    JSON only: another site cannot post JSON here without a CORS preflight, which this
    endpoint never grants (no session planted by a third-party page)."""
    if request.content_type != "application/json":
        return json_error(415, "M_NOT_JSON", "corps JSON attendu (application/json)")
    try:
        payload = await request.json()
    except ValueError:
        return json_error(400, "M_NOT_JSON", "corps JSON illisible")
    token = payload.get("openid_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not 0 < len(token) <= 512:
        return json_error(400, "M_BAD_JSON", "champ obligatoire manquant : « openid_token »")
    try:
        caller = await request.app[AUTHENTICATOR].openid_holder(token)
    except AuthError as exc:
        return exc.response
    secret, info = await asyncio.to_thread(
        request.app[SESSIONS].open, caller.user_id, False, "openid"
    )
    response = web.json_response(
        {
            "user_id": info.user_id,
            "csrf_token": info.csrf_token,
            "expires_at": info.expires_at.isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )
    _set_cookie(request, response, secret)
    return response


async def logout_json(request: web.Request) -> web.Response:
    """``DELETE /session``: ends the session of a widget (CSRF header required)."""
    session = await current(request)
    if session is None:
        return json_error(401, "M_MISSING_TOKEN", "aucune session")
    if not await csrf_ok(request, session):
        return json_error(403, "M_FORBIDDEN", "jeton anti-falsification (CSRF) manquant")
    await asyncio.to_thread(request.app[SESSIONS].end, session.secret)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


def setup(
    app: web.Application,
    store: SessionStore,
    auth: Authenticator,
    secure: bool,
    sso_url: str = "",
    after_sso: AfterSso | None = None,
) -> None:
    """``sso_url``: where the login page sends to Pro Santé Connect (empty: not offered);
    ``after_sso``: what a single-sign-on login does first, and where it lands."""
    app[SESSIONS] = store
    app[AUTHENTICATOR] = auth
    app[SECURE_COOKIES] = secure
    app[SSO_URL] = sso_url
    app[AFTER_SSO] = after_sso or _home
    app.router.add_get("/login", show_login)
    app.router.add_post("/login", login)
    app.router.add_get("/login/sso", sso_login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/session/openid", exchange_openid)
    app.router.add_delete("/session", logout_json)
