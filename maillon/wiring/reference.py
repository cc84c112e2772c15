"""The README's reference of accepted values, generated from the code so it never drifts:
roles, sexes, identity statuses, pathways, and an example body for ``POST /v1/dossiers``.
``python scripts/readme_reference.py`` rewrites the README's generated block; a unit test
fails when the README and the code disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dossier_api.domain.pathways import PATHWAYS
from dossier_api.http import schemas
from maillon.shared.circle import RESTRICTED_ROLES, ROLES

BEGIN = "<!-- début : généré par scripts/readme_reference.py, ne pas modifier à la main -->"
END = "<!-- fin du bloc généré -->"
SEX_LABELS = {"F": "féminin", "M": "masculin", "I": "indéterminé"}
STATUS_LABELS = {
    "PROV": "identité provisoire",
    "RECUP": "identité récupérée : INS obtenu du téléservice INSi, pièce d'identité non contrôlée",
    "VALI": "identité validée : pièce d'identité contrôlée, INS non récupéré",
    "QUAL": "identité qualifiée : INS récupéré et pièce contrôlée (seule référençable par l'INS)",
}

EXAMPLE_DOSSIER: dict[str, Any] = {
    "pathway": "dac",
    "identity": {
        "birth_name": "MARTIN",
        "first_names": "Jeanne Marie",
        "sex": "F",
        "birth_date": "1941-03-01",
        "birthplace_insee": "31555",
        "identity_status": "PROV",
    },
    "consent_informed": True,
}


def _enum(schema: dict[str, Any], name: str) -> list[str]:
    return list(schema["properties"][name]["enum"])


def markdown() -> str:
    identity = schemas.IDENTITY_IN
    lines = [
        BEGIN,
        "",
        "**Rôles dans le cercle de soins** (`role`) :",
        "",
        "| Code | Rôle | |",
        "|---|---|---|",
    ]
    for code, label in ROLES.items():
        note = (
            "personne non professionnelle : si le parcours l'admet"
            if code in (RESTRICTED_ROLES)
            else ""
        )
        lines.append(f"| `{code}` | {label} | {note} |")
    lines += [
        "",
        "**Sexe** (`identity.sex`) : "
        + ", ".join(f"`{s}` {SEX_LABELS.get(s, s)}" for s in _enum(identity, "sex"))
        + ".",
        "",
    ]
    lines += ["**Statut de l'identité** (`identity.identity_status`, référentiel INS) :", ""]
    lines += [f"- `{s}` : {STATUS_LABELS.get(s, s)}" for s in _enum(identity, "identity_status")]
    lines += ["", "**Parcours** (`pathway`) :", ""]
    lines += ["| Code | Parcours | Rôles admis |", "|---|---|---|"]
    for pid, pathway in sorted(PATHWAYS.items()):
        roles = ", ".join(f"`{r}`" for r in pathway.roles_allowed)
        lines.append(f"| `{pid}` | {pathway.name} | {roles} |")
    lines += [
        "",
        "**Profession** (`maillon user add --profession`) : texte libre, de préférence le libellé",
        "de la nomenclature des professions de santé (TRE_G15 de l'ANS : Médecin, Infirmier,",
        "Masseur-Kinésithérapeute, Pharmacien, Sage-Femme, Orthophoniste…) ou du secteur social",
        "et médico-social (assistant de service social, aide à domicile…).",
        "",
        "**Exemple** : ouvrir un dossier (`POST /v1/dossiers`, jeton Matrix en `Authorization`) :",
        "",
        "```json",
        json.dumps(EXAMPLE_DOSSIER, ensure_ascii=False, indent=2),
        "```",
        "",
        END,
    ]
    return "\n".join(lines)


def rewrite(readme: Path) -> bool:
    """Put the generated block in ``readme``; True if the file changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + markdown() + text[end:]
    if new == text:
        return False
    readme.write_text(new, encoding="utf-8")
    return True
