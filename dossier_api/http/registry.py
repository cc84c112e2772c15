"""Routes declared once with their JSON schemas: the server validates requests with them
and the OpenAPI document is generated from them, so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft7Validator, FormatChecker

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PARAM_RE = re.compile(r"\{([a-z_]+)\}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errcode", "error"],
    "properties": {
        "errcode": {"type": "string"},
        "error": {"type": "string"},
        # A possible duplicate (409): the dossiers the caller may read, and where the others
        # are (structure names only).
        "candidates": {"type": "array", "items": {"type": "object"}},
        "elsewhere": {"type": "array", "items": {"type": "string"}},
    },
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    response: dict[str, Any]
    status: int = 200
    body: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth: bool = True
    content_type: str = "application/json"
    tag: str = "dossiers"
    # A body the handler reads itself (e.g. an upload): documented, not parsed here.
    request_content: dict[str, Any] | None = None
    # Error statuses beyond the usual ones, with their description.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def validator(self) -> Draft7Validator | None:
        if self.body is None:
            return None
        return Draft7Validator(self.body, format_checker=FormatChecker())


ROUTES: list[Route] = []


def route(
    method: str,
    path: str,
    summary: str,
    response: dict[str, Any],
    *,
    status: int = 200,
    body: dict[str, Any] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    auth: bool = True,
    content_type: str = "application/json",
    tag: str = "dossiers",
    request_content: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(
            Route(
                method,
                path,
                handler,
                summary,
                response,
                status,
                body,
                query or {},
                auth,
                content_type,
                tag,
                request_content,
                errors or {},
            )
        )
        return handler

    return register


def _operation(r: Route) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in PARAM_RE.findall(r.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in r.query.items()
    ]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses: dict[str, Any] = {
        str(r.status): {
            "description": "Succès",
            "content": {r.content_type: {"schema": r.response}},
        }
    }
    for code, text in (("400", "Requête invalide"), ("404", "Inconnu")):
        responses[code] = {"description": text, "content": error}
    if r.auth:
        responses["401"] = {"description": "Non authentifié", "content": error}
        responses["403"] = {"description": "Non autorisé", "content": error}
        responses["409"] = {"description": "Conflit avec l'état du dossier", "content": error}
    for code, text in r.errors.items():
        responses[code] = {"description": text, "content": error}
    responses["503"] = {
        "description": "Service ou serveur d'accueil indisponible",
        "content": error,
    }
    slug = r.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    op: dict[str, Any] = {
        "operationId": f"{r.method.lower()}_{slug}",
        "summary": r.summary,
        "tags": [r.tag],
        "parameters": params,
        "responses": responses,
    }
    if r.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body}}}
    elif r.request_content is not None:
        op["requestBody"] = {"required": True, "content": r.request_content}
    if r.auth:
        op["security"] = [{"matrixToken": []}]
    return op


def openapi_document(title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version, "license": {"name": "AGPL-3.0-or-later"}},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "matrixToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Jeton d'accès Matrix du professionnel",
                },
            },
        },
    }


def validation_message(error: Any) -> str:
    """A request body's first schema error, in French, naming the field."""
    where = ".".join(str(p) for p in error.absolute_path) or "corps"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"champ obligatoire manquant : « {missing} » (dans {where})"
    if error.validator == "additionalProperties":
        return f"champ inconnu dans « {where} » : {error.message}"
    return f"valeur refusée pour « {where} » ({error.validator}) : {error.message}"
