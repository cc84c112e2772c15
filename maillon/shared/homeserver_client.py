"""Minimal synchronous calls to the homeserver used by the CLI, the supervisor and tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class HomeserverError(Exception):
    """The homeserver refused a request or could not be reached; the message says why."""

    def __init__(self, message: str, errcode: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.status = status


def request_any(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
    raw: bool = False,
) -> Any:
    """A JSON request; the decoded JSON answer (the text with ``raw``), or HomeserverError
    with the server's reason."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            payload = resp.read()
    except urllib.error.HTTPError as exc:
        error_body = exc.read()
        try:
            err = json.loads(error_body)
        except ValueError:
            err = {}
        if not isinstance(err, dict):
            err = {}
        message = err.get("error") or error_body.decode(errors="replace")[:200] or exc.reason
        raise HomeserverError(
            f"HTTP {exc.code} : {message}", err.get("errcode", ""), exc.code
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HomeserverError(f"serveur injoignable ({url}) : {exc}") from exc
    if raw:
        return payload.decode("utf-8", errors="replace")
    return json.loads(payload) if payload else {}


def request_json(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Like :func:`request_any`, for the usual endpoints that answer a JSON object."""
    result = request_any(method, url, body, token, timeout)
    if not isinstance(result, dict):
        raise HomeserverError(f"réponse inattendue de {url}")
    return result


def is_up(base_url: str, path: str = "/_matrix/client/versions", timeout: float = 2.0) -> bool:
    try:
        request_json("GET", base_url.rstrip("/") + path, timeout=timeout)
    except (HomeserverError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Registered:
    user_id: str
    access_token: str
    device_id: str


def register_user(
    homeserver_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
    displayname: str | None = None,
) -> Registered:
    """Create an account through Synapse's shared-secret registration (admin API)."""
    url = homeserver_url.rstrip("/") + "/_synapse/admin/v1/register"
    nonce = request_json("GET", url)["nonce"]
    body: dict[str, Any] = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
    }
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + localpart.encode() + b"\x00" + password.encode())
    mac.update(b"\x00" + (b"admin" if admin else b"notadmin"))
    body["mac"] = mac.hexdigest()
    if displayname:
        body["displayname"] = displayname
    result = request_json("POST", url, body)
    return Registered(result["user_id"], result["access_token"], result["device_id"])
