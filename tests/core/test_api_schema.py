"""Property-based API checks with schemathesis: no 5xx, and every response matches the OpenAPI schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from iccapp.wsgi import application

# Loaded at collection: the schema view touches no database. (schemathesis.pytest.from_fixture does not
# work with pytest 9 yet.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application).include(
    path_regex=r"^/api/v1/(users|tokens|role-bindings|clusters|namespaces|nodes|applications|workloads|pods"
    r"|warning-events|identity)/"
)


@pytest.fixture
def bearer_token(make_user) -> str:
    from apps.users.tokens import token_create

    boss = make_user("schema-admin", superuser=True)
    _, secret = token_create(owner=boss.user, name="schemathesis", by=boss.user)
    return secret


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_never_fails_and_keeps_its_schema(case, bearer_token, transactional_db):
    # transactional_db: the raw WSGI app closes connections at request end, which a wrapping
    # test transaction would not survive.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {bearer_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
