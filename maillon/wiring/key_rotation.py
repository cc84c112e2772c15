"""`maillon keys rotate`: a new data key encrypts from now on; every sealed value is
re-encrypted with it; older keys may then be dropped. Run with the stack stopped."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from pathlib import Path

import yaml
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

import dossier_api.domain.models as dm
from appservice.models import AsEvent
from coordination_bot.models import BotFormDialogue
from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import Sealed, install_key_ring
from maillon.shared.settings import SECRETS_FILE, DataKey, load
from maillon.shared.store import Base, make_engine

SEALED_MODELS = [
    m
    for m in vars(dm).values()
    if isinstance(m, type) and issubclass(m, Base) and hasattr(m, "__tablename__")
] + [BotFormDialogue]


def _sealed_columns(model: type[Base]) -> list[str]:
    return [c.key for c in inspect(model).columns if isinstance(c.type, Sealed)]


def rotate(directory: Path, drop_old: bool) -> tuple[str, int]:
    """Returns the new key id and the number of values re-encrypted."""
    deployment = load(directory)
    new_key = DataKey(
        dt.datetime.now(dt.UTC).strftime("k%Y%m%d%H%M%S") + secrets.token_hex(2),
        base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    old_keys = list(deployment.secrets.data_keys)
    ring = KeyRing([new_key, *old_keys])
    install_key_ring(ring)
    engine = make_engine(deployment.settings.database_url)
    count = 0
    try:
        with Session(engine) as session, session.begin():
            for model in SEALED_MODELS:
                columns = _sealed_columns(model)
                if not columns:
                    continue
                for row in session.scalars(select(model)):
                    for column in columns:
                        flag_modified(row, column)
                        count += 1
            for seq, event_id, sealed in session.execute(
                select(AsEvent.seq, AsEvent.event_id, AsEvent.sealed_event)
            ).all():
                fresh = ring.seal(ring.open(sealed, event_id.encode()), event_id.encode())
                session.execute(
                    update(AsEvent).where(AsEvent.seq == seq).values(sealed_event=fresh)
                )
                count += 1
    finally:
        engine.dispose()
    path = deployment.path(SECRETS_FILE)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    keep = [] if drop_old else [{"id": k.id, "key": k.key} for k in old_keys]
    data["data_keys"] = [{"id": new_key.id, "key": new_key.key}, *keep]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    tmp.replace(path)
    return new_key.id, count
