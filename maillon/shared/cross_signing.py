"""Cross-signing of the bot's device by its own account (matrix-nio has none).

The bot keeps three Ed25519 keys (master, self-signing, user-signing) in its private
directory, uploads them once (``/keys/device_signing/upload``: the self-signing and
user-signing keys signed by the master key) and signs its device keys with the
self-signing key (``/keys/signatures/upload``), so that current Element shows the device
as verified by its owner. Signatures are Ed25519 over canonical JSON, unpadded base64.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp
from canonicaljson import encode_canonical_json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

log = logging.getLogger(__name__)
USAGES = ("master", "self_signing", "user_signing")


class CrossSigningError(Exception):
    pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def public_b64(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def signable(obj: dict[str, Any]) -> bytes:
    return bytes(
        encode_canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})
    )


def sign(obj: dict[str, Any], user_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``obj`` with ``key``'s signature added (existing signatures kept)."""
    signed = dict(obj)
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{public_b64(key)}"] = b64(key.sign(signable(obj)))
    signed["signatures"] = signatures
    return signed


def verify(obj: dict[str, Any], user_id: str, public_key: str) -> bool:
    """Whether ``obj`` carries a valid signature of ``public_key`` (unpadded base64)."""
    signature = obj.get("signatures", {}).get(user_id, {}).get(f"ed25519:{public_key}")
    if not isinstance(signature, str):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(unb64(public_key)).verify(
            unb64(signature), signable(obj)
        )
    except Exception:
        return False
    return True


def key_object(user_id: str, usage: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    pub = public_b64(key)
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{pub}": pub}}


def load_or_create_keys(path: Path) -> dict[str, Ed25519PrivateKey]:
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {u: Ed25519PrivateKey.from_private_bytes(unb64(raw[u])) for u in USAGES}
    keys = {u: Ed25519PrivateKey.generate() for u in USAGES}
    data = {
        u: b64(k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        for u, k in keys.items()
    }
    # Two processes sign devices of this account (the bot, the mail relay): the first to
    # create the file wins, the other reads it (link() never replaces an existing file).
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create_keys(path)
    finally:
        tmp.unlink()
    return keys


async def _call(
    session: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST with the homeserver's rate limit honoured (M_LIMIT_EXCEEDED / retry_after_ms)."""
    for _ in range(10):
        async with session.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status == 429:
                wait = int((data or {}).get("retry_after_ms", 1000))
                await asyncio.sleep(min(wait, 60_000) / 1000)
                continue
            if resp.status != 200:
                raise CrossSigningError(f"{url.rsplit('/', 2)[-2:]}: HTTP {resp.status} {data}")
            return data if isinstance(data, dict) else {}
    raise CrossSigningError("rate limited too long")


async def ensure_cross_signed(
    homeserver: str, token: str, user_id: str, device_id: str, key_file: Path
) -> bool:
    """Make sure the account has our cross-signing keys and our device is signed by its
    self-signing key. Returns True when something had to be uploaded."""
    keys = load_or_create_keys(key_file)
    master, ssk, usk = (keys[u] for u in USAGES)
    base = homeserver.rstrip("/") + "/_matrix/client/v3"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        query = await _call(session, f"{base}/keys/query", token, {"device_keys": {user_id: []}})
        device = query.get("device_keys", {}).get(user_id, {}).get(device_id)
        if device is None:
            raise CrossSigningError("the bot's device keys are not on the homeserver yet")
        server_master = query.get("master_keys", {}).get(user_id, {}).get("keys", {})
        changed = False
        if f"ed25519:{public_b64(master)}" not in server_master:
            if server_master:
                log.warning("the account has other cross-signing keys; replacing them")
            master_obj = key_object(user_id, "master", master)
            await _call(
                session,
                f"{base}/keys/device_signing/upload",
                token,
                {
                    "master_key": master_obj,
                    "self_signing_key": sign(
                        key_object(user_id, "self_signing", ssk), user_id, master
                    ),
                    "user_signing_key": sign(
                        key_object(user_id, "user_signing", usk), user_id, master
                    ),
                },
            )
            changed = True
        if changed or not verify(device, user_id, public_b64(ssk)):
            signed = sign(device, user_id, ssk)
            signed.pop("unsigned", None)
            result = await _call(
                session, f"{base}/keys/signatures/upload", token, {user_id: {device_id: signed}}
            )
            if result.get("failures"):
                raise CrossSigningError(f"signature refused: {result['failures']}")
            changed = True
    return changed
