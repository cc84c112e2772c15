"""The base of the dossier service: the domain's error (``ApiError``), the dates it accepts,
and ``ServiceCore``: access to a dossier and ``acting`` (check, act and audit in one
transaction), on which every operation of ``DossierService`` is written."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, overload

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dossier_api.domain.access import NONE, Access, Caller, decide
from dossier_api.domain.models import (
    AuditEntry,
    CircleMember,
    Delegation,
    Dossier,
    Professional,
    StructureStaff,
)
from maillon.shared.care_circle_config import from_homeserver_config, peer_list
from maillon.shared.clock import utcnow
from maillon.shared.settings import AttachmentSettings, Deployment


class ApiError(Exception):
    """A refusal: its HTTP status, code and French message; ``data``, more fields of the
    answer (e.g. the possible duplicates of an identity), never in the audit."""

    def __init__(
        self, status: int, errcode: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.data = data


@overload
def _iso(value: dt.datetime) -> str: ...
@overload
def _iso(value: None) -> None: ...
@overload
def _iso(value: dt.datetime | None) -> str | None: ...
def _iso(value: dt.datetime | None) -> str | None:
    """A moment as the API writes it (ISO 8601, seconds); None stays None."""
    if value is None:
        return None
    return value.isoformat(timespec="seconds")


# Dates a dossier can carry (birth dates aside): a wider range is a typing error, and
# the edges of the calendar break time-zone conversions and exports.
MIN_YEAR, MAX_YEAR = 1900, 2200


def _in_range(value: str, year: int, field: str | None) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        where = f" pour « {field} »" if field else ""
        raise ApiError(
            400,
            "M_INVALID_PARAM",
            f"date hors limites{where} : « {value} » (années {MIN_YEAR} à {MAX_YEAR})",
        )


def _parse_dt(value: str, field: str | None = None) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, "M_INVALID_PARAM", f"date et heure illisibles : « {value} »") from exc
    _in_range(value, parsed.year, field)
    aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC)


def _parse_date(value: str, field: str | None = None) -> dt.date:
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, "M_INVALID_PARAM", f"date illisible : « {value} »") from exc
    _in_range(value, parsed.year, field)
    return parsed


@dataclass
class Act:
    """One checked action in its transaction: the session, the caller's access, and what the
    audit row will say (``detail``, and the dossier when the action creates one)."""

    session: Session
    access: Access
    found: Dossier | None = None
    detail: str | None = None
    dossier_id: str | None = None

    @property
    def dossier(self) -> Dossier:
        assert self.found is not None, "an action on a dossier"
        return self.found


def audit_change(act: Act, before: object, after: object, what: str | None = None) -> None:
    """An administrative change's audit detail: what, before and after (JSON)."""
    act.detail = json.dumps(
        {"objet": what, "avant": before, "apres": after}, ensure_ascii=False, sort_keys=True
    )


def _refusal_detail(exc: ApiError) -> str:
    return f"{exc.status} {exc.errcode} : {exc.message}"[:500]


ARCHIVED_READ_ONLY = (
    "Ce dossier est archivé (durée de conservation active échue) : il est en lecture seule."
)


def archived_rule(access: Access, right: str | None) -> None:
    """An archived dossier is read-only, and only its coordinators (and administrators)
    still find it (``dossier_api.domain.retention``)."""
    if right in ("write", "manage"):
        raise ApiError(409, "M_ARCHIVED", ARCHIVED_READ_ONLY)
    if not (access.manage or access.basis == "admin"):
        raise ApiError(
            403,
            "M_FORBIDDEN",
            "Ce dossier est archivé : seuls ses coordinateurs peuvent encore le consulter.",
        )


