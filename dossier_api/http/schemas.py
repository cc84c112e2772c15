"""JSON schemas of the dossier API (requests are validated with them; the OpenAPI document
is built from them)."""

from __future__ import annotations

from typing import Any

from dossier_api.domain import pathways
from dossier_api.domain.ins import INS_MATRICULE_PATTERN
from maillon.shared.circle import ROLES, ROOM_AUDIENCES, USER_ID_PATTERN

USER_ID = {"type": "string", "pattern": USER_ID_PATTERN, "maxLength": 255}
TEXT = {"type": "string", "minLength": 1, "maxLength": 20000}
SHORT = {"type": "string", "minLength": 1, "maxLength": 200}
DATE = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
ROLE = {"type": "string", "enum": sorted(ROLES)}
PATHWAY = {"type": "string", "enum": sorted(pathways.PATHWAYS)}  # the pathways loaded from config/


def obj(required: list[str], props: dict[str, Any], extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": extra,
    }


IDENTITY_IN = obj(
    ["birth_name", "first_names", "sex", "birth_date"],
    {
        "birth_name": SHORT,
        "first_names": SHORT,
        "used_name": SHORT,
        "sex": {"type": "string", "enum": ["F", "M", "I"]},
        "birth_date": DATE,
        "birthplace_insee": {"type": "string", "pattern": "^[0-9][0-9AB][0-9]{3}$"},
        "ins_matricule": {"type": "string", "pattern": INS_MATRICULE_PATTERN},
        "ins_oid": {"type": "string", "enum": ["1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9"]},
        "identity_status": {"type": "string", "enum": ["PROV", "RECUP", "VALI", "QUAL"]},
        "contact": {"type": "string", "maxLength": 500},
    },
)
IDENTITY_OUT = {"type": "object", "additionalProperties": True}

