"""Property-based requests from the OpenAPI schema (schemathesis): no input makes the server answer 5xx."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from tests.serve.server import ServerHandle


@pytest.fixture(scope="module")
def api_schema(server: ServerHandle) -> object:
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(max_examples=30, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case, server: ServerHandle) -> None:
    case.call_and_validate(headers=server.headers(), checks=[schemathesis.checks.not_a_server_error])
