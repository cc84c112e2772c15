"""Dashboards, raw extractions and monthly reports of the structures, pathways and region.
Each runs in ``acting`` (right checked, acted and audited in one transaction): a structure's
to its managers (``administration.manages_structure``), a pathway's and the region's to the
administrators; a refusal is a 403 with its audit row."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.administration import manages_structure
from dossier_api.domain.core import ApiError, ServiceCore
from dossier_api.domain.indicators import (
    Period,
    Scope,
    active_in,
    activity,
    compute,
    moment,
    pathway_indicators,
)
from dossier_api.domain.models import (
    REPORT_PDF,
    CircleMember,
    Dossier,
    ExtractionSettings,
    MonthlyReport,
    Structure,
    StructureStaff,
)
from dossier_api.domain.pathways import PATHWAYS
from maillon.shared.clock import utcnow
from maillon.shared.sealed import key_ring

# Columns of a raw extraction (French headers), in order. Identity columns only when the
# administrator allows them and the requester is entitled (staff of the structure).
ACTIVITY_COLUMNS = (
    "pseudonyme",
    "parcours",
    "statut",
    "ouvert_le",
    "clos_le",
    "statut_identite",
    "membres_cercle",
    "notes",
    "notes_urgentes",
    "taches_faites",
    "taches_en_retard",
    "messages",
    "courriels",
    "sollicitations",
    "sollicitations_acceptees",
)
IDENTITY_COLUMNS = ("nom", "prenoms", "date_naissance", "ins")
EXTRACTION_COLUMNS = ACTIVITY_COLUMNS + IDENTITY_COLUMNS
# Staff roles whose holders may extract identities (when the administrator allows them).
IDENTITY_ROLES = frozenset({"manager"})


@dataclass(frozen=True)
class Extraction:
    filename: str
    media_type: str
    content: bytes
    sha256: str
    pseudonymised: bool
    rows: int


def pseudonym(dossier_id: str) -> str:
    """A dossier's pseudonym in extractions: keyed (blind index), stable from one extraction
    to the next, neither its id nor the reference its room's name shows."""
    return key_ring().blind_index("extraction-pseudonym", dossier_id)[:16]


