"""Dates as French readers expect them (Europe/Paris time): « lundi 24 décembre 2026 à 14h30 »."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
# A time of day as rotas write it, HH:MM (24:00: the end of the day).
TIME_OF_DAY = "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def format_date(value: dt.date) -> str:
    day = "1er" if value.day == 1 else str(value.day)
    return f"{DAYS[value.weekday()]} {day} {MONTHS[value.month - 1]} {value.year}"


MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_date_en(value: dt.date) -> str:
    """ "Thursday 24 December 2026"."""
    return f"{DAYS_EN[value.weekday()]} {value.day} {MONTHS_EN[value.month - 1]} {value.year}"


def format_birth_date(value: dt.date, lang: str = "fr") -> str:
    """A birth date, without weekday: « 1er mars 1941 », "1 March 1941" in English."""
    if lang == "en":
        return f"{value.day} {MONTHS_EN[value.month - 1]} {value.year}"
    day = "1er" if value.day == 1 else str(value.day)
    return f"{day} {MONTHS[value.month - 1]} {value.year}"


def born(sex: str | None, lang: str = "fr") -> str:
    """« né » / « née » from the INS sex (F, M); « né(e) » only when it is unknown."""
    if lang == "en":
        return "born"
    return {"F": "née", "M": "né"}.get(sex or "", "né(e)")


def _paris(value: dt.datetime) -> dt.datetime:
    """Paris time; naive values are taken as UTC. At the very edge of the calendar (year
    9999) Paris time does not exist: the moment is then shown as it is."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return aware.astimezone(PARIS)
    except OverflowError:
        return aware


def format_time(value: dt.datetime) -> str:
    local = _paris(value)
    return f"{local.hour}h{local.minute:02d}" if local.minute else f"{local.hour}h"


def format_datetime(value: dt.datetime) -> str:
    """A moment in Paris time; naive values are taken as UTC."""
    local = _paris(value)
    return f"{format_date(local.date())} à {format_time(local)}"


def parse_iso(value: str | None) -> dt.datetime | dt.date | None:
    """An ISO date or date-time from the API, for display."""
    if not value:
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_moment(value: dt.datetime | dt.date, lang: str = "fr") -> str:
    """A moment (Paris time) or a day, with its weekday, in French or English:
    « jeudi 24 décembre 2026 à 14h30 », "Thursday 24 December 2026, 14:30"."""
    if not isinstance(value, dt.datetime):
        return format_date_en(value) if lang == "en" else format_date(value)
    if lang != "en":
        return format_datetime(value)
    local = _paris(value)
    return f"{format_date_en(local.date())}, {local.hour:02d}:{local.minute:02d}"


def format_iso(value: str | None, lang: str = "fr") -> str:
    """An ISO date or date-time of the API as people read it ("" when there is none)."""
    parsed = parse_iso(value)
    return "" if parsed is None else format_moment(parsed, lang)


def format_duration(start: dt.datetime, end: dt.datetime) -> str:
    """How long from start to end: « 45 min », « 1 h », « 1 h 30 » ("" when not positive)."""
    minutes = int((end - start).total_seconds() // 60)
    if minutes <= 0:
        return ""
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest:02d}"
    return f"{hours} h" if hours else f"{rest} min"
