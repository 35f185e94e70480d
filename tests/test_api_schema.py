"""The API against its own OpenAPI document (issue 9, points 4 and 6).

schemathesis reads /api/v1/openapi.json from the running app and, for every operation,
generates calls from the document, valid and invalid, and checks every answer: never a server
error, a status code the document declares, a body matching the declared schema, invalid input
refused with a 4xx. Calls go to the real app on the real database with a real admin token.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig

from cass import create_app
from cass.api.v1 import spec_document
from cass.config import Config
from tests.api_support import bearer, make_token

# The document is the app's own, read at collection from an app that needs no database to
# serve it; each operation's calls then go to a test's app on the real database.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json",
    create_app(Config(DATABASE_URL="postgresql://unused@127.0.0.1:9/unused", SECRET_KEY="-")),
    config=SchemathesisConfig.from_dict(
        {
            "checks": {
                # Input the document allows may still break a rule the document cannot say:
                # a charger id nobody has (422), a cursor no list handed out (422), a version
                # someone else moved on from (409). Anything else schema-valid must pass.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                }
            }
        }
    ),
)


@pytest.fixture
def api_app(app, demo):
    """The app on the demo data, as in production but for the rate limit."""
    # schemathesis makes hundreds of calls with one token: no rate limit here.
    app.config["CASS_API_RATE_LIMIT"] = 10**9
    app.config["TESTING"] = False  # an exception is a 500 answer, as in production
    return app


@pytest.fixture
def token(api_app) -> dict[str, str]:
    """An admin's write token of the demo tenant."""
    return bearer(make_token(api_app, "admin@demo.test"))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_to_the_document(case, api_app, token):
    """Generated calls, valid and not: no server error, and every answer as documented."""
    case.call_and_validate(headers=token, app=api_app)


def test_the_document_is_valid_openapi_and_the_cli_writes_it(app, tmp_path):
    """The document validates as OpenAPI 3; `cass openapi export` writes the same document."""
    from cass.cli import cli

    document = spec_document(app)
    validate(document)
    served = app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == json.loads(json.dumps(document, default=str))
    target = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(cli, ["openapi", "export", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == served.get_json()
    # Every operation says what it does, needs the bearer token, and answers errors in the
    # one shape.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation.get("summary"), (method, path)
            assert operation["responses"]["default"] == {
                "$ref": "#/components/responses/DEFAULT_ERROR"
            }
    assert document["security"] == [{"bearerAuth": []}]
    assert set(document["components"]["schemas"]["Error"]["required"]) == {
        "error",
        "message",
        "details",
    }
