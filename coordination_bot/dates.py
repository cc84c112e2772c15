"""Dates and times as French people write them in a chat, in Europe/Paris time.

Accepted: "24/12", "24/12/2026", "24/12/26", "24-12-2026", "2026-12-24", "24 décembre",
"24 déc 2026", "le 24/12", "aujourd'hui", "demain", "après-demain", weekday names
("lundi" = the next Monday, never today), optionally followed by a time ("14h", "14h30",
"9h05", "14:30", "à 14h"); a time alone ("14h") means today. No dependency beyond zoneinfo.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from maillon.shared.dates_fr import format_date, format_datetime
from maillon.shared.text import digits

PARIS = ZoneInfo("Europe/Paris")

WEEKDAYS = {
    "lundi": 0,
    "mardi": 1,
    "mercredi": 2,
    "jeudi": 3,
    "vendredi": 4,
    "samedi": 5,
    "dimanche": 6,
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
MONTHS = {
    "janvier": 1,
    "janv": 1,
    "jan": 1,
    "fevrier": 2,
    "fevr": 2,
    "fev": 2,
    "mars": 3,
    "avril": 4,
    "avr": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "juil": 7,
    "aout": 8,
    "septembre": 9,
    "sept": 9,
    "sep": 9,
    "octobre": 10,
    "oct": 10,
    "novembre": 11,
    "nov": 11,
    "decembre": 12,
    "dec": 12,
}
RELATIVE = {
    "aujourd'hui": 0,
    "aujourdhui": 0,
    "auj": 0,
    "today": 0,
    "demain": 1,
    "tomorrow": 1,
    "apres-demain": 2,
}
FILLERS = {"le", "à", "a", "at", "on", "vers"}

_NUMERIC = re.compile(r"^(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2}|\d{4}))?$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{1,2})(?:h|:|H)(\d{2})?$")

EXAMPLES_FR = "« 24/12 », « 24/12/2026 », « demain 14h », « lundi 9h30 », « aujourd'hui 18h »"


class DateError(ValueError):
    """The text is not a date the parser understands; the message says why, in French."""


@dataclass(frozen=True)
class When:
    day: dt.date
    time: dt.time | None = None

    def at(self, default: dt.time = dt.time(0, 0)) -> dt.datetime:
        """Aware datetime in Europe/Paris (``default`` when no time was given)."""
        return dt.datetime.combine(self.day, self.time or default, tzinfo=PARIS)


def fold(word: str) -> str:
    """Lower case, typographic apostrophe made plain, accents dropped (for matching)."""
    word = word.lower().replace("’", "'").rstrip(".,;")
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _year(raw: str | None, day: int, month: int, today: dt.date) -> int:
    if raw is None:
        year = today.year
        # "24/12" means the next 24/12 (this year unless it is already past).
        try:
            if dt.date(year, month, day) < today:
                year += 1
        except ValueError:
            pass
        return year
    value = int(raw)
    return 2000 + value if len(raw) == 2 else value


def _make_date(year: int, month: int, day: int, text: str) -> dt.date:
    if not 1 <= month <= 12:
        raise DateError(f"« {text} » : le mois doit être entre 1 et 12")
    if not 1 <= year <= 9999:
        raise DateError(f"« {text} » : année impossible")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise DateError(f"« {text} » : ce jour n'existe pas") from None


def _at(tokens: Sequence[str], index: int) -> str:
    return tokens[index] if index < len(tokens) else ""


def parse_time(word: str) -> dt.time | None:
    """ "14h", "14h30", "9H05", "14:30" → time; None when it is not a time at all."""
    match = _TIME.match(word.strip())
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if hour > 23 or minute > 59:
        raise DateError(f"« {word} » : heure impossible (0h à 23h59)")
    return dt.time(hour, minute)


def parse_when(tokens: Sequence[str], now: dt.datetime | None = None) -> tuple[When, int]:
    """Read a date (and optional time) at the start of ``tokens``; return it with the number
    of tokens used. Raise DateError when the first tokens are not a date."""
    now = (now or dt.datetime.now(PARIS)).astimezone(PARIS)
    today = now.date()
    i = 0
    while i < len(tokens) and fold(tokens[i]) in FILLERS:
        i += 1
    if i >= len(tokens):
        raise DateError(f"date manquante (par exemple {EXAMPLES_FR})")
    word = fold(tokens[i])
    day: dt.date | None = None
    time: dt.time | None = None
    if word in RELATIVE:
        day = today + dt.timedelta(days=RELATIVE[word])
        i += 1
    elif word in WEEKDAYS:
        ahead = (WEEKDAYS[word] - today.weekday() - 1) % 7 + 1
        day = today + dt.timedelta(days=ahead)
        i += 1
    elif (iso := _ISO.match(word)) is not None:
        day = _make_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)), tokens[i])
        i += 1
    elif (num := _NUMERIC.match(word)) is not None:
        d, m = int(num.group(1)), int(num.group(2))
        day = _make_date(_year(num.group(3), d, m, today), m, d, tokens[i])
        i += 1
    elif digits(word) and len(word) <= 2 and fold(_at(tokens, i + 1)) in MONTHS:
        d, m = int(word), MONTHS[fold(tokens[i + 1])]
        raw_year = _at(tokens, i + 2) if re.fullmatch(r"\d{4}", _at(tokens, i + 2)) else None
        text = " ".join(tokens[i : i + (3 if raw_year else 2)])
        day = _make_date(_year(raw_year, d, m, today), m, d, text)
        i += 3 if raw_year else 2
    else:
        time = parse_time(word)
        if time is None:
            raise DateError(f"« {tokens[i]} » n'est pas une date (par exemple {EXAMPLES_FR})")
        return When(today, time), i + 1
    j = i
    while j < len(tokens) and fold(tokens[j]) in FILLERS:
        j += 1
    if j < len(tokens):
        time = parse_time(fold(tokens[j]))
        if time is not None:
            i = j + 1
    return When(day, time), i


def parse_date_text(text: str, now: dt.datetime | None = None) -> When:
    """The whole text must be one date (and optional time)."""
    tokens = text.split()
    when, used = parse_when(tokens, now)
    if used != len(tokens):
        rest = " ".join(tokens[used:])
        raise DateError(f"« {rest} » en trop après la date")
    return when


def parse_birth_date(text: str, today: dt.date | None = None) -> dt.date:
    """JJ/MM/AAAA, in the past."""
    today = today or dt.datetime.now(PARIS).date()
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text.strip())
    if match is None:
        raise DateError(f"« {text} » : date de naissance attendue au format JJ/MM/AAAA")
    born = _make_date(int(match.group(3)), int(match.group(2)), int(match.group(1)), text)
    if born > today:
        raise DateError(f"« {text} » : la date de naissance est dans le futur")
    if born.year < today.year - 130:
        raise DateError(f"« {text} » : date de naissance trop ancienne")
    return born


_DURATION = re.compile(r"^(?:(\d{1,2})h(\d{2})?|(\d{1,3})\s?(?:min|mn|m))$")


def parse_duration(word: str) -> dt.timedelta | None:
    """ "1h", "1h30", "45min", "90mn" → duration; None when it is not a duration."""
    match = _DURATION.match(fold(word))
    if match is None:
        return None
    if match.group(3) is not None:
        minutes = int(match.group(3))
    else:
        minutes = int(match.group(1)) * 60 + int(match.group(2) or 0)
    if not 0 < minutes <= 24 * 60:
        raise DateError(f"« {word} » : durée entre 1 minute et 24 heures attendue")
    return dt.timedelta(minutes=minutes)


def french_date(value: dt.date) -> str:
    """« jeudi 24 décembre 2026 »."""
    return format_date(value)


def french_datetime(value: dt.datetime) -> str:
    """« jeudi 24 décembre 2026 à 14h30 » (Paris time)."""
    return format_datetime(value)
