"""Working in a dossier through the API (issue 12, section 1): documents attached to notes
(stored sealed, downloadable by who may read the note, audited), replies and corrections,
task filters, the timeline, search in the dossier, form drafts and the PPCS as a PDF. Real
stack; each endpoint with its refusals."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.orm import Session

from dossier_api.domain.mail.routing import Target
from dossier_api.domain.mail.spool import Spool
from dossier_api.domain.models import RoomActivity
from maillon.shared.crypto import KeyRing
from maillon.shared.homeserver_client import Registered
from maillon.shared.sealed import install_key_ring
from maillon.shared.store import make_engine
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.stack import Stack

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]"
    b"/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(64)
SECRET_NOTE = "Hématome suspect à l'épaule : avis du médecin demandé"


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(
    stack: Stack,
    token: str,
    method: str,
    path: str,
    data: bytes | None = None,
    content_type: str | None = None,
) -> Raw:
    url = stack.deployment.settings.dossier_api.url + path
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return Raw(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return Raw(exc.code, dict(exc.headers), exc.read())


def multipart(name: str, media_type: str, content: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def upload(stack: Stack, token: str, did: str, note_id: str, name: str, content: bytes) -> Raw:
    data, ctype = multipart(name, "application/pdf", content)
    return raw(stack, token, "POST", f"/v1/dossiers/{did}/notes/{note_id}/attachments", data, ctype)


def audit(stack: Stack, token: str, did: str) -> list[dict[str, Any]]:
    return list(api(stack, token, "GET", f"/v1/dossiers/{did}/audit")["entries"])


@dataclass
class Circle:
    did: str
    coord: Registered
    nurse: Registered
    physio: Registered
    outsider: Registered


@pytest.fixture(params=["stack", "pg_stack"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """SQLite and PostgreSQL, for the paths whose storage or queries differ most."""
    stack: Stack = request.getfixturevalue(request.param)
    return stack


@pytest.fixture
def circle(stack: Stack) -> Circle:
    return make_circle(stack)


def make_circle(stack: Stack) -> Circle:
    coord, nurse, physio = (stack.register(n) for n in ("coord", "ide", "kine"))
    outsider = stack.register("dehors")
    stack.bind_directory(coord.user_id, "médecin coordonnateur", "Dr Alice Durand")
    stack.bind_directory(nurse.user_id, "infirmière", "Léa Roux")
    stack.bind_directory(physio.user_id, "masseur-kinésithérapeute", "Marc Petit")
    t = coord.access_token
    did = new_dossier(stack, t)["id"]
    for who, role in ((nurse, "IDE"), (physio, "KINE")):
        api(stack, t, "POST", f"/v1/dossiers/{did}/circle", {"user_id": who.user_id, "role": role})
    return Circle(did, coord, nurse, physio, outsider)


def test_documents_are_sealed_listed_downloaded_by_readers_only_and_audited(
    any_stack: Stack,
) -> None:
    stack = any_stack
    circle = make_circle(stack)
    did, nurse = circle.did, circle.nurse.access_token
    coord, physio = circle.coord.access_token, circle.physio.access_token
    note = api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Pansement refait", "urgent": True},
    )
    restricted = api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": SECRET_NOTE, "visible_to_roles": ["IDE", "COORD"]},
    )

    sent = upload(stack, nurse, did, note["id"], "compte-rendu pansement.pdf", PDF)
    assert sent.status == 201, sent.body
    doc = sent.json()
    assert doc["media_type"] == "application/pdf" and doc["size"] == len(PDF)
    assert doc["name"] == "compte-rendu pansement.pdf"
    as_json = api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes/{restricted['id']}/attachments",
        {"name": "photo.png", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    )
    assert as_json["media_type"] == "image/png"

    # Listed with its note.
    notes = {n["id"]: n for n in api(stack, coord, "GET", f"/v1/dossiers/{did}/notes")["notes"]}
    assert [d["id"] for d in notes[note["id"]]["documents"]] == [doc["id"]]
    assert [d["name"] for d in notes[restricted["id"]]["documents"]] == ["photo.png"]

    # Downloaded by the circle, as it was sent.
    got = raw(stack, coord, "GET", doc["url"])
    assert got.status == 200 and got.body == PDF
    assert got.headers["Content-Type"].startswith("application/pdf")
    assert "attachment" in got.headers["Content-Disposition"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert raw(stack, physio, "GET", doc["url"]).body == PDF

    # The physiotherapist's role does not read the restricted note, nor its document.
    hidden = raw(stack, physio, "GET", as_json["url"])
    assert hidden.status == 404, hidden.body
    physio_notes = api(stack, physio, "GET", f"/v1/dossiers/{did}/notes")["notes"]
    assert restricted["id"] not in {n["id"] for n in physio_notes}
    assert raw(stack, coord, "GET", as_json["url"]).body == PNG

    # An outsider: 403, audited.
    refused = raw(stack, circle.outsider.access_token, "GET", doc["url"])
    assert refused.status == 403 and "cercle de soins" in refused.json()["error"]
    trail = audit(stack, coord, did)
    reads = [e for e in trail if e["action"] == "notes.attachment.read"]
    assert any(e["actor"] == circle.coord.user_id and e["allowed"] for e in reads)
    assert any(e["actor"] == circle.outsider.user_id and not e["allowed"] for e in reads)
    assert any(e["actor"] == circle.physio.user_id and not e["allowed"] for e in reads)
    assert any(e["action"] == "notes.attach" and e["allowed"] for e in trail)

    # Sealed at rest: neither the bytes nor the name are in the store in clear.
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT content, meta FROM note_attachments")).all()
    finally:
        engine.dispose()
    assert rows
    for content, meta in rows:
        assert b"%PDF" not in bytes(content) and b"PNG" not in bytes(content)
        assert b"pansement" not in bytes(meta) and b"photo" not in bytes(meta)


def test_document_refusals(stack: Stack, circle: Circle) -> None:
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    note = api(stack, nurse, "POST", f"/v1/dossiers/{did}/notes", {"text": "Visite faite"})
    path = f"/v1/dossiers/{did}/notes/{note['id']}/attachments"

    not_pdf = upload(stack, nurse, did, note["id"], "faux.pdf", b"<script>alert(1)</script>")
    assert not_pdf.status == 415 and "type de document non accepté" in not_pdf.json()["error"]
    lying = raw(
        stack,
        nurse,
        "POST",
        path,
        json.dumps(
            {
                "name": "x.pdf",
                "media_type": "application/pdf",
                "data": base64.b64encode(PNG).decode(),
            }
        ).encode(),
        "application/json",
    )
    assert lying.status == 415 and "ne correspond pas" in lying.json()["error"]
    bad64 = raw(stack, nurse, "POST", path, b'{"name": "x.pdf", "data": "%%%"}', "application/json")
    assert bad64.status == 400 and "base64" in bad64.json()["error"]
    missing = raw(stack, nurse, "POST", path, b'{"data": "JVBERi0="}', "application/json")
    assert missing.status == 400 and "name" in missing.json()["error"]
    other_author = upload(stack, coord, did, note["id"], "x.pdf", PDF)
    assert other_author.status == 403 and "auteur" in other_author.json()["error"]
    outsider = upload(stack, circle.outsider.access_token, did, note["id"], "x.pdf", PDF)
    assert outsider.status == 403
    unknown = upload(stack, nurse, did, "0" * 32, "x.pdf", PDF)
    assert unknown.status == 404

    limit = stack.deployment.settings.attachments.max_bytes
    huge = upload(stack, nurse, did, note["id"], "gros.pdf", PDF + b"0" * (limit - len(PDF) + 1))
    assert huge.status == 413 and "trop volumineux" in huge.json()["error"]
    trail = audit(stack, coord, did)
    attach = [e for e in trail if e["action"] == "notes.attach"]
    assert any("413" in (e["detail"] or "") for e in attach if not e["allowed"])
    assert any(e["actor"] == circle.outsider.user_id and not e["allowed"] for e in attach)
    assert api(stack, coord, "GET", f"/v1/dossiers/{did}/notes")["notes"][0]["documents"] == []


def test_replies_corrections_and_task_filters(stack: Stack, circle: Circle) -> None:
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    first = api(stack, nurse, "POST", f"/v1/dossiers/{did}/notes", {"text": "Escarre au talon"})
    reply = api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Matelas commandé", "reply_to": first["id"]},
    )
    assert reply["reply_to"] == first["id"]
    fixed = api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes/{first['id']}/corrections",
        {"text": "Escarre au talon gauche"},
    )
    notes = {n["id"]: n for n in api(stack, coord, "GET", f"/v1/dossiers/{did}/notes")["notes"]}
    assert notes[first["id"]]["text"] == "Escarre au talon"  # the original is kept
    assert notes[first["id"]]["corrected_by"] == fixed["id"]
    assert notes[fixed["id"]]["corrects"] == first["id"]
    assert (
        api_error(
            stack,
            coord,
            "POST",
            f"/v1/dossiers/{did}/notes/{first['id']}/corrections",
            {"text": "x"},
        ).status
        == 403
    )

    tasks = f"/v1/dossiers/{did}/tasks"
    done = api(
        stack,
        coord,
        "POST",
        tasks,
        {"title": "Commander le matelas", "assignee": circle.nurse.user_id},
    )
    api(
        stack,
        coord,
        "POST",
        tasks,
        {"title": "Revoir le pansement", "assignee": circle.nurse.user_id},
    )
    api(stack, nurse, "PATCH", f"{tasks}/{done['id']}", {"status": "done"})

    def titles(which: str) -> list[str]:
        return [t["title"] for t in api(stack, coord, "GET", f"{tasks}?statut={which}")["tasks"]]

    assert titles("toutes") == ["Commander le matelas", "Revoir le pansement"]
    assert titles("ouvertes") == ["Revoir le pansement"]
    assert titles("faites") == ["Commander le matelas"]
    assert [t["title"] for t in api(stack, coord, "GET", tasks)["tasks"]] == titles("toutes")
    bad = api_error(stack, coord, "GET", f"{tasks}?statut=finies")
    assert bad.status == 400 and "statut" in str(bad)


def test_timeline_shows_what_the_caller_may_see_filtered_by_kind_and_period(
    any_stack: Stack,
) -> None:
    stack = any_stack
    circle = make_circle(stack)
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    physio = circle.physio.access_token
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Chute ce matin", "urgent": True},
    )
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": SECRET_NOTE, "visible_to_roles": ["IDE"]},
    )
    task = api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Appeler le médecin", "assignee": circle.nurse.user_id},
    )
    api(stack, nurse, "PATCH", f"/v1/dossiers/{did}/tasks/{task['id']}", {"status": "done"})
    api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/appointments",
        {
            "title": "Visite à domicile",
            "start": "2026-12-20T09:00:00+01:00",
            "end": "2026-12-20T10:00:00+01:00",
        },
    )
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/forms/evaluation-autonomie",
        {"answers": {"gir": "4", "vit_seul": True, "date_evaluation": "2026-11-20"}},
    )
    api(stack, coord, "PUT", f"/v1/dossiers/{did}/ppcs", {"problems": [], "actions": []})
    api(stack, coord, "DELETE", f"/v1/dossiers/{did}/circle/{quote(circle.physio.user_id)}")
    api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/circle",
        {"user_id": circle.physio.user_id, "role": "KINE"},
    )

    line = api(stack, nurse, "GET", f"/v1/dossiers/{did}/timeline")
    entries = line["entries"]
    kinds = {(e["kind"], e["action"]) for e in entries}
    assert {
        ("note", "write"),
        ("task", "create"),
        ("task", "done"),
        ("appointment", "scheduled"),
        ("form", "submit"),
        ("ppcs", "update"),
        ("circle", "add"),
        ("circle", "remove"),
    } <= kinds
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    texts = [e["text"] for e in entries]
    assert SECRET_NOTE in texts and "Chute ce matin" in texts
    assert "Évaluation de l'autonomie" in texts
    urgent = next(e for e in entries if e["text"] == "Chute ce matin")
    assert urgent["urgent"] and urgent["title"] == "Note urgente"
    assert line["people"][circle.nurse.user_id]["display_name"] == "Léa Roux"

    # A role the restricted note is not for does not see it on the line.
    assert SECRET_NOTE not in [
        e["text"] for e in api(stack, physio, "GET", f"/v1/dossiers/{did}/timeline")["entries"]
    ]

    only = api(stack, coord, "GET", f"/v1/dossiers/{did}/timeline?kind=note,task")["entries"]
    assert only and {e["kind"] for e in only} == {"note", "task"}
    later = api(stack, coord, "GET", f"/v1/dossiers/{did}/timeline?since=2026-12-15")["entries"]
    assert [e["kind"] for e in later] == ["appointment"]
    before = api(
        stack, coord, "GET", f"/v1/dossiers/{did}/timeline?kind=appointment&until=2026-12-19"
    )
    assert before["entries"] == []
    for query, word in (
        ("kind=potins", "kind"),
        ("since=hier", "date"),
        ("since=2026-12-02&until=2026-12-01", "période"),
    ):
        bad = api_error(stack, coord, "GET", f"/v1/dossiers/{did}/timeline?{query}")
        assert bad.status == 400 and word in str(bad), str(bad)
    assert (
        api_error(stack, circle.outsider.access_token, "GET", f"/v1/dossiers/{did}/timeline").status
        == 403
    )
    refusals = [
        e for e in audit(stack, coord, did) if e["action"] == "timeline.read" and not e["allowed"]
    ]
    assert [e["actor"] for e in refusals] == [circle.outsider.user_id]


def test_search_in_the_dossier(stack: Stack, circle: Circle) -> None:
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    physio = circle.physio.access_token
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": "Œdème des chevilles, aide-soignante prévenue"},
    )
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/notes",
        {"text": SECRET_NOTE, "visible_to_roles": ["IDE"]},
    )
    api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/tasks",
        {"title": "Prévoir la télé-assistance", "assignee": circle.nurse.user_id},
    )
    api(
        stack,
        nurse,
        "POST",
        f"/v1/dossiers/{did}/forms/evaluation-autonomie",
        {
            "answers": {
                "gir": "3",
                "vit_seul": True,
                "aides_en_place": "Portage des repas, SSIAD",
                "date_evaluation": "2026-11-20",
            }
        },
    )

    def found(token: str, q: str) -> list[tuple[str, str]]:
        rows = api(stack, token, "GET", f"/v1/dossiers/{did}/search?q={quote(q)}")["results"]
        return [(r["kind"], r["excerpt"]) for r in rows]

    assert [k for k, _ in found(coord, "oedeme AIDE SOIGNANTE")] == ["note"]
    assert found(nurse, "HEMATOME")[0] == ("note", SECRET_NOTE)
    assert found(physio, "hématome") == []  # restricted to nurses
    assert [k for k, _ in found(coord, "teleassistance")] == ["task"]
    form = found(coord, "portage repas")
    assert [k for k, _ in form] == ["form"] and "Portage des repas" in form[0][1]
    assert found(coord, "introuvable") == []
    short = api_error(stack, coord, "GET", f"/v1/dossiers/{did}/search?q=a")
    assert short.status == 400 and "q :" in str(short)
    assert (
        api_error(
            stack, circle.outsider.access_token, "GET", f"/v1/dossiers/{did}/search?q=chute"
        ).status
        == 403
    )
    trail = [e for e in audit(stack, coord, did) if e["action"] == "search"]
    assert any(not e["allowed"] and e["actor"] == circle.outsider.user_id for e in trail)
    assert all("hématome" not in (e["detail"] or "").lower() for e in trail)  # never the query


def test_form_drafts_are_kept_until_submitted(stack: Stack, circle: Circle) -> None:
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    path = f"/v1/dossiers/{did}/forms/evaluation-autonomie"
    assert api_error(stack, nurse, "GET", f"{path}/draft").status == 404
    draft = api(
        stack, nurse, "PUT", f"{path}/draft", {"answers": {"gir": "9", "aides_en_place": "SSIAD"}}
    )
    assert draft["answers"] == {"gir": "9", "aides_en_place": "SSIAD"}
    assert "« Vit seul(e) » est obligatoire" in draft["problems"]
    assert any(p.startswith("« GIR (AGGIR) » : l'un de") for p in draft["problems"])
    assert api(stack, nurse, "GET", f"{path}/draft")["answers"]["aides_en_place"] == "SSIAD"
    assert api_error(stack, coord, "GET", f"{path}/draft").status == 404  # a draft is its author's
    unknown = api_error(stack, nurse, "PUT", f"{path}/draft", {"answers": {"poids": 60}})
    assert unknown.status == 400 and "champ inconnu : « poids »" in str(unknown)
    assert (
        api_error(
            stack, nurse, "PUT", f"/v1/dossiers/{did}/forms/reperage-tnd/draft", {"answers": {}}
        ).status
        == 404
    )
    assert (
        api_error(
            stack, circle.outsider.access_token, "PUT", f"{path}/draft", {"answers": {}}
        ).status
        == 403
    )

    # Every field type of the definition, each refused with a French message naming it.
    bad = api_error(
        stack,
        nurse,
        "POST",
        path,
        {
            "answers": {
                "gir": "9",
                "vit_seul": "oui",
                "aides_en_place": "",
                "chutes_6_mois": "deux",
                "date_evaluation": "20/11/2026",
            }
        },
    )
    assert bad.status == 400
    for expected in (
        "« GIR (AGGIR) » : l'un de : 1, 2, 3, 4, 5, 6 est attendu",
        "« Vit seul(e) » : oui/non est attendu",
        "« Aides en place » : un texte est attendu",
        "« Chutes depuis 6 mois » : un entier est attendu",
        "« Date de l'évaluation » : une date AAAA-MM-JJ est attendu",
    ):
        assert expected in str(bad), str(bad)
    assert api(stack, nurse, "GET", f"{path}/draft")["answers"]["gir"] == "9"  # still kept

    answers = {
        "gir": "4",
        "vit_seul": False,
        "aides_en_place": "SSIAD",
        "chutes_6_mois": 2,
        "date_evaluation": "2026-11-20",
    }
    assert api(stack, nurse, "PUT", f"{path}/draft", {"answers": answers})["problems"] == []
    api(stack, nurse, "POST", path, {"answers": answers})
    assert api_error(stack, nurse, "GET", f"{path}/draft").status == 404  # done with
    assert api(stack, coord, "GET", f"/v1/dossiers/{did}/forms")["forms"][0]["answers"] == answers


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_ppcs_structured_and_printable(stack: Stack, circle: Circle) -> None:
    did, coord = circle.did, circle.coord.access_token
    assert raw(stack, coord, "GET", f"/v1/dossiers/{did}/ppcs.pdf").status == 404
    plan = {
        "expectations": "Rester à domicile le plus longtemps possible",
        "problems": [{"problem": "Chutes à répétition", "goals": ["Sécuriser le logement"]}],
        "actions": [
            {
                "action": "Soins d'hygiène quotidiens",
                "who": circle.nurse.user_id,
                "when": "2026-12-03",
            },
            {"action": "Portage des repas", "who": "CCAS d'Albi"},
        ],
        "unmet_goals": ["Téléassistance refusée par la patiente"],
    }
    saved = api(stack, coord, "PUT", f"/v1/dossiers/{did}/ppcs", plan)
    assert saved["people"][circle.nurse.user_id]["display_name"] == "Léa Roux"
    assert (
        api(stack, coord, "GET", f"/v1/dossiers/{did}/ppcs")["expectations"] == plan["expectations"]
    )
    bad = api_error(
        stack,
        coord,
        "PUT",
        f"/v1/dossiers/{did}/ppcs",
        {"problems": [{"problem": "x"}], "actions": []},
    )
    assert bad.status == 400 and "goals" in str(bad)

    got = raw(stack, circle.physio.access_token, "GET", f"/v1/dossiers/{did}/ppcs.pdf")
    assert got.status == 200 and got.headers["Content-Type"] == "application/pdf"
    content = pdf_text(got.body)
    for expected in (
        "Plan personnalisé de coordination en santé",
        "MARTIN Jeanne Louise, née le 12 mars 1941",
        "Rester à domicile",
        "Chutes à répétition",
        "Objectif : Sécuriser le logement",
        "Soins d'hygiène quotidiens",
        "Léa Roux (infirmière)",
        "3 décembre 2026",
        "CCAS d'Albi",
        "Téléassistance refusée",
        "Dr Alice Durand (médecin coordonnateur",
        "Marc Petit (masseur-kinésithérapeute, KINE)",
    ):
        assert expected in content, (expected, content)
    assert "@" not in content  # people's names, never Matrix ids
    assert (
        raw(stack, circle.outsider.access_token, "GET", f"/v1/dossiers/{did}/ppcs.pdf").status
        == 403
    )
    prints = [e for e in audit(stack, coord, did) if e["action"] == "ppcs.print"]
    assert {e["allowed"] for e in prints} == {True, False}


def _poll(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_timeline_shows_mails_alerts_and_room_activity(any_stack: Stack) -> None:
    stack = any_stack
    circle = make_circle(stack)
    did, nurse, coord = circle.did, circle.nurse.access_token, circle.coord.access_token
    physio = circle.physio.access_token
    path = f"/v1/dossiers/{did}/timeline"
    room_id = api(stack, coord, "GET", f"/v1/dossiers/{did}")["room_id"]
    assert room_id

    # The appservice invites the circle into the patient room: the line shows it.
    def invited() -> bool:
        rows = api(stack, coord, "GET", f"{path}?kind=room")["entries"]
        return any(e["action"] == "invite" and e["subject"] == circle.nurse.user_id for e in rows)

    _poll(invited, "the nurse's invitation on the timeline")
    invite = next(
        e
        for e in api(stack, coord, "GET", f"{path}?kind=room")["entries"]
        if e["action"] == "invite" and e["subject"] == circle.nurse.user_id
    )
    assert invite["title"] == "Invitation dans la salle"

    # Messages (metadata only, as the appservice records them) and a mail received.
    deployment = stack.deployment
    ring = KeyRing.for_secrets(deployment.secrets)
    install_key_ring(ring)
    engine = make_engine(deployment.settings.database_url, create_tables=False)
    try:
        now = dt.datetime.now(dt.UTC)
        with Session(engine) as session, session.begin():
            for n in range(2):
                session.add(
                    RoomActivity(
                        event_id=f"$m{secrets.token_hex(8)}",
                        dossier_id=did,
                        room_id=room_id,
                        kind="message",
                        sender=circle.nurse.user_id,
                        at=now - dt.timedelta(minutes=n),
                    )
                )
        Spool(engine, ring).accept(
            b"Subject: compte rendu\r\n\r\nsortie prevue",
            {"from": "dr@chu.mssante.fr"},
            [Target(did, room_id)],
            secrets.token_hex(8),
        )
    finally:
        engine.dispose()
    api(
        stack,
        coord,
        "POST",
        f"/v1/dossiers/{did}/alerts",
        {"text": "Chute", "to": [circle.nurse.user_id]},
    )

    entries = api(stack, nurse, "GET", path)["entries"]
    titles = [e["title"] for e in entries]
    assert "2 messages dans les salles" in titles
    assert "Courriel reçu" in titles
    alert = next(e for e in entries if e["kind"] == "alert")
    assert alert["text"] == "Chute" and alert["actor"] == circle.coord.user_id
    # An alert is its author's and recipients' only.
    assert "alert" not in {e["kind"] for e in api(stack, physio, "GET", path)["entries"]}
    mails = api(stack, coord, "GET", f"{path}?kind=mail")["entries"]
    assert [e["title"] for e in mails] == ["Courriel reçu"]
    assert "sortie" not in json.dumps(mails)  # what a mail says stays in the room
