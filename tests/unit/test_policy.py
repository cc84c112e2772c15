"""The pure care-circle decisions (the module glue is covered by integration tests)."""

from __future__ import annotations

import datetime as dt

import pytest

from maillon.shared.circle import (
    CIRCLE_EVENT,
    DOSSIER_EVENT,
    CircleEntry,
    DossierLink,
    user_state_key,
)
from synapse_modules import policy

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
CTX = policy.PolicyContext(
    server_name="sante.test",
    service_user="@maillon:sante.test",
    bot_user="@coordination:sante.test",
    peer_servers=("autre.test",),
    exempt_users=("@exempte:sante.test",),
)
COORD = "@coord:sante.test"
MEMBER = "@ide:sante.test"
REMOTE = "@mt:autre.test"


def view(**overrides: object) -> policy.RoomView:
    circle = {
        COORD: CircleEntry(COORD, "COORD", coordinator=True),
        MEMBER: CircleEntry(MEMBER, "IDE"),
        REMOTE: CircleEntry(REMOTE, "MT"),
        "@parti:sante.test": CircleEntry("@parti:sante.test", "KINE", active=False),
        "@fin:sante.test": CircleEntry("@fin:sante.test", "MED", until=NOW - dt.timedelta(days=1)),
    }
    base: dict[str, object] = {
        "dossier": DossierLink("D1"),
        "circle": circle,
        "has_encryption": True,
    }
    base.update(overrides)
    return policy.RoomView(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inviter", "invitee", "known", "allowed", "code"),
    [
        (MEMBER, COORD, False, True, "in_circle"),
        (MEMBER, REMOTE, False, True, "in_circle"),
        (MEMBER, "@autre:sante.test", True, False, "not_in_circle"),
        (COORD, "@nouveau:sante.test", True, True, "coordinator_adds_professional"),
        (COORD, "@voisin:sante.test", False, False, "not_a_known_professional"),
        (COORD, "@x:ailleurs.test", True, False, "server_not_allowed"),
        (COORD, "@parti:sante.test", False, False, "not_a_known_professional"),
        (MEMBER, "@fin:sante.test", False, False, "not_in_circle"),
        (MEMBER, "@coordination:sante.test", False, True, "service_user"),
    ],
)
def test_invites(inviter: str, invitee: str, known: bool, allowed: bool, code: str) -> None:
    decision = policy.check_invite(CTX, view(), inviter, invitee, NOW, known)
    assert (decision.allowed, decision.code) == (allowed, code)
    if not allowed:
        assert decision.reason  # a human reason, in French
        assert invitee in decision.reason or "serveur" in decision.reason


def test_joins_need_the_circle_or_a_coordinator_invite() -> None:
    assert policy.check_join(CTX, view(), MEMBER, NOW, False).allowed
    assert not policy.check_join(CTX, view(), "@parti:sante.test", NOW, True).allowed
    assert not policy.check_join(CTX, view(), "@fin:sante.test", NOW, True).allowed
    invited = view(memberships={"@neuf:sante.test": "invite"}, inviters={"@neuf:sante.test": COORD})
    assert policy.check_join(CTX, invited, "@neuf:sante.test", NOW, True).allowed
    assert not policy.check_join(CTX, invited, "@neuf:sante.test", NOW, False).allowed
    by_member = view(
        memberships={"@neuf:sante.test": "invite"}, inviters={"@neuf:sante.test": MEMBER}
    )
    assert not policy.check_join(CTX, by_member, "@neuf:sante.test", NOW, True).allowed


def test_knocks_only_where_the_pathway_allows() -> None:
    assert not policy.check_knock(view()).allowed
    assert policy.check_knock(view(dossier=DossierLink("D1", allow_knock=True))).allowed


@pytest.mark.parametrize(
    ("etype", "content"),
    [
        ("m.room.join_rules", {"join_rule": "public"}),
        ("m.room.join_rules", {"join_rule": "restricted"}),
        ("m.room.history_visibility", {"history_visibility": "shared"}),
        ("m.room.guest_access", {"guest_access": "can_join"}),
        ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        (DOSSIER_EVENT, {"dossier_id": "AUTRE"}),
    ],
)
def test_loosening_refused_even_for_maillon_itself(etype: str, content: dict[str, str]) -> None:
    decision = policy.check_state_event(CTX, view(), CTX.service_user, etype, "", content, NOW)
    assert decision.denied


def test_protected_state_only_through_maillon_and_exemptions_are_marked() -> None:
    key = user_state_key("@nouveau:sante.test")
    content = {"role": "IDE", "active": True}
    assert policy.check_state_event(CTX, view(), COORD, CIRCLE_EVENT, key, content, NOW).denied
    assert policy.check_state_event(
        CTX, view(), CTX.service_user, CIRCLE_EVENT, key, content, NOW
    ).allowed
    exempt = policy.check_state_event(
        CTX, view(), "@exempte:sante.test", "m.room.join_rules", "", {"join_rule": "public"}, NOW
    )
    assert exempt.allowed and exempt.code == "exemption_used"


def test_restricted_roles_need_the_pathway() -> None:
    key = user_state_key("@aidant:sante.test")
    aidant = {"role": "AID", "active": True}
    refused = policy.check_state_event(
        CTX, view(), CTX.service_user, CIRCLE_EVENT, key, aidant, NOW
    )
    assert refused.denied and refused.code == "restricted_role_refused"
    open_view = view(dossier=DossierLink("D1", allow_patient=True))
    assert policy.check_state_event(
        CTX, open_view, CTX.service_user, CIRCLE_EVENT, key, aidant, NOW
    ).allowed
    stranger = user_state_key("@x:ailleurs.test")
    assert (
        policy.check_state_event(
            CTX, view(), CTX.service_user, CIRCLE_EVENT, stranger, {"role": "MT"}, NOW
        ).code
        == "server_not_allowed"
    )


def test_plaintext_messages_refused_encrypted_allowed() -> None:
    assert policy.check_message(CTX, MEMBER, "m.room.message").denied
    assert policy.check_message(CTX, MEMBER, "m.room.encrypted").allowed
