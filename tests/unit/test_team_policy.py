"""The care-circle module's decision for a resource team's address (pure, in process): a
circle member may invite it (the appservice turns the invite into a solicitation), it
admits nobody (the address never joins), and nobody outside the circle can use it."""

from __future__ import annotations

from maillon.shared.circle import team_address, team_slug
from synapse_modules import policy
from tests.unit.test_policy import COORD, CTX, MEMBER, NOW, view

TEAM = team_address("emsp-31", "sante.test")


def test_a_member_of_the_circle_may_invite_a_team_address() -> None:
    for inviter in (COORD, MEMBER):
        decision = policy.check_invite(CTX, view(), inviter, TEAM, NOW, False)
        assert not decision.denied and decision.code == "team_solicitation"


def test_nobody_outside_the_circle_solicits_and_the_address_never_joins() -> None:
    outsider = policy.check_invite(CTX, view(), "@dehors:sante.test", TEAM, NOW, False)
    assert outsider.denied and outsider.code == "not_in_circle"
    joined = policy.check_join(CTX, view(inviters={TEAM: COORD}), TEAM, NOW, False)
    assert joined.denied
    elsewhere = policy.check_invite(CTX, view(), COORD, "@equipe.x:ailleurs.test", NOW, False)
    assert elsewhere.denied and elsewhere.code == "server_not_allowed"


def test_team_addresses_are_recognised_by_their_localpart() -> None:
    assert team_slug(TEAM) == "emsp-31"
    assert team_slug("@equipe.EMSP:sante.test") is None
    assert team_slug("@equipes:sante.test") is None
    assert team_slug("@ide:sante.test") is None
