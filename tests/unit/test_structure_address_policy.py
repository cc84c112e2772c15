"""The care-circle module's decision for a structure's address (``@structure.<slug>``, « le
compte du service »), the same routed-address rule as a team's (pure, in process): a circle
member may invite it (the appservice turns the invite into a solicitation of its
référents), it admits nobody, and a peer region's structure address is not routed."""

from __future__ import annotations

from maillon.shared.circle import (
    RoutedAddress,
    routed_address,
    slugify,
    structure_address,
    team_address,
    team_slug,
)
from synapse_modules import policy
from tests.unit.test_policy import COORD, CTX, MEMBER, NOW, view

STRUCTURE = structure_address("ch-purpan", "sante.test")


def test_a_member_of_the_circle_may_invite_a_structure_address() -> None:
    for inviter in (COORD, MEMBER):
        decision = policy.check_invite(CTX, view(), inviter, STRUCTURE, NOW, False)
        assert not decision.denied and decision.code == "structure_solicitation"
    outsider = policy.check_invite(CTX, view(), "@dehors:sante.test", STRUCTURE, NOW, False)
    assert outsider.denied and outsider.code == "not_in_circle"
    joined = policy.check_join(CTX, view(inviters={STRUCTURE: COORD}), STRUCTURE, NOW, False)
    assert joined.denied


def test_a_peer_regions_structure_address_is_not_routed() -> None:
    remote = structure_address("chu", "autre.test")  # a peer server of CTX
    refused = policy.check_invite(CTX, view(), COORD, remote, NOW, False)
    assert refused.denied and refused.code == "remote_structure_address"
    elsewhere = structure_address("x", "ailleurs.test")  # not a peer: as anyone of it
    assert policy.check_invite(CTX, view(), COORD, elsewhere, NOW, False).denied


def test_routed_addresses_name_their_owner() -> None:
    assert routed_address(STRUCTURE) == RoutedAddress("structure", "ch-purpan")
    assert routed_address(team_address("emsp", "sante.test")) == RoutedAddress("team", "emsp")
    assert team_slug(STRUCTURE) is None
    assert routed_address("@structure.CH:sante.test") is None
    assert routed_address("@structures:sante.test") is None
    assert slugify("CH Purpan — Gériatrie (Toulouse)") == "ch-purpan-geriatrie-toulouse"
    assert slugify("!!!") == "structure" and len(slugify("x" * 90)) == 40
