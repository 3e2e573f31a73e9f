"""The access filter: the only way a query that returns chunks or documents gets written.

An :class:`AccessFilter` is made by the policy engine for one caller at one policy
version. It carries

* ``where(columns)``: a SQL predicate over the authorization columns, pushed *inside*
  every query (vector, keyword, listing, counting), never applied after LIMIT;
* ``permits(row)``: the per-row re-check with an enforcer holding only this caller's rules,
  applied to every row a query returns, so a compiler bug cannot leak a row.

Repositories take an ``AccessFilter`` argument; code outside ``policies/`` cannot build one
except through :func:`make_access_filter`, which a lint test allows only in ``policies/``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import QueryableAttribute

from core.identity import Caller
from server.db.models import CHUNK_AUTHZ_ATTRS, DOCUMENT_AUTHZ_ATTRS
from server.observability import search_clock


@dataclass(frozen=True)
class AuthzColumns:
    """The columns a predicate may reference, for either the chunks or documents table."""

    document_id: QueryableAttribute[uuid.UUID]
    source: QueryableAttribute[str]
    collection: QueryableAttribute[str]
    path: QueryableAttribute[str]
    level: QueryableAttribute[int]
    acl: QueryableAttribute[list[str]]
    content_type: QueryableAttribute[str]
    metadata: QueryableAttribute[dict[str, Any]]

    @classmethod
    def of_chunks(cls, chunk: Any) -> AuthzColumns:
        """From the Chunk model (or an alias of it); columns per server.db.models."""
        return cls(**{name: getattr(chunk, attr) for name, attr in CHUNK_AUTHZ_ATTRS.items()})

    @classmethod
    def of_documents(cls, document: Any) -> AuthzColumns:
        """From the Document model (or an alias of it); columns per server.db.models."""
        return cls(**{name: getattr(document, attr) for name, attr in DOCUMENT_AUTHZ_ATTRS.items()})


@dataclass(frozen=True)
class RowAttributes:
    """What the per-row re-check sees of a document (or of a chunk's document)."""

    document_id: str
    source: str
    collection: str
    path: str
    level: int
    acl: tuple[str, ...]
    content_type: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of_document(cls, row: Any) -> RowAttributes:
        """From a ``documents`` row (ORM object or a row selecting its columns)."""
        return cls._of(row, DOCUMENT_AUTHZ_ATTRS)

    @classmethod
    def of_chunk(cls, row: Any) -> RowAttributes:
        """From a ``chunks`` row: its copies of the document's authorization columns."""
        return cls._of(row, CHUNK_AUTHZ_ATTRS)

    @classmethod
    def _of(cls, row: Any, attrs: Mapping[str, str]) -> RowAttributes:
        values = {name: getattr(row, attr) for name, attr in attrs.items()}
        values["document_id"] = str(values["document_id"])
        values["acl"] = tuple(values["acl"])
        return cls(**values)


_TOKEN = object()


class AccessFilter:
    """What one caller may read, at one policy version. Immutable."""

    __slots__ = (
        "_permits",
        "_where",
        "caller",
        "disabled_sources",
        "exact",
        "is_admin",
        "policy_version",
    )

    def __init__(
        self,
        *,
        token: object,
        caller: Caller,
        policy_version: int,
        where: Callable[[AuthzColumns], ColumnElement[bool]],
        permits: Callable[[RowAttributes], bool],
        is_admin: bool,
        exact: bool,
        disabled_sources: frozenset[str],
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("AccessFilter is made by the policy engine only")
        self.caller = caller
        self.policy_version = policy_version
        # The sources switched off in the snapshot this filter was made from: they change
        # what it allows without a new policy version, so caches of answers key on them too.
        self.disabled_sources = disabled_sources
        self.is_admin = is_admin
        # True when the SQL predicate decides exactly what ``permits`` decides (every rule
        # of this caller compiled as written), so a count may be taken in SQL alone.
        self.exact = exact
        self._where = where
        self._permits = permits

    def where(self, columns: AuthzColumns) -> ColumnElement[bool]:
        """The SQL predicate; goes inside the query, before any LIMIT."""
        return self._where(columns)

    def permits(self, row: RowAttributes) -> bool:
        """Re-check one returned row. Any exception denies (fail closed)."""
        started = time.perf_counter()
        try:
            return bool(self._permits(row))
        except Exception:
            import logging

            logging.getLogger(__name__).exception(
                "row re-check failed for %s; denying", self.caller.subject
            )
            return False
        finally:
            search_clock.add("recheck", time.perf_counter() - started)  # /metrics stage


def make_access_filter(
    *,
    caller: Caller,
    policy_version: int,
    where: Callable[[AuthzColumns], ColumnElement[bool]],
    permits: Callable[[RowAttributes], bool],
    is_admin: bool = False,
    exact: bool = False,
    disabled_sources: frozenset[str] = frozenset(),
) -> AccessFilter:
    """Build a filter. Only ``policies/`` may call this (enforced by a lint test).

    ``exact`` is a promise that ``where`` and ``permits`` agree on every row; only the
    policy engine makes it (hand-built filters default to False: every row re-checked).
    """
    return AccessFilter(
        token=_TOKEN,
        caller=caller,
        policy_version=policy_version,
        where=where,
        permits=permits,
        is_admin=is_admin,
        exact=exact,
        disabled_sources=disabled_sources,
    )


__all__ = ["AccessFilter", "AuthzColumns", "RowAttributes", "make_access_filter"]