class ServiceCore:
    """What every dossier operation stands on: built from the deployment, so every caller
    (API, bot) gets the same checks (the mail domain, our homeserver and its peers); the
    caller's access to a dossier, and ``acting``, which checks a right, acts and audits in
    one transaction. ``DossierService`` and its operation mixins derive from it."""

    def __init__(self, engine: Engine, deployment: Deployment, component: str = "api") -> None:
        settings = deployment.settings
        self._engine = engine
        self._deployment = deployment
        self._mail_domain = settings.mail_domain
        self._component = component
        self._server_name = settings.server_name
        # The clock of the operations that follow time (resource teams' rota, escalation):
        # tests put another one in its place.
        self.clock: Callable[[], dt.datetime] = utcnow
        # The care-circle module's decision log, loaded into the audit when it is read.
        self._decision_log = deployment.path("audit")
        self._attachment_settings = settings.attachments
        # The federation allow list, the one the care-circle module reads (its file
        # written by the console), looked at again at most every few seconds.
        self._peers = peer_list(
            from_homeserver_config(str(deployment.path(settings.homeserver.config_file)))
        )

    @property
    def _allowed_servers(self) -> frozenset[str]:
        """Our homeserver and its peers: nobody else can sit in a patient room (a peer
        just added counts once every worker's module follows it too)."""
        return frozenset({self._server_name, *self._peers.settled()})

    @property
    def attachment_settings(self) -> AttachmentSettings:
        """Size limit and media types of the documents attached to notes."""
        return self._attachment_settings

    @contextmanager
    def tx(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- access and audit ----------------------------------------------------------------

    def audit_entry(
        self,
        session: Session,
        dossier_id: str | None,
        access: Access,
        action: str,
        allowed: bool,
        detail: str | None = None,
    ) -> None:
        session.add(
            AuditEntry(
                dossier_id=dossier_id if dossier_id is None or len(dossier_id) <= 32 else None,
                actor=access.user_id,
                on_behalf_of=access.on_behalf_of,
                basis=access.basis,
                action=action[:60],
                component=self._component,
                allowed=allowed,
                detail=detail,
            )
        )

    def audit_impersonation(self, user_id: str, dossier_id: str | None, request: str) -> None:
        """A request refused because its token was issued to a server administrator logging
        in as ``user_id``: recorded (in the dossier's audit when the path names one)."""
        access = Access(user_id, "admin_login_as")
        known = dossier_id if dossier_id and len(dossier_id) <= 32 else None
        with self.tx() as session:
            detail = f"jeton « se connecter en tant que » d'un administrateur : {request}"
            self.audit_entry(session, known, access, "impersonation", False, detail)

    def _access(self, session: Session, caller: Caller, dossier: Dossier) -> Access:
        return self._access_to(session, caller, dossier.id, dossier.structure_id)

    def _access_to(
        self, session: Session, caller: Caller, dossier_id: str, structure_id: str | None
    ) -> Access:
        """The caller's access to a dossier known by its id and structure (nothing of the
        dossier is loaded: no identity is opened)."""
        now = self.clock()
        circle = session.scalars(
            select(CircleMember).where(CircleMember.dossier_id == dossier_id)
        ).all()
        staff = (
            structure_id is not None
            and session.get(StructureStaff, (structure_id, caller.user_id)) is not None
        )
        delegations = session.scalars(
            select(Delegation).where(Delegation.to_user == caller.user_id)
        ).all()
        return decide(caller.user_id, circle, now, staff, delegations, caller.is_admin)

    def _dossier(self, session: Session, dossier_id: str) -> Dossier:
        dossier = session.get(Dossier, dossier_id)
        if dossier is None:
            raise ApiError(404, "M_NOT_FOUND", "dossier inconnu")
        return dossier

    @staticmethod
    def _refused(access: Access) -> ApiError:
        if access.basis == NONE:
            return ApiError(
                403, "M_FORBIDDEN", "Vous ne faites pas partie du cercle de soins de ce dossier."
            )
        return ApiError(
            403,
            "M_FORBIDDEN",
            f"Votre accès à ce dossier ({access.basis}) ne permet pas cette action.",
        )

    @contextmanager
    def acting(
        self,
        caller: Caller,
        action: str,
        dossier_id: str | None = None,
        right: str | None = None,
    ) -> Iterator[Act]:
        """Check the right, act and audit in one transaction, with one audit row saying what
        happened: allowed and done, or refused with its status and reason (then nothing of
        the act is kept). Without ``dossier_id``, an action on the caller's own account."""
        with Session(self._engine, expire_on_commit=False) as session:
            access = Access(caller.user_id, NONE if dossier_id else "account")
            act: Act | None = None
            try:
                with session.begin():
                    found = None
                    if dossier_id is not None:
                        found = self._dossier(session, dossier_id)
                        access = self._access(session, caller, found)
                        if right is not None and not getattr(access, right):
                            raise self._refused(access)
                        if found.status == "archived":
                            archived_rule(access, right)
                    act = Act(session, access, found, dossier_id=dossier_id)
                    yield act
                    self.audit_entry(session, act.dossier_id, access, action, True, act.detail)
            except ApiError as exc:
                # Refused in the dossier the act found (a solicitation names its own), if any.
                where = act.dossier_id if act is not None else dossier_id
                with session.begin():
                    self.audit_entry(session, where, access, action, False, _refusal_detail(exc))
                raise

    def check(self, caller: Caller, dossier_id: str, action: str, right: str) -> Dossier:
        """A right checked and audited on its own, for an action that writes nothing in the
        dossier (e.g. the bot opening a form dialogue)."""
        with self.acting(caller, action, dossier_id, right) as act:
            return act.dossier

    def record_refusal(
        self, caller: Caller, action: str, dossier_id: str | None, exc: ApiError
    ) -> None:
        """Audit a request refused before it reached an operation (e.g. a write with a
        widget's OpenID token)."""
        with self.tx() as session:
            self.audit_entry(
                session,
                dossier_id,
                Access(caller.user_id, NONE),
                action,
                False,
                _refusal_detail(exc),
            )

    def readable(self, session: Session, caller: Caller, dossier_ids: set[str]) -> set[str]:
        """Which of these dossiers the caller may read now (no audit: the caller's action
        writes its own row)."""
        if not dossier_ids:
            return set()
        now = self.clock()
        wanted = sorted(dossier_ids)
        # In bulk (a worklist names hundreds of dossiers): the same decision as ``_access``.
        structures = dict(
            session.execute(
                select(Dossier.id, Dossier.structure_id).where(Dossier.id.in_(wanted))
            ).all()
        )
        delegations = session.scalars(
            select(Delegation).where(Delegation.to_user == caller.user_id)
        ).all()
        # Only the entries that can ground the access: the caller's and their delegators'.
        people = {caller.user_id, *(d.from_user for d in delegations)}
        circles: dict[str, list[CircleMember]] = {i: [] for i in structures}
        for member in session.scalars(
            select(CircleMember).where(
                CircleMember.dossier_id.in_(list(structures)),
                CircleMember.user_id.in_(sorted(people)),
            )
        ):
            circles[member.dossier_id].append(member)
        staff_of = set(
            session.scalars(
                select(StructureStaff.structure_id).where(StructureStaff.user_id == caller.user_id)
            )
        )
        return {
            dossier_id
            for dossier_id, structure_id in structures.items()
            if decide(
                caller.user_id,
                circles[dossier_id],
                now,
                structure_id is not None and structure_id in staff_of,
                delegations,
                caller.is_admin,
            ).read
        }

    def _is_professional(self, session: Session, user_id: str) -> bool:
        return session.get(Professional, user_id) is not None
