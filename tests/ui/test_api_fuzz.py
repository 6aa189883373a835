"""The JSON API fuzzed against its own OpenAPI schema (schemathesis), on the real server.

For every route of ``/api/openapi.json``, requests generated from the schema, and
requests that break it, never get a server error, and every answer has the status code,
content type and body the schema declares. A question that is schema-valid but empty in
meaning (only spaces or control characters) is answered 400 with a message, as the schema
declares; the schema cannot say "not only whitespace", so the check that every
schema-valid request is accepted is left out.

The routes are driven through schemathesis' strategies with Hypothesis rather than its
pytest plugin, which reads a private attribute pytest 9 no longer has.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ui.screenshots import LocalServer

pytestmark = [pytest.mark.slow]

EXAMPLES = 60  # per route and mode


@pytest.fixture(scope="module")
def api_schema(server: LocalServer):  # noqa: ANN201 - schemathesis' schema type
    return schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")


def _routes(schema) -> list:  # noqa: ANN001
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_lists_every_api_route(api_schema) -> None:  # noqa: ANN001
    routes = _routes(api_schema)
    assert [r.label for r in routes if r.body] == ["POST /api/ask"]
    assert {r.label for r in routes} == {
        "POST /api/ask",
        "GET /api/health",
        "GET /api/sources",
        "GET /api/articles/{doc_id}",
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_schema_and_never_fails(
    api_schema,  # noqa: ANN001
    server: LocalServer,
    mode: GenerationMode,
) -> None:
    for operation in _routes(api_schema):
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # a path's string, or no input at all: nothing can break the schema

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,  # no .hypothesis/ folder in the clone
            derandomize=True,  # the same requests on every run: a failure reproduces
            suppress_health_check=list(HealthCheck),
        )
        def call(case) -> None:  # noqa: ANN001
            case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])

        call()
