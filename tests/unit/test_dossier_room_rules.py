"""Pure pieces of the dossier ↔ room link: read-only power levels of a closed dossier,
audiences of side rooms, membership comparison, room names without the patient's name."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from dossier_api.domain.rooms import name_fields, same_entry
from maillon.shared.circle import CircleEntry, DossierLink, in_audience, patient_power_levels
from synapse_modules import policy

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
CTX = policy.PolicyContext("sante.test", "@maillon:sante.test", "@coordination:sante.test")
COORD = "@coord:sante.test"


def _view(status: str) -> policy.RoomView:
    return policy.RoomView(
        dossier=DossierLink("D1", status=status),
        circle={COORD: CircleEntry(COORD, "COORD", coordinator=True)},
        has_encryption=True,
    )


def _levels_decision(status: str, read_only: bool) -> policy.Decision:
    content = patient_power_levels([COORD], read_only=read_only)
    return policy.check_state_event(
        CTX, _view(status), CTX.service_user, "m.room.power_levels", "", content, NOW
    )


def test_closed_dossier_pins_read_only_levels() -> None:
    levels = patient_power_levels([COORD], read_only=True)
    assert levels["events_default"] == 100 and levels["invite"] == 100
    assert levels["events"]["m.reaction"] == 100 and levels["users"] == {COORD: 50}
    assert _levels_decision("closed", read_only=True).allowed
    assert _levels_decision("closed", read_only=False).denied, "no writable room when closed"
    assert _levels_decision("open", read_only=False).allowed
    assert _levels_decision("open", read_only=True).denied


def test_side_room_audiences() -> None:
    assert in_audience("circle", "RL", False)
    assert not in_audience("professionals", "RL", False)
    assert not in_audience("professionals", "PATIENT", True)
    assert in_audience("professionals", "IDE", False)
    assert in_audience("coordinators", "IDE", True)
    assert not in_audience("coordinators", "MT", False)


def test_same_entry_ignores_bookkeeping_but_not_status() -> None:
    a = CircleEntry("@a:s", "IDE", since=NOW, added_by="@x:s")
    assert same_entry(a, CircleEntry("@a:s", "IDE", since=NOW.replace(hour=9), added_by="@y:s"))
    assert not same_entry(a, a.removed("@x:s", NOW))
    assert not same_entry(a, CircleEntry("@a:s", "KINE"))
    assert not same_entry(a, None) and same_entry(None, None)


def test_room_name_fields_keep_the_name_out() -> None:
    dossier: Any = SimpleNamespace(
        id="3fa2c1d4e5",
        identity={
            "birth_name": "Martin",
            "first_names": "Jeanne Louise",
            "birth_date": "1941-03-12",
        },
    )
    fields = name_fields(dossier)
    assert fields["initiales"] == "J. M." and fields["annee"] == "1941"
    assert fields["ref"] == "3FA2C1"
    name = "{initiales} ({annee}) · {ref}".format(**fields)
    assert "Martin" not in name and "Jeanne" not in name
