"""What a parser returns: text in heading-scoped sections, plus what the file says of itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import Section

MIME_PDF = "application/pdf"
MIME_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MIME_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
MIME_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MIME_HTML = "text/html"
MIME_MARKDOWN = "text/markdown"
MIME_TEXT = "text/plain"
MIME_CSV = "text/csv"


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed file. ``title`` is None when the file names none (the caller falls back)."""

    content_type: str
    sections: tuple[Section, ...]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_text(self) -> bool:
        return any(s.text.strip() for s in self.sections)


def clean_title(value: object) -> str | None:
    """A usable title from a metadata field, or None when it is empty or whitespace."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:500] or None


__all__ = [
    "MIME_CSV",
    "MIME_DOCX",
    "MIME_HTML",
    "MIME_MARKDOWN",
    "MIME_PDF",
    "MIME_PPTX",
    "MIME_TEXT",
    "MIME_XLSX",
    "ParsedDocument",
    "clean_title",
]
