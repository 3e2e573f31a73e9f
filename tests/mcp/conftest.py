"""A small corpus readable by two different callers, and an in-process MCP harness.

alice (group:eng) reads the engineering wiki; bob (group:hr) reads the HR handbook; both
read the public finance policy. The policy is a real one (source ACLs through the policy
engine), so everything the MCP layer returns has gone through real access filters.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from core.identity import Caller
from policies.engine import PolicyEngine
from policies.rules import parse_policy_yaml
from server.app import create_app
from server.audit.recorder import AuditRecorder
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.embeddings.base import AsyncEmbedder, Embedder
from server.mcp.server import KbMcpServer, build_mcp_server
from server.mcp.state import McpState
from server.search.service import SearchService
from server.settings import Settings
from tests.search.corpus import Doc, insert_documents, insert_sources
from tests.support.live_server import LiveServer, free_port

ALICE = ("user:alice", "group:eng")
BOB = ("user:bob", "group:hr")

POLICY = """
roles:
  group:eng: role:staff
  group:hr: role:staff
rules:
  - subject: role:staff
    object: acl:source
"""


def _at(month: int) -> datetime:
    return datetime(2024, month, 1, tzinfo=UTC)


def corpus_docs() -> list[Doc]:
    return [
        Doc(
            "Deployment runbook",
            [
                "Deployments go out every Tuesday through the release pipeline after the "
                "canary has been healthy for thirty minutes.",
                "Roll back with the deploy tool's revert command if error rates double.",
                "Announce every production deployment in the release channel.",
            ],
            ["group:eng"],
            source="wiki",
            collection="eng/platform",
            metadata={"team": "platform"},
            modified_at=_at(3),
        ),
        Doc(
            "Database backup policy",
            ["Nightly backups of every production database are kept for 35 days."],
            ["group:eng"],
            source="wiki",
            collection="eng",
            metadata={"team": "sre"},
            modified_at=_at(5),
        ),
        Doc(
            "Salary review process",
            ["Salary reviews happen each April; managers submit proposals by March 15."],
            ["group:hr"],
            source="hr",
            collection="hr/pay",
            modified_at=_at(2),
        ),
        Doc(
            "Travel expenses",
            ["Submit travel receipts within thirty days; the meal per diem is 60 euros."],
            ["group:eng", "group:hr"],
            source="finance",
            collection="finance",
            modified_at=_at(4),
        ),
    ]


@dataclass
class Corpus:
    dsn: str
    docs: dict[str, Doc]
    chunks: dict[uuid.UUID, list[int]]

    def id(self, title: str) -> str:
        return str(self.docs[title].id)


@pytest.fixture
def corpus(fresh_database: str, embedder: Embedder) -> Corpus:
    insert_sources(
        fresh_database,
        {
            "wiki": ("files", "Engineering wiki"),
            "hr": ("files", "HR handbook"),
            "finance": ("sql", "Finance policies"),
        },
    )
    docs = corpus_docs()
    chunks = insert_documents(fresh_database, docs, embedder)
    return Corpus(fresh_database, {d.title: d for d in docs}, chunks)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@asynccontextmanager
async def open_state(
    settings: Settings, embedder: Embedder, caller: Caller | None
) -> AsyncIterator[McpState]:
    """The services an MCP server needs, over the test database, with a fixed caller."""
    assert settings.database.url is not None
    target = DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
    db = Database.open(target, settings)
    async_embedder = AsyncEmbedder(embedder)
    try:
        yield McpState(
            settings=settings,
            search=SearchService(db, async_embedder, settings),
            policies=PolicyEngine.of(parse_policy_yaml(POLICY), version=1),
            audit=AuditRecorder(db, settings.audit),
            fixed_caller=caller,
        )
    finally:
        async_embedder.close()
        await db.dispose()


@dataclass
class Live:
    url: str
    settings: Settings
    tokens: dict[str, str]

    @asynccontextmanager
    async def client(self, who: str, *, mode: str = "auto") -> AsyncIterator[Client]:
        """An MCP client over HTTP with ``who``'s bearer token (mode: auto probes 2026-07-28)."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with create_mcp_http_client(headers=headers) as http:
            transport = streamable_http_client(f"{self.url}/mcp", http_client=http)
            async with Client(transport, mode=mode, cache=None) as client:  # type: ignore[arg-type]
                yield client


@pytest.fixture
def live(
    make_settings: Callable[..., Settings],
    corpus: Corpus,
    embedder: Embedder,
    policy_file: Path,
) -> Iterator[Live]:
    port = free_port()
    settings = make_settings(
        http={"port": port, "max_request_bytes": 4096}, policy_file=str(policy_file)
    )
    issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
    tokens = {
        "alice": issuer.mint("alice", groups=["eng"], scopes=["kb.read"]),
        "bob": issuer.mint("bob", groups=["hr"], scopes=["kb.read"]),
        "noscope": issuer.mint("carol", groups=["eng"], scopes=[]),
    }
    app = create_app(settings, embedder=embedder)
    with LiveServer(app, port=port) as server:
        yield Live(server.url, settings, tokens)


ServerFactory = Callable[..., KbMcpServer]


@pytest.fixture
def make_server(
    make_settings: Callable[..., Settings], corpus: Corpus, embedder: Embedder
) -> ServerFactory:
    """``make_server(*principals, **settings_overrides)``: an in-process server for one caller."""

    def factory(*principals: str, **overrides: Any) -> KbMcpServer:
        settings = make_settings(**overrides)
        caller = Caller.of(*principals, transport="stdio") if principals else None

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[McpState]:
            async with open_state(settings, embedder, caller) as state:
                yield state

        return build_mcp_server(settings, lifespan)

    return factory
