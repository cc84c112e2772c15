"""The dossier HTTP API in-process (aiohttp's test client): the real application, routes,
validation and service on a real SQLite store made by `maillon init`; only the Matrix
authentication is replaced (a token → user table). Fast checks in addition to the
real-stack tests in tests/integration/test_dossier_api.py."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dossier_api.domain.access import Caller
from dossier_api.domain.directory import upsert_professional
from dossier_api.domain.pathways import PATHWAYS
from dossier_api.http.auth import Authenticator, AuthError
from dossier_api.http.server import AUTH, create_app
from maillon.shared.circle import DirectoryEntry
from maillon.shared.settings import load
from maillon.shared.store import make_engine
from maillon.shared.web import bearer_token
from maillon.wiring.init_deployment import InitOptions, init_deployment
from tests.harness.dossier import IDENTITY, dossier_body
from tests.harness.ports import free_port

COORD = "@coord:sante.test"


def _rpps() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(11))


OUTSIDER = "@dehors:sante.test"
TOKENS = {
    "t-coord": Caller(COORD, False, "token"),
    "t-dehors": Caller(OUTSIDER, False, "token"),
}


class TokenTable(Authenticator):
    """Matrix access tokens known in advance instead of asked to a homeserver."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9")

    async def caller(self, request: web.Request) -> Caller:
        token = bearer_token(request)
        if not token:
            raise AuthError(401, "M_MISSING_TOKEN", "authentification requise (jeton Matrix)")
        if token not in TOKENS:
            raise AuthError(401, "M_UNKNOWN_TOKEN", "jeton Matrix inconnu ou expiré")
        return TOKENS[token]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    init_deployment(
        InitOptions(
            directory=tmp_path / "deploy",
            server_name="sante.test",
            appservice_port=free_port(),  # nothing listens: room sync is deferred
            testing=True,
        )
    )
    deployment = load(tmp_path / "deploy")
    app = create_app(deployment)
    app[AUTH] = TokenTable()
    # The coordinator and the nurse are professionals of the directory (who may open a
    # dossier, who may enter a circle); the outsider is not.
    engine = make_engine(deployment.settings.database_url)
    try:
        for user_id in (COORD, "@ide:sante.test"):
            upsert_professional(engine, DirectoryEntry(user_id, "infirmier", rpps=_rpps()))
    finally:
        engine.dispose()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def call(
    client: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    token: str | None = "t-coord",  # noqa: S107 - a test token of the table above
    **kw: Any,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.request(method, path, headers=headers, **kw) as resp:
        return resp.status, await resp.json()


async def test_without_or_with_an_unknown_token_401(client: TestClient[Any, Any]) -> None:
    status, body = await call(client, "GET", "/v1/dossiers", token=None)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert "authentification requise" in body["error"]
    status, body = await call(client, "GET", "/v1/dossiers", token="t-inconnu")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_validation_errors_are_400_in_french_naming_the_field(
    client: TestClient[Any, Any],
) -> None:
    identity = {k: v for k, v in IDENTITY.items() if k != "birth_name"}
    status, body = await call(
        client, "POST", "/v1/dossiers", json={"pathway": "dac", "identity": identity}
    )
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    assert "champ obligatoire manquant" in body["error"] and "birth_name" in body["error"]

    status, body = await call(
        client, "POST", "/v1/dossiers", json={"pathway": "inconnu", "identity": IDENTITY}
    )
    assert status == 400 and body["error"] == "parcours inconnu : « inconnu »"

    status, body = await call(client, "POST", "/v1/dossiers", data=b"{pas du json")
    assert (status, body["error"]) == (400, "corps JSON illisible")


async def test_create_then_read_and_an_outsider_is_refused(client: TestClient[Any, Any]) -> None:
    status, created = await call(client, "POST", "/v1/dossiers", json=dossier_body())
    assert status == 201, created
    assert created["room_id"] is None, "no appservice: the room follows later"
    path = f"/v1/dossiers/{created['id']}"

    status, dossier = await call(client, "GET", path)
    assert status == 200 and dossier["access"] == "coordinator"
    assert dossier["identity"]["birth_name"] == IDENTITY["birth_name"]
    status, mine = await call(client, "GET", "/v1/dossiers")
    assert status == 200 and [d["id"] for d in mine["dossiers"]] == [created["id"]]

    status, refused = await call(client, "GET", path, token="t-dehors")
    assert status == 403 and "cercle de soins" in refused["error"]
    status, theirs = await call(client, "GET", "/v1/dossiers", token="t-dehors")
    assert status == 200 and theirs["dossiers"] == []


async def test_who_is_in_the_circle_now(client: TestClient[Any, Any]) -> None:
    """The current circle (not removed, exit date not passed) is one query behind adding,
    removing, notes' roles and alerts."""
    _, created = await call(client, "POST", "/v1/dossiers", json=dossier_body())
    circle = f"/v1/dossiers/{created['id']}/circle"
    nurse = "@ide:sante.test"
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    status, added = await call(
        client, "POST", circle, json={"user_id": nurse, "role": "IDE", "until": until}
    )
    assert status == 201 and added["active"], added
    status, again = await call(client, "POST", circle, json={"user_id": nurse, "role": "IDE"})
    assert status == 409 and "déjà dans le cercle" in again["error"]

    alerts = f"/v1/dossiers/{created['id']}/alerts"
    status, alert = await call(client, "POST", alerts, json={"text": "Chute", "to": [nurse]})
    assert status == 201, alert

    status, removed = await call(client, "DELETE", f"{circle}/{nurse}")
    assert status == 200 and not removed["active"]
    status, gone = await call(client, "DELETE", f"{circle}/{nurse}")
    assert status == 404 and "n'est pas dans le cercle" in gone["error"]
    status, refused = await call(client, "POST", alerts, json={"text": "Chute", "to": [nurse]})
    assert status == 400 and "hors du cercle" in refused["error"] and nurse in refused["error"]
    status, back = await call(client, "POST", circle, json={"user_id": nurse, "role": "KINE"})
    assert status == 201 and back["role"] == "KINE", "a removed member may come back"


async def test_the_pathways_accepted_are_the_pathways_loaded(client: TestClient[Any, Any]) -> None:
    _, listed = await call(client, "GET", "/v1/pathways")
    loaded = sorted(p["id"] for p in listed["pathways"])
    assert loaded == sorted(PATHWAYS)
    _, document = await call(client, "GET", "/openapi.json", token=None)
    create = document["paths"]["/v1/dossiers"]["post"]["requestBody"]["content"]
    # Pathways live in the store (created in /admin/): the schema checks the id's form only.
    assert "pattern" in create["application/json"]["schema"]["properties"]["pathway"]


async def test_numbers_in_paths_are_ascii_digits_or_a_400(client: TestClient[Any, Any]) -> None:
    """« ³ » is a digit to str.isdigit, not to int(): found by the API fuzz as a 500."""
    for raw in ("%C2%B3", "%D9%A3", "12a"):
        status, body = await call(client, "POST", f"/v1/solicitations/{raw}/seen")
        assert status == 400 and "numéro de sollicitation invalide" in body["error"], raw


def test_digits_are_0_to_9_only() -> None:
    from maillon.shared.text import digits

    assert digits("0123456789") and not digits("") and not digits("³") and not digits("٣")
