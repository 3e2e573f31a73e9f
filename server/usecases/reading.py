"""Reading the knowledge base: the use cases behind the MCP tools, resources, prompts and
completion, and ``kb search``.

Every read takes the caller and runs the same path: the policy engine gives the caller's
:class:`~policies.access.AccessFilter` → the search service runs with it → one audit row,
written before the answer is final (in its own transaction, since a read changes nothing),
with the outcome the error implies when the call fails. :func:`authorized_read` is that
path for any read; the named use cases below are the ones more than one door calls.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import InvalidRequest
from core.identity import Caller
from policies.access import AccessFilter
from server.audit.recorder import AuditRecorder, CallRecord
from server.search.schemas import (
    ChunkView,
    DocumentView,
    SearchQuery,
    SearchResult,
    SourceSummary,
)
from server.search.service import SearchService
from server.search.timing import phase, record


class PolicySource(Protocol):
    """The policy engine as reads use it (``runtime.policies``)."""

    def filter_for(self, caller: Caller) -> AccessFilter | Awaitable[AccessFilter]: ...


class ReadContext(Protocol):
    """What a read needs: the search service, the policy engine and the audit recorder
    (the MCP state has them; ``kb search`` builds one from its runtime)."""

    @property
    def search(self) -> SearchService: ...

    @property
    def policies(self) -> PolicySource: ...

    @property
    def audit(self) -> AuditRecorder: ...


@dataclass(frozen=True)
class Readers:
    """A plain :class:`ReadContext`."""

    search: SearchService
    policies: PolicySource
    audit: AuditRecorder


@dataclass(frozen=True)
class Read:
    """One authorized read in progress."""

    caller: Caller
    access: AccessFilter
    record: CallRecord


async def access_for(ctx: ReadContext, caller: Caller) -> AccessFilter:
    made = ctx.policies.filter_for(caller)
    return await made if inspect.isawaitable(made) else made


@asynccontextmanager
async def authorized_read(
    ctx: ReadContext,
    caller: Caller,
    *,
    method: str,
    target: str | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> AsyncIterator[Read]:
    """Caller -> access filter -> the body -> one audit row (written even on failure)."""
    body_done = time.perf_counter()
    try:
        async with ctx.audit.call(caller, method=method, target=target, arguments=arguments) as rec:
            with phase("policy filter"):
                access = await access_for(ctx, caller)
            rec.policy_version = access.policy_version
            try:
                yield Read(caller=caller, access=access, record=rec)
            finally:
                body_done = time.perf_counter()
    finally:
        record("audit write", (time.perf_counter() - body_done) * 1000)


async def record_rejected(
    ctx: ReadContext, caller: Caller, *, method: str, target: str, problems: list[str]
) -> None:
    """A call refused before it ran (its arguments broke the schema): one ``invalid`` row."""
    with contextlib.suppress(InvalidRequest):
        async with ctx.audit.call(
            caller, method=method, target=target, arguments={"rejected": problems}
        ):
            raise InvalidRequest("invalid arguments")


async def search(
    ctx: ReadContext,
    caller: Caller,
    query: SearchQuery,
    *,
    method: str = "tools/call",
    target: str = "search",
    arguments: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Search as ``caller``; ``arguments`` are the door's request as it should be recorded."""
    recorded = arguments if arguments is not None else {"query": query.text, "top_k": query.top_k}
    async with authorized_read(
        ctx, caller, method=method, target=target, arguments=recorded
    ) as read:
        with phase("search service"):
            result = await ctx.search.search(read.access, query)
        read.record.documents(h.document_id for h in result.hits)
        read.record.chunks(h.chunk_id for h in result.hits)
    return result


async def fetch_document(
    ctx: ReadContext,
    caller: Caller,
    document_id: str,
    *,
    method: str = "tools/call",
    target: str = "fetch",
    arguments: Mapping[str, Any] | None = None,
) -> DocumentView:
    async with authorized_read(
        ctx, caller, method=method, target=target, arguments=arguments or {"id": document_id}
    ) as read:
        doc = await ctx.search.fetch_document(read.access, document_id)
        read.record.documents([doc.summary.document_id])
    return doc


async def fetch_chunk(
    ctx: ReadContext,
    caller: Caller,
    chunk_id: str,
    neighbours: int,
    *,
    method: str = "tools/call",
    target: str = "fetch",
    arguments: Mapping[str, Any] | None = None,
) -> ChunkView:
    recorded = arguments or {"id": chunk_id, "neighbours": neighbours}
    async with authorized_read(
        ctx, caller, method=method, target=target, arguments=recorded
    ) as read:
        chunk = await ctx.search.fetch_chunk(read.access, chunk_id, neighbours)
        read.record.documents([chunk.summary.document_id])
        read.record.chunks(c.chunk_id for c in (*chunk.before, chunk.chunk, *chunk.after))
    return chunk


async def list_sources(
    ctx: ReadContext,
    caller: Caller,
    *,
    method: str = "tools/call",
    target: str = "list_sources",
) -> tuple[SourceSummary, ...]:
    async with authorized_read(ctx, caller, method=method, target=target) as read:
        return await ctx.search.list_sources(read.access)


__all__ = [
    "PolicySource",
    "Read",
    "ReadContext",
    "Readers",
    "access_for",
    "authorized_read",
    "fetch_chunk",
    "fetch_document",
    "list_sources",
    "record_rejected",
    "search",
]
