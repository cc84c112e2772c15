"""The PPCS (Plan Personnalisé de Coordination en Santé, HAS 2019) as a printable PDF
(fpdf2): the person and the team, problems and goals, the action plan (who, when), unmet
goals. French dates, people's names and professions (never Matrix ids). Pure: the caller
passes what to print."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maillon.shared.dates_fr import format_birth_date, format_datetime

if TYPE_CHECKING:
    from fpdf import FPDF

# The PDF core fonts write Latin-1: the few French signs outside it are spelled out.
_OUTSIDE_LATIN1 = {
    "œ": "oe",
    "Œ": "OE",
    "’": "'",
    "‘": "'",
    "“": '"',
    "”": '"',
    "…": "...",
    "–": "-",
    "—": "-",
    "‑": "-",
    "€": "EUR",
    "\u202f": " ",
    "Ÿ": "Y",
}


def latin1(text: str) -> str:
    out = "".join(_OUTSIDE_LATIN1.get(ch, ch) for ch in text)
    return out.encode("latin-1", "replace").decode("latin-1")


@dataclass(frozen=True)
class Person:
    name: str
    profession: str | None = None
    role: str | None = None

    def label(self) -> str:
        extra = ", ".join(p for p in (self.profession, self.role) if p)
        return f"{self.name} ({extra})" if extra else self.name


@dataclass(frozen=True)
class PpcsDocument:
    patient: str
    sex: str | None
    birth_date: dt.date | None
    pathway: str
    version: int
    updated_at: dt.datetime
    author: Person
    team: tuple[Person, ...]
    plan: Mapping[str, Any]
    people: Mapping[str, Person]  # Matrix id -> person, for the plan's "who"


def _who(value: str, people: Mapping[str, Person]) -> str:
    person = people.get(value)
    if person is not None:
        return person.label()
    return "membre du cercle" if value.startswith("@") else value


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return format_birth_date(dt.date.fromisoformat(value))  # « 3 décembre 2026 »
    except ValueError:
        return value


def new_pdf() -> FPDF:
    """An empty A4 fpdf2 document. fpdf2 (with numpy and fontTools) is loaded the first time
    a PDF is made, not by every process that imports the dossier domain: that import cost
    each start of every component about 0.4 s of CPU."""
    from fpdf import FPDF

    return FPDF(format="A4")


def next_line() -> dict[str, Any]:
    """fpdf2's arguments for a cell after which the text goes on at the next line."""
    from fpdf.enums import XPos, YPos

    return {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}


@functools.cache
def _footed_pdf() -> type[FPDF]:
    from fpdf import FPDF

    class Footed(FPDF):
        title_text = "PPCS"

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=8)
            self.cell(0, 6, latin1(f"{self.title_text} - page {self.page_no()}/{{nb}}"), align="C")

    return Footed


class Page:
    """An A4 document of Maillon: its footer, headings and lines of French text."""

    def __init__(self, footer: str, title: str) -> None:
        self.pdf = pdf = _footed_pdf()(format="A4")
        pdf.title_text = latin1(footer)  # type: ignore[attr-defined]
        self._next = next_line()
        pdf.set_title(latin1(title))
        pdf.set_creator("Maillon")
        pdf.set_auto_page_break(True, margin=16)
        pdf.add_page()
        self.width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(self, text: str, size: int = 13) -> None:
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", size)
        self.pdf.multi_cell(self.width, 7, latin1(text), **self._next)
        self.pdf.set_font("Helvetica", size=10)

    def line(self, text: str, indent: float = 0, bold: bool = False) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", 10)
        self.pdf.set_x(self.pdf.l_margin + indent)
        self.pdf.multi_cell(self.width - indent, 5.5, latin1(text), **self._next)
        self.pdf.set_font("Helvetica", size=10)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def render_ppcs(doc: PpcsDocument) -> bytes:
    page = Page(
        f"PPCS de {doc.patient} - version {doc.version}",
        "Plan personnalisé de coordination en santé",
    )
    pdf, heading, line = page.pdf, page.heading, page.line

    heading("Plan personnalisé de coordination en santé (PPCS)", 16)
    born = {"F": "née le", "M": "né le"}.get(doc.sex or "", "né(e) le")
    birth = f", {born} {format_birth_date(doc.birth_date)}" if doc.birth_date else ""
    line(f"Personne : {doc.patient}{birth}")
    line(f"Parcours : {doc.pathway}")
    line(
        f"Version {doc.version}, mise à jour le {format_datetime(doc.updated_at)} "
        f"par {doc.author.label()}"
    )
    expectations = doc.plan.get("expectations")
    if expectations:
        heading("Attentes et souhaits de la personne")
        line(str(expectations))

    heading("Équipe de coordination")
    for person in doc.team or (Person("aucun membre"),):
        line(f"- {person.label()}", 4)

    heading("Problèmes et objectifs")
    problems = list(doc.plan.get("problems") or [])
    if not problems:
        line("Aucun problème renseigné.")
    for number, item in enumerate(problems, 1):
        line(f"{number}. {item.get('problem', '')}", bold=True)
        for goal in item.get("goals") or []:
            line(f"- Objectif : {goal}", 6)

    heading("Plan d'actions")
    actions = list(doc.plan.get("actions") or [])
    if not actions:
        line("Aucune action prévue.")
    else:
        with pdf.table(col_widths=(50, 30, 20), text_align="LEFT", line_height=5.5) as table:
            header = table.row()
            for text in ("Action", "Qui", "Quand"):
                header.cell(latin1(text))
            for action in actions:
                row = table.row()
                row.cell(latin1(str(action.get("action", ""))))
                row.cell(latin1(_who(str(action.get("who", "")), doc.people)))
                row.cell(latin1(_when(action.get("when"))))

    heading("Objectifs non atteints")
    unmet = list(doc.plan.get("unmet_goals") or [])
    if not unmet:
        line("Aucun.")
    for goal in unmet:
        line(f"- {goal}", 4)
    return page.output()


@dataclass(frozen=True)
class ReportDocument:
    """A resource team's advice report (compte rendu de télé-expertise)."""

    patient: str
    pathway: str
    team: str
    number: int
    requester: Person
    author: Person
    date: dt.datetime
    question: str
    elements: str
    advice: str


def render_report(doc: ReportDocument) -> bytes:
    writer = Page(
        f"Compte rendu d'avis - {doc.patient} - sollicitation {doc.number}",
        "Compte rendu de télé-expertise",
    )
    writer.heading("Compte rendu de télé-expertise (avis d'équipe ressource)", 16)
    writer.line(f"Personne : {doc.patient}")
    writer.line(f"Parcours : {doc.pathway}")
    writer.line(f"Équipe ressource : {doc.team} (sollicitation n° {doc.number})")
    writer.line(f"Demandé par : {doc.requester.label()}")
    writer.line(f"Avis de : {doc.author.label()}, le {format_datetime(doc.date)}")
    for title, text in (
        ("Question posée", doc.question),
        ("Éléments pris en compte", doc.elements),
        ("Avis", doc.advice),
    ):
        writer.heading(title)
        writer.line(text)
    return writer.output()
