"""Schemathesis against /openapi.json with an admin token: no input makes the server answer 5xx.

Every operation the OpenAPI document declares gets generated requests (valid and
schema-violating, bounded and derandomized so a run is repeatable) against a real server
on a throwaway database; any 5xx is a failure, listed with the request that caused it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok

from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.http.protocol import uvicorn_config
from server.settings import Settings
from tests.support.live_server import LiveServer, free_port

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = int(os.environ.get("KB_TEST_SCHEMATHESIS_EXAMPLES", "30"))


def test_no_request_to_the_documented_api_gets_a_5xx(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    port = free_port()
    conf = make_settings(
        http={"port": port}, auth={"mode": "dev", "admin_principals": ["user:root"]}
    )
    token = DevIssuer(conf.home_dir, audience=resource_uri(conf)).mint(
        "root", scopes=["kb.admin", "kb.read"]
    )
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(conf, target=db_target, embedder=embedder)
    failures: list[str] = []
    with LiveServer(app, config=uvicorn_config(app, conf, log_level="warning")) as srv:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result}"
            operations.append(result.ok())
        assert len(operations) > 15
        for operation in operations:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(data=st.data())
            def exercise(data: st.DataObject) -> None:
                case = data.draw(operation.as_strategy())  # noqa: B023 (runs inside the loop)
                response = case.call(base_url=srv.url, headers=headers)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]!r}; query={case.query!r} body={case.body!r}"
                )

            try:
                exercise()
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0])
    assert failures == [], "\n".join(failures)
