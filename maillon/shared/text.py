"""Text that can always be encoded: JSON lets a client send a lone UTF-16 surrogate
(``"\\ud800"``), which no UTF-8 page, calendar or export can carry. Refused at write
(``unencodable_field``), and replaced by U+FFFD wherever something already stored is shown
(``displayable``)."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def digits(text: str) -> bool:
    """Only the digits 0 to 9, at least one. ``str.isdigit`` also says yes to « ³ » (which
    ``int`` refuses) and to other scripts' digits (which ``int`` reads): a number typed in a
    URL, a form or a command is checked with this before ``int``."""
    return text.isascii() and text.isdigit()


def displayable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (encodable in UTF-8)."""
    return LONE_SURROGATE.sub(REPLACEMENT, text)


def is_encodable(text: str) -> bool:
    return LONE_SURROGATE.search(text) is None


def json_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """The first problem of a parsed JSON value that no schema can express: nesting deeper
    than ``max_depth``, or a string (or key) with a lone surrogate. Returns (where, what) —
    ``where`` the dotted path of the field ("corps" for the whole body) — or None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > max_depth:
            return where or "corps", f"imbrication trop profonde (au plus {max_depth} niveaux)"
        if isinstance(item, str):
            if not is_encodable(item):
                return where or "corps", "caractère invalide (moitié de paire UTF-16 isolée)"
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                if not is_encodable(str(key)):
                    return displayable(path), "nom de champ invalide (moitié de paire UTF-16)"
                stack.append((child, path, depth + 1))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                stack.append((child, f"{where}.{index}" if where else str(index), depth + 1))
    return None


# -- folding: the one way text is compared and searched (names, notes, the directory) --------

_LIGATURES = {"œ": "oe", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "ı": "i"}  # not in NFKD
_SEPARATORS = frozenset("-‐‑‒–—'’_")
_NOT_WORD = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """One character without accent or case, ligatures spelt out ("É" → "e", "Œ" → "oe")."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return "".join(_LIGATURES.get(c, c) for c in bare.casefold())


@functools.lru_cache(maxsize=65536)
def fold_text(value: str) -> str:
    """``value`` without accents or case, ligatures spelt out: what every comparison of
    names and words starts from. Pure."""
    return "".join(fold_char(c) for c in value)


def words(value: str) -> list[str]:
    """The folded words of ``value``, split at anything but a letter or a digit (hyphens,
    apostrophes, spaces, punctuation): "Lefèvre-D'Aubigné" → ["lefevre", "d", "aubigne"]."""
    return [w for w in _NOT_WORD.split(fold_text(value)) if w]


def normalise_name(value: str) -> str:
    """A person's name in the one form that blind indexes compare: without accents, case,
    hyphens, apostrophes or spaces ("Lefèvre-D'Aubigné" → "lefevredaubigne"). Pure."""
    return "".join(words(value))


def localpart_of(name: str, fallback: str = "pro") -> str:
    """A Matrix localpart made of a person's name ("Élise Lefèvre-Dupont" →
    "elise.lefevre.dupont"), at most 40 characters."""
    return ".".join(words(name))[:40].strip(".") or fallback


def first_given_name(value: str) -> str:
    """The first of a person's first names, normalised ("Jean-Pierre Louis" → "jean"); the
    identity vigilance compares this one, since first names are often given in part."""
    found = words(value)
    return found[0] if found else ""


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` folded for searching (accents, case, hyphens and apostrophes ignored, runs of
    spaces as one) and, for each character of the result, its index in ``text``."""
    out: list[str] = []
    where: list[int] = []
    for index, ch in enumerate(text):
        for piece in " " if ch.isspace() or ch in _SEPARATORS else fold_char(ch):
            if piece == " " and (not out or out[-1] == " "):
                continue
            out.append(piece)
            where.append(index)
    return "".join(out), where


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_GAPS = re.compile("[\\s\\-‐‑‒–—'’_]+")


def fold_compact(text: str) -> str:
    """``text`` folded as :func:`fold` does, without any space: the fast form to test
    whether words occur (« télé-assistance » → « teleassistance »)."""
    bare = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    folded = _GAPS.sub("", bare).casefold()
    for ligature, letters in _LIGATURES.items():
        folded = folded.replace(ligature, letters)
    return folded
