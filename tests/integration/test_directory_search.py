"""The national directory on a real stack: ``maillon directory import`` into the
deployment's store, ``GET /v1/directory`` (accents, hyphens, prefixes, filters, pages,
accounts), and ``!annuaire`` / ``!directory`` through the bot in an encrypted room."""

from __future__ import annotations

from pathlib import Path

import pytest

from dossier_api.domain.directory import upsert_professional
from maillon.shared.circle import DirectoryEntry
from maillon.shared.store import make_engine
from maillon.wiring.cli import main
from tests.harness.annuaire import person, write_activite, write_mssante
from tests.harness.bot_chat import BotChat
from tests.harness.circle import MakeClient
from tests.harness.dossier import api, api_error
from tests.harness.stack import Stack

LINES = 2000


@pytest.fixture(scope="module")
def imported(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    root = tmp_path_factory.mktemp("annuaire")
    made = write_activite(root / "PS_LibreAcces_Personne_activite_202612010000.txt", LINES)
    assert (
        main(["directory", "import", "--dir", str(stack.directory), "--quiet", str(made.path)]) == 0
    )
    write_mssante(root / "Extraction_Correspondance_MSSante_202612010000.txt", LINES)
    mss = root / "Extraction_Correspondance_MSSante_202612010000.txt"
    assert main(["directory", "import", "--dir", str(stack.directory), "--quiet", str(mss)]) == 0
    return stack


def test_the_import_command_reports_in_french(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = write_activite(tmp_path / "petit.txt", 30, broken={7: "rpps"})
    assert main(["directory", "import", "--dir", str(stack.directory), str(made.path)]) == 0
    out = capsys.readouterr()
    assert "lignes rejetées : 1" in out.out and "ligne 7 : numéro RPPS invalide" in out.out
    assert "ajoutés :" in out.out and "Import" in out.err  # the progress bar
    bad = tmp_path / "mauvais.txt"
    bad.write_text("a|b|c|\n")
    assert main(["directory", "import", "--dir", str(stack.directory), str(bad)]) == 2
    assert "fichier refusé, rien n'a été importé" in capsys.readouterr().err


def test_search_api(imported: Stack) -> None:
    stack = imported
    user = stack.register("chercheuse")
    token = user.access_token
    p = person(0)  # MÜLLER FRANÇOIS, dentist in Lyon (69)
    # The professional gets a Maillon account bound by RPPS: the result says so.
    engine = make_engine(stack.deployment.settings.database_url, create_tables=False)
    try:
        upsert_professional(
            engine, DirectoryEntry(user.user_id, "Chirurgien-Dentiste", p.identifier)
        )
    finally:
        engine.dispose()

    def search(query: str) -> dict[str, object]:
        return api(stack, token, "GET", f"/v1/directory?{query}")

    for q in ("muller%20francois", "M%C3%BCLLER", "mul%20fran", "Fran%C3%A7ois%20M%C3%BC"):
        page = search(f"q={q}&departement=69&size=50")
        ids = [r["national_id"] for r in page["results"]]  # type: ignore[attr-defined]
        assert p.national_id in ids, q
    hit = next(
        r
        for r in search(f"q={p.identifier}")["results"]  # type: ignore[attr-defined]
        if r["national_id"] == p.national_id
    )
    assert hit["has_account"] is True and hit["user_id"] == user.user_id
    # By structure and town (words of the activity's site).
    structure = p.structures[0].lower().replace(" ", "%20")  # e.g. "ssiad lyon 6"
    by_structure = search(f"q={structure}%20mul&size=50")["results"]
    assert p.national_id in [r["national_id"] for r in by_structure]  # type: ignore[index]
    assert hit["mssante"] == [p.mailbox] and hit["activities"][0]["town"] == "LYON"
    # Hyphenated first names: "jean-pierre", "jean pierre" and "JEAN-PI" are the same.
    jp = search("q=jean-pierre&size=50")["results"]
    assert jp and jp == search("q=JEAN%20PI&size=50")["results"]
    assert all("JEAN-PIERRE" in r["first_name"] for r in jp)  # type: ignore[index]
    # Filters: profession (code or name), department; pages do not overlap.
    nurses = search("profession=infirmier&departement=31&size=5")
    assert all(r["profession"] == "Infirmier" for r in nurses["results"])  # type: ignore[attr-defined]
    assert nurses["has_more"] is True
    second = search("profession=60&departement=31&size=5&page=2")
    first_ids = {r["national_id"] for r in nurses["results"]}  # type: ignore[attr-defined]
    assert first_ids.isdisjoint(r["national_id"] for r in second["results"])  # type: ignore[attr-defined]
    assert search("q=zzzzzz")["results"] == []
    for bad in ("", "departement=Toulouse", "q=a&size=500"):
        error = api_error(stack, token, "GET", f"/v1/directory?{bad}")
        assert error.status == 400, bad
    assert api_error(stack, None, "GET", "/v1/directory?q=durand").status == 401


async def test_annuaire_through_the_bot_in_an_encrypted_room(
    imported: Stack, make_client: MakeClient
) -> None:
    stack = imported
    user = make_client(stack, "ide")
    chat = BotChat(stack, user)
    bot = stack.deployment.settings.bot_user_id
    room = await user.create_room(invite=[bot], is_direct=True)
    await user.wait_for_member(room, bot)
    assert user.client.rooms[room].encrypted
    p = person(0)
    _, answer = await chat.command(room, "!annuaire müller françois 69")
    assert "MÜLLER" in answer.body and "Chirurgien-Dentiste" in answer.body
    assert "LYON (69)" in answer.body and f"RPPS {p.identifier}" in answer.body
    _, english = await chat.command(room, "!directory muller fran")
    assert "Directory:" in english.body and "MÜLLER" in english.body
    _, usage = await chat.command(room, "!annuaire", ok=False)
    assert "Usage" in usage.body and "!annuaire texte" in usage.body
    _, none = await chat.command(room, "!annuaire zzzzzz")
    assert "Aucun professionnel" in none.body
