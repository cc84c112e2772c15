"""Pathway definitions (``config/pathways/*.yaml``): room template, roles, forms, task
checklist; validated at load with the same typed parser as every configuration."""

from __future__ import annotations

import datetime as dt
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import yaml

from maillon.shared.circle import ROLES
from maillon.shared.typed_config import ConfigKeyError, parse

PATHWAYS_DIR = files("maillon_config") / "pathways"  # package data (config/pathways/)
FieldType = Literal["text", "integer", "boolean", "date", "choice"]
FIELD_TYPES: tuple[FieldType, ...] = ("text", "integer", "boolean", "date", "choice")


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
    help: str | None = None  # a sentence under the field, for whoever fills the form


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


# What a pathway indicator may count (``dossier_api.domain.indicators`` owns each aggregate).
Measure = Literal[
    "dossiers_opened",
    "dossiers_closed",
    "dossiers_active",
    "first_join_hours",
    "tasks_done",
    "tasks_overdue",
    "urgent_notes",
    "messages",
    "mails",
    "solicitations",
    "solicitations_accepted",
    "response_median_minutes",
]


@dataclass(frozen=True)
class IndicatorDefinition:
    """An indicator the pathway reports (e.g. a DAC's indicators for its ARS): a label on one
    of the aggregates of ``Measure`` over the pathway's dossiers."""

    id: str
    label: str
    measure: Measure
    label_en: str | None = None


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
    # Indicators of the pathway's dashboards and monthly reports (configuration).
    indicators: tuple[IndicatorDefinition, ...] = ()
    # Retention of the pathway's closed dossiers (defaults when the section is absent).
    retention: Retention = Retention()

    def form(self, form_id: str) -> FormDefinition | None:
        return next((f for f in self.forms if f.id == form_id), None)

    def label(self, lang: str = "fr") -> str:
        """The pathway's name in French, or in English where it has one."""
        return (self.name_en or self.name) if lang == "en" else self.name


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


def parse_pathway(data: object, source: str, expected_id: str | None = None) -> Pathway:
    """The one validator of a pathway definition (a YAML file's mapping, or a version edited
    in the console): every problem is a ``PathwayError`` naming the source and the field."""
    try:
        pathway = parse(Pathway, data)
    except ConfigKeyError as exc:
        raise PathwayError(f"{source} : champ « {exc.key} » : {exc.message}") from exc
    if expected_id is not None and pathway.id != expected_id:
        raise PathwayError(f"{source} : champ « id » : l'identifiant doit être « {expected_id} »")
    problem = room_template_problem(pathway)
    if problem is not None:
        raise PathwayError(f"{source} : {problem}")
    for problem in _form_problems(pathway):
        raise PathwayError(f"{source} : {problem}")
    ids = [i.id for i in pathway.indicators]
    if len(set(ids)) != len(ids):
        raise PathwayError(f"{source} : champ « indicators » : identifiant en double")
    return pathway


def _form_problems(pathway: Pathway) -> list[str]:
    problems: list[str] = []
    seen_forms: set[str] = set()
    for i, form in enumerate(pathway.forms):
        if form.id in seen_forms:
            problems.append(f"champ « forms[{i}].id » : formulaire « {form.id} » en double")
        seen_forms.add(form.id)
        seen: set[str] = set()
        for j, f in enumerate(form.fields):
            where = f"forms[{i}].fields[{j}]"
            if f.id in seen:
                problems.append(f"champ « {where}.id » : identifiant « {f.id} » en double")
            seen.add(f.id)
            if f.type == "choice" and not f.choices:
                problems.append(f"champ « {where}.choices » : le champ « {f.id} » n'a pas de choix")
    return problems


def read_definitions(directory: Traversable = PATHWAYS_DIR) -> dict[str, dict[str, Any]]:
    """The mappings of every ``*.yaml`` of the directory, validated (a ``Path`` or an
    installed package's resources): the seed of the store."""
    definitions: dict[str, dict[str, Any]] = {}
    entries = [p for p in directory.iterdir() if p.name.endswith(".yaml") and p.is_file()]
    for path in sorted(entries, key=lambda p: p.name):
        stem = path.name.removesuffix(".yaml")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PathwayError(f"{path.name} : YAML illisible ({exc})") from exc
        parse_pathway(data, path.name, expected_id=stem)
        definitions[stem] = data
    if not definitions:
        raise PathwayError(f"aucun parcours dans {directory}")
    return definitions


def load_pathways(directory: Traversable = PATHWAYS_DIR) -> dict[str, Pathway]:
    """Every ``*.yaml`` of the directory, parsed."""
    return {pid: parse_pathway(d, f"{pid}.yaml") for pid, d in read_definitions(directory).items()}


def to_yaml(definition: dict[str, Any]) -> str:
    """A definition as the YAML of ``config/pathways/`` (every section kept)."""
    return yaml.safe_dump(definition, allow_unicode=True, sort_keys=False, width=100)


def from_yaml(text: str, source: str) -> tuple[dict[str, Any], Pathway]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PathwayError(f"{source} : YAML illisible ({exc})") from exc
    return data, parse_pathway(data, source)


Loader = Callable[[], dict[tuple[str, int], Pathway]]


class PathwayRegistry(Mapping[str, Pathway]):
    """The published version of each pathway (what a new dossier follows), and every
    version a dossier may follow (``version``). Seeded from the YAML files; once bound to
    the store (``dossier_api.domain.pathway_store.bind``) the store is the source: published
    versions are reloaded at most every ``REFRESH_SECONDS`` (another process may publish),
    a version once published never changes."""

    REFRESH_SECONDS = 5.0

    def __init__(self, seed: dict[str, Pathway]) -> None:
        self._published = dict(seed)
        self._versions = {(p.id, p.version): p for p in seed.values()}
        self._loader: Loader | None = None
        self._published_loader: Callable[[], dict[str, Pathway]] | None = None
        self._loaded_at = 0.0

    def bind(self, versions: Loader, published: Callable[[], dict[str, Pathway]]) -> None:
        self._loader, self._published_loader = versions, published
        self.refresh()

    def refresh(self) -> None:
        if self._published_loader is None:
            return
        self._published = self._published_loader()
        self._versions.update({(p.id, p.version): p for p in self._published.values()})
        self._loaded_at = time.monotonic()

    def _current(self) -> dict[str, Pathway]:
        if self._published_loader and time.monotonic() - self._loaded_at > self.REFRESH_SECONDS:
            self.refresh()
        return self._published

    def __getitem__(self, pathway_id: str) -> Pathway:
        return self._current()[pathway_id]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._current()))

    def __len__(self) -> int:
        return len(self._current())

    def version(self, pathway_id: str, version: int | None) -> Pathway | None:
        """That version of the pathway (the published one when ``version`` is None)."""
        if version is None:
            return self.get(pathway_id)
        found = self._versions.get((pathway_id, version))
        if found is None and self._loader is not None:
            self._versions.update(self._loader())
            found = self._versions.get((pathway_id, version))
        return found


PATHWAYS = PathwayRegistry(load_pathways())
