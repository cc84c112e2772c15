"""Pathway definitions (``config/pathways/*.yaml``): room template, roles, forms, task
checklist; validated at load with the same typed parser as every configuration."""

from __future__ import annotations

import datetime as dt
import re
import string
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import yaml

from maillon.shared.circle import ROLES
from maillon.shared.typed_config import ConfigKeyError, parse

PATHWAYS_DIR = files("maillon_config") / "pathways"  # package data (config/pathways/)
FieldType = Literal["text", "integer", "boolean", "date", "choice"]


def _roles(value: object) -> str | None:
    if isinstance(value, tuple):
        unknown = [r for r in value if r not in ROLES]
        if unknown:
            return f"rôles inconnus : {', '.join(unknown)}"
    return None


@dataclass(frozen=True)
class FormField:
    id: str
    label: str
    type: FieldType
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormDefinition:
    id: str
    version: int
    title: str
    fields: tuple[FormField, ...]

    def validate(self, answers: dict[str, Any]) -> list[str]:
        """Problems with the answers, in French (empty when they are valid)."""
        problems = []
        known = {f.id: f for f in self.fields}
        for key in answers:
            if key not in known:
                problems.append(f"champ inconnu : « {key} »")
        for f in self.fields:
            value = answers.get(f.id)
            if value is None:
                if f.required:
                    problems.append(f"« {f.label} » est obligatoire")
                continue
            ok = {
                "text": isinstance(value, str) and 0 < len(value) <= 5000,
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "boolean": isinstance(value, bool),
                "choice": value in f.choices,
                "date": isinstance(value, str) and _is_date(value),
            }[f.type]
            if not ok:
                expected = {
                    "text": "un texte",
                    "integer": "un entier",
                    "boolean": "oui/non",
                    "choice": "l'un de : " + ", ".join(f.choices),
                    "date": "une date AAAA-MM-JJ",
                }[f.type]
                problems.append(f"« {f.label} » : {expected} est attendu")
        return problems


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RoomTemplate:
    name: str
    topic: str
    welcome: str
    allow_patient: bool = False
    allow_knock: bool = False


def _positive(value: object) -> str | None:
    if isinstance(value, int) and value < 1:
        return "un entier supérieur ou égal à 1 est attendu"
    return None


@dataclass(frozen=True)
class Retention:
    """How long a closed dossier lives (``dossier_api.domain.retention``): archived
    (read-only, out of the lists) ``archive_after_months`` after its closure, purged
    ``purge_after_years`` after its closure; a patient room without any event for
    ``inactive_room_weeks`` is reported to the dossier's coordinators. Defaults and their
    sources: README, « Conservation et purge »."""

    archive_after_months: int = field(default=12, metadata={"check": _positive})
    purge_after_years: int = field(default=20, metadata={"check": _positive})
    inactive_room_weeks: int = field(default=26, metadata={"check": _positive})


@dataclass(frozen=True)
class Pathway:
    id: str
    version: int
    name: str
    room_template: RoomTemplate
    roles_allowed: tuple[str, ...] = field(metadata={"check": _roles})
    forms: tuple[FormDefinition, ...] = ()
    tasks_checklist: tuple[str, ...] = ()
    # May a delegate (acting for a coordinator) add or remove circle members? Default no.
    delegates_manage_circle: bool = False
    # Roles the pathway does not count as the care team (CSP L1110-4, L1110-12): entering
    # the circle with one shares the dossier outside the care team, which needs the person's
    # prior consent (``consent_share_outside``) and is impossible after an opposition.
    outside_care_team: tuple[str, ...] = field(default=(), metadata={"check": _roles})
    # The pathway's name on pages shown in English (the French name otherwise).
    name_en: str | None = None
    # Retention of the pathway's closed dossiers (defaults when the section is absent).
    retention: Retention = Retention()

    def form(self, form_id: str) -> FormDefinition | None:
        return next((f for f in self.forms if f.id == form_id), None)


class PathwayError(ValueError):
    pass


# Variables a room-name template may use. Room names, topics and Maillon's notices are not
# end-to-end encrypted (the homeserver and every peer server keep them): initials, birth
# year and the dossier reference only, no name, no pathway, no health information.
ROOM_NAME_FIELDS = ("initiales", "annee", "ref")


def _template_fields(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def room_template_problem(pathway: Pathway) -> str | None:
    """Why a pathway's room template would put health information in clear, or None."""
    template = pathway.room_template
    try:
        fields = _template_fields(template.name)
        other = _template_fields(template.topic) + _template_fields(template.welcome)
    except ValueError:
        return "room_template : modèle illisible (accolades)"
    unknown = [f for f in fields if f not in ROOM_NAME_FIELDS]
    if unknown:
        return (
            f"room_template.name : variables non permises ({', '.join(unknown)}) ; "
            f"seules {', '.join('{' + f + '}' for f in ROOM_NAME_FIELDS)} le sont"
        )
    if other:
        return "room_template : le sujet et le message d'accueil ne prennent pas de variables"
    # The pathway shows through its id ("pco-tnd") or its short name ("PCO-TND — …").
    words = {pathway.id, pathway.name.split(" — ")[0].strip()}
    for key in ("name", "topic", "welcome"):
        text = getattr(template, key)
        for word in words:
            if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE):
                return (
                    f"room_template.{key} : « {word} » révèle le parcours, or ce texte n'est "
                    "pas chiffré (serveurs de la salle)"
                )
    return None


def load_pathways(directory: Traversable = PATHWAYS_DIR) -> dict[str, Pathway]:
    """Every ``*.yaml`` of the directory (a ``Path`` or an installed package's resources)."""
    pathways: dict[str, Pathway] = {}
    entries = [p for p in directory.iterdir() if p.name.endswith(".yaml") and p.is_file()]
    for path in sorted(entries, key=lambda p: p.name):
        stem = path.name.removesuffix(".yaml")
        try:
            pathway = parse(Pathway, yaml.safe_load(path.read_text(encoding="utf-8")))
        except ConfigKeyError as exc:
            raise PathwayError(f"{path.name} : clé « {exc.key} » : {exc.message}") from exc
        if pathway.id != stem:
            raise PathwayError(f"{path.name} : l'identifiant doit être « {stem} »")
        problem = room_template_problem(pathway)
        if problem is not None:
            raise PathwayError(f"{path.name} : {problem}")
        for form in pathway.forms:
            for f in form.fields:
                if f.type == "choice" and not f.choices:
                    raise PathwayError(f"{path.name} : le champ « {f.id} » n'a pas de choix")
        pathways[pathway.id] = pathway
    if not pathways:
        raise PathwayError(f"aucun parcours dans {directory}")
    return pathways


PATHWAYS = load_pathways()
