"""Pathway definitions are validated at load, with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dossier_api.domain.pathways import PATHWAYS, PathwayError, load_pathways

GOOD = """
id: essai
version: 1
name: "Essai"
room_template: {name: "{initiales} {ref}", topic: "t", welcome: "w"}
roles_allowed: [COORD, IDE]
forms:
  - id: f
    version: 2
    title: "F"
    fields:
      - {id: a, label: "A", type: choice, required: true, choices: ["x", "y"]}
      - {id: b, label: "B", type: integer}
"""


def test_shipped_pathways_load() -> None:
    assert {"dac", "pco-tnd", "cpts", "messagerie"} <= set(PATHWAYS)
    assert PATHWAYS["pco-tnd"].room_template.allow_patient is True
    assert PATHWAYS["dac"].room_template.allow_patient is False


def test_shipped_room_templates_say_nothing_of_the_pathway() -> None:
    """Room name, topic and welcome notice are stored in clear by every server of the room."""
    for pathway in PATHWAYS.values():
        texts = pathway.room_template
        for text in (texts.name, texts.topic, texts.welcome):
            assert pathway.id.lower() not in text.lower(), (pathway.id, text)
            assert pathway.name.split(" — ")[0].lower() not in text.lower(), (pathway.id, text)
        assert texts.name == "{initiales} ({annee}) · {ref}"


def test_form_answers_are_checked(tmp_path: Path) -> None:
    (tmp_path / "essai.yaml").write_text(GOOD)
    form = load_pathways(tmp_path)["essai"].forms[0]
    assert form.validate({"a": "x", "b": 3}) == []
    problems = form.validate({"a": "z", "b": True, "c": 1})
    assert "champ inconnu : « c »" in problems
    assert any("« A » : l'un de : x, y" in p for p in problems)
    assert any("« B » : un entier" in p for p in problems)
    assert form.validate({}) == ["« A » est obligatoire"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("roles_allowed: [COORD, IDE]", "roles_allowed: [COORD, SORCIER]"), "SORCIER"),
        (("type: integer", "type: nombre"), "forms[0].fields[1].type"),
        (('choices: ["x", "y"]', "choices: []"), "n'a pas de choix"),
        (("id: essai", "id: autre"), "l'identifiant doit être « essai »"),
        (("id: b,", "id: a,"), "champ « forms[0].fields[1].id » : identifiant « a » en double"),
        (("type: integer", "type: nombre"), "champ « forms[0].fields[1].type »"),
        (("roles_allowed: [COORD, IDE]", "roles_allowed: [COORD, X]"), "champ « roles_allowed »"),
        (("version: 1", "version: un"), "version"),
        (('name: "{initiales} {ref}"', 'name: "{nom} {ref}"'), "room_template.name"),
        (('topic: "t"', 'topic: "Parcours Essai"'), "room_template.topic : « "),
        (('welcome: "w"', 'welcome: "Salle essai"'), "révèle le parcours"),
        (('topic: "t"', 'topic: "{annee}"'), "ne prennent pas de variables"),
    ],
)
def test_bad_pathway_files_are_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "essai.yaml").write_text(GOOD.replace(*change, 1))
    with pytest.raises(PathwayError) as exc:
        load_pathways(tmp_path)
    assert "essai.yaml" in str(exc.value) and message in str(exc.value)
