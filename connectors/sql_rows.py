"""One database row as one document: identity, text, title, placement and ACL.

A row whose placement cannot be trusted (an ACL cell that is not a principal, a level
outside 0..9, a collection name that is not valid) is a FailedDocument, never a document
with a guessed placement: guessing an ACL wrong either leaks or hides data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.base import FailedDocument, Item, Section, SourceDocument
from connectors.principals import principals_from_cells
from connectors.sql_config import SqlEntryConfig, SqlSourceConfig
from connectors.templating import display, jsonable, render

_COLLECTION = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
ROW_CONTENT_TYPE = "text/plain"


def key_text(values: Sequence[Any]) -> str:
    """Primary-key values as one stable string; '/' joins them, so '%' and '/' are escaped."""
    return "/".join(display(v).replace("%", "%25").replace("/", "%2F") for v in values)


def external_id(entry: SqlEntryConfig, values: Sequence[Any]) -> str:
    return f"{entry.entry_name}:{key_text(values)}"


def entry_fingerprint(source: SqlSourceConfig, entry: SqlEntryConfig) -> str:
    """Changes when the entry's configuration could change what its rows yield."""
    shape = {
        "entry": entry.model_dump(mode="json"),
        "source": source.model_dump(mode="json", include={"collection", "level", "acl", "url"}),
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


class RowRenderer:
    """Turns rows of one entry into SourceDocument (or FailedDocument) items."""

    def __init__(self, source: SqlSourceConfig, entry: SqlEntryConfig, locator: str) -> None:
        self.source = source
        self.entry = entry
        self.locator = locator

    def uri(self, key: str) -> str:
        return f"{self.locator}/{quote(self.entry.entry_name, safe='')}/{quote(key, safe='/%')}"

    def render(self, row: Mapping[Any, Any]) -> Item:
        entry = self.entry
        pk_values = [row[c] for c in entry.primary_key]
        key = key_text(pk_values)
        ext_id = f"{entry.entry_name}:{key}"
        uri = self.uri(key)

        def failed(reason: str) -> FailedDocument:
            return FailedDocument(ext_id, uri, reason)

        if any(v is None for v in pk_values):
            return failed("primary key value is NULL")
        try:
            text = render(entry.text_template, row).strip()
        except (ValueError, TypeError, KeyError) as exc:
            return failed(f"text_template cannot render this row: {exc}")
        if not text:
            return failed("the row renders to empty text")
        try:
            acl = self._acl(row)
        except ValueError as exc:
            return failed(f"invalid ACL value: {exc}")
        collection = self._collection(row)
        if collection is None:
            return failed(f"invalid collection in column {entry.collection_column!r}")
        level = self._level(row)
        if level is None:
            return failed(f"level in column {entry.level_column!r} is not an integer 0..9")
        metadata: dict[str, Any] = {"entry": entry.entry_name}
        if entry.table:
            metadata["table"] = entry.table
        for column in entry.metadata_columns:
            metadata[column] = jsonable(row[column])
        modified = row[entry.updated_at] if entry.updated_at else None
        return SourceDocument(
            external_id=ext_id,
            uri=uri,
            title=self._title(row, key),
            content_type=ROW_CONTENT_TYPE,
            sections=(Section(text=text),),
            collection=collection,
            path=f"/{entry.entry_name}/{key}",
            level=level,
            acl=acl,
            metadata=metadata,
            modified_at=modified if isinstance(modified, datetime) else None,
            size_bytes=len(text.encode("utf-8")),
        )

    def _title(self, row: Mapping[str, Any], key: str) -> str:
        entry = self.entry
        title = ""
        if entry.title_column:
            title = display(row[entry.title_column])
        elif entry.title_template:
            try:
                title = render(entry.title_template, row)
            except (ValueError, TypeError, KeyError):
                title = ""
        title = " ".join(title.split())[:500]
        return title or f"{entry.entry_name} {key}"

    def _acl(self, row: Mapping[str, Any]) -> tuple[str, ...] | None:
        """Columns' principals plus the fixed list; unknown (None) when neither gives one.

        With acl_columns configured, an empty cell does not fall back to the source's ACL:
        that could widen access to a row its owner meant to restrict.
        """
        entry = self.entry
        if not entry.acl_columns:
            fixed = entry.acl if entry.acl is not None else self.source.acl
            return tuple(fixed) if fixed is not None else None
        found = principals_from_cells((row[c] for c in entry.acl_columns), entry.acl_prefix)
        found.update(entry.acl or ())
        if not found and entry.acl is None:
            return None
        return tuple(sorted(found))

    def _collection(self, row: Mapping[str, Any]) -> str | None:
        default = self.entry.collection or self.source.collection
        if not self.entry.collection_column:
            return default
        value = display(row[self.entry.collection_column]).strip()
        if not value:
            return default
        return value if _COLLECTION.fullmatch(value) else None

    def _level(self, row: Mapping[str, Any]) -> int | None:
        default = self.entry.level if self.entry.level is not None else self.source.level
        if not self.entry.level_column:
            return default
        raw = row[self.entry.level_column]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return default
        try:
            number = float(str(raw).strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() and 0 <= number <= 9 else None


__all__ = ["ROW_CONTENT_TYPE", "RowRenderer", "entry_fingerprint", "external_id", "key_text"]
