"""JSON schemas of the dossier API (requests are validated with them; the OpenAPI document
is built from them)."""

from __future__ import annotations

from typing import Any

from dossier_api.domain import shapes, vigilance
from dossier_api.domain.ins import INS_MATRICULE_PATTERN
from dossier_api.domain.models import STAFF_ROLES, STRUCTURE_KINDS
from maillon.shared.circle import ROLES, ROOM_AUDIENCES, USER_ID_PATTERN
from maillon.shared.json_shapes import schema_of

USER_ID = {"type": "string", "pattern": USER_ID_PATTERN, "maxLength": 255}
TEXT = {"type": "string", "minLength": 1, "maxLength": 20000}
SHORT = {"type": "string", "minLength": 1, "maxLength": 200}
DATE = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}
ROLE = {"type": "string", "enum": sorted(ROLES)}
# A pathway id; whether it exists is the store's answer (pathways are created in /admin/).
PATHWAY = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,59}$"}


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

IDENTITY_EVIDENCE = obj(
    [],
    {
        "document": obj(
            ["kind", "checked_at"],
            {
                "kind": {"type": "string", "enum": list(vigilance.DOCUMENT_KINDS)},
                "checked_by": USER_ID,
                "checked_at": DATETIME,
            },
        ),
        "ins_source": {"type": "string", "enum": list(vigilance.INS_SOURCES)},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
    },
)
DUPLICATE_OVERRIDE = obj(
    ["reason"], {"reason": {"type": "string", "minLength": 3, "maxLength": 500}}
)
DOSSIER_CREATE = obj(
    ["pathway", "identity"],
    {
        "pathway": PATHWAY,
        "identity": IDENTITY_IN,
        "structure_id": {"type": "string", "minLength": 1, "maxLength": 32},
        "consent_informed": {"type": "boolean"},
        "identity_evidence": IDENTITY_EVIDENCE,
        vigilance.OVERRIDE: DUPLICATE_OVERRIDE,
    },
)
IDENTITY_STATUS_IN = obj(
    ["status"],
    {
        "status": {"type": "string", "enum": list(vigilance.STATUSES)},
        "identity_evidence": IDENTITY_EVIDENCE,
    },
)
IDENTITY_HISTORY = schema_of(shapes.IdentityHistoryOut)
DOSSIER_PATCH = obj(
    [],
    {
        "status": {"type": "string", "enum": ["open", "closed", "archived"]},
        "status_reason": {"type": "string", "minLength": 1, "maxLength": 500},
        "consent_informed": {"type": "boolean"},
        "consent_share_outside": {"type": "boolean"},
        "opposition": {"type": "boolean"},
        # How the consent (or the opposition) was collected: kept, sealed, with the change.
        "consent_note": {"type": "string", "minLength": 1, "maxLength": 500},
    },
)
CONSENT_HISTORY = schema_of(shapes.ConsentHistoryOut)
MEMBER = schema_of(shapes.MemberOut)
DOSSIER = schema_of(shapes.DossierOut)
DOSSIER_SUMMARY = schema_of(shapes.DossierSummaryOut)
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
    {
        "user_id": USER_ID,
        "role": ROLE,
        "coordinator": {"type": "boolean"},
        "until": DATETIME,
        "attested": {"type": "boolean"},
    },
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
DOCUMENT = schema_of(shapes.DocumentOut)
CORRECTION_IN = obj(["text"], {"text": TEXT})
NOTE = schema_of(shapes.NoteOut)
NOTES = obj(["notes"], {"notes": {"type": "array", "items": NOTE}})
# A document attached to a note, sent as JSON (base64) or as multipart/form-data ("file").
DOCUMENT_IN = obj(
    ["name", "data"],
    {
        "name": SHORT,
        "media_type": {"type": "string", "maxLength": 100},
        "data": {"type": "string", "minLength": 1, "contentEncoding": "base64"},
    },
)
TASK_IN = obj(["title", "assignee"], {"title": SHORT, "assignee": USER_ID, "due": DATE})
TASK_PATCH = obj(["status"], {"status": {"type": "string", "enum": ["todo", "done", "cancelled"]}})
TASK = schema_of(shapes.TaskOut)
TASKS = obj(["tasks"], {"tasks": {"type": "array", "items": TASK}})
AUDIT = obj(["entries"], {"entries": {"type": "array", "items": schema_of(shapes.AuditEntryOut)}})
DELEGATION_IN = obj(["to_user", "until"], {"to_user": USER_ID, "until": DATETIME})
DELEGATION = schema_of(shapes.DelegationOut)
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
            "enum": list(STRUCTURE_KINDS),
        },
    },
)
STRUCTURE = schema_of(shapes.StructureOut)
STAFF_IN = obj(
    ["user_id"],
    {"user_id": USER_ID, "role": {"type": "string", "enum": list(STAFF_ROLES)}},
)
OK = obj(["ok"], {"ok": {"type": "boolean"}})
MERGE_IN = obj(
    ["other_dossier_id", "reason"],
    {
        "other_dossier_id": {"type": "string", "minLength": 1, "maxLength": 32},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
    },
)
MERGE = obj(
    ["kept", "merged", "moved"],
    {
        "kept": {"type": "string"},
        "merged": {"type": "string"},
        "moved": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
)
PATIENT_COPY = obj(
    ["pdf_base64", "bundle"],
    {"pdf_base64": {"type": "string"}, "bundle": {"type": "object"}},
)
LEGAL_HOLD_IN = obj(["legal_hold"], {"legal_hold": {"type": "boolean"}})
LEGAL_HOLD = obj(
    ["dossier_id", "legal_hold"],
    {"dossier_id": {"type": "string"}, "legal_hold": {"type": "boolean"}},
)
RETENTION_STEP = schema_of(shapes.RetentionStepOut)
RETENTION = obj(
    ["dry_run", "steps"],
    {"dry_run": {"type": "boolean"}, "steps": {"type": "array", "items": RETENTION_STEP}},
)
AUDIENCE = {"type": "string", "enum": sorted(ROOM_AUDIENCES)}
ROOM_IN = obj(["label"], {"label": {**SHORT, "maxLength": 120}, "audience": AUDIENCE})
ROOM = schema_of(shapes.RoomOut)
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
ME = schema_of(shapes.MeOut)

LOOSE = {"type": "object", "additionalProperties": True}
PATHWAYS = obj(["pathways"], {"pathways": {"type": "array", "items": schema_of(shapes.PathwayOut)}})
FORM_IN = obj(["answers"], {"answers": {"type": "object", "maxProperties": 100}})
FORM = schema_of(shapes.FormOut)
FORMS = obj(["forms"], {"forms": {"type": "array", "items": FORM}})
DRAFT = schema_of(shapes.DraftOut)
PEOPLE = schema_of(shapes.People)
TIMELINE_ENTRY = schema_of(shapes.TimelineEntryOut)
TIMELINE = obj(
    ["entries", "people"],
    {"entries": {"type": "array", "items": TIMELINE_ENTRY}, "people": PEOPLE},
)
SEARCH_RESULT = schema_of(shapes.SearchResultOut)
SEARCH = obj(["results"], {"results": {"type": "array", "items": SEARCH_RESULT}})
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
            # "who": a circle member's Matrix id (printed with their name) or a structure.
            "items": obj(["action", "who"], {"action": SHORT, "who": SHORT, "when": DATE}),
        },
        "unmet_goals": {"type": "array", "items": SHORT, "maxItems": 50},
        "expectations": {"type": "string", "maxLength": 5000},
    },
)
PPCS = schema_of(shapes.PpcsOut)
PDF = {"type": "string", "format": "binary"}
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
APPOINTMENT = schema_of(shapes.AppointmentOut)
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
ALERT = schema_of(shapes.AlertOut)
ALERTS = obj(["alerts"], {"alerts": {"type": "array", "items": ALERT}})
MAIL_IN = obj(
    ["to", "subject", "text"],
    {
        "to": {"type": "string", "minLength": 3, "maxLength": 254},
        "subject": SHORT,
        "text": TEXT,
    },
)
WORKLIST = obj(
    ["tasks", "alerts", "invitations", "counts"],
    {
        "tasks": {"type": "array", "items": {"type": "object"}},
        "alerts": {"type": "array", "items": {"type": "object"}},
        "invitations": {"type": "array", "items": {"type": "object"}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    extra=True,
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

NULLABLE_STRING = {"type": "string", "nullable": True}
DIRECTORY_RESULT = obj(
    ["national_id", "display_name", "profession", "activities", "has_account"],
    {
        "national_id": {"type": "string"},
        "rpps": NULLABLE_STRING,
        "adeli": NULLABLE_STRING,
        "display_name": {"type": "string"},
        "last_name": {"type": "string"},
        "first_name": {"type": "string"},
        "profession": {"type": "string"},
        "profession_code": {"type": "string"},
        "skills": {"type": "array", "items": {"type": "string"}},
        "activities": {"type": "array", "items": LOOSE},
        "mssante": {"type": "array", "items": {"type": "string"}},
        "has_account": {"type": "boolean"},
        "user_id": NULLABLE_STRING,
    },
)
DIRECTORY_PAGE = obj(
    ["page", "size", "has_more", "count", "count_exact", "results"],
    {
        "page": {"type": "integer", "minimum": 1},
        "size": {"type": "integer", "minimum": 1},
        "has_more": {"type": "boolean"},
        # Matches counted up to 2000 only: count_exact false reads "plus de {count}" (2000,
        # or, for a broad search read in name order without a count, this page's last).
        "count": {"type": "integer", "minimum": 0},
        "count_exact": {"type": "boolean"},
        "results": {"type": "array", "items": DIRECTORY_RESULT},
    },
)

# -- resource teams ------------------------------------------------------------------------
TEAM_MEMBER_IN = obj(
    ["user_id"],
    {
        "user_id": USER_ID,
        "role": {"type": "string", "maxLength": 80},
        "coordinator": {"type": "boolean"},
    },
)
ROTA_SLOT = {"type": "object", "additionalProperties": True}
ROTA = {
    "type": "object",
    "properties": {
        "weekly": {"type": "array", "items": ROTA_SLOT, "maxItems": 500},
        "exceptions": {"type": "array", "items": ROTA_SLOT, "maxItems": 2000},
    },
}
TEAM_IN = obj(
    ["slug", "name", "level", "members"],
    {
        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"},
        "name": SHORT,
        "level": {"type": "string", "enum": ["regionale", "departementale"]},
        "members": {"type": "array", "items": TEAM_MEMBER_IN, "minItems": 1, "maxItems": 200},
        "pathways": {"type": "array", "items": PATHWAY},
        "expertise": {"type": "string", "maxLength": 200},
        "territory": {"type": "string", "maxLength": 200},
        "structure_id": {"type": "string", "maxLength": 32},
        "structure_account": USER_ID,
        "response_seconds": {"type": "integer", "minimum": 1, "maximum": 30 * 86400},
        "exit_delay_seconds": {"type": "integer", "minimum": 0, "maximum": 365 * 86400},
        "rota": ROTA,
    },
)
ROTA_IN = obj(["rota"], {"rota": ROTA})
TEAM = {
    "type": "object",
    "required": ["slug", "name", "address", "level"],
    "additionalProperties": True,
}
TEAMS = obj(["teams"], {"teams": {"type": "array", "items": TEAM}})
SOLICITATION_IN = obj(
    ["team", "reason"],
    {
        "team": {"type": "string", "minLength": 1, "maxLength": 40},
        "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
        "kind": {"type": "string", "enum": ["avis", "prise_en_charge"]},
        "attested": {"type": "boolean"},
    },
)
SOLICITATION = {
    "type": "object",
    "required": ["id", "team", "status"],
    "additionalProperties": True,
}
SOLICITATIONS = obj(["solicitations"], {"solicitations": {"type": "array", "items": SOLICITATION}})
REPORT_IN = obj(
    ["question", "elements", "advice"],
    {"question": TEXT, "elements": TEXT, "advice": TEXT},
)

# -- favourites ----------------------------------------------------------------------------
FAVOURITE_ROLE = {"type": "string", "minLength": 1, "maxLength": 12}
FAVOURITE_PERSON_IN = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user_id": USER_ID,
        "rpps": {"type": "string", "minLength": 1, "maxLength": 20},
        "role": FAVOURITE_ROLE,
    },
    "oneOf": [{"required": ["user_id"]}, {"required": ["rpps"]}],
}
FAVOURITES_IN = obj(
    ["name"],
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 80},
        "members": {"type": "array", "items": FAVOURITE_PERSON_IN, "maxItems": 50},
    },
)
FAVOURITES_RENAME_IN = obj(["name"], {"name": {"type": "string", "minLength": 1, "maxLength": 80}})
FAVOURITE_MEMBERS_IN = obj(
    ["members"],
    {"members": {"type": "array", "items": FAVOURITE_PERSON_IN, "minItems": 1, "maxItems": 50}},
)
FAVOURITE_MEMBER = obj(
    ["display_name", "profession", "has_account"],
    {
        "user_id": NULLABLE_STRING,
        "rpps": NULLABLE_STRING,
        "display_name": NULLABLE_STRING,
        "profession": NULLABLE_STRING,
        "role": NULLABLE_STRING,
        "structures": {"type": "array", "items": {"type": "string"}},
        "has_account": {"type": "boolean"},
    },
)
FAVOURITES = obj(
    ["id", "name", "members"],
    {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "created_at": {"type": "string"},
        "members": {"type": "array", "items": FAVOURITE_MEMBER},
    },
)
FAVOURITES_LIST = obj(["groups"], {"groups": {"type": "array", "items": FAVOURITES}})
FAVOURITES_INVITE_IN = obj([], {"role": FAVOURITE_ROLE, "attested": {"type": "boolean"}})
FAVOURITES_INVITED = obj(
    ["group", "results", "counts"],
    {
        "group": {"type": "string"},
        "dossier_id": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
)
FAVOURITES_DELETED = obj(["ok"], {"ok": {"type": "boolean"}, "name": {"type": "string"}})
