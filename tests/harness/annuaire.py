"""Deterministic generator of Annuaire Santé extracts in the exact public shape (FORMAT.md
of the shared data; MSSanté columns: ``dossier_api.domain.directory_import``): the
``PS_LibreAcces_Personne_activite`` file and the MSSanté mailboxes file, plain or zipped.

Professional ``i`` (0, 1, 2, …) is a pure function of ``i`` and the seed, so a second file
can drop, move or add professionals and the tests know exactly what changed.

    python -m tests.harness.annuaire --lines 50000 OUT.txt [--seed 0] [--mssante OUT2.txt]
"""

from __future__ import annotations

import argparse
import unicodedata
import zipfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dossier_api.domain.directory_import import ACTIVITE_COLUMNS, MSSANTE_COLUMNS

LAST = (
    "DURAND",
    "LEFÈVRE",
    "MARTIN",
    "BERNARD-LÉVÊQUE",
    "D'ARTAGNAN",
    "GARCÍA",
    "NGUYEN",
    "MÜLLER",
    "BENAÏSSA",
    "ÇAKIR",
    "FAURE",
    "ROUSSEL",
    "SAINT-ÉLOI",
    "OULD-BRAHIM",
    "LE GOFF",
    "DA SILVA",
    "PÉREZ",
    "ROCHE",
    "GIRAUD",
    "BLANC",
    "CHEVALIER",
    "FONTAINE",
    "MERCIER",
    "BOYER",
    "LAMBERT",
    "BONNET",
    "FRANÇOIS",
    "MARÉCHAL",
    "HÉBERT",
    "COLIN",
)
FIRST = (
    "MARIE",
    "JEAN-PIERRE",
    "ÉLOÏSE",
    "HÉLÈNE",
    "FRANÇOIS",
    "ZOÉ",
    "NOÉMIE",
    "JÉRÔME",
    "ANNE-SOPHIE",
    "CHLOÉ",
    "LÉO",
    "INÈS",
    "MAËLYS",
    "RAPHAËL",
    "AÏCHA",
    "THÉO",
    "CÉLINE",
    "PAUL",
    "LUCIE",
    "OMAR",
    "SÉBASTIEN",
    "EMMA",
    "MATHÉO",
    "CLÉMENCE",
    "YANN",
)
PROFESSIONS = (
    ("10", "Médecin", "C", "Civil"),
    ("21", "Pharmacien", "C", "Civil"),
    ("40", "Chirurgien-Dentiste", "C", "Civil"),
    ("50", "Sage-Femme", "C", "Civil"),
    ("60", "Infirmier", "C", "Civil"),
    ("70", "Masseur-Kinésithérapeute", "C", "Civil"),
    ("91", "Orthophoniste", "C", "Civil"),
    ("26", "Audioprothésiste", "C", "Civil"),
)
PLACES = (
    ("31", "Haute-Garonne", "TOULOUSE", "31000", "31555"),
    ("34", "Hérault", "MONTPELLIER", "34000", "34172"),
    ("2A", "Corse-du-Sud", "AJACCIO", "20000", "2A004"),
    ("974", "La Réunion", "SAINT-DENIS", "97400", "97411"),
    ("67", "Bas-Rhin", "STRASBOURG", "67000", "67482"),
    ("75", "Paris", "PARIS", "75011", "75111"),
    ("13", "Bouches-du-Rhône", "MARSEILLE", "13001", "13201"),
    ("69", "Rhône", "LYON", "69003", "69383"),
    ("12", "Aveyron", "RODEZ", "12000", "12202"),
    ("65", "Hautes-Pyrénées", "TARBES", "65000", "65440"),
    ("09", "Ariège", "FOIX", "09000", "09122"),
    ("81", "Tarn", "ALBI", "81000", "81004"),
)
# Syllables of the rare names (``person(..., rare_names=True)``): tens of thousands of
# surnames, each borne by a few professionals, as in the real directory's long tail.
SYLLABLES = ("BA", "BER", "CA", "CHA", "DE", "DU", "FA", "GA", "GER", "LA", "LE", "LO", "MA")
SYLLABLES += ("MO", "NA", "NI", "PE", "PI", "RA", "RO", "SA", "TA", "TI", "VA", "VI", "ZU")
ENDINGS = ("", "T", "UD", "X", "IN", "NE", "LLE", "RT")
STRUCTURES = ("CABINET", "MAISON DE SANTÉ", "CENTRE HOSPITALIER", "PHARMACIE", "SSIAD")
MODES = (("L", "Libéral"), ("S", "Salarié"), ("B", "Bénévole"))
W = len(ACTIVITE_COLUMNS)
C = {name: i for i, name in enumerate(ACTIVITE_COLUMNS)}


def _h(i: int, seed: int, salt: int) -> int:
    x = (i * 2654435761 + seed * 40503 + salt * 97) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    return x ^ (x >> 13)


