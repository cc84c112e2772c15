"""What the dossier service's answers hold, written once. Each serializer of the domain
returns one of these ``TypedDict`` (mypy checks every key and type it writes), and the HTTP
layer's JSON schemas are derived from them (``maillon.shared.json_shapes.schema_of``): the
answer and the OpenAPI document cannot drift apart."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, NotRequired, TypedDict

from dossier_api.domain.ins import (
    BIRTHPLACE_PATTERN,
    IDENTITY_STATUSES,
    INS_MATRICULE_PATTERN,
    INS_OIDS,
    SEXES,
)
from dossier_api.domain.models import (
    ENROLMENT_MAIL,
    ENROLMENT_STATUSES,
    FAVOURITE_OUTCOMES,
    KINDS,
    LEVELS,
    MEMBERSHIPS,
    STAFF_ROLES,
    STATUSES,
    STEPS,
    STRUCTURE_KINDS,
)
from maillon.shared.circle import ROLES, ROOM_AUDIENCES, USER_ID_PATTERN
from maillon.shared.dates_fr import DAYS, TIME_OF_DAY
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


class IdentityOut(TypedDict):
    """The person's identity as it was given (its status is ``identity_status``)."""

    birth_name: str
    first_names: str
    used_name: NotRequired[str]
    sex: Annotated[str, Schema(enum=SEXES)]
    birth_date: Date
    birthplace_insee: NotRequired[Annotated[str, Schema(pattern=BIRTHPLACE_PATTERN)]]
    ins_matricule: NotRequired[Annotated[str, Schema(pattern=INS_MATRICULE_PATTERN)]]
    ins_oid: NotRequired[Annotated[str, Schema(enum=INS_OIDS)]]
    contact: NotRequired[str]


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
    identity: IdentityOut
    identity_status: Annotated[str, Schema(enum=IDENTITY_STATUSES)]
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


class NoteAttachmentOut(TypedDict):
    """A file of the room a note points to (its Matrix content address)."""

    name: str
    media_type: str
    size: Annotated[int, Schema(minimum=0)]
    mxc: NotRequired[str]


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
    attachments: list[NoteAttachmentOut]
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


class PersonRefOut(TypedDict):
    """A person an answer names: their account, with their name and profession from the
    directory (None when it does not know them)."""

    user_id: UserId
    display_name: str | None
    profession: str | None


# -- resource teams and their solicitations (``dossier_api.domain.teams``) -----------------


class RotaSlotOut(TypedDict):
    """A line of a rota as it was saved (``teams.Slot``: the keys left out take its
    defaults: 00:00 to 24:00, level 1)."""

    members: list[UserId]
    start: NotRequired[Annotated[str, Schema(pattern=TIME_OF_DAY)]]
    end: NotRequired[Annotated[str, Schema(pattern=TIME_OF_DAY)]]
    day: NotRequired[
        Annotated[str, Schema(enum=("", *DAYS), description="jour (lignes de la semaine)")]
    ]
    date: NotRequired[
        Annotated[
            str, Schema(pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2})?$", description="date (exceptions)")
        ]
    ]
    level: NotRequired[Annotated[int, Schema(description="niveau d'escalade (1 à 9)")]]


class RotaOut(TypedDict):
    weekly: NotRequired[list[RotaSlotOut]]
    exceptions: NotRequired[list[RotaSlotOut]]


class TeamMemberOut(TypedDict):
    user_id: UserId
    role: Annotated[str, Schema(description="son rôle dans l'équipe")]
    coordinator: bool
    display_name: str | None
    profession: str | None


class TeamOut(TypedDict):
    slug: str
    name: str
    address: Annotated[str, Schema(description="l'adresse Matrix de l'équipe")]
    level: Annotated[str, Schema(enum=tuple(LEVELS))]
    level_label: str
    structure: Annotated[str, Schema(description="le nom de sa structure")] | None
    structure_id: str | None
    expertise: str
    pathways: list[str]
    territory: str
    response_seconds: int
    exit_delay_seconds: int
    structure_account: UserId | None
    members: list[TeamMemberOut]
    rota: Annotated[RotaOut, Schema(description="aucun : tous les membres sont de garde")] | None


class DutyLevelOut(TypedDict):
    level: int
    people: list[PersonRefOut]


class TeamBoardOut(TeamOut):
    """A team as the console shows it to whom keeps it: on duty now, its chain now."""

    on_duty: list[DutyLevelOut]
    chain: list[list[PersonRefOut]]
    may_edit: bool
    now: DateTime


