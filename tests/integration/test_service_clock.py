"""The dossier service reads one clock (``service.clock``) for every decision in time:
who is still in the circle, whether an exit date is to come, what is overdue. Moved
forward, the service decides as it would on that day (real store, in process)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dossier_api.domain.access import Caller
from dossier_api.domain.core import ApiError
from dossier_api.domain.service import DossierService
from maillon.shared.clock import utcnow
from tests.harness.bot import deployment, professionals, store

SERVER = "sante.test"
COORD = Caller(f"@coord:{SERVER}", False, "token")
IDE = Caller(f"@ide:{SERVER}", False, "token")


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DossierService]:
    engine = store(f"sqlite:///{tmp_path / 'maillon.db'}")
    professionals(engine, COORD.user_id, IDE.user_id)
    try:
        yield DossierService(engine, deployment(tmp_path / "d", SERVER))
    finally:
        engine.dispose()


def _dossier(service: DossierService) -> str:
    identity = {"birth_name": "Garnier", "first_names": "Paul", "sex": "M"}
    return str(service.create_dossier(COORD, {"pathway": "dac", "identity": identity})["id"])


def test_an_exit_date_passed_on_the_services_clock_ends_the_access(
    service: DossierService,
) -> None:
    clock = Clock(utcnow())
    service.clock = clock
    dossier_id = _dossier(service)
    until = clock.now + dt.timedelta(days=1)
    service.add_member(
        COORD, dossier_id, {"user_id": IDE.user_id, "role": "IDE", "until": until.isoformat()}
    )
    assert service.get_dossier(IDE, dossier_id)["id"] == dossier_id
    clock.now += dt.timedelta(days=2)
    with pytest.raises(ApiError) as refused:
        service.get_dossier(IDE, dossier_id)
    assert refused.value.status == 403
    nurse = next(m for m in service.circle(COORD, dossier_id) if m["user_id"] == IDE.user_id)
    assert nurse["active"] is False


def test_an_exit_date_is_to_come_on_the_services_clock(service: DossierService) -> None:
    clock = Clock(utcnow() + dt.timedelta(days=5))
    service.clock = clock
    dossier_id = _dossier(service)
    soon = utcnow() + dt.timedelta(days=2)  # to come for the wall clock, past for the service
    with pytest.raises(ApiError, match="à venir"):
        service.add_member(
            COORD, dossier_id, {"user_id": IDE.user_id, "role": "IDE", "until": soon.isoformat()}
        )