def ascii_word(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in plain if c.isalnum() and not unicodedata.combining(c))


@dataclass(frozen=True)
class Person:
    index: int
    id_type: str
    identifier: str
    last_name: str
    first_name: str
    profession_code: str
    profession: str
    places: tuple[tuple[str, str, str, str, str], ...]
    structures: tuple[str, ...]

    @property
    def national_id(self) -> str:
        return self.id_type + self.identifier

    @property
    def mailbox(self) -> str:
        return (
            f"{ascii_word(self.first_name)}.{ascii_word(self.last_name)}{self.index}@pro.mssante.fr"
        )


def rare_name(i: int, seed: int = 0) -> str:
    parts = [SYLLABLES[_h(i, seed, 80 + k) % len(SYLLABLES)] for k in range(3)]
    return "".join(parts) + ENDINGS[_h(i, seed, 83) % len(ENDINGS)]


def person(i: int, seed: int = 0, moved: bool = False, rare_names: bool = False) -> Person:
    """Professional ``i``; with ``rare_names``, one in two bears a rare name instead of one
    of the common ones (then each common name is borne by one in sixty)."""
    prof = PROFESSIONS[_h(i, seed, 1) % len(PROFESSIONS)]
    adeli = prof[0] in ("91", "26") and _h(i, seed, 2) % 3 == 0
    identifier = f"{759000000 + i:09d}" if adeli else f"{10000000000 + i * 7:011d}"
    activities = 1 + (_h(i, seed, 3) % 8 == 0) + (_h(i, seed, 4) % 40 == 0)
    places = tuple(
        PLACES[(_h(i, seed, 10 + k) + (5 if moved else 0)) % len(PLACES)] for k in range(activities)
    )
    structures = tuple(
        f"{STRUCTURES[_h(i, seed, 20 + k) % len(STRUCTURES)]} {places[k][2]} "
        f"{(_h(i, seed, 30 + k) % 50) + 1}"
        for k in range(activities)
    )
    return Person(
        i,
        "0" if adeli else "8",
        identifier,
        rare_name(i, seed)
        if rare_names and _h(i, seed, 7) % 2
        else LAST[_h(i, seed, 5) % len(LAST)],
        FIRST[_h(i, seed, 6) % len(FIRST)],
        prof[0],
        prof[1],
        places,
        structures,
    )


def activity_fields(p: Person, k: int) -> list[str]:
    f = [""] * W
    dept, dept_label, town, postal, commune = p.places[k]
    mode = MODES[_h(p.index, 0, 40 + k) % len(MODES)]
    civ = ("DR", "Docteur") if p.profession_code in ("10", "40") else ("", "")
    values = {
        "Type d'identifiant PP": p.id_type,
        "Identifiant PP": p.identifier,
        "Identification nationale PP": p.national_id,
        "Code civilité d'exercice": civ[0],
        "Libellé civilité d'exercice": civ[1],
        "Code civilité": "M" if p.index % 2 else "MME",
        "Libellé civilité": "Monsieur" if p.index % 2 else "Madame",
        "Nom d'exercice": p.last_name,
        "Prénom d'exercice": p.first_name,
        "Code profession": p.profession_code,
        "Libellé profession": p.profession,
        "Code catégorie professionnelle": "C",
        "Libellé catégorie professionnelle": "Civil",
        "Code mode exercice": mode[0],
        "Libellé mode exercice": mode[1],
        "Numéro SIRET site": f"{(_h(p.index, 0, 50 + k) % 10**14):014d}",
        "Identifiant technique de la structure": f"R1{p.index:08d}{k}",
        "Raison sociale site": p.structures[k],
        "Numéro Voie (coord. structure)": str(1 + _h(p.index, 0, 60 + k) % 120),
        "Libellé type de voie (coord. structure)": "Rue",
        "Libellé Voie (coord. structure)": "DES LILAS",
        "Code postal (coord. structure)": postal,
        "Code commune (coord. structure)": commune,
        "Libellé commune (coord. structure)": town,
        "Code pays (coord. structure)": "99000",
        "Libellé pays (coord. structure)": "France",
        "Téléphone (coord. structure)": f"05{_h(p.index, 0, 70 + k) % 10**8:08d}",
        "Code Département (structure)": dept,
        "Libellé Département (structure)": dept_label,
        "Autorité d'enregistrement": "CNOM/CNOM/CNOM" if p.profession_code == "10" else "ARS",
        "Code secteur d'activité": "SA07",
        "Libellé secteur d'activité": "Cabinet individuel",
    }
    for name, value in values.items():
        f[C[name]] = value
    return f


def header(columns: list[str]) -> str:
    return "|".join(columns) + "|\n"


def _line(fields: list[str]) -> str:
    return "|".join(fields) + "|\n"


BREAKS = ("fields", "rpps", "name", "encoding", "pipe")


