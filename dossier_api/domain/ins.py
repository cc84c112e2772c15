"""The INS matricule of a dossier's identity: its normal form and its blind index.

The identity is sealed; to find a dossier by the INS a mail names, the dossier carries a
keyed digest of its matricule (``Dossier.ins_index``, HMAC-SHA256 with the deployment's
blind index key, see ``maillon.shared.crypto.BlindIndex``), so no identity is opened to
route. Only a qualified identity (QUAL) may be referenced by INS: only those are indexed.

Identity vigilance (RNIV) looks for possible duplicates with two more keyed digests that
every dossier carries whatever its status: its matricule (``Dossier.matricule_index``, the
same digest as ``ins_index``) and its traits (``Dossier.traits_index``: birth name, first
first name, birth date and sex, normalised by ``maillon.shared.text``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from maillon.shared.crypto import KeyRing
from maillon.shared.text import first_given_name, normalise_name

# NIR or NIA: sex/kind digit, 12 digits, 2-digit key (JSON schema of the API too).
INS_MATRICULE_PATTERN = "^[12378][0-9]{12}[0-9]{2}$"
# The INS's OIDs (NIR, NIA) and sexes (F, M, I: indéterminé).
INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9")
SEXES = ("F", "M", "I")
# An identity's statuses (RNIV): provisional, recovered, validated, qualified.
IDENTITY_STATUSES = ("PROV", "RECUP", "VALI", "QUAL")
BIRTHPLACE_PATTERN = "^[0-9][0-9AB][0-9]{3}$"
QUALIFIED = "QUAL"
INDEX_LABEL = "dossier.ins_matricule"
TRAITS_LABEL = "dossier.identity_traits"

# The identity statuses of the RNIV, in words (pages, bot, copies).
IDENTITY_STATUS_WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "PROV": "Identité provisoire — à vérifier",
        "RECUP": "Identité récupérée (téléservice INSi) — pièce d'identité à contrôler",
        "VALI": "Identité validée (pièce d'identité contrôlée) — INS à récupérer",
        "QUAL": "Identité qualifiée — INS utilisable",
    },
    "en": {
        "PROV": "Provisional identity — to be checked",
        "RECUP": "Identity retrieved (INSi service) — identity document to check",
        "VALI": "Validated identity (document checked) — INS to retrieve",
        "QUAL": "Qualified identity — INS usable",
    },
}

_MATRICULE = re.compile(INS_MATRICULE_PATTERN)
_SEPARATORS = re.compile(r"[\s.\-_]+")


def normalise_ins_matricule(value: object) -> str | None:
    """The matricule without spaces, dots, dashes or underscores; None if that is not a
    15-character NIR/NIA."""
    if not isinstance(value, str):
        return None
    compact = _SEPARATORS.sub("", value)
    return compact if _MATRICULE.fullmatch(compact) else None


def matricule_index(keys: KeyRing, matricule: str) -> str | None:
    """The blind index of a matricule (None if it is not one)."""
    normal = normalise_ins_matricule(matricule)
    return None if normal is None else keys.blind_index(INDEX_LABEL, normal)


def identity_index(
    keys: KeyRing, identity: Mapping[str, Any] | None, status: str | None
) -> str | None:
    """The blind index a dossier with this identity carries: only a QUAL identity's."""
    if status != QUALIFIED or not isinstance(identity, Mapping):
        return None
    matricule = identity.get("ins_matricule")
    return matricule_index(keys, matricule) if isinstance(matricule, str) else None


def any_matricule_index(keys: KeyRing, identity: Mapping[str, Any] | None) -> str | None:
    """The blind index of the matricule an identity carries, whatever its status."""
    if not isinstance(identity, Mapping):
        return None
    matricule = identity.get("ins_matricule")
    return matricule_index(keys, matricule) if isinstance(matricule, str) else None


def identity_traits(identity: Mapping[str, Any]) -> str | None:
    """The normal form of the traits two records of one person share: birth name, first
    first name, birth date, sex (None if one is missing)."""
    values = [identity.get(k) for k in ("birth_name", "first_names", "birth_date", "sex")]
    if not all(isinstance(v, str) and v.strip() for v in values):
        return None
    birth_name, first_names, birth_date, sex = (str(v) for v in values)
    name, first = normalise_name(birth_name), first_given_name(first_names)
    if not name or not first:
        return None
    return "|".join((name, first, birth_date.strip(), sex.strip().upper()))


def traits_index(keys: KeyRing, identity: Mapping[str, Any] | None) -> str | None:
    """The blind index of an identity's traits (see :func:`identity_traits`)."""
    if not isinstance(identity, Mapping):
        return None
    traits = identity_traits(identity)
    return None if traits is None else keys.blind_index(TRAITS_LABEL, traits)


def display_name(identity: Mapping[str, Any]) -> str:
    """The patient's name as pages show it: « MARTIN Jeanne Louise » (used name first)."""
    name = identity.get("used_name") or identity.get("birth_name") or "?"
    return f"{str(name).upper()} {identity.get('first_names', '')}".strip()