DOSSIER_CREATE = obj(
    ["pathway", "identity"],
    {
        "pathway": PATHWAY,
        "identity": IDENTITY_IN,
        "structure_id": {"type": "string", "minLength": 1, "maxLength": 32},
        "consent_informed": {"type": "boolean"},
    },
)
DOSSIER_PATCH = obj(
    [],
    {
        "status": {"type": "string", "enum": ["open", "closed", "archived"]},
        "status_reason": {"type": "string", "minLength": 1, "maxLength": 500},
        "consent_informed": {"type": "boolean"},
        "consent_share_outside": {"type": "boolean"},
        "opposition": {"type": "boolean"},
    },
)
MEMBER = obj(
    [
        "user_id",
        "role",
        "coordinator",
        "since",
        "until",
        "added_by",
        "removed_by",
        "removed_at",
        "active",
    ],
    {
        "user_id": USER_ID,
        "display_name": {"type": "string", "nullable": True},
        "profession": {"type": "string", "nullable": True},
        "role": ROLE,
        "coordinator": {"type": "boolean"},
        "since": DATETIME,
        "until": NULLABLE_DATETIME,
        "added_by": {"type": "string"},
        "removed_by": {"type": "string", "nullable": True},
        "removed_at": NULLABLE_DATETIME,
        "active": {"type": "boolean"},
    },
)
DOSSIER = obj(
    [
        "id",
        "pathway",
        "status",
        "referent",
        "opened_at",
        "identity",
        "identity_status",
        "consent",
        "mail_address",
        "room_id",
        "access",
    ],
    {
        "id": {"type": "string"},
        "pathway": {"type": "string"},
        "structure_id": {"type": "string", "nullable": True},
        "status": {"type": "string", "enum": ["open", "closed", "archived"]},
        "status_reason": {"type": "string", "nullable": True},
        "referent": {"type": "string"},
        "opened_at": DATETIME,
        "closed_at": NULLABLE_DATETIME,
        "identity": IDENTITY_OUT,
        "identity_status": {"type": "string"},
        "consent": obj(
            ["informed", "share_outside", "opposition"],
            {
                "informed": {"type": "boolean"},
                "share_outside": {"type": "boolean"},
                "opposition": {"type": "boolean"},
            },
        ),
        "mail_address": {"type": "string"},
        "room_id": {"type": "string", "nullable": True},
        "access": {"type": "string"},
    },
)
DOSSIER_SUMMARY = obj(
    ["id", "pathway", "status", "display_name", "access"],
    {
        "id": {"type": "string"},
        "pathway": {"type": "string"},
        "status": {"type": "string"},
        "display_name": {"type": "string"},
        "access": {"type": "string"},
        "reference": {"type": "string"},
        "structure_id": {"type": ["string", "null"]},
        "identity_status": {"type": "string"},
        "birth_date": {"type": ["string", "null"]},
        "opened_at": {"type": ["string", "null"]},
        "room_id": {"type": ["string", "null"]},
    },
)
DOSSIER_LIST = obj(
    ["dossiers"],
    {
        "dossiers": {"type": "array", "items": DOSSIER_SUMMARY},
        "total": {"type": "integer", "description": "dossiers matching, all pages"},
    },
)
CIRCLE = obj(["members"], {"members": {"type": "array", "items": MEMBER}})
CIRCLE_ADD = obj(
    ["user_id", "role"],
    {"user_id": USER_ID, "role": ROLE, "coordinator": {"type": "boolean"}, "until": DATETIME},
)
NOTE_IN = obj(
    ["text"],
    {
        "text": TEXT,
        "urgent": {"type": "boolean"},
        "reply_to": {"type": "string", "minLength": 1, "maxLength": 32},
        "visible_to_roles": {"type": "array", "items": ROLE, "minItems": 1, "uniqueItems": True},
        "attachments": {
            "type": "array",
            "maxItems": 20,
            "items": obj(
                ["name", "media_type", "size"],
                {
                    "name": SHORT,
                    "media_type": SHORT,
                    "size": {"type": "integer", "minimum": 0},
                    "mxc": {"type": "string", "maxLength": 500},
                },
            ),
        },
    },
)
CORRECTION_IN = obj(["text"], {"text": TEXT})
NOTE = obj(
    [
        "id",
        "author",
        "created_at",
        "urgent",
        "text",
        "reply_to",
        "corrects",
        "corrected_by",
        "attachments",
    ],
    {
        "id": {"type": "string"},
        "author": {"type": "string"},
        "created_at": DATETIME,
        "urgent": {"type": "boolean"},
        "text": {"type": "string"},
        "reply_to": {"type": "string", "nullable": True},
        "corrects": {"type": "string", "nullable": True},
        "corrected_by": {"type": "string", "nullable": True},
        "visible_to_roles": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "attachments": {"type": "array", "items": {"type": "object"}},
    },
)
NOTES = obj(["notes"], {"notes": {"type": "array", "items": NOTE}})
TASK_IN = obj(["title", "assignee"], {"title": SHORT, "assignee": USER_ID, "due": DATE})
TASK_PATCH = obj(["status"], {"status": {"type": "string", "enum": ["todo", "done", "cancelled"]}})
TASK = obj(
    ["id", "title", "assignee", "due", "status", "created_by", "done_by", "done_at"],
    {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "assignee": {"type": "string"},
        "due": {"type": "string", "nullable": True},
        "status": {"type": "string"},
        "created_by": {"type": "string"},
        "done_by": {"type": "string", "nullable": True},
        "done_at": NULLABLE_DATETIME,
    },
)
TASKS = obj(["tasks"], {"tasks": {"type": "array", "items": TASK}})
AUDIT = obj(
    ["entries"],
    {
        "entries": {
            "type": "array",
            "items": obj(
                ["at", "actor", "basis", "action", "component", "allowed"],
                {
                    "at": DATETIME,
                    "actor": {"type": "string"},
                    "basis": {"type": "string"},
                    "on_behalf_of": {"type": "string", "nullable": True},
                    "action": {"type": "string"},
                    "component": {"type": "string"},
                    "allowed": {"type": "boolean"},
                    "detail": {"type": "string", "nullable": True},
                },
            ),
        }
    },
)
DELEGATION_IN = obj(["to_user", "until"], {"to_user": USER_ID, "until": DATETIME})
DELEGATION = obj(
    ["id", "from_user", "to_user", "until"],
    {
        "id": {"type": "integer"},
        "from_user": {"type": "string"},
        "to_user": {"type": "string"},
        "until": DATETIME,
    },
)
DELEGATIONS = obj(
    ["given", "received"],
    {
        "given": {"type": "array", "items": DELEGATION},
        "received": {"type": "array", "items": DELEGATION},
    },
)
STRUCTURE_IN = obj(
    ["name"],
    {
        "name": SHORT,
        "kind": {
            "type": "string",
            "enum": ["dac", "cpts", "pco", "etablissement", "ssiad", "structure"],
        },
    },
)
STRUCTURE = obj(
    ["id", "name", "kind"],
    {"id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"}},
)
STAFF_IN = obj(["user_id"], {"user_id": USER_ID})
OK = obj(["ok"], {"ok": {"type": "boolean"}})
AUDIENCE = {"type": "string", "enum": sorted(ROOM_AUDIENCES)}
ROOM_IN = obj(["label"], {"label": {**SHORT, "maxLength": 120}, "audience": AUDIENCE})
ROOM = obj(
    ["key", "kind", "label", "audience", "room_id", "created_by", "created_at"],
    {
        "key": {"type": "string"},
        "kind": {"type": "string", "enum": ["main", "side"]},
        "label": {"type": "string"},
        "audience": AUDIENCE,
        "room_id": {"type": "string", "nullable": True},
        "created_by": USER_ID,
        "created_at": DATETIME,
    },
)
ROOMS = obj(["rooms"], {"rooms": {"type": "array", "items": ROOM}})
ROOM_EVENT = obj(
    ["kind", "user_id", "sender", "room_id", "at"],
    {
        "kind": {"type": "string", "enum": ["invite", "join", "leave", "kick", "ban"]},
        "user_id": {"type": "string", "nullable": True},
        "sender": {"type": "string"},
        "room_id": {"type": "string"},
        "at": DATETIME,
    },
)
ACTIVITY = obj(
    ["messages", "last_message_at", "history"],
    {
        "messages": {"type": "integer", "minimum": 0},
        "last_message_at": NULLABLE_DATETIME,
        "history": {"type": "array", "items": ROOM_EVENT},
    },
)
ME = obj(
    ["user_id", "is_admin", "professional"],
    {
        "user_id": {"type": "string"},
        "is_admin": {"type": "boolean"},
        "professional": {"type": "object", "nullable": True},
        "structures": {
            "type": "array",
            "items": obj(["id", "name"], {"id": {"type": "string"}, "name": {"type": "string"}}),
        },
    },
)

