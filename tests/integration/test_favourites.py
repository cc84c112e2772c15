"""Favourites (groupes de favoris) on a real stack of their own (Synapse, appservice, bot,
dossier API on PostgreSQL, a national-directory extract imported; nio clients with
end-to-end encryption): a professional keeps named groups of colleagues — accounts of the
directory and professionals of the national directory without one —, names shown; only
the owner sees them; a coordinator invites a group at once into a dossier, each person
getting the circle entry (or the pending invitation) ``add_member`` / ``invite`` would
make, with their checks (peer servers, consent for a role outside the care team), the
answer telling what happened per person; a non-coordinator is refused and told whom to ask.
Through the API and through the bot (``!favoris``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maillon.wiring.cli import main
from tests.harness.annuaire import Person, person, write_extracts
from tests.harness.bot_chat import BotChat
from tests.harness.circle import membership, token_of, wait_for
from tests.harness.dossier import api, api_error, new_dossier
from tests.harness.matrix import E2EClient
from tests.harness.stack import Stack, postgres_stack

MakeClient = Callable[[Stack, str], E2EClient]
EXTRACT = 30


@pytest.fixture(scope="module")
def fav_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    extracts = write_extracts(tmp_path_factory.mktemp("annuaire-favoris"), EXTRACT)

    def imported(stack: Stack) -> None:
        for path in extracts:
            command = ["directory", "import", "--dir", str(stack.directory), "--quiet", str(path)]
            assert main(command) == 0

    with postgres_stack(tmp_path_factory.mktemp("stack-favoris"), imported) as stack:
        yield stack


_used: set[int] = set()


def listed_without_account() -> Person:
    """A professional of the extract with an RPPS and an MSSanté mailbox, not used yet."""
    for i in range(0, EXTRACT, 3):
        p = person(i)
        if p.id_type == "8" and i not in _used and p.index < EXTRACT // 2:
            _used.add(i)
            return p
    raise AssertionError("no professional left in the extract")


def named(stack: Stack, client: E2EClient, name: str, profession: str) -> E2EClient:
    stack.bind_directory(client.user_id, profession, name)
    return client


async def test_favourites_api_owner_only_and_a_group_invited_person_by_person(
    fav_stack: Stack, make_client: MakeClient, tmp_path: Path
) -> None:
    stack = fav_stack
    coord = named(stack, make_client(stack, "coord"), "Aline Roux", "infirmière coordinatrice")
    ide = named(stack, make_client(stack, "ide"), "Inès Durand", "infirmier")
    aide = named(stack, make_client(stack, "ad"), "Paul Morel", "aide à domicile")
    nurse = named(stack, make_client(stack, "ide"), "Lise Caron", "infirmier")
    far = f"@far{secrets.token_hex(3)}:ailleurs.example"
    stack.bind_directory(far, "médecin", "Dr Jean Loin")  # a server that is not a peer
    p = listed_without_account()
    token = token_of(coord)

    members = [
        {"user_id": ide.user_id, "role": "IDE"},
        {"user_id": aide.user_id, "role": "AD"},
        {"user_id": far, "role": "MED"},
        {"rpps": p.identifier, "role": "KINE"},
    ]
    group = api(
        stack, token, "POST", "/v1/me/favourites", {"name": "Équipe de ville", "members": members}
    )
    gid = group["id"]
    shown = {m["display_name"]: m for m in group["members"]}
    assert set(shown) == {
        "Inès Durand",
        "Paul Morel",
        "Dr Jean Loin",
        f"{p.first_name} {p.last_name}",
    }
    assert shown["Inès Durand"]["profession"] == "infirmier" and shown["Inès Durand"]["has_account"]
    assert shown[f"{p.first_name} {p.last_name}"]["rpps"] == p.identifier
    assert not shown[f"{p.first_name} {p.last_name}"]["has_account"]

    # Bad input: 4xx in words, never a 500.
    path = "/v1/me/favourites"
    again = api_error(stack, token, "POST", path, {"name": "equipe de VILLE"})
    assert again.status == 409 and "déjà un groupe" in str(again)
    stranger = make_client(stack, "x", profession=None)
    unknown = api_error(
        stack, token, "POST", path, {"name": "A", "members": [{"user_id": stranger.user_id}]}
    )
    assert unknown.status == 400 and "annuaire des professionnels" in str(unknown)
    bad = api_error(stack, token, "POST", path, {"name": "B", "members": [{"rpps": "123"}]})
    assert bad.status == 400 and "11 chiffres" in str(bad)
    absent = api_error(
        stack, token, "POST", path, {"name": "C", "members": [{"rpps": "99999999999"}]}
    )
    assert absent.status == 404 and "annuaire national" in str(absent)
    role = api_error(
        stack,
        token,
        "POST",
        path,
        {"name": "D", "members": [{"user_id": ide.user_id, "role": "PATIENT"}]},
    )
    assert role.status == 400 and "role" in str(role)
    assert api_error(stack, token, "GET", f"{path}/abc").status == 400
    assert [g["name"] for g in api(stack, token, "GET", path)["groups"]] == ["Équipe de ville"]

    # Only the owner sees and changes their groups.
    other = token_of(nurse)
    assert api(stack, other, "GET", path)["groups"] == []
    for method, sub in (("GET", ""), ("DELETE", ""), ("DELETE", f"/members/{ide.user_id}")):
        refused = api_error(stack, other, method, f"{path}/{gid}{sub}")
        assert refused.status == 404 and "groupe de favoris inconnu" in str(refused)

    # Add and remove a member.
    added = api(
        stack, token, "POST", f"{path}/{gid}/members", {"members": [{"user_id": nurse.user_id}]}
    )
    assert "Lise Caron" in {m["display_name"] for m in added["members"]}
    twice = api_error(
        stack, token, "POST", f"{path}/{gid}/members", {"members": [{"user_id": nurse.user_id}]}
    )
    assert twice.status == 409 and "déjà dans le groupe" in str(twice)
    removed = api(stack, token, "DELETE", f"{path}/{gid}/members/{nurse.user_id}")
    assert "Lise Caron" not in {m["display_name"] for m in removed["members"]}
    assert api_error(stack, token, "DELETE", f"{path}/{gid}/members/{nurse.user_id}").status == 404

    # A dossier: the nurse joins its circle as a member (not a coordinator).
    dossier = new_dossier(stack, token)
    dpath, room_id = f"/v1/dossiers/{dossier['id']}", str(dossier["room_id"])
    await coord.accept_invite(room_id)
    api(stack, token, "POST", f"{dpath}/circle", {"user_id": nurse.user_id, "role": "IDE"})
    mine = api(
        stack, other, "POST", path, {"name": "Mes collègues", "members": [{"user_id": ide.user_id}]}
    )
    refused = api_error(stack, other, "POST", f"{dpath}/favourites/{mine['id']}", {})
    assert refused.status == 403 and "seul un coordinateur" in str(refused)
    assert "Aline Roux" in str(refused)  # whom to ask, by name
    # Another's group cannot be invited either (unknown to the caller).
    assert api_error(stack, other, "POST", f"{dpath}/favourites/{gid}", {}).status == 404
    circle = {m["user_id"] for m in api(stack, token, "GET", f"{dpath}/circle")["members"]}
    assert circle == {coord.user_id, nurse.user_id}

    # The coordinator invites the group: one outcome per person.
    made = api(stack, token, "POST", f"{dpath}/favourites/{gid}", {})
    by_name = {r["display_name"]: r for r in made["results"]}
    assert by_name["Inès Durand"]["outcome"] == "added" and by_name["Inès Durand"]["role"] == "IDE"
    assert by_name["Paul Morel"]["outcome"] == "refused"
    assert "hors de l'équipe de soins" in by_name["Paul Morel"]["message"]  # consent (role AD)
    assert by_name["Dr Jean Loin"]["outcome"] == "refused"
    assert "serveur partenaire" in by_name["Dr Jean Loin"]["message"]
    invited = by_name[f"{p.first_name} {p.last_name}"]
    assert invited["outcome"] == "invited" and invited["rpps"] == p.identifier
    assert made["counts"] == {"added": 1, "invited": 1, "already": 0, "refused": 2}
    members_now = api(stack, token, "GET", f"{dpath}/circle")["members"]
    assert {m["user_id"] for m in members_now if m["active"]} == {
        coord.user_id,
        nurse.user_id,
        ide.user_id,
    }
    assert not next(m for m in members_now if m["user_id"] == ide.user_id)["coordinator"]
    pending = api(stack, token, "GET", f"{dpath}/invitations")["invitations"]
    assert [(i["rpps"], i["role"], i["status"]) for i in pending] == [
        (p.identifier, "KINE", "pending")
    ]
    await wait_for(
        lambda: membership(stack, token, room_id, ide.user_id) == "invite",
        "the added colleague invited into the patient room",
        timeout=30,
    )
    assert membership(stack, token, room_id, aide.user_id) is None

    # With the coordinator's attestation the role outside the care team enters; the others
    # are there (or invited) already.
    again_made = api(stack, token, "POST", f"{dpath}/favourites/{gid}", {"attested": True})
    outcomes = {r["display_name"]: r["outcome"] for r in again_made["results"]}
    assert outcomes == {
        "Inès Durand": "already",
        "Paul Morel": "added",
        "Dr Jean Loin": "refused",
        f"{p.first_name} {p.last_name}": "already",
    }
    deleted = api(stack, token, "DELETE", f"{path}/{gid}")
    assert deleted == {"ok": True, "name": "Équipe de ville"}
    assert api_error(stack, token, "GET", f"{path}/{gid}").status == 404


async def test_favourites_through_the_bot(fav_stack: Stack, make_client: MakeClient) -> None:
    stack = fav_stack
    coord = named(stack, make_client(stack, "coordbot"), "Claire Fontaine", "médecin")
    ide = named(stack, make_client(stack, "idebot"), "Marc Petit", "infirmier")
    kine = named(stack, make_client(stack, "kinebot"), "Anne Leroy", "masseur-kinésithérapeute")
    p = listed_without_account()
    token = token_of(coord)
    dossier = new_dossier(stack, token)
    room = str(dossier["room_id"])
    await coord.accept_invite(room, timeout=60)
    chat = BotChat(stack, coord)
    await coord.wait_for_member(room, chat.bot, timeout=60)

    _, made = await chat.command(
        room, f"!favoris creer « Soins de ville » {ide.user_id} {kine.user_id} {p.identifier}"
    )
    assert "Groupe de favoris « Soins de ville » créé : 3 personne(s)." in made.body
    assert "Marc Petit (infirmier)" in made.body and "Anne Leroy" in made.body
    assert f"{p.first_name} {p.last_name}" in made.body and "pas encore de compte" in made.body
    assert ide.user_id not in made.body  # people by name, never Matrix ids
    _, listing = await chat.command(room, "!favoris")
    assert "Mes groupes de favoris : 1" in listing.body and "Soins de ville : " in listing.body
    _, english = await chat.command(room, "!favourites")
    assert "My favourites groups: 1" in english.body
    _, wrong = await chat.command(room, "!favoris bidule", ok=False)
    assert "Sous-commande « bidule » inconnue" in wrong.body and "!favoris creer NOM" in wrong.body
    _, short = await chat.command(room, "!favoris creer", ok=False)
    assert "!favoris creer NOM @utilisateur|RPPS…" in short.body
    _, bad_user = await chat.command(room, "!favoris ajouter « Soins de ville » durand", ok=False)
    assert "n'est pas un identifiant Matrix" in bad_user.body
    _, en_wrong = await chat.command(room, "!favourites invite", ok=False)
    assert "!favourites invite NAME [ROLE] [attestation]" in en_wrong.body
    _, unknown = await chat.command(room, "!favoris inviter Inconnu", ok=False)
    assert "Groupe de favoris inconnu : « Inconnu »" in unknown.body

    _, invited = await chat.command(room, "!favoris inviter « soins de VILLE » IDE")
    assert (
        "Groupe « Soins de ville » invité : 2 ajout(s) au cercle, 1 invitation(s)" in invited.body
    )
    assert "Marc Petit (infirmier) (infirmier / infirmière) — ajouté(e) au cercle" in invited.body
    assert "invitation envoyée" in invited.body and p.last_name in invited.body
    circle = api(stack, token, "GET", f"/v1/dossiers/{dossier['id']}/circle")["members"]
    assert {m["user_id"] for m in circle if m["active"]} == {
        coord.user_id,
        ide.user_id,
        kine.user_id,
    }

    # A member who is not a coordinator: refused, told whom to ask.
    await ide.accept_invite(room, timeout=60)
    await coord.wait_for_member(room, ide.user_id)
    ide_chat = BotChat(stack, ide)
    await ide_chat.command(room, f"!favoris creer Moi {kine.user_id}")
    _, refused = await ide_chat.command(room, "!favoris inviter Moi", ok=False)
    assert "Seul un coordinateur" in refused.body and "Claire Fontaine" in refused.body
    _, removed = await chat.command(room, f"!favoris retirer « Soins de ville » {kine.user_id}")
    assert "2 personne(s)" in removed.body
    _, deleted = await chat.command(room, "!favoris supprimer « Soins de ville »")
    assert "« Soins de ville » supprimé" in deleted.body
