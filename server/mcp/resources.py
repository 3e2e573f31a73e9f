"""Resources: ``kb://documents/{id}`` and ``kb://sources/{source}``, listed per caller.

``MCPServer`` lists every resource in one page with no caller, so the low-level handlers for
``resources/list``, ``resources/templates/list`` and ``resources/read`` are replaced here:
the list is the caller's own (its documents and sources), paginated with the service's
cursor and marked private for caching. Reading a document the caller may not see answers
exactly like reading one that does not exist. Any other URI (the conformance fixtures'
``test://`` resources) is still served by ``MCPServer``'s own handler.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    Annotations,
    InputRequiredResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextResourceContents,
)

from core.errors import KBError, NotFound
from policies.access import AccessFilter
from server.audit.recorder import CallRecord
from server.mcp.calls import RESOURCE_NOT_FOUND, guarded, protocol_error, resource_not_found
from server.mcp.state import McpState, state_of
from server.search.schemas import DOCUMENT_URI_PREFIX, SOURCE_URI_PREFIX, DocumentSummary

DOCUMENT_TEMPLATE = "kb://documents/{id}"
SOURCE_TEMPLATE = "kb://sources/{source}"
JSON = "application/json"
# Formats the documents' text is served as; everything else is plain text once ingested.
_TEXT_TYPES = {"text/markdown": "text/markdown", "text/html": "text/plain"}

TEMPLATES = [
    ResourceTemplate(
        uri_template=DOCUMENT_TEMPLATE,
        name="document",
        title="Knowledge-base document",
        description="The full text of one document you may read (ids come from search results).",
        mime_type="text/plain",
    ),
    ResourceTemplate(
        uri_template=SOURCE_TEMPLATE,
        name="source",
        title="Documents of one source",
        description="A JSON listing of one source's documents you may read, page by page.",
        mime_type=JSON,
    ),
]

Ctx = ServerRequestContext[Any, Any]


def _iso(summary: DocumentSummary) -> str | None:
    return summary.modified_at.isoformat() if summary.modified_at else None


def _document_resource(doc: DocumentSummary) -> Resource:
    where = f"{doc.source}/{doc.collection}" if doc.collection else doc.source
    return Resource(
        uri=doc.uri,
        name=doc.title or str(doc.document_id),
        title=doc.title or None,
        description=f"{where} · {doc.content_type}",
        mime_type=_TEXT_TYPES.get(doc.content_type, "text/plain"),
        annotations=Annotations(last_modified=_iso(doc)) if doc.modified_at else None,
    )


def source_page_uri(source: str, cursor: str | None) -> str:
    base = f"{SOURCE_URI_PREFIX}{quote(source, safe='')}"
    return f"{base}?cursor={quote(cursor, safe='')}" if cursor else base


class Resources:
    """The per-caller resource handlers; ``fallback_read`` serves every non-kb:// URI."""

    def __init__(self, server: MCPServer[McpState], fallback_read: Any) -> None:
        # `server` is the MCPServer: its statically registered resources and templates
        # (the conformance fixtures) are listed alongside the caller's own.
        self._server = server
        self._fallback_read = fallback_read

    async def list_resources(
        self, ctx: Ctx, params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        state = state_of(ctx)
        cursor = params.cursor if params is not None else None
        items: list[Resource] = []
        try:
            async with guarded(
                state, method="resources/list", arguments={"cursor": cursor}
            ) as call:
                if not cursor:
                    items.extend(await self._server.list_resources())
                    for source in await state.search.list_sources(call.access):
                        items.append(
                            Resource(
                                uri=source.uri,
                                name=source.source,
                                title=f"Source {source.source}",
                                description=(
                                    f"{source.documents} documents you may read"
                                    + (f": {source.description}" if source.description else "")
                                ),
                                mime_type=JSON,
                            )
                        )
                page = await state.search.list_documents(
                    call.access, cursor=cursor or None, limit=state.settings.mcp.page_size
                )
                call.record.documents(d.document_id for d in page.items)
        except KBError as exc:
            raise protocol_error(exc) from None
        items.extend(_document_resource(d) for d in page.items)
        # Private: another caller's list differs, so no shared cache may hold it.
        return ListResourcesResult(
            resources=items, next_cursor=page.next_cursor, ttl_ms=0, cache_scope="private"
        )

    async def list_templates(
        self, ctx: Ctx, params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        templates = [*TEMPLATES, *await self._server.list_resource_templates()]
        return ListResourceTemplatesResult(resource_templates=templates)

    async def read(
        self, ctx: Ctx, params: ReadResourceRequestParams
    ) -> ReadResourceResult | InputRequiredResult:
        uri = str(params.uri)
        if uri.startswith("kb:"):
            return await self._read_kb(state_of(ctx), uri)
        try:
            result: ReadResourceResult | InputRequiredResult
            result = await self._fallback_read(ctx, params)
        except MCPError as exc:
            if exc.error.code == INVALID_PARAMS:
                raise resource_not_found(uri) from None
            raise
        return result

    async def _read_kb(self, state: McpState, uri: str) -> ReadResourceResult:
        try:
            async with guarded(state, method="resources/read", target=uri) as call:
                if uri.startswith(DOCUMENT_URI_PREFIX):
                    ident = uri.removeprefix(DOCUMENT_URI_PREFIX)
                    if not ident or "/" in ident or "?" in ident:
                        raise NotFound(RESOURCE_NOT_FOUND)
                    view = await state.search.fetch_document(call.access, ident)
                    call.record.documents([view.summary.document_id])
                    s = view.summary
                    contents = TextResourceContents(
                        uri=uri,
                        mime_type=_TEXT_TYPES.get(s.content_type, "text/plain"),
                        text=view.text,
                        _meta={
                            "title": s.title,
                            "url": s.source_uri,
                            "source": s.source,
                            "collection": s.collection,
                            "contentType": s.content_type,
                            "modified": _iso(s),
                            "truncated": view.truncated,
                            "totalChars": view.total_chars,
                        },
                    )
                elif uri.startswith(SOURCE_URI_PREFIX):
                    contents = await self._source_listing(state, call.access, uri, call.record)
                else:
                    raise NotFound(RESOURCE_NOT_FOUND)
        except KBError as exc:
            raise protocol_error(exc, uri=uri) from None
        return ReadResourceResult(contents=[contents], ttl_ms=0, cache_scope="private")

    async def _source_listing(
        self, state: McpState, access: AccessFilter, uri: str, record: CallRecord
    ) -> TextResourceContents:
        parts = urlsplit(uri)
        name = unquote(parts.path.lstrip("/")) if parts.netloc == "sources" else ""
        query = parse_qs(parts.query)
        cursor = query.get("cursor", [None])[0]
        if not name or "/" in name or set(query) - {"cursor"}:
            raise NotFound(RESOURCE_NOT_FOUND)
        visible = {s.source: s for s in await state.search.list_sources(access)}
        source = visible.get(name)
        if source is None:
            # No document of this source is readable: the same answer as an unknown source.
            raise NotFound(RESOURCE_NOT_FOUND)
        page = await state.search.list_documents(
            access, cursor=cursor, limit=state.settings.mcp.page_size, source=name
        )
        record.documents(d.document_id for d in page.items)
        listing = {
            "source": source.source,
            "kind": source.kind,
            "description": source.description,
            "documents": source.documents,
            "collections": [
                {"name": c.collection, "documents": c.documents} for c in source.collections
            ],
            "page": [
                {
                    "id": str(d.document_id),
                    "title": d.title,
                    "uri": d.uri,
                    "url": d.source_uri,
                    "collection": d.collection,
                    "content_type": d.content_type,
                    "modified": _iso(d),
                }
                for d in page.items
            ],
            "next": source_page_uri(name, page.next_cursor) if page.next_cursor else None,
        }
        return TextResourceContents(
            uri=uri, mime_type=JSON, text=json.dumps(listing, ensure_ascii=False, indent=1)
        )


__all__ = ["DOCUMENT_TEMPLATE", "SOURCE_TEMPLATE", "TEMPLATES", "Resources", "source_page_uri"]