class DashboardService(ServiceCore):
    def _structure(self, session: Session, caller: Caller, structure_id: str) -> Structure:
        structure = session.get(Structure, structure_id) if len(structure_id) <= 32 else None
        if structure is None:
            raise ApiError(404, "M_NOT_FOUND", "structure inconnue")
        if not manages_structure(session, caller, structure_id):
            raise ApiError(
                403,
                "M_FORBIDDEN",
                "Seuls les responsables de cette structure et les administrateurs voient son "
                "tableau de bord.",
            )
        return structure

    @staticmethod
    def _admin_only(caller: Caller) -> None:
        if not caller.is_admin:
            raise ApiError(
                403,
                "M_FORBIDDEN",
                "Les tableaux de bord des parcours et de la région sont réservés aux "
                "administrateurs.",
            )

    @staticmethod
    def _staff_role(session: Session, caller: Caller, structure_id: str) -> str | None:
        staff = session.get(StructureStaff, (structure_id, caller.user_id))
        return staff.role if staff is not None else None

    def structure_dashboard(
        self, caller: Caller, structure_id: str, period: Period
    ) -> dict[str, Any]:
        with self.acting(caller, "dashboard.structure") as act:
            structure = self._structure(act.session, caller, structure_id)
            act.detail = f"structure {structure_id} · période {period.label}"
            scope = Scope(structure_id=structure_id)
            figures = compute(act.session, scope, period, utcnow())
            reports = act.session.execute(
                select(MonthlyReport.month, MonthlyReport.created_at)
                .where(MonthlyReport.structure_id == structure_id)
                .order_by(MonthlyReport.month.desc())
                .limit(24)
            ).all()
            return {
                "title": structure.name,
                "structure_id": structure_id,
                "indicators": figures,
                "pathway_indicators": pathway_indicators(figures),
                # An administrator outside the structure: aggregates leave it.
                "outside": self._staff_role(act.session, caller, structure_id) is None,
                "reports": [m for m, _ in reports],
            }

    def pathway_dashboard(self, caller: Caller, pathway_id: str, period: Period) -> dict[str, Any]:
        with self.acting(caller, "dashboard.pathway") as act:
            self._admin_only(caller)
            pathway = PATHWAYS.get(pathway_id)
            if pathway is None:
                raise ApiError(404, "M_NOT_FOUND", "parcours inconnu")
            act.detail = f"parcours {pathway_id} · période {period.label}"
            figures = compute(act.session, Scope(pathway=pathway_id), period, utcnow())
            return {
                "title": pathway.name,
                "structure_id": None,
                "indicators": figures,
                "pathway_indicators": pathway_indicators(figures, pathway_id),
                "outside": True,
                "reports": [],
            }

    def region_dashboard(self, caller: Caller, period: Period) -> dict[str, Any]:
        with self.acting(caller, "dashboard.region") as act:
            self._admin_only(caller)
            act.detail = f"région · période {period.label}"
            figures = compute(act.session, Scope(), period, utcnow())
            return {
                "title": "Région",
                "structure_id": None,
                "indicators": figures,
                "pathway_indicators": pathway_indicators(figures),
                "outside": True,
                "reports": [],
            }

    def dashboard_choices(self, caller: Caller) -> dict[str, Any]:
        """The dashboards the caller may open (no audit: names only)."""
        with self.tx() as session:
            if caller.is_admin:
                structures = session.execute(
                    select(Structure.id, Structure.name).order_by(Structure.name)
                ).all()
            else:
                structures = session.execute(
                    select(Structure.id, Structure.name)
                    .join(StructureStaff, StructureStaff.structure_id == Structure.id)
                    .where(
                        StructureStaff.user_id == caller.user_id,
                        StructureStaff.role == "manager",
                    )
                    .order_by(Structure.name)
                ).all()
        return {
            "structures": [{"id": i, "name": n} for i, n in structures],
            "pathways": sorted(PATHWAYS) if caller.is_admin else [],
            "region": caller.is_admin,
        }

    # -- raw extraction --------------------------------------------------------------

    def allowed_columns(self, session: Session, structure_id: str) -> tuple[str, ...]:
        row = session.get(ExtractionSettings, structure_id)
        if row is None:
            return ACTIVITY_COLUMNS
        return tuple(c for c in EXTRACTION_COLUMNS if c in row.columns)

    def extraction_columns(self, caller: Caller, structure_id: str) -> tuple[str, ...]:
        with self.tx() as session:
            self._structure(session, caller, structure_id)
            return self.allowed_columns(session, structure_id)

    def set_extraction_columns(
        self, caller: Caller, structure_id: str, columns: list[str]
    ) -> tuple[str, ...]:
        with self.acting(caller, "dashboard.extraction_columns") as act:
            if not caller.is_admin:
                raise ApiError(
                    403, "M_FORBIDDEN", "Seuls les administrateurs choisissent les colonnes."
                )
            self._structure(act.session, caller, structure_id)
            unknown = [c for c in columns if c not in EXTRACTION_COLUMNS]
            if unknown:
                raise ApiError(400, "M_INVALID_PARAM", f"colonnes inconnues : {', '.join(unknown)}")
            if "pseudonyme" not in columns:
                columns = ["pseudonyme", *columns]
            before = self.allowed_columns(act.session, structure_id)
            row = act.session.get(ExtractionSettings, structure_id)
            if row is None:
                row = ExtractionSettings(structure_id=structure_id, updated_by=caller.user_id)
                act.session.add(row)
            row.columns = [c for c in EXTRACTION_COLUMNS if c in columns]
            row.updated_by, row.updated_at = caller.user_id, utcnow()
            act.detail = (
                f"structure {structure_id} · avant : {','.join(before)} · après : "
                f"{','.join(row.columns)}"
            )
            return tuple(row.columns)

    def extract(
        self,
        caller: Caller,
        structure_id: str,
        period: Period,
        fmt: str,
        identified: bool = False,
    ) -> Extraction:
        """The structure's dossiers active in the period, with their activity in it, as CSV
        or XLSX; pseudonymised unless asked for, allowed and entitled. Audited with the
        file's SHA-256."""
        if fmt not in ("csv", "xlsx"):
            raise ApiError(400, "M_INVALID_PARAM", "format : « csv » ou « xlsx » attendu")
        with self.acting(caller, "dashboard.extract") as act:
            session = act.session
            self._structure(session, caller, structure_id)
            columns = self.allowed_columns(session, structure_id)
            entitled = self._staff_role(session, caller, structure_id) in IDENTITY_ROLES
            if not (identified and entitled):
                columns = tuple(c for c in columns if c not in IDENTITY_COLUMNS)
            pseudonymised = not any(c in IDENTITY_COLUMNS for c in columns)
            rows = _extraction_rows(session, structure_id, period, columns, utcnow())
            content = _render(fmt, columns, rows)
            digest = hashlib.sha256(content).hexdigest()
            act.detail = (
                f"extraction {fmt} · structure {structure_id} · période {period.label} · "
                f"{len(rows)} lignes · {'pseudonymisée' if pseudonymised else 'nominative'} · "
                f"sha256 {digest}"
            )
            name = f"extraction-{structure_id[:8]}-{period.start:%Y-%m}-{period.end:%Y-%m}.{fmt}"
            media = (
                "text/csv"
                if fmt == "csv"
                else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
            return Extraction(name, media, content, digest, pseudonymised, len(rows))

    # -- monthly reports -------------------------------------------------------------

    def monthly_report(self, caller: Caller, structure_id: str, month: str) -> bytes:
        with self.acting(caller, "dashboard.report") as act:
            self._structure(act.session, caller, structure_id)
            found = act.session.execute(
                select(MonthlyReport.id, MonthlyReport.pdf).where(
                    MonthlyReport.structure_id == structure_id, MonthlyReport.month == month
                )
            ).first()
            if found is None:
                raise ApiError(404, "M_NOT_FOUND", "aucun rapport pour ce mois")
            act.detail = f"rapport mensuel {month} · structure {structure_id}"
            return REPORT_PDF.open(key_ring(), found.pdf, str(found.id))


def _grouped(session: Session, statement: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in session.execute(statement)}


def _extraction_rows(
    session: Session,
    structure_id: str,
    period: Period,
    columns: tuple[str, ...],
    now: dt.datetime,
) -> list[list[Any]]:
    start, end = moment(period.start), moment(period.end)
    active = and_(Dossier.structure_id == structure_id, active_in(start, end))
    ids = select(Dossier.id).where(active).scalar_subquery()
    counts = {
        key: _grouped(
            session,
            counted.joined(select(counted.dossier_id, func.count(counted.id)))
            .where(counted.dossier_id.in_(ids), counted.condition)
            .group_by(counted.dossier_id),
        )
        for key, counted in activity(start, end, now).items()
    }
    notes, urgent = counts["notes"], counts["urgent_notes"]
    done, overdue, messages = counts["tasks_done"], counts["tasks_overdue"], counts["messages"]
    mails = {
        dossier_id: counts["mails_in"].get(dossier_id, 0) + counts["mails_out"].get(dossier_id, 0)
        for dossier_id in counts["mails_in"].keys() | counts["mails_out"].keys()
    }
    circle = _grouped(
        session,
        select(CircleMember.dossier_id, func.count(func.distinct(CircleMember.user_id)))
        .where(CircleMember.dossier_id.in_(ids), CircleMember.removed_at.is_(None))
        .group_by(CircleMember.dossier_id),
    )
    identified = any(c in IDENTITY_COLUMNS for c in columns)
    wanted: list[Any] = [
        Dossier.id,
        Dossier.pathway,
        Dossier.status,
        Dossier.opened_at,
        Dossier.closed_at,
        Dossier.identity_status,
    ]
    if identified:
        wanted.append(Dossier.identity)  # opened only for an entitled, identified extraction
    rows = []
    found: Any
    for found in session.execute(select(*wanted).where(active).order_by(Dossier.opened_at)):
        dossier_id: str = found[0]
        identity: dict[str, Any] = found[6] if identified else {}
        values = {
            "pseudonyme": pseudonym(dossier_id),
            "parcours": found[1],
            "statut": found[2],
            "ouvert_le": found[3].date().isoformat(),
            "clos_le": found[4].date().isoformat() if found[4] else "",
            "statut_identite": found[5],
            "membres_cercle": circle.get(dossier_id, 0),
            "notes": notes.get(dossier_id, 0),
            "notes_urgentes": urgent.get(dossier_id, 0),
            "taches_faites": done.get(dossier_id, 0),
            "taches_en_retard": overdue.get(dossier_id, 0),
            "messages": messages.get(dossier_id, 0),
            "courriels": mails.get(dossier_id, 0),
            "sollicitations": counts["solicitations"].get(dossier_id, 0),
            "sollicitations_acceptees": counts["solicitations_accepted"].get(dossier_id, 0),
            "nom": identity.get("used_name") or identity.get("birth_name") or "",
            "prenoms": identity.get("first_names") or "",
            "date_naissance": identity.get("birth_date") or "",
            "ins": identity.get("ins_matricule") or "",
        }
        rows.append([values[c] for c in columns])
    return rows


def _render(fmt: str, columns: tuple[str, ...], rows: list[list[Any]]) -> bytes:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: spreadsheets read UTF-8
    from openpyxl import Workbook  # loaded for the first XLSX only, not at each start

    book = Workbook(write_only=True)
    sheet = book.create_sheet("extraction")
    sheet.append(list(columns))
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
