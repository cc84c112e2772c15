"""Server-side sessions of the workspace and widgets: only a digest of the id is stored;
refused after logout, after the idle timeout and after the absolute expiry; a widget's
session (OpenID exchange) is shorter; CSRF tokens compared in constant time."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.models import WebSession
from dossier_api.domain.sessions import SessionStore, csrf_matches
from maillon.shared.settings import SessionSettings
from maillon.shared.store import make_engine

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
SETTINGS = SessionSettings(idle_seconds=600, max_seconds=3600, widget_max_seconds=300)


def store(tmp_path: Path) -> SessionStore:
    return SessionStore(make_engine(f"sqlite:///{tmp_path / 'store.db'}"), SETTINGS)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_only_the_digest_of_the_id_is_stored(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    secret, info = sessions.open("@a:localhost", False, "password", now=T0)
    with Session(sessions._engine) as session:
        rows = session.scalars(select(WebSession)).all()
    assert [r.id_digest for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert secret not in {r.id_digest for r in rows} and rows[0].csrf_token == info.csrf_token
    assert sessions.get(secret, now=at(1)) == info
    assert sessions.get(secret[:-1] + ("A" if secret[-1] != "A" else "B"), now=at(1)) is None
    assert sessions.get("", now=at(1)) is None and sessions.get("x" * 500, now=at(1)) is None


def test_idle_timeout_kept_alive_by_use(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    secret, _ = sessions.open("@a:localhost", False, "password", now=T0)
    minutes = list(range(1, 50, 9))  # used every 9 minutes: alive (idle limit 10)
    for minute in minutes:
        assert sessions.get(secret, now=at(minute * 60)) is not None, minute
    last = minutes[-1] * 60
    assert sessions.get(secret, now=at(last + 601)) is None, "idle for more than 10 min"
    assert sessions.get(secret, now=at(last + 60)) is None, "and it stays ended"


def test_absolute_expiry_however_active(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    secret, info = sessions.open("@a:localhost", False, "password", now=T0)
    assert info.expires_at == at(3600)
    for minute in range(5, 60, 5):
        assert sessions.get(secret, now=at(minute * 60)) is not None
    assert sessions.get(secret, now=at(3600)) is None


def test_widget_sessions_are_short(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    secret, info = sessions.open("@a:localhost", False, "openid", now=T0)
    assert info.expires_at == at(300)
    assert sessions.get(secret, now=at(299)) is not None
    assert sessions.get(secret, now=at(300)) is None


def test_logout_ends_the_session_only(tmp_path: Path) -> None:
    sessions = store(tmp_path)
    first, _ = sessions.open("@a:localhost", False, "password", now=T0)
    second, _ = sessions.open("@a:localhost", False, "password", now=T0)
    sessions.end(first, now=at(10))
    assert sessions.get(first, now=at(11)) is None
    assert sessions.get(second, now=at(11)) is not None


def test_csrf_comparison() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd") and not csrf_matches("abc", None)
    assert not csrf_matches("abc", "") and not csrf_matches("abc", "abcd")