LOOSE = {"type": "object", "additionalProperties": True}
PATHWAYS = obj(["pathways"], {"pathways": {"type": "array", "items": LOOSE}})
FORM_IN = obj(["answers"], {"answers": {"type": "object", "maxProperties": 100}})
FORM = obj(
    ["id", "form_id", "form_version", "author", "created_at", "answers"],
    {
        "id": {"type": "string"},
        "form_id": {"type": "string"},
        "form_version": {"type": "integer"},
        "author": {"type": "string"},
        "created_at": DATETIME,
        "answers": LOOSE,
    },
)
FORMS = obj(["forms"], {"forms": {"type": "array", "items": FORM}})
PPCS_IN = obj(
    ["problems", "actions"],
    {
        "problems": {
            "type": "array",
            "maxItems": 50,
            "items": obj(
                ["problem", "goals"],
                {"problem": SHORT, "goals": {"type": "array", "items": SHORT, "maxItems": 20}},
            ),
        },
        "actions": {
            "type": "array",
            "maxItems": 100,
            "items": obj(["action", "who"], {"action": SHORT, "who": SHORT, "when": DATE}),
        },
        "unmet_goals": {"type": "array", "items": SHORT, "maxItems": 50},
    },
)
PPCS = {
    "type": "object",
    "required": ["version", "author", "updated_at", "problems", "actions"],
    "properties": {
        "version": {"type": "integer"},
        "author": {"type": "string"},
        "updated_at": DATETIME,
        "problems": {"type": "array"},
        "actions": {"type": "array"},
        "unmet_goals": {"type": "array"},
    },
    "additionalProperties": False,
}
APPOINTMENT_IN = obj(
    ["title", "start", "end"],
    {
        "title": SHORT,
        "start": DATETIME,
        "end": DATETIME,
        "place": {"type": "string", "maxLength": 300},
        "participants": {"type": "array", "items": USER_ID, "maxItems": 50, "uniqueItems": True},
    },
)
APPOINTMENT = obj(
    [
        "id",
        "dossier_id",
        "title",
        "place",
        "start",
        "end",
        "participants",
        "created_by",
        "cancelled",
    ],
    {
        "id": {"type": "string"},
        "dossier_id": {"type": "string"},
        "title": {"type": "string"},
        "place": {"type": "string", "nullable": True},
        "start": DATETIME,
        "end": DATETIME,
        "participants": {"type": "array", "items": {"type": "string"}},
        "created_by": {"type": "string"},
        "cancelled": {"type": "boolean"},
    },
)
APPOINTMENTS = obj(["appointments"], {"appointments": {"type": "array", "items": APPOINTMENT}})
ALERT_IN = obj(
    ["text"],
    {
        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
        "to": {
            "type": "array",
            "items": USER_ID,
            "minItems": 1,
            "maxItems": 50,
            "uniqueItems": True,
        },
    },
)
ALERT = obj(
    ["id", "author", "created_at", "recipients", "text"],
    {
        "id": {"type": "string"},
        "author": {"type": "string"},
        "created_at": DATETIME,
        "recipients": {"type": "array", "items": {"type": "string"}},
        "text": {"type": "string"},
    },
)
ICS = {"type": "string"}
FHIR_BUNDLE = {
    "type": "object",
    "required": ["resourceType", "type", "entry"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string"},
        "entry": {"type": "array"},
    },
}
