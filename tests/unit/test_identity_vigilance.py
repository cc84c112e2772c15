"""Identity vigilance on a real (SQLite) store, through the dossier service: possible
duplicates found by blind index (no identity opened), refused with what the caller may see,
confirmed with a reason; identity status transitions with their evidence."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.ins import identity_traits
from dossier_api.domain.models import AuditEntry, IdentityEvent, Structure
from dossier_api.domain.service import DossierService
from maillon.shared.crypto import BlindIndex, KeyRing
from maillon.shared.sealed import install_key_ring
from maillon.shared.settings import DataKey
from maillon.shared.store import make_engine
from maillon.shared.text import first_given_name, normalise_name
from tests.harness.bot import deployment, professionals

REFERENT = Caller("@ref:sante.test", False, "token")
COLLEAGUE = Caller("@ide:sante.test", False, "token")  # not in the first dossier's circle
NIR = "241033155500112"
IDENTITY = {"birth_name": "Lefèvre-Dupont", "first_names": "Zoé Marie", "sex": "F"}
IDENTITY["birth_date"] = "1950-06-01"


# -- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Lefèvre-Dupont", "LEFEVRE DUPONT"),
        ("D'Aubigné", "daubigne"),
        ("Œuvray", "OEUVRAY"),
        ("  Müller ", "muller"),
        ("Saint–Just", "saint just"),  # en dash
    ],
)
def test_names_equal_after_normalisation(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b) != ""


def test_different_names_stay_different() -> None:
    assert normalise_name("Martin") != normalise_name("Martine")
    assert normalise_name("Lefèvre") != normalise_name("Lefebvre")


def test_the_first_first_name_is_compared() -> None:
    assert first_given_name("Jean-Pierre Louis") == first_given_name("JEAN") == "jean"
    assert first_given_name("  Zoé, Marie") == "zoe"
    assert first_given_name("--") == ""


def test_traits_need_every_field() -> None:
    assert identity_traits(IDENTITY) == "lefevredupont|zoe|1950-06-01|F"
    assert identity_traits({**IDENTITY, "sex": "f"}) == identity_traits(IDENTITY)
    for missing in ("birth_name", "first_names", "birth_date", "sex"):
        assert identity_traits({k: v for k, v in IDENTITY.items() if k != missing}) is None


# -- duplicates ------------------------------------------------------------------------------


class Opens:
    """Counts the sealed values opened (every decryption goes through KeyRing.open)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Opens:
    counter = Opens()
    original = KeyRing.open

    def counting(self: KeyRing, sealed: bytes, context: bytes = b"") -> bytes:
        counter.count += 1
        return original(self, sealed, context)

    monkeypatch.setattr(KeyRing, "open", counting)
    return counter


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DossierService]:
    key = DataKey("k1", base64.b64encode(secrets.token_bytes(32)).decode())
    install_key_ring(KeyRing([key], BlindIndex(secrets.token_bytes(32))))
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    professionals(engine, REFERENT.user_id, COLLEAGUE.user_id)
    with Session(engine) as session, session.begin():
        session.add(Structure(id="dac31", name="DAC Haute-Garonne"))
    yield DossierService(engine, deployment(tmp_path / "deployment", "sante.test"))
    engine.dispose()


def _create(service: DossierService, caller: Caller, **extra: Any) -> dict[str, Any]:
    identity = extra.pop("identity", IDENTITY)
    return service.create_dossier(caller, {"pathway": "dac", "identity": identity, **extra})


def _refused(service: DossierService, caller: Caller, **extra: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        _create(service, caller, **extra)
    return info.value


def test_same_traits_written_otherwise_are_refused_with_the_visible_dossier(
    service: DossierService,
) -> None:
    first = _create(service, REFERENT, structure_id="dac31")
    again = {**IDENTITY, "birth_name": "LEFEVRE DUPONT", "first_names": "zoe"}
    exc = _refused(service, REFERENT, identity=again)
    assert exc.status == 409 and exc.errcode == "MAILLON_POSSIBLE_DUPLICATE"
    assert exc.data is not None
    [candidate] = exc.data["candidates"]
    assert candidate["id"] == first["id"]
    assert candidate["display_name"] == "LEFÈVRE-DUPONT Zoé Marie"
    assert first["id"] in exc.message and "Lefèvre" not in exc.message  # audited: no name
    assert exc.data["elsewhere"] == []


def test_a_dossier_the_caller_may_not_see_is_named_by_its_structure_only(
    service: DossierService, opens: Opens
) -> None:
    first = _create(service, REFERENT, structure_id="dac31")
    opens.count = 0
    exc = _refused(service, COLLEAGUE)
    assert opens.count == 0, "no identity opened to find or report a duplicate"
    assert exc.status == 409 and exc.data is not None and exc.data["candidates"] == []
    assert exc.data["elsewhere"] == [
        "un dossier existe déjà pour cette identité dans la structure « DAC Haute-Garonne » : "
        "contactez son référent"
    ]
    assert first["id"] not in exc.message


def test_the_same_matricule_under_other_names_is_a_duplicate(service: DossierService) -> None:
    _create(service, REFERENT, identity={**IDENTITY, "ins_matricule": NIR})
    other = {**IDENTITY, "birth_name": "Autre", "ins_matricule": "2 41 03 31 555 001 12"}
    exc = _refused(service, REFERENT, identity=other)
    assert exc.data is not None and exc.data["candidates"][0]["same_ins"] is True


def test_no_identity_is_opened_to_look_for_duplicates(
    service: DossierService, opens: Opens
) -> None:
    for n in range(25):
        _create(service, REFERENT, identity={**IDENTITY, "birth_date": f"1960-01-{n + 1:02d}"})
    opens.count = 0
    _create(service, REFERENT)  # no duplicate among 25 dossiers
    _refused(service, COLLEAGUE, identity={**IDENTITY, "birth_date": "1960-01-07"})
    assert opens.count == 0


def test_an_override_with_a_reason_creates_and_is_recorded(service: DossierService) -> None:
    first = _create(service, REFERENT)
    exc = _refused(service, REFERENT, duplicate_override={"reason": "  "})
    assert exc.status == 409
    second = _create(
        service, REFERENT, duplicate_override={"reason": "homonyme vérifié avec la famille"}
    )
    assert second["id"] != first["id"]
    with Session(service._engine) as session:
        [event] = session.scalars(
            select(IdentityEvent).where(IdentityEvent.dossier_id == second["id"])
        ).all()
        assert event.kind == "duplicate_override" and event.candidates == first["id"]
        assert event.reason == "homonyme vérifié avec la famille"
        audit = session.scalars(
            select(AuditEntry).where(
                AuditEntry.dossier_id == second["id"], AuditEntry.action == "dossier.create"
            )
        ).one()
        assert audit.detail is not None and "doublon possible confirmé" in audit.detail
        refused = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "dossier.create", AuditEntry.allowed.is_(False)
            )
        ).all()
        assert len(refused) == 1 and "Doublon possible" in (refused[0].detail or "")