def _broken(line: str, how: str) -> bytes:
    if how == "fields":
        return line.replace("DES LILAS", "DES|LILAS").encode()  # a "|" in a text: one more
    if how == "rpps":
        parts = line.split("|")
        parts[1] = parts[1][:-1] + "X"
        return "|".join(parts).encode()
    if how == "name":
        parts = line.split("|")
        parts[C["Nom d'exercice"]] = ""
        return "|".join(parts).encode()
    if how == "encoding":
        return line.encode().replace(b"DES LILAS", b"DES L\xe9LAS")
    if how == "pipe":
        return line.rstrip("\n").rstrip("|").encode() + b"\n"
    raise ValueError(how)


@dataclass
class Generated:
    path: Path
    lines: int = 0
    people: list[str] = field(default_factory=list)  # national ids, in file order
    broken: dict[int, str] = field(default_factory=dict)  # line number -> its national id


def people_ids(count: int, seed: int = 0) -> Iterator[Person]:
    for i in range(count):
        yield person(i, seed)


def write_activite(
    path: Path,
    lines: int,
    seed: int = 0,
    *,
    drop: Collection[int] = (),
    move: Collection[int] = (),
    extra: int = 0,
    broken: Mapping[int, str] | None = None,
    keep_ids: bool = True,
    rare_names: bool = False,
) -> Generated:
    """``lines`` activity lines of professionals 0, 1, …, then ``extra`` more professionals
    (numbered after), without those in ``drop``, ``move`` ones elsewhere; ``broken`` maps a
    file line number (the header is line 1) to a way of breaking that line (``BREAKS``)."""
    out = Generated(path)
    broken = broken or {}
    line_no = 1
    with path.open("wb") as fh:
        fh.write(header(ACTIVITE_COLUMNS).encode())

        def emit(p: Person, count: int) -> None:
            nonlocal line_no
            if p.index in drop:
                return
            for k in range(count):
                line_no += 1
                text = _line(activity_fields(p, k))
                if line_no in broken:
                    fh.write(_broken(text, broken[line_no]))
                    out.broken[line_no] = p.national_id
                else:
                    fh.write(text.encode())
                out.lines += 1
            if keep_ids:
                out.people.append(p.national_id)

        written, i = 0, 0  # base lines counted as if none were dropped
        while written < lines:
            p = person(i, seed, moved=i in move, rare_names=rare_names)
            count = min(len(p.places), lines - written)
            emit(p, count)
            written += count
            i += 1
        for j in range(i, i + extra):
            p = person(j, seed, rare_names=rare_names)
            emit(p, len(p.places))
    return out


def write_mssante(path: Path, people: int, seed: int = 0, every: int = 3) -> int:
    """Mailboxes of one professional in ``every`` among the first ``people`` (plus a few
    organisational mailboxes without a person); returns the number of lines."""
    m = {name: i for i, name in enumerate(MSSANTE_COLUMNS)}
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write(header(MSSANTE_COLUMNS))
        for i in range(0, people, every):
            p = person(i, seed)
            f = [""] * len(MSSANTE_COLUMNS)
            f[m["Type de BAL"]] = "PER"
            f[m["Adresse BAL"]] = p.mailbox
            f[m["Type Identifiant PP"]] = p.id_type
            f[m["Identifiant PP"]] = p.identifier
            f[m["Identification nationale PP"]] = p.national_id
            f[m["Nom d'exercice"]] = p.last_name
            f[m["Prénom d'exercice"]] = p.first_name
            f[m["Code Profession"]] = p.profession_code
            f[m["Libellé Profession"]] = p.profession
            f[m["Code postal"]] = p.places[0][3]
            fh.write(_line(f))
            count += 1
            if i % (every * 50) == 0:
                f = [""] * len(MSSANTE_COLUMNS)
                f[m["Type de BAL"]] = "ORG"
                f[m["Adresse BAL"]] = f"secretariat{i}@ch.mssante.fr"
                f[m["Raison Sociale structure BAL"]] = "CENTRE HOSPITALIER"
                fh.write(_line(f))
                count += 1
    return count


def write_extracts(root: Path, people: int, every: int = 3) -> tuple[Path, Path]:
    """The two files of a national-directory extract of ``people`` professionals (the
    personne/activité file, the MSSanté mailboxes of one in ``every``), to import."""
    activite = write_activite(root / "PS_LibreAcces_Personne_activite_202612010000.txt", people)
    mss = root / "Extraction_Correspondance_MSSante_202612010000.txt"
    write_mssante(mss, people, every=every)
    return activite.path, mss


def zipped(path: Path) -> Path:
    target = path.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, path.name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mssante", type=Path)
    args = parser.parse_args()
    made = write_activite(args.out, args.lines, args.seed, keep_ids=False)
    print(f"{made.lines} lignes écrites dans {args.out}")
    if args.mssante:
        print(f"{write_mssante(args.mssante, args.lines, args.seed)} lignes MSSanté")


if __name__ == "__main__":
    main()
