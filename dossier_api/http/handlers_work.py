"""HTTP handlers for working in a dossier: documents attached to notes (upload, download),
drafts of pathway forms, the timeline, search in the dossier and the PPCS as a PDF."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from jsonschema import Draft7Validator

from dossier_api.domain.core import ApiError, _parse_date, _parse_dt
from dossier_api.domain.reading import TIMELINE_KINDS, parse_kinds
from dossier_api.http import schemas as S
from dossier_api.http.handlers import _int_query, body, call, caller, svc
from dossier_api.http.registry import route, validation_message

MULTIPART_SLACK = 64 * 1024  # headers and boundaries of a multipart upload
CHUNK = 64 * 1024
_DOCUMENT_IN = Draft7Validator(S.DOCUMENT_IN)


def _ids(request: web.Request, *names: str) -> list[str]:
    return [request.match_info[n] for n in names]


def upload_limit(max_bytes: int) -> int:
    """The largest request body an upload of ``max_bytes`` may need (JSON base64 form)."""
    return (max_bytes + 2) // 3 * 4 + MULTIPART_SLACK


async def _read_part(part: BodyPartReader, max_bytes: int) -> bytes | None:
    """The part's bytes, or None as soon as they exceed ``max_bytes``."""
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            return None
    return bytes(data)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413, "M_TOO_LARGE", f"document trop volumineux : au plus {max_bytes} octets par document"
    )


async def _document(request: web.Request, max_bytes: int) -> tuple[str, str, bytes]:
    """(name, declared media type, bytes) of the uploaded document."""
    size = request.content_length
    if request.content_type == "multipart/form-data":
        if size is not None and size > max_bytes + MULTIPART_SLACK:
            raise _too_large(max_bytes)
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    content = await _read_part(part, max_bytes)
                    if content is None:
                        raise _too_large(max_bytes)
                    media_type = part.headers.get("Content-Type", "")
                    return part.filename or "document", media_type, content
        except (HttpProcessingError, ValueError, UnicodeError) as exc:
            raise ApiError(400, "M_INVALID_PARAM", "corps multipart/form-data illisible") from exc
        raise ApiError(400, "M_INVALID_PARAM", "champ « file » manquant (multipart/form-data)")
    if request.content_type == "application/json":
        if size is not None and size > upload_limit(max_bytes):
            raise _too_large(max_bytes)
        try:
            payload = await request.json()
        except ValueError as exc:
            raise ApiError(400, "M_NOT_JSON", "corps JSON illisible") from exc
        error = next(iter(sorted(_DOCUMENT_IN.iter_errors(payload), key=str)), None)
        if error is not None:
            raise ApiError(400, "M_BAD_JSON", validation_message(error))
        try:
            content = base64.b64decode(payload["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "M_BAD_JSON", "data : base64 illisible") from exc
        return payload["name"], payload.get("media_type", ""), content
    raise ApiError(
        415,
        "M_UNSUPPORTED_TYPE",
        "corps attendu : multipart/form-data (champ « file ») ou JSON (name, data en base64)",
    )


@route(
    "POST",
    "/v1/dossiers/{dossier_id}/notes/{note_id}/attachments",
    "Joindre un document à sa note (PDF, image ; multipart « file » ou JSON base64)",
    S.DOCUMENT,
    status=201,
    request_content={
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "application/json": {"schema": S.DOCUMENT_IN},
    },
    errors={"413": "Document trop volumineux", "415": "Type de document non accepté"},
)
async def add_attachment(request: web.Request) -> web.Response:
    dossier_id, note_id = _ids(request, "dossier_id", "note_id")
    service = svc(request)
    max_bytes = service.attachment_settings.max_bytes
    try:
        name, media_type, content = await _document(request, max_bytes)
    except ApiError as exc:
        await asyncio.to_thread(
            service.record_refusal, caller(request), "notes.attach", dossier_id, exc
        )
        raise
    row = await call(
        request, service.add_attachment, dossier_id, note_id, name, media_type, content
    )
    return web.json_response(row, status=201)


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/notes/{note_id}/attachments/{attachment_id}",
    "Télécharger un document d'une note (selon la visibilité de la note ; tracé)",
    S.PDF,
    content_type="application/octet-stream",
)
async def get_attachment(request: web.Request) -> web.Response:
    ids = _ids(request, "dossier_id", "note_id", "attachment_id")
    found = await call(request, svc(request).attachment, *ids)
    ascii_name = found.name.encode("ascii", "replace").decode().replace('"', "'")
    return web.Response(
        body=found.content,
        content_type=found.media_type,
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(found.name)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@route(
    "PUT",
    "/v1/dossiers/{dossier_id}/forms/{form_id}/draft",
    "Enregistrer son brouillon d'un formulaire (gardé jusqu'à l'envoi)",
    S.DRAFT,
    body=S.FORM_IN,
)
async def put_draft(request: web.Request) -> web.Response:
    dossier_id, form_id = _ids(request, "dossier_id", "form_id")
    return web.json_response(
        await call(request, svc(request).save_form_draft, dossier_id, form_id, body(request))
    )


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/forms/{form_id}/draft",
    "Son brouillon d'un formulaire",
    S.DRAFT,
)
async def get_draft(request: web.Request) -> web.Response:
    dossier_id, form_id = _ids(request, "dossier_id", "form_id")
    return web.json_response(await call(request, svc(request).form_draft, dossier_id, form_id))


def _moment(raw: str | None, name: str, end: bool = False) -> dt.datetime | None:
    """A period's bound: a date (its whole day) or a date-time."""
    if not raw:
        return None
    if len(raw) == 10:
        day = _parse_date(raw, name)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return start + dt.timedelta(days=1) if end else start
    return _parse_dt(raw, name)


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/timeline",
    "Ligne de vie : notes, tâches, rendez-vous, cercle, formulaires, courriels, salles",
    S.TIMELINE,
    query={
        "kind": {
            "type": "string",
            "description": "types séparés par des virgules : " + ", ".join(TIMELINE_KINDS),
        },
        "since": {"type": "string", "description": "depuis (date ou date et heure ISO)"},
        "until": {"type": "string", "description": "jusqu'à (inclus pour une date)"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
)
async def get_timeline(request: web.Request) -> web.Response:
    q = request.query
    kinds = parse_kinds(q.get("kind"))
    since = _moment(q.get("since"), "since")
    until = _moment(q.get("until"), "until", end=True)
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "M_INVALID_PARAM", "la période doit finir après son début")
    limit = _int_query(request, "limit", 200, 1, 1000)
    return web.json_response(
        await call(
            request,
            svc(request).timeline,
            request.match_info["dossier_id"],
            kinds,
            since,
            until,
            limit,
        )
    )


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/search",
    "Rechercher dans les notes, formulaires et tâches du dossier",
    S.SEARCH,
    query={"q": {"type": "string", "minLength": 2, "maxLength": 200}},
)
async def search(request: web.Request) -> web.Response:
    return web.json_response(
        await call(
            request,
            svc(request).search,
            request.match_info["dossier_id"],
            request.query.get("q", ""),
        )
    )


@route(
    "GET",
    "/v1/dossiers/{dossier_id}/ppcs.pdf",
    "PPCS en vigueur, à imprimer (PDF)",
    S.PDF,
    content_type="application/pdf",
)
async def get_ppcs_pdf(request: web.Request) -> web.Response:
    pdf = await call(request, svc(request).ppcs_pdf, request.match_info["dossier_id"])
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": 'inline; filename="ppcs.pdf"',
            "Cache-Control": "no-store",
        },
    )
