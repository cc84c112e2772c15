"""The monthly activity report of each structure: on the 1st of each month (or at the first
run after it), a PDF (fpdf2) of the structure's indicators for the previous month, stored
once per structure and month (a unique row: never made or sent twice, across restarts) and
queued in the mail outbox, in the same transaction, for the structure's référents (their
MSSanté address); the relay sends it. Aggregates only: no person is named in it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dossier_api.domain.indicators import (
    LABELS,
    Indicators,
    Period,
    Scope,
    compute,
    pathway_indicators,
)
from dossier_api.domain.indicators import previous_month as previous_month_of
from dossier_api.domain.mail.models import OUTBOX_MAIL, MailOutbox
from dossier_api.domain.mail.outbox import new_message_id
from dossier_api.domain.mail.spool import message_id_hash
from dossier_api.domain.models import (
    REPORT_PDF,
    MonthlyReport,
    Professional,
    Structure,
    StructureStaff,
)
from dossier_api.domain.ppcs_pdf import latin1, new_pdf, next_line
from maillon.shared.clock import utcnow
from maillon.shared.dates_fr import MONTHS
from maillon.shared.sealed import key_ring

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


def month_name(period: Period) -> str:
    return f"{MONTHS[period.start.month - 1]} {period.start.year}"


def figure(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}".replace(".", ",")
    return str(int(value))


def report_pdf(
    structure: str,
    period: Period,
    figures: Indicators,
    pathway_rows: tuple[tuple[str, str, str | None, float | None], ...],
    made_at: dt.datetime,
) -> bytes:
    pdf = new_pdf()
    following = next_line()
    pdf.set_title(latin1(f"Rapport mensuel d'activité - {structure}"))
    pdf.set_creator("Maillon")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, latin1("Rapport mensuel d'activité"), **following)
    pdf.set_font("Helvetica", "", 12)
    pdf.multi_cell(0, 7, latin1(f"{structure} - {month_name(period)}"), **following)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, latin1("Indicateurs du mois"), **following)
    pdf.set_font("Helvetica", "", 11)
    for key, value in figures.summary():
        pdf.cell(0, 7, latin1(f"{LABELS[key][0]} : {figure(value)}"), **following)
    if pathway_rows:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, latin1("Indicateurs des parcours"), **following)
        pdf.set_font("Helvetica", "", 11)
        for pathway, label, _, value in pathway_rows:
            pdf.multi_cell(
                0,
                7,
                latin1(f"{pathway} - {label} : {figure(value)}"),
                **following,
            )
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(
        0,
        5,
        latin1(
            "Chiffres agrégés calculés sans ouvrir les données de santé chiffrées ; "
            f"établi le {made_at:%d/%m/%Y} par Maillon."
        ),
        **following,
    )
    return bytes(pdf.output())


def structure_report(
    session: Session, structure: Structure, period: Period, now: dt.datetime
) -> bytes:
    scope = Scope(structure_id=structure.id)
    figures = compute(session, scope, period, now)
    rows = pathway_indicators(figures)
    return report_pdf(structure.name, period, figures, rows, now)


class MonthlyReports:
    """The job: ``run_due`` makes and queues the reports of the previous month that are not
    made yet. ``clock`` is injectable (tests, benchmarks)."""

    def __init__(
        self,
        engine: Engine,
        *,
        from_address: str | None,
        domain: str,
        relay_marker: str,
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._from = from_address
        self._domain = domain
        self._marker = relay_marker
        self._clock = clock

    def run_due(self) -> list[tuple[str, str]]:
        """(structure id, month) of the reports made by this run."""
        now = self._clock()
        period = previous_month_of(now.date())
        month = f"{period.start:%Y-%m}"
        made = []
        with Session(self._engine) as session:
            structures = session.scalars(
                select(Structure).where(
                    Structure.id.not_in(
                        select(MonthlyReport.structure_id).where(MonthlyReport.month == month)
                    )
                )
            ).all()
        for structure in structures:
            try:
                if self._make(structure.id, period, month, now):
                    made.append((structure.id, month))
            except IntegrityError:  # made meanwhile by another run: never twice
                continue
        return made

    def _make(self, structure_id: str, period: Period, month: str, now: dt.datetime) -> bool:
        with Session(self._engine) as session, session.begin():
            structure = session.get(Structure, structure_id)
            if structure is None or session.scalar(
                select(MonthlyReport.id).where(
                    MonthlyReport.structure_id == structure_id, MonthlyReport.month == month
                )
            ):
                return False
            pdf = structure_report(session, structure, period, now)
            recipients = sorted(
                {
                    address
                    for address in session.scalars(
                        select(Professional.mssante)
                        .join(StructureStaff, StructureStaff.user_id == Professional.user_id)
                        .where(
                            StructureStaff.structure_id == structure_id,
                            StructureStaff.role == "referent",
                            Professional.mssante.is_not(None),
                        )
                    )
                    if address
                }
            )
            report = MonthlyReport(
                structure_id=structure_id,
                month=month,
                created_at=now,
                sha256=hashlib.sha256(pdf).hexdigest(),
                pdf=b"",  # sealed below, with the row's id (known once inserted)
                recipients=len(recipients),
            )
            session.add(report)
            session.flush()  # the unique (structure, month) row first: a second run stops here
            report.pdf = REPORT_PDF.seal(key_ring(), pdf, str(report.id))
            if recipients and self._from is not None:
                self._queue(session, structure, period, month, pdf, recipients)
            log.info("monthly report %s made (%s recipients)", month, len(recipients))
            return True

    def _queue(
        self,
        session: Session,
        structure: Structure,
        period: Period,
        month: str,
        pdf: bytes,
        recipients: list[str],
    ) -> None:
        token = secrets.token_hex(16)
        message_id = new_message_id(self._domain)
        mail: dict[str, Any] = {
            "from": str(self._from),
            "from_name": "Maillon",
            "to": recipients,
            "subject": f"Rapport mensuel d'activité — {structure.name} — {month_name(period)}",
            "text": (
                f"Bonjour,\n\nVeuillez trouver ci-joint le rapport d'activité de "
                f"{structure.name} pour {month_name(period)} (chiffres agrégés).\n\n"
                "Ce courriel est envoyé automatiquement par Maillon."
            ),
            "message_id": message_id,
            "in_reply_to": None,
            "references": [],
            "relay_marker": self._marker,
            "auto_submitted": "auto-generated",
            "attachments": [
                {
                    "filename": f"rapport-{month}.pdf",
                    "media_type": "application/pdf",
                    "content_b64": base64.b64encode(pdf).decode("ascii"),
                }
            ],
        }
        session.add(
            MailOutbox(
                room_id="",
                source_event_id=f"maillon.monthly-report.{structure.id}.{month}",
                thread_root_event_id=None,
                message_id_hash=message_id_hash(message_id),
                token=token,
                sealed_mail=OUTBOX_MAIL.seal_json(key_ring(), mail, token),
                created_at=utcnow(),
                next_attempt_at=utcnow(),
                attempts=0,
            )
        )
