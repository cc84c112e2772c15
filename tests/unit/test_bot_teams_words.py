"""The bot's !equipe and !sollicitation lists in the command's language: levels, statuses
and pathway names in English for an English command; a peer region's solicitation (no
dossier here) shows no pathway rather than « None »."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from coordination_bot.commands.equipe import equipe, sollicitation
from coordination_bot.core import Context
from coordination_bot.services import Services


def _solicitation(number: int, status: str, pathway_id: str | None) -> dict[str, Any]:
    return {
        "id": number,
        "team_name": "Équipe mobile de gériatrie",
        "status": status,
        "status_label": "acceptée",
        "pathway": "DAC — situation complexe" if pathway_id else None,
        "pathway_id": pathway_id,
        "pathway_version": None,
        "requester": {"user_id": "@a:sante.test", "display_name": "Anne Morel"},
        "reason": "chutes",
    }


class FakeDossiers:
    def my_solicitations(self) -> list[dict[str, Any]]:
        return [_solicitation(1, "acceptee", "dac"), _solicitation(2, "envoyee", None)]

    def get_dossier(self, dossier_id: str) -> dict[str, Any]:
        return {"id": dossier_id, "pathway": "dac"}

    def teams(self, pathway: str) -> list[dict[str, Any]]:
        team = {"slug": "emg", "name": "EMG", "level": "departementale", "expertise": ""}
        return [{**team, "level_label": "départementale", "address": "l'adresse"}]


class FakeServices:
    dossiers = FakeDossiers()

    async def as_sender(self, sender: str, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    async def dossier_for_room(self, room_id: str) -> str:
        return "d1"


def _ctx(lang: str) -> Context:
    return Context("@a:sante.test", "!r:sante.test", "$e", lang, cast(Services, FakeServices()))


async def test_the_solicitations_list_speaks_the_command_s_language() -> None:
    english = (await sollicitation(_ctx("en"), [])).plain
    assert "n° 1 — Équipe mobile de gériatrie — accepted — DAC — complex situation" in english
    assert "n° 2 — Équipe mobile de gériatrie — sent — Anne Morel" in english
    assert "acceptée" not in english and "None" not in english
    french = (await sollicitation(_ctx("fr"), [])).plain
    assert "— acceptée — DAC — situation complexe — Anne Morel : chutes" in french
    assert "— envoyée — Anne Morel : chutes" in french


async def test_the_teams_list_says_the_level_in_the_command_s_language() -> None:
    assert "EMG (departmental)" in (await equipe(_ctx("en"), [])).plain
    assert "EMG (départementale)" in (await equipe(_ctx("fr"), [])).plain
