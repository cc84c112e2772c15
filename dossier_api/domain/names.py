"""Search by patient name without opening identities: a keyed blind index of the
normalised name tokens of each dossier's identity (birth name, used name, first names).

Identities are sealed. Each dossier carries, in ``dossier_names``, one HMAC-SHA256 digest
(the deployment's blind index key, ``maillon.shared.crypto.BlindIndex``) per normalised
token of its names: accents, case, hyphens, apostrophes and spaces do not matter
("Lefèvre-Dubois" = "lefevre dubois"). A search digests the tokens typed and keeps the
dossiers holding every one of them: whole tokens only (no prefix: a prefix index would
tell much more about a name to whoever reads the table)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maillon.shared.crypto import KeyRing
from maillon.shared.text import words

INDEX_LABEL = "dossier.name_token"
NAME_FIELDS = ("birth_name", "used_name", "first_names")
MAX_QUERY_TOKENS = 6


def name_tokens(value: object) -> list[str]:
    """The normalised tokens of a name: without accents, lower case, split at hyphens,
    apostrophes, spaces and any other non-letter; in order, without repeats."""
    if not isinstance(value, str):
        return []
    return list(dict.fromkeys(words(value)))


def identity_tokens(identity: Mapping[str, Any] | None) -> list[str]:
    if not isinstance(identity, Mapping):
        return []
    tokens: list[str] = []
    for key in NAME_FIELDS:
        tokens += name_tokens(identity.get(key))
    return list(dict.fromkeys(tokens))


def token_digest(keys: KeyRing, token: str) -> str:
    return keys.blind_index(INDEX_LABEL, token)


def identity_digests(keys: KeyRing, identity: Mapping[str, Any] | None) -> set[str]:
    """The digests a dossier with this identity is found by."""
    return {token_digest(keys, t) for t in identity_tokens(identity)}


def query_digests(keys: KeyRing, query: str) -> set[str]:
    """The digests every matching dossier holds (empty: the query names nothing)."""
    return {token_digest(keys, t) for t in name_tokens(query)[:MAX_QUERY_TOKENS]}
