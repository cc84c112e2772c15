"""`maillon keys rotate`: a new data key encrypts from now on; every sealed value is
re-encrypted with it; older keys may then be dropped. Run with the stack stopped.

The blind index key (``index_key`` in secrets.yaml, see ``maillon.shared.crypto``) is not a
data key and does not rotate with them: the indexes stay valid across a rotation."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from pathlib import Path

import yaml
from sqlalchemy import Connection, LargeBinary, and_, bindparam, select, type_coerce, update

from maillon.shared.crypto import KeyRing
from maillon.shared.sealed import SealedColumnRef, install_key_ring, sealed_columns
from maillon.shared.settings import SECRETS_FILE, DataKey, load
from maillon.shared.store import make_engine
from maillon.wiring.tables import METADATA


def reseal_column(conn: Connection, ring: KeyRing, ref: SealedColumnRef) -> int:
    """Re-encrypt every value of one sealed column with the ring's current key."""
    table, column = ref.table, ref.column
    keys = list(table.primary_key.columns)
    context_cols = [table.c[name] for name in ref.type.context_columns()]
    raw = type_coerce(column, LargeBinary).label("raw")
    rows = (
        conn.execute(select(*keys, *context_cols, raw).where(column.is_not(None))).mappings().all()
    )
    where = and_(*(k == bindparam(f"pk_{k.name}") for k in keys))
    statement = (
        update(table).where(where).values({column.name: bindparam("fresh", type_=LargeBinary)})
    )
    params = []
    for row in rows:
        context = ref.type.context(row)
        params.append(
            {
                **{f"pk_{k.name}": row[k.name] for k in keys},
                "fresh": ring.seal(ring.open(bytes(row["raw"]), context), context),
            }
        )
    if params:
        conn.execute(statement, params)
    return len(params)


def rotate(directory: Path, drop_old: bool) -> tuple[str, int]:
    """Returns the new key id and the number of values re-encrypted: every value of every
    sealed column of the store (the registry: ``maillon.shared.sealed.sealed_columns``)."""
    deployment = load(directory)
    new_key = DataKey(
        dt.datetime.now(dt.UTC).strftime("k%Y%m%d%H%M%S") + secrets.token_hex(2),
        base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    old_keys = list(deployment.secrets.data_keys)
    ring = KeyRing.for_secrets(deployment.secrets, data_keys=[new_key, *old_keys])
    install_key_ring(ring)
    engine = make_engine(deployment.settings.database_url)
    count = 0
    try:
        with engine.begin() as conn:
            for ref in sealed_columns(METADATA):
                count += reseal_column(conn, ring, ref)
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