class SolicitationStepOut(TypedDict):
    at: DateTime
    status: Annotated[str, Schema(enum=tuple(STEPS))]
    label: str
    actor: str | None


class ReportOut(TypedDict):
    """An avis's report (compte rendu d'avis)."""

    question: str
    elements: str
    advice: str
    author: UserId
    date: DateTime


class SolicitationOut(TypedDict):
    id: int
    team: Annotated[str, Schema(description="l'équipe, la structure ou l'adresse visée")] | None
    team_name: str | None
    structure_id: str | None
    remote_team: Annotated[str, Schema(description="l'équipe d'une région partenaire")] | None
    room_id: Annotated[str, Schema(description="la salle d'une région partenaire")] | None
    dossier_id: str | None
    pathway: str | None
    pathway_id: str | None
    pathway_version: int | None
    kind: Annotated[str, Schema(enum=tuple(KINDS))]
    status: Annotated[str, Schema(enum=tuple(STATUSES))]
    status_label: str
    reason: str
    attested: bool
    requester: PersonRefOut
    accepted_by: PersonRefOut | None
    step: int
    notified: list[UserId]
    deadline: DateTime
    created_at: DateTime
    events: list[SolicitationStepOut]
    report: ReportOut | None


# -- the directory (``dossier_api.domain.directory``) ---------------------------------------


class DirectoryActivityOut(TypedDict):
    """Where an entry practises (only what the directory says)."""

    structure: NotRequired[str]
    mode: NotRequired[str]
    town: NotRequired[str]
    postal_code: NotRequired[str]
    departement: NotRequired[str]


class DirectoryResultOut(TypedDict):
    national_id: str
    rpps: str | None
    adeli: str | None
    display_name: str
    last_name: str
    first_name: str
    profession: str
    profession_code: str
    skills: list[str]
    activities: list[DirectoryActivityOut]
    mssante: list[str]
    has_account: bool
    user_id: UserId | None


class DirectoryPageOut(TypedDict):
    page: Annotated[int, Schema(minimum=1)]
    size: Annotated[int, Schema(minimum=1)]
    has_more: bool
    count: Annotated[int, Schema(description="correspondances, comptées jusqu'à 2000", minimum=0)]
    # False reads "plus de {count}": 2000, or, for a broad search read in name order without
    # a count, the results up to this page.
    count_exact: Annotated[bool, Schema(description="faux : « plus de {count} »")]
    results: list[DirectoryResultOut]


# -- favourites (``dossier_api.domain.favourites``) -----------------------------------------


class FavouriteMemberOut(TypedDict):
    user_id: UserId | None
    rpps: str | None
    display_name: str | None
    profession: str | None
    role: Role | None
    structures: Annotated[list[str], Schema(description="ses structures, par leur nom")]
    has_account: bool


class FavouriteGroupOut(TypedDict):
    id: int
    name: str
    created_at: DateTime
    members: list[FavouriteMemberOut]


class FavouriteGroupsOut(TypedDict):
    groups: list[FavouriteGroupOut]


class FavouriteDeletedOut(TypedDict):
    ok: bool
    name: str


class FavouriteInvitedOut(TypedDict):
    """What became of one person of the group invited to the circle."""

    user_id: UserId | None
    rpps: str | None
    display_name: str | None
    profession: str | None
    role: Annotated[str, Schema(description="le rôle demandé (refusé s'il n'est pas admis)")]
    structures: Annotated[list[str], Schema(description="ses structures, par leur nom")]
    has_account: bool
    outcome: Annotated[str, Schema(enum=tuple(FAVOURITE_OUTCOMES))]
    label: str
    message: Annotated[str, Schema(description="le motif d'un refus")] | None


class FavouritesInvitedOut(TypedDict):
    group: str
    dossier_id: str
    results: list[FavouriteInvitedOut]
    counts: dict[str, int]


# -- invitations of professionals without an account (``dossier_api.domain.enrolment``) ----


class InvitationOut(TypedDict):
    id: str
    rpps: str
    display_name: str
    profession: str
    role: Role | None
    coordinator: bool
    mailbox: Annotated[str, Schema(description="l'adresse MSSanté de l'invitation")] | None
    invited_by: UserId | None
    created_at: DateTime
    expires_at: DateTime
    status: Annotated[str, Schema(enum=ENROLMENT_STATUSES)]
    mail: Annotated[str, Schema(enum=ENROLMENT_MAIL)]
    user_id: UserId | None


