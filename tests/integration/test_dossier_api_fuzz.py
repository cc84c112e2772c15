"""Property-based fuzz of the dossier API from its own /openapi.json (schemathesis): no 5xx,
and every answer matches the document (status codes, content type, body schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.harness.dossier import new_dossier
from tests.harness.stack import Stack

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_token(stack: Stack) -> str:
    account = stack.register("fuzz", admin=True)
    new_dossier(stack, account.access_token)  # something to find behind the ids
    return account.access_token


def test_api_never_fails_and_keeps_its_word(stack: Stack, fuzz_token: str) -> None:
    url = stack.deployment.settings.dossier_api.url
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

        fuzz()
