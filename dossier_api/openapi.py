"""The OpenAPI 3 document of the dossier API; kept beside the routes it describes."""

from __future__ import annotations

from typing import Any

from maillon import __version__

ERROR = {
    "type": "object",
    "required": ["errcode", "error"],
    "properties": {"errcode": {"type": "string"}, "error": {"type": "string"}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Maillon — API du dossier de coordination",
            "version": __version__,
            "license": {"name": "AGPL-3.0-or-later"},
        },
        "paths": {
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "État du service et de sa base",
                    "responses": {
                        "200": {
                            "description": "Service prêt",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "store"],
                                        "properties": {
                                            "status": {"type": "string", "enum": ["ok"]},
                                            "store": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "503": {
                            "description": "Base injoignable",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "Ce document",
                    "responses": {
                        "200": {
                            "description": "Document OpenAPI 3",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": {"Error": ERROR}},
    }
