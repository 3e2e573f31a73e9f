"""Issue 9, item 9: inputs that used to answer 500 or 503 get a specific 4xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.support.live_server import LiveServer, free_port


@pytest.fixture
def admin_api(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    conf = make_settings(
        http={"port": port}, auth={"mode": "dev", "admin_principals": ["user:root"]}
    )
    token = DevIssuer(conf.home_dir, audience=resource_uri(conf)).mint("root", scopes=["kb.admin"])
    with LiveServer(create_app(conf, target=db_target, embedder=embedder), port=port) as srv:
        yield srv.url, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# Raw JSON: "\u0000" is a NUL and "\ud800" a lone surrogate once decoded.
@pytest.mark.parametrize("field", ["sources", "collections"])
@pytest.mark.parametrize("value", [r'"wi\u0000ki"', r'"wi\ud800ki"'])
def test_key_scopes_that_cannot_be_stored_are_a_client_error(
    admin_api: tuple[str, dict[str, str]], field: str, value: str
) -> None:
    url, headers = admin_api
    body = f'{{"name": "etl", "{field}": [{value}]}}'
    r = httpx.post(f"{url}/admin/keys", headers=headers, content=body.encode())
    assert r.status_code in (400, 422), (r.status_code, r.text)
    # Nothing was created.
    assert httpx.get(f"{url}/admin/keys", headers=headers).json() == [] or all(
        k["name"] != "etl" for k in httpx.get(f"{url}/admin/keys", headers=headers).json()
    )


@pytest.mark.parametrize(
    "path", ["/admin/jobs/9223372036854775808", "/admin/jobs/0", "/admin/jobs/-1"]
)
def test_out_of_range_ids_are_a_client_error(
    admin_api: tuple[str, dict[str, str]], path: str
) -> None:
    url, headers = admin_api
    r = httpx.get(f"{url}{path}", headers=headers)
    assert r.status_code in (404, 422), (r.status_code, r.text)
    r = httpx.delete(f"{url}/admin/policies/9223372036854775808", headers=headers)
    assert r.status_code in (404, 422), (r.status_code, r.text)
