"""schemathesis against the REST API's own OpenAPI document (loaded from the running
server): bounded, derandomized examples of every operation, valid and invalid ones,
authenticated with the token; no answer may be a server error or stray from the
document's response schemas.

The operations are driven through schemathesis's strategies and hypothesis directly
(its pytest plugin's lazy fixture loading reaches into a pytest private that pytest 9
no longer has)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.timeout(600)
CHECKS = [not_a_server_error, response_schema_conformance]


def _exercise(operation: Any, mode: GenerationMode, token: str) -> int:
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=20,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        case.validate_response(response, checks=CHECKS)
        assert response.status_code < 500, response.text
        calls.append(response.status_code)

    run()
    return len(calls)


def test_api_conforms_to_its_document(server: str, token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/api/v1/openapi.json")
    schema.config.update(base_url=f"{server}/api/v1")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /endpoints", "POST /tasks", "POST /tasks/{identifier}/stop"} <= names
    assert len(operations) == 22
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            assert _exercise(operation, mode, token) > 0, (operation.path, mode)
