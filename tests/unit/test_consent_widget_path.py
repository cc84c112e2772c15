"""Consent on the widget path (issue 17): the rule lives in the dossier service, so a
circle write made from a widget session (a caller authenticated through OpenID, ``via``
"openid") meets the same refusal as the API and the bot — without consent, and after an
opposition. Real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierService
from tests.harness.bot import deployment, professionals, store

REFERENT = "@ref:sante.test"
HELPER = "@aide:sante.test"


IDENTITY = {"birth_name": "Martin", "first_names": "Jeanne", "sex": "F", "birth_date": "1941-03-12"}


def _dossier(tmp_path: Path, caller: Caller, *users: str) -> tuple[DossierService, str]:
    """A real SQLite store with these professionals, and a DAC dossier opened by
    ``caller``."""
    engine = store(f"sqlite:///{tmp_path / 'store.db'}")
    professionals(engine, REFERENT, *users)
    service = DossierService(engine, deployment(tmp_path / "deployment", "sante.test"))
    did = service.create_dossier(caller, {"pathway": "dac", "identity": IDENTITY})["id"]
    return service, did


def test_a_widget_session_meets_the_consent_rule(tmp_path: Path) -> None:
    api = Caller(REFERENT, False, "token")
    widget = Caller(REFERENT, False, "openid")
    service, did = _dossier(tmp_path, api, HELPER)
    helper = {"user_id": HELPER, "role": "AD"}  # DAC: outside the care team

    with pytest.raises(ApiError) as refused:
        service.add_member(widget, did, helper)
    assert refused.value.status == 403 and "consentement" in refused.value.message

    service.patch_dossier(api, did, {"opposition": True, "consent_note": "opposition écrite"})
    service.patch_dossier(api, did, {"consent_share_outside": True})
    with pytest.raises(ApiError) as opposed:
        service.add_member(widget, did, helper)
    assert opposed.value.status == 403 and "opposée" in opposed.value.message

    service.patch_dossier(api, did, {"opposition": False, "consent_note": "levée"})
    added = service.add_member(widget, did, helper)
    assert added["active"] and added["role"] == "AD"
    refusals = [e for e in service.audit(api, did, 200) if e["action"] == "circle.add"]
    assert [e["allowed"] for e in refusals].count(False) == 2, "both refusals audited"


def test_an_attestation_lets_a_role_outside_the_care_team_in_but_not_past_an_opposition(
    tmp_path: Path,
) -> None:
    other = "@aide2:sante.test"
    widget = Caller(REFERENT, False, "openid")
    service, did = _dossier(tmp_path, widget, HELPER, other)

    added = service.add_member(widget, did, {"user_id": HELPER, "role": "AD", "attested": True})
    assert added["active"] and added["role"] == "AD"
    history = service.consent_history(widget, did)
    assert [(h["field"], h["value"], h["actor"]) for h in history["history"]] == [
        ("attestation", True, REFERENT)
    ]
    assert "rôle « aide à domicile »" in str(history["history"][0]["note"])
    assert history["consent"]["share_outside"] is False
    # A role of the care team records no attestation, even when one is given.
    service.add_member(widget, did, {"user_id": other, "role": "IDE", "attested": True})
    assert len(service.consent_history(widget, did)["history"]) == 1

    service.remove_member(widget, did, HELPER)
    service.patch_dossier(widget, did, {"opposition": True})
    with pytest.raises(ApiError) as opposed:
        service.add_member(widget, did, {"user_id": HELPER, "role": "AD", "attested": True})
    assert opposed.value.status == 403 and "opposée" in opposed.value.message
