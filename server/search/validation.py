"""Turning caller input (from MCP, REST or the CLI) into checked search values.

Everything a caller types ends up as a bound parameter, never as SQL text; these checks
exist to give a clear message for input that cannot mean anything (a date that is not a
date, a NUL byte Postgres would refuse) instead of an internal error.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from core.errors import InvalidRequest, NotFound
from server.search.schemas import (
    DOCUMENT_URI_PREFIX,
    SEARCH_MODES,
    MetadataValue,
    SearchFilters,
)

MAX_QUERY_CHARS = 2000
MAX_FILTER_VALUES = 100
MAX_FILTER_VALUE_CHARS = 500
MAX_PREFIX_CHARS = 200

# One message for every document the caller cannot have: absent, denied or malformed id.
DOCUMENT_NOT_FOUND = "document not found (it does not exist or you may not read it)"
CHUNK_NOT_FOUND = "chunk not found (it does not exist or you may not read it)"


def check_text(value: str, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string")
    if "\x00" in value:
        raise InvalidRequest(f"{what} must not contain NUL characters")
    if len(value) > max_chars:
        raise InvalidRequest(f"{what} is too long ({len(value)} characters; at most {max_chars})")
    return value


def check_query_text(text: str) -> str:
    text = check_text(text, "query", MAX_QUERY_CHARS).strip()
    if not text:
        raise InvalidRequest("query must not be empty")
    return text


def check_mode(value: str | None, default: str) -> str:
    """A search mode: hybrid, keyword or semantic (None: the configured default)."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in SEARCH_MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(SEARCH_MODES)}")
    return value


def check_int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{what} must be an integer between {low} and {high}")
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be between {low} and {high}, got {value}")
    return value


def _values(raw: Iterable[str] | str | None, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else list(raw)
    if len(items) > MAX_FILTER_VALUES:
        raise InvalidRequest(f"filter {what} has {len(items)} values; at most {MAX_FILTER_VALUES}")
    cleaned = [check_text(v, f"filter {what}", MAX_FILTER_VALUE_CHARS).strip() for v in items]
    if any(not v for v in cleaned):
        raise InvalidRequest(f"filter {what} must not contain empty values")
    return tuple(dict.fromkeys(cleaned))


def parse_datetime(value: datetime | date | str | None, what: str) -> datetime | None:
    """ISO 8601 date or date-time; a value without a zone is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = check_text(value, f"filter {what}", 64).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidRequest(
                f"filter {what} must be an ISO 8601 date or date-time "
                f"(e.g. 2024-05-01 or 2024-05-01T12:00:00Z), got {text[:40]!r}"
            ) from None
    else:
        raise InvalidRequest(f"filter {what} must be an ISO 8601 date or date-time string")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _metadata(raw: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("filter metadata must be an object of key: value pairs")
    if len(raw) > MAX_FILTER_VALUES:
        raise InvalidRequest(f"filter metadata has {len(raw)} keys; at most {MAX_FILTER_VALUES}")
    out: dict[str, MetadataValue] = {}
    for key, value in raw.items():
        key = check_text(key, "metadata key", MAX_FILTER_VALUE_CHARS)
        if not key:
            raise InvalidRequest("metadata keys must not be empty")
        if isinstance(value, str):
            value = check_text(value, f"metadata value of {key!r}", MAX_FILTER_VALUE_CHARS)
        elif not isinstance(value, int | float | bool):
            raise InvalidRequest(f"metadata value of {key!r} must be a string, number or boolean")
        out[key] = value
    return out


def make_filters(
    *,
    sources: Iterable[str] | str | None = None,
    collections: Iterable[str] | str | None = None,
    content_types: Iterable[str] | str | None = None,
    modified_after: datetime | date | str | None = None,
    modified_before: datetime | date | str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> SearchFilters:
    """Checked filters from raw caller input. Unknown sources or types simply match nothing."""
    after = parse_datetime(modified_after, "modified_after")
    before = parse_datetime(modified_before, "modified_before")
    if after is not None and before is not None and after >= before:
        raise InvalidRequest("filter modified_after must be earlier than modified_before")
    wanted = tuple(dict.fromkeys(c.strip("/") for c in _values(collections, "collections")))
    if "" in wanted:
        raise InvalidRequest("filter collections must name a collection, not just '/'")
    return SearchFilters(
        sources=_values(sources, "sources"),
        collections=wanted,
        content_types=_values(content_types, "content_types"),
        modified_after=after,
        modified_before=before,
        metadata=_metadata(metadata),
    )


def check_filters(filters: SearchFilters) -> SearchFilters:
    """Re-check filters built directly as a dataclass (same rules as :func:`make_filters`)."""
    return make_filters(
        sources=filters.sources,
        collections=filters.collections,
        content_types=filters.content_types,
        modified_after=filters.modified_after,
        modified_before=filters.modified_before,
        metadata=filters.metadata,
    )


def parse_document_id(value: str | uuid.UUID) -> uuid.UUID:
    """A document id, bare or as its ``kb://documents/`` URI. Malformed reads as not found."""
    if isinstance(value, uuid.UUID):
        return value
    text = value.strip() if isinstance(value, str) else ""
    text = text.removeprefix(DOCUMENT_URI_PREFIX)
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(DOCUMENT_NOT_FOUND) from None


def parse_chunk_id(value: int | str) -> int:
    if isinstance(value, bool):
        raise NotFound(CHUNK_NOT_FOUND)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        number = int(value.strip())
    else:
        raise NotFound(CHUNK_NOT_FOUND)
    if not 0 < number < 2**63:
        raise NotFound(CHUNK_NOT_FOUND)
    return number


def encode_cursor(title: str, document_id: uuid.UUID) -> str:
    raw = json.dumps([title, str(document_id)], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[str, uuid.UUID] | None:
    """The position an opaque cursor stands for; anything else is a clear InvalidRequest."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        title, ident = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(title, str) or not isinstance(ident, str) or "\x00" in title:
            raise ValueError
        return title, uuid.UUID(ident)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise InvalidRequest(
            "invalid cursor: pass back the nextCursor of a previous page"
        ) from None


__all__ = [
    "CHUNK_NOT_FOUND",
    "DOCUMENT_NOT_FOUND",
    "check_filters",
    "check_int",
    "check_mode",
    "check_query_text",
    "check_text",
    "decode_cursor",
    "encode_cursor",
    "make_filters",
    "parse_chunk_id",
    "parse_datetime",
    "parse_document_id",
]