# -- lists and other answers of the API (``dossier_api.http``) ------------------------------

Count = Annotated[int, Schema(minimum=0)]


class DossierListOut(TypedDict):
    dossiers: list[DossierSummaryOut]
    total: Annotated[int, Schema(description="dossiers correspondants, toutes pages")]


class CircleOut(TypedDict):
    members: list[MemberOut]


class NotesOut(TypedDict):
    notes: list[NoteOut]


class TasksOut(TypedDict):
    tasks: list[TaskOut]


class AuditOut(TypedDict):
    entries: list[AuditEntryOut]


class DelegationsOut(TypedDict):
    given: list[DelegationOut]
    received: list[DelegationOut]


class OkOut(TypedDict):
    ok: bool


class MergeOut(TypedDict):
    kept: str
    merged: str
    moved: Annotated[dict[str, int], Schema(description="lignes déplacées, par table")]


class PatientCopyOut(TypedDict):
    pdf_base64: str
    bundle: Annotated[dict[str, Any], Schema(description="Bundle FHIR")]


class LegalHoldOut(TypedDict):
    dossier_id: str
    legal_hold: bool


class RetentionOut(TypedDict):
    dry_run: bool
    steps: list[RetentionStepOut]


class RoomsOut(TypedDict):
    rooms: list[RoomOut]


class MembershipEventOut(TypedDict):
    kind: Annotated[str, Schema(enum=MEMBERSHIPS)]
    user_id: str | None
    sender: str
    room_id: str
    at: DateTime


class ActivityOut(TypedDict):
    messages: Count
    last_message_at: DateTime | None
    history: list[MembershipEventOut]


class PathwaysOut(TypedDict):
    pathways: list[PathwayOut]


class FormsOut(TypedDict):
    forms: list[FormOut]


class TimelineOut(TypedDict):
    entries: list[TimelineEntryOut]
    people: People


class SearchOut(TypedDict):
    results: list[SearchResultOut]


class AppointmentsOut(TypedDict):
    appointments: list[AppointmentOut]


class AlertsOut(TypedDict):
    alerts: list[AlertOut]


class TeamsOut(TypedDict):
    teams: list[TeamOut]


class SolicitationsOut(TypedDict):
    solicitations: list[SolicitationOut]


class InvitationsOut(TypedDict):
    invitations: list[InvitationOut]


class WorkDossierOut(TypedDict):
    """The dossier an item of the worklist is about (its patient's name, its reference)."""

    dossier_id: str
    patient: str
    reference: str


class WorkTaskOut(WorkDossierOut):
    id: str
    title: str
    due: Date | None
    overdue: bool


class WorkAlertOut(WorkDossierOut):
    id: str
    author: str
    created_at: DateTime
    text: str


class WorkInvitationOut(WorkDossierOut):
    since: DateTime
    added_by: str


class WorkCountsOut(TypedDict):
    tasks: Count
    alerts: Count
    invitations: Count


class WorklistOut(TypedDict):
    """What I have to do: the first items of each list, and how many there are."""

    counts: WorkCountsOut
    tasks: list[WorkTaskOut]
    alerts: list[WorkAlertOut]
    invitations: list[WorkInvitationOut]


class HealthOut(TypedDict):
    status: Annotated[str, Schema(enum=("ok",))]
    store: str


# -- the console's data (``dossier_api.domain.administration``) -----------------------------
# Read by the console's pages, not answers of the JSON API: moments stay ``datetime`` (the
# pages write them in French), so these have no JSON schema.


class PathwayVersionRow(TypedDict):
    pathway_id: str
    version: int
    status: str
    author: str
    created_at: dt.datetime
    published_at: dt.datetime | None
    name: str


class PathwayDefinitionRow(PathwayVersionRow):
    definition: dict[str, Any]


class PathwaySummaryRow(TypedDict):
    id: str
    name: str
    versions: list[PathwayVersionRow]
    published: NotRequired[int]
    dossiers: dict[int, int]


class AuditRow(TypedDict):
    id: int
    at: dt.datetime
    dossier_id: str | None
    actor: str
    on_behalf_of: str | None
    basis: str
    action: str
    component: str
    allowed: bool
    detail: str | None


class AuditPage(TypedDict):
    """One page of the audit browser: its rows, how many match, who is named."""

    entries: list[AuditRow]
    total: int
    people: People
    components: list[str]
