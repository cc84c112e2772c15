"""Server-side sessions of the workspace pages and widgets. The browser holds a random
session id (an HttpOnly cookie); the store keeps only its SHA-256 digest, the holder, a CSRF
token and the times that end it: idle timeout, absolute expiry, logout. Nothing of a
dossier is kept here (nothing to seal)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from dossier_api.domain.models import WebSession
from maillon.shared.clock import utcnow
from maillon.shared.settings import SessionSettings

TOUCH_EVERY = dt.timedelta(seconds=5)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class SessionInfo:
    user_id: str
    is_admin: bool
    kind: str  # password, openid
    csrf_token: str
    expires_at: dt.datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: Engine, settings: SessionSettings) -> None:
        self._engine = engine
        self._settings = settings

    def open(
        self, user_id: str, is_admin: bool, kind: str, now: dt.datetime | None = None
    ) -> tuple[str, SessionInfo]:
        """A new session: its secret id (for the cookie only) and what it holds."""
        now = now or utcnow()
        longest = (
            self._settings.widget_max_seconds if kind == "openid" else self._settings.max_seconds
        )
        secret = secrets.token_urlsafe(32)
        row = WebSession(
            id_digest=_digest(secret),
            user_id=user_id,
            is_admin=is_admin,
            kind=kind,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(seconds=longest),
        )
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
            # Ended and expired sessions of anyone are forgotten as new ones open.
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
        return secret, self._info(row)

    @staticmethod
    def _info(row: WebSession) -> SessionInfo:
        return SessionInfo(row.user_id, row.is_admin, row.kind, row.csrf_token, row.expires_at)

    def get(self, secret: str, now: dt.datetime | None = None) -> SessionInfo | None:
        """The live session of this id, or None (unknown, logged out, idle too long,
        expired). Using it keeps it alive, up to its absolute expiry."""
        if not secret or len(secret) > 100:
            return None
        now = now or utcnow()
        digest = _digest(secret)
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row = session.get(WebSession, digest)
            if row is None or not hmac.compare_digest(row.id_digest, digest):
                return None
            idle = dt.timedelta(seconds=self._settings.idle_seconds)
            if row.ended_at is not None or row.expires_at <= now or row.last_seen_at + idle <= now:
                if row.ended_at is None:
                    row.ended_at = now
                return None
            if now - row.last_seen_at >= TOUCH_EVERY:
                row.last_seen_at = now
            return self._info(row)

    def end(self, secret: str, now: dt.datetime | None = None) -> None:
        """Logout: the session is refused from now on."""
        now = now or utcnow()
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.execute(
                update(WebSession)
                .where(WebSession.id_digest == _digest(secret), WebSession.ended_at.is_(None))
                .values(ended_at=now)
            )


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
