"""The care-circle module's decision for a resource team's address (pure, in process): a
circle member may invite it (the appservice turns the invite into a solicitation), it
admits nobody (the address never joins), and nobody outside the circle can use it."""

from __future__ import annotations

from maillon.shared.circle import DossierLink, team_address, team_slug
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


def test_a_peer_regions_team_address_leaves_only_with_consent_to_share() -> None:
    remote = team_address("crmr", "autre.test")
    link = DossierLink("d1")
    refused = policy.check_invite(CTX, view(dossier=link), MEMBER, remote, NOW, False)
    assert refused.denied and refused.code == "remote_team_without_consent"
    assert "consentement" in refused.reason
    allowed = DossierLink("d1", share_outside=True)
    decision = policy.check_invite(CTX, view(dossier=allowed), MEMBER, remote, NOW, False)
    assert not decision.denied and decision.code == "remote_team_solicitation"
    outsider = policy.check_invite(CTX, view(dossier=allowed), "@x:sante.test", remote, NOW, False)
    assert outsider.denied
    # The link keeps the flag through room state (a value of the wrong type is no link).
    assert DossierLink.from_content(allowed.to_content()) == allowed
    assert DossierLink.from_content({**allowed.to_content(), "share_outside": "oui"}) is None
