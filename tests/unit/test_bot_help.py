"""The bot's help as a newcomer reads it: one line per command with its own description,
English help in English words, errors that start with a capital, « né » / « née »."""

from __future__ import annotations

import datetime as dt
import re

import pytest

import coordination_bot.commands  # noqa: F401  (registers every command family)
from coordination_bot.commands.aide import command_help, command_list
from coordination_bot.core import ORDER, REGISTRY, Command, Context
from coordination_bot.dispatch import error_reply
from maillon.shared.dates_fr import born, format_birth_date

FRENCH_SUBCOMMANDS = {"ajouter", "retirer", "fait", "nouveau", "fermer", "jusqu'au"}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("• ")]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_usage_line_has_its_own_description(lang: str) -> None:
    lines = _lines(command_list(lang).plain)
    expected = sum(len(c.usage_lines(lang)) for c in ORDER)
    assert len(lines) == expected
    summaries = [line.split(" — ", 1)[1] for line in lines]
    assert all(summaries), lines
    # A family's descriptions are not merged on one line: each line says one thing.
    for cmd in ORDER:
        if len(cmd.usage_lines(lang)) > 1:
            assert len(set(cmd.details(lang))) == len(cmd.usage_lines(lang)), cmd.name
    assert "• !tache fait N — marquer la tâche N comme faite" in command_list("fr").plain


def test_a_family_without_a_description_per_line_is_refused() -> None:
    async def handler(ctx: Context, args: list[str]) -> object:
        raise AssertionError

    with pytest.raises(ValueError, match="one fr description per usage line"):
        Command("!x", "!x a\n!x b", "!x a", "aide", "help", handler)  # type: ignore[arg-type]


def test_english_help_uses_english_words_throughout() -> None:
    english = command_list("en").plain
    for line in _lines(english):
        usage = line[2:].split(" — ", 1)[0]
        words = set(re.findall(r"[a-zà-ÿ']+", usage.lower()))
        assert not words & FRENCH_SUBCOMMANDS, line
        assert not usage.startswith(("!agenda", "!cercle", "!tache", "!aide")), line
    assert "!calendar add WHEN" in english
    task = command_help(REGISTRY["!task"], "en").plain
    assert task.startswith("!task — ") and "!task done N — mark task N as done" in task
    assert "Usage:" in task and "Also: !tache" in task


def test_error_messages_start_with_a_capital() -> None:
    reply = error_reply("fr", "une seule commande à la fois", None)
    assert reply.plain == "❌ Une seule commande à la fois"


def test_birth_wording_follows_the_sex_and_has_no_weekday() -> None:
    date = dt.date(1941, 3, 1)
    assert f"{born('F')} le {format_birth_date(date)}" == "née le 1er mars 1941"
    assert born("M") == "né" and born("I") == "né(e)" and born(None) == "né(e)"
    assert format_birth_date(dt.date(1941, 12, 24), "en") == "24 December 1941"
