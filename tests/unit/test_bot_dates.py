"""The bot's French date parser (Europe/Paris), examples and properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination_bot.core import CommandError, tokenize
from coordination_bot.dates import (
    PARIS,
    DateError,
    parse_birth_date,
    parse_date_text,
    parse_duration,
    parse_when,
)

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)  # Monday 23 November 2026, 10:00


@pytest.mark.parametrize(
    ("text", "day", "time"),
    [
        ("24/12", dt.date(2026, 12, 24), None),
        ("24/12/2026", dt.date(2026, 12, 24), None),
        ("24/12/27", dt.date(2027, 12, 24), None),
        ("1/3", dt.date(2027, 3, 1), None),  # already past this year: next year
        ("23/11", dt.date(2026, 11, 23), None),  # today stays today
        ("2026-12-24", dt.date(2026, 12, 24), None),
        ("le 24.12.2026 à 8h", dt.date(2026, 12, 24), dt.time(8, 0)),
        ("demain 14h", dt.date(2026, 11, 24), dt.time(14, 0)),
        ("Demain à 14h15", dt.date(2026, 11, 24), dt.time(14, 15)),
        ("après-demain", dt.date(2026, 11, 25), None),
        ("lundi 9h30", dt.date(2026, 11, 30), dt.time(9, 30)),  # never today
        ("mardi", dt.date(2026, 11, 24), None),
        ("dimanche 18:45", dt.date(2026, 11, 29), dt.time(18, 45)),
        ("aujourd'hui 18h", dt.date(2026, 11, 23), dt.time(18, 0)),
        ("aujourd’hui 18h", dt.date(2026, 11, 23), dt.time(18, 0)),
        ("14h", dt.date(2026, 11, 23), dt.time(14, 0)),
        ("9H05", dt.date(2026, 11, 23), dt.time(9, 5)),
        ("24 décembre", dt.date(2026, 12, 24), None),
        ("3 janv 2027 10h", dt.date(2027, 1, 3), dt.time(10, 0)),
        ("29/02/2028", dt.date(2028, 2, 29), None),
    ],
)
def test_french_dates(text: str, day: dt.date, time: dt.time | None) -> None:
    when = parse_date_text(text, NOW)
    assert (when.day, when.time) == (day, time)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("31/02", "n'existe pas"),
        ("29/02/2027", "n'existe pas"),
        ("12/13", "mois"),
        ("25h", "heure impossible"),
        ("14h75", "heure impossible"),
        ("bientôt", "n'est pas une date"),
        ("", "date manquante"),
        ("demain 14h plus tard", "en trop"),
    ],
)
def test_refusals_say_why(text: str, why: str) -> None:
    with pytest.raises(DateError, match=why):
        parse_date_text(text, NOW)


def test_a_date_stops_where_the_words_go_on() -> None:
    when, used = parse_when(["lundi", "9h30", "45min", "Visite"], NOW)
    assert used == 2 and when.at() == dt.datetime(2026, 11, 30, 9, 30, tzinfo=PARIS)
    assert parse_duration("45min") == dt.timedelta(minutes=45)
    assert parse_duration("1h30") == dt.timedelta(minutes=90)
    assert parse_duration("Visite") is None


def test_paris_time_across_daylight_saving() -> None:
    summer = parse_date_text("14/07/2027 12h", NOW).at()
    winter = parse_date_text("24/12 12h", NOW).at()
    assert summer.utcoffset() == dt.timedelta(hours=2)
    assert winter.utcoffset() == dt.timedelta(hours=1)


def test_birth_dates() -> None:
    assert parse_birth_date("12/03/1941", NOW.date()) == dt.date(1941, 3, 12)
    for bad in ("12/03/41", "1941-03-12", "12/03/2030", "30/02/1941", "01/01/1850"):
        with pytest.raises(DateError):
            parse_birth_date(bad, NOW.date())


def test_tokens_keep_quoted_words_together() -> None:
    assert tokenize('ajouter @a:b "Passer la voir" demain') == [
        "ajouter",
        "@a:b",
        "Passer la voir",
        "demain",
    ]
    assert tokenize("« Appeler la fille » jusqu'au 24/12") == [
        "Appeler la fille",
        "jusqu'au",
        "24/12",
    ]
    with pytest.raises(CommandError, match="non refermé"):
        tokenize('"titre sans fin')


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)))
def test_written_dates_read_back(day: dt.date) -> None:
    assert parse_date_text(day.strftime("%d/%m/%Y"), NOW).day == day
    assert parse_date_text(day.isoformat(), NOW).day == day


@given(
    st.sampled_from(["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
)
def test_weekdays_are_within_the_coming_week(name: str, moment: dt.datetime) -> None:
    now = moment.replace(tzinfo=PARIS)
    when = parse_date_text(name, now)
    ahead = (when.day - now.date()).days
    assert 1 <= ahead <= 7
    assert (
        when.day.strftime("%A").lower()
        in {
            "lundi": "monday",
            "mardi": "tuesday",
            "mercredi": "wednesday",
            "jeudi": "thursday",
            "vendredi": "friday",
            "samedi": "saturday",
            "dimanche": "sunday",
        }[name]
    )


@given(st.integers(0, 23), st.integers(0, 59))
def test_times(hour: int, minute: int) -> None:
    for text in (f"{hour}h{minute:02d}", f"{hour}:{minute:02d}", f"demain {hour}h{minute:02d}"):
        assert parse_date_text(text, NOW).time == dt.time(hour, minute)


@given(st.text(max_size=40))
def test_any_text_is_a_date_or_a_clear_refusal(text: str) -> None:
    try:
        when = parse_date_text(text, NOW)
    except DateError as exc:
        assert str(exc)
    else:
        assert isinstance(when.day, dt.date)
