"""Search as someone else (admin only): the console's "Search as" page.

The search runs through the same read use case as the MCP tool, as a caller holding
exactly the chosen principals (the administrator is recorded as its client), so what it
returns is what that caller would get. Each hit comes with the policy's explanation of
why it is allowed. When nothing comes back, the administrator's own search (which reads
everything) supplies the top documents the caller is missing, each with the explanation
of why it is refused (a deny rule, or no allow rule) and who can read it through which
rules: the rules that would have to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.identity import Caller
from policies.admin import PolicyAdmin, parse_principals
from policies.capability import AdminCaller
from policies.explain import Explanation, Reader
from server.search.schemas import SearchHit, SearchQuery
from server.search.service import SearchService
from server.usecases import reading

if TYPE_CHECKING:
    from server.runtime import Runtime

MISSING_SHOWN = 5


@dataclass(frozen=True)
class ExplainedHit:
    hit: SearchHit
    why: Explanation
    #: For a missing hit: who can read it and through which rules (what a change could extend).
    readers: tuple[Reader, ...] = ()


@dataclass(frozen=True)
class SearchAs:
    principals: tuple[str, ...]
    query: str
    hits: list[ExplainedHit]
    #: Only when ``hits`` is empty: the admin's top hits, explained for the caller.
    missing: list[ExplainedHit]


def _readers(rt: Runtime) -> reading.Readers:
    search = SearchService(rt.db, rt.require_embedder(), rt.settings)
    return reading.Readers(search=search, policies=rt.policies, audit=rt.audit)


async def search_as(
    rt: Runtime, admin: AdminCaller, principals: str | Sequence[str], text: str, *, top_k: int = 10
) -> SearchAs:
    names = tuple(dict.fromkeys(parse_principals(principals)))
    caller = Caller.of(*names, transport=admin.caller.transport, client_id=admin.subject)
    readers = _readers(rt)
    query = SearchQuery(text, top_k)
    arguments = {"query": text, "top_k": top_k, "as": list(names), "by": admin.subject}
    result = await reading.search(
        readers, caller, query, method="admin.search_as", target="search", arguments=arguments
    )
    explainer = PolicyAdmin(rt.policy_store, rt.policies)
    hits = [
        ExplainedHit(h, await explainer.explain(names, str(h.document_id))) for h in result.hits
    ]
    missing: list[ExplainedHit] = []
    if not hits:
        own = await reading.search(
            readers,
            admin.caller,
            SearchQuery(text, MISSING_SHOWN),
            method="admin.search_as",
            target="search (as admin, for the missing documents)",
            arguments={"query": text, "for": list(names)},
        )
        seen: set[str] = set()
        for h in own.hits:
            if str(h.document_id) not in seen:
                seen.add(str(h.document_id))
                doc = str(h.document_id)
                why = await explainer.explain(names, doc)
                can_read = tuple(await explainer.who_can(doc))
                missing.append(ExplainedHit(h, why, can_read))
    return SearchAs(names, text, hits, missing)


__all__ = ["ExplainedHit", "SearchAs", "search_as"]
