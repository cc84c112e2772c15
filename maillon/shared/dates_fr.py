"""Dates as French readers expect them (Europe/Paris time): « lundi 24 décembre 2026 à 14h30 »."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
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


def format_iso(value: str | None) -> str:
    parsed = parse_iso(value)
    if parsed is None:
        return ""
    if isinstance(parsed, dt.datetime):
        return format_datetime(parsed)
    return format_date(parsed)