# -- identity status -------------------------------------------------------------------------

DOCUMENT = {"kind": "carte_identite", "checked_at": "2026-11-30T10:00:00+00:00"}


def _status(
    service: DossierService, dossier_id: str, status: str, **evidence: Any
) -> dict[str, Any]:
    body = {"status": status, "identity_evidence": evidence}
    return service.change_identity_status(REFERENT, dossier_id, body)


def _status_refused(service: DossierService, dossier_id: str, status: str, **ev: Any) -> str:
    with pytest.raises(ApiError) as info:
        _status(service, dossier_id, status, **ev)
    assert info.value.status == 400
    return info.value.message


def test_a_qualified_identity_is_not_created_without_the_source_of_its_ins(
    service: DossierService,
) -> None:
    qual = {**IDENTITY, "ins_matricule": NIR, "identity_status": "QUAL"}
    assert _refused(service, REFERENT, identity=qual).status == 400
    vali = {**IDENTITY, "identity_status": "VALI"}
    assert _refused(service, REFERENT, identity=vali).status == 400
    made = _create(service, REFERENT, identity=qual, identity_evidence={"ins_source": "import"})
    history = service.identity_history(REFERENT, made["id"])["history"]
    assert [(h["to_status"], h["ins_source"]) for h in history] == [("QUAL", "import")]


def test_transitions_need_their_evidence_and_a_downgrade_its_reason(
    service: DossierService,
) -> None:
    did = _create(service, REFERENT, identity={**IDENTITY, "ins_matricule": NIR})["id"]
    assert "pièce d'identité" in _status_refused(service, did, "VALI")
    _status(service, did, "VALI", document=DOCUMENT)
    assert "INSi" in _status_refused(service, did, "QUAL")
    _status(service, did, "QUAL", ins_source="INSi")
    assert "motif" in _status_refused(service, did, "PROV")
    done = _status(service, did, "PROV", reason="pièce présentée douteuse")
    assert done["identity_status"] == "PROV"
    steps = [(h["from_status"], h["to_status"]) for h in done["history"]]
    assert steps == [("PROV", "VALI"), ("VALI", "QUAL"), ("QUAL", "PROV")]
    assert done["history"][0]["document"]["checked_by"] == REFERENT.user_id
    assert done["history"][0]["document"]["kind"] == "carte_identite"
    with Session(service._engine) as session:
        details = [
            a.detail
            for a in session.scalars(
                select(AuditEntry).where(
                    AuditEntry.dossier_id == did,
                    AuditEntry.action == "identity.status",
                    AuditEntry.allowed.is_(True),
                )
            )
        ]
    assert len(details) == 3 and "rétrogradation du statut d'identité QUAL → PROV" in str(details)


def test_qual_needs_a_matricule_and_a_document_unless_imported(service: DossierService) -> None:
    without = _create(service, REFERENT)["id"]
    assert "matricule" in _status_refused(service, without, "QUAL", ins_source="import")
    did = _create(
        service,
        REFERENT,
        identity={**IDENTITY, "birth_date": "1951-01-01", "ins_matricule": "151013155500112"},
    )["id"]
    assert "pièce" in _status_refused(service, did, "QUAL", ins_source="IHE_XDM")
    assert _status(service, did, "RECUP", ins_source="IHE_XDM")["identity_status"] == "RECUP"
    assert _status(service, did, "QUAL", document=DOCUMENT)["identity_status"] == "QUAL"


def test_only_coordinators_change_the_status(service: DossierService) -> None:
    did = _create(service, REFERENT)["id"]
    with pytest.raises(ApiError) as info:
        service.change_identity_status(
            COLLEAGUE, did, {"status": "VALI", "identity_evidence": {"document": DOCUMENT}}
        )
    assert info.value.status == 403
