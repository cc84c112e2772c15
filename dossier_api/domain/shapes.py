"""What the dossier service's answers hold, written once. Each serializer of the domain
returns one of these ``TypedDict`` (mypy checks every key and type it writes), and the HTTP
layer's JSON schemas are derived from them (``maillon.shared.json_shapes.schema_of``): the
answer and the OpenAPI document cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict

from dossier_api.domain.models import STAFF_ROLES, STRUCTURE_KINDS
from maillon.shared.circle import ROLES, ROOM_AUDIENCES, USER_ID_PATTERN
from maillon.shared.json_shapes import Date, DateTime, Schema

UserId = Annotated[str, Schema(pattern=USER_ID_PATTERN, max_length=255)]
Role = Annotated[str, Schema(enum=tuple(sorted(ROLES)))]
Audience = Annotated[str, Schema(enum=tuple(sorted(ROOM_AUDIENCES)))]


class StructureOut(TypedDict):
    id: str
    name: str
    kind: Annotated[str, Schema(enum=STRUCTURE_KINDS)]
    slug: str | None
    address: Annotated[str, Schema(description="son adresse Matrix (@structure.…)")] | None
    account: Annotated[str, Schema(description="le compte Matrix de la structure")] | None
    mssante: Annotated[str, Schema(description="son adresse MSSanté")] | None


class ConsentState(TypedDict):
    informed: bool
    share_outside: bool
    opposition: bool


class DossierOut(TypedDict):
    id: str
    reference: Annotated[str, Schema(description="la référence du dossier montrée aux personnes")]
    pathway: str
    pathway_version: int
    structure_id: str | None
    status: Annotated[str, Schema(enum=("open", "closed", "archived"))]
    status_reason: str | None
    referent: str
    opened_at: DateTime
    closed_at: DateTime | None
    identity: dict[str, Any]
    identity_status: str
    consent: ConsentState
    mail_address: str
    room_id: str | None
    access: str


class MemberOut(TypedDict):
    user_id: UserId
    display_name: str | None
    profession: str | None
    role: Role
    coordinator: bool
    since: DateTime
    until: DateTime | None
    added_by: str
    removed_by: str | None
    removed_at: DateTime | None
    active: bool


class TaskOut(TypedDict):
    id: str
    title: str
    assignee: str
    due: Annotated[str, Schema(format="date")] | None
    status: Annotated[str, Schema(enum=("todo", "done", "cancelled"))]
    created_by: str
    done_by: str | None
    done_at: DateTime | None


class DelegationOut(TypedDict):
    id: int
    from_user: str
    to_user: str
    until: DateTime


class RoomOut(TypedDict):
    key: str
    kind: Annotated[str, Schema(enum=("main", "side"))]
    label: str
    audience: Audience
    room_id: str | None
    created_by: UserId
    created_at: DateTime


class AppointmentOut(TypedDict):
    id: str
    dossier_id: str
    title: str
    place: str | None
    start: DateTime
    end: DateTime
    participants: list[str]
    created_by: str
    cancelled: bool


class AlertOut(TypedDict):
    id: str
    author: str
    created_at: DateTime
    recipients: list[str]
    text: str


class DocumentOut(TypedDict):
    id: str
    note_id: str
    name: str
    media_type: str
    size: int
    sha256: str | None
    uploaded_by: UserId
    uploaded_at: DateTime
    url: str


class NoteOut(TypedDict):
    id: str
    author: str
    created_at: DateTime
    urgent: bool
    text: str
    reply_to: str | None
    corrects: str | None
    corrected_by: str | None
    visible_to_roles: list[str] | None
    attachments: list[dict[str, Any]]
    documents: list[DocumentOut]


class FormOut(TypedDict):
    id: str
    form_id: str
    form_version: int
    author: str
    created_at: DateTime
    answers: dict[str, Any]


class DraftOut(TypedDict):
    form_id: str
    form_version: int
    author: str
    updated_at: DateTime
    answers: dict[str, Any]
    problems: Annotated[list[str], Schema(description="ce qu'un envoi refuserait")]


class DossierSummaryOut(TypedDict):
    """A dossier in a list ("Mes dossiers", ``GET /v1/dossiers``)."""

    id: str
    pathway: str
    status: str
    display_name: str
    access: str
    reference: str
    structure_id: str | None
    identity_status: str
    birth_date: str | None
    opened_at: DateTime
    room_id: str | None
    unread_urgent: Annotated[bool, Schema(description="notes urgentes non lues")]


class AuditEntryOut(TypedDict):
    at: DateTime
    actor: str
    basis: str
    on_behalf_of: str | None
    action: str
    component: str
    allowed: bool
    detail: str | None


class TimelineEntryOut(TypedDict):
    at: DateTime
    kind: str
    action: str
    title: str
    actor: str | None
    subject: str | None
    text: str | None
    ref: str | None
    urgent: bool


class SearchResultOut(TypedDict):
    kind: Annotated[str, Schema(enum=("note", "form", "task"))]
    id: str
    at: DateTime
    title: str
    excerpt: str


class PersonOut(TypedDict):
    """A person as answers name them (never a bare Matrix id)."""

    display_name: str | None
    profession: str | None


People = dict[str, PersonOut]


class CheckedDocumentOut(TypedDict):
    kind: str
    checked_by: str | None
    checked_at: DateTime | None


class IdentityEventOut(TypedDict):
    kind: Annotated[str, Schema(enum=("status", "duplicate_override"))]
    at: DateTime
    actor: str
    from_status: str | None
    to_status: str | None
    document: CheckedDocumentOut | None
    ins_source: str | None
    candidates: list[str]
    reason: str | None


class IdentityHistoryOut(TypedDict):
    identity_status: str
    history: list[IdentityEventOut]


class ConsentEventOut(TypedDict):
    at: DateTime
    actor: str
    field: Annotated[str, Schema(enum=("informed", "share_outside", "opposition", "attestation"))]
    value: bool
    note: str | None


class ConsentHistoryOut(TypedDict):
    consent: ConsentState
    history: list[ConsentEventOut]


class PpcsProblemOut(TypedDict):
    problem: str
    goals: list[str]


class PpcsActionOut(TypedDict):
    action: str
    who: Annotated[str, Schema(description="un membre du cercle (identifiant) ou une structure")]
    when: NotRequired[Date]


class PpcsOut(TypedDict):
    """The personalised care plan in force (plan personnalisé de coordination en santé)."""

    version: int
    author: str
    updated_at: DateTime
    problems: list[PpcsProblemOut]
    actions: list[PpcsActionOut]
    unmet_goals: NotRequired[list[str]]
    expectations: NotRequired[str]
    people: People


class RetentionStepOut(TypedDict):
    dossier_id: str
    action: Annotated[str, Schema(enum=("archive", "purge", "hold"))]
    due: DateTime
    rows: dict[str, int]
    rooms: list[str]


class ProfessionalOut(TypedDict):
    display_name: str | None
    profession: str | None
    rpps: str | None
    adeli: str | None
    mssante: str | None


class MyStructureOut(TypedDict):
    id: str
    name: str
    role: Annotated[str, Schema(enum=STAFF_ROLES)]


class MeOut(TypedDict):
    user_id: UserId
    is_admin: bool
    professional: ProfessionalOut | None
    structures: list[MyStructureOut]


class FormFieldOut(TypedDict):
    id: str
    label: str
    type: str
    required: bool
    choices: list[str]
    help: str | None


class FormDefinitionOut(TypedDict):
    id: str
    version: int
    title: str
    fields: list[FormFieldOut]


class PathwayOut(TypedDict):
    id: str
    version: int
    name: str
    roles_allowed: list[Role]
    tasks_checklist: list[str]
    forms: list[FormDefinitionOut]
