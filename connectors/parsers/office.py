"""Office Open XML: DOCX (headings become sections), PPTX (a section per slide, speaker notes
included), XLSX (a section per sheet, rows as text, read-only mode so big books stream)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import docx
import openpyxl
import pptx
from docx.table import Table
from docx.text.paragraph import Paragraph
from pptx.enum.shapes import MSO_SHAPE_TYPE

from connectors.base import Section
from connectors.parsers.model import (
    MIME_DOCX,
    MIME_PPTX,
    MIME_XLSX,
    ParsedDocument,
    clean_title,
)
from connectors.parsers.tables import cell_text, rows_to_text
from core.errors import DocumentParseError

_HEADING_STYLE = re.compile(r"^Heading (\d)$")


def _open_failed(kind: str, exc: Exception) -> DocumentParseError:
    if isinstance(exc, zipfile.BadZipFile):
        return DocumentParseError(f"corrupt {kind} file: not a valid Office Open XML package")
    return DocumentParseError(f"corrupt {kind} file: {type(exc).__name__}")


def _core_metadata(props: Any) -> tuple[str | None, dict[str, Any]]:
    metadata: dict[str, Any] = {}
    author = clean_title(getattr(props, "author", None) or getattr(props, "creator", None))
    if author:
        metadata["author"] = author
    return clean_title(getattr(props, "title", None)), metadata


# -- DOCX ---------------------------------------------------------------------------------


def parse_docx(data: bytes) -> ParsedDocument:
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise _open_failed("DOCX", exc) from None
    title, metadata = _core_metadata(document.core_properties)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    styled_title: str | None = None
    first_heading: str | None = None

    def flush() -> None:
        text = "\n".join(body).strip()
        if text:
            sections.append(Section(text=text, headings=tuple(t for _, t in stack)))
        body.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            body.append(_docx_table(block))
            continue
        text = block.text.strip()
        if not text:
            continue
        level = _heading_level(block)
        if level == 0:
            styled_title = styled_title or text
        elif level is not None:
            flush()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
            first_heading = first_heading or text
        else:
            body.append(text)
    flush()
    return ParsedDocument(
        MIME_DOCX, tuple(sections), title or styled_title or first_heading, metadata
    )


def _heading_level(paragraph: Paragraph) -> int | None:
    """1..9 for 'Heading N' styles, 0 for the 'Title' style, None for body text."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 0
    match = _HEADING_STYLE.match(name or "")
    return int(match.group(1)) if match else None


def _docx_table(table: Table) -> str:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = cell_text(cell.text)
            # Merged cells repeat their text in every grid position they span.
            if not cells or cells[-1] != text:
                cells.append(text)
        rows.append(cells)
    return rows_to_text(rows)


# -- PPTX ---------------------------------------------------------------------------------


def parse_pptx(data: bytes) -> ParsedDocument:
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
    except Exception as exc:
        raise _open_failed("PPTX", exc) from None
    title, metadata = _core_metadata(presentation.core_properties)
    sections: list[Section] = []
    first_slide_title: str | None = None
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        slide_title = clean_title(title_shape.text_frame.text) if title_shape is not None else None
        first_slide_title = first_slide_title or slide_title
        texts = [
            t
            for shape in slide.shapes
            if title_shape is None or shape.shape_id != title_shape.shape_id
            for t in _shape_texts(shape)
        ]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                texts.append(f"Speaker notes: {notes}")
        text = "\n".join(texts).strip()
        if text or slide_title:
            sections.append(
                Section(
                    text=text or slide_title or "", headings=(slide_title or f"Slide {number}",)
                )
            )
    metadata["slides"] = len(presentation.slides)
    return ParsedDocument(MIME_PPTX, tuple(sections), title or first_slide_title, metadata)


def _shape_texts(shape: Any) -> Iterator[str]:
    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for inner in shape.shapes:
            yield from _shape_texts(inner)
        return
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = shape.text_frame.text.strip()
        if text:
            yield text
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        text = rows_to_text(rows)
        if text:
            yield text


# -- XLSX ---------------------------------------------------------------------------------


def parse_xlsx(data: bytes) -> ParsedDocument:
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise _open_failed("XLSX", exc) from None
    try:
        title, metadata = _core_metadata(workbook.properties)
        sections: list[Section] = []
        for sheet in workbook.worksheets:
            text = rows_to_text(sheet.iter_rows(values_only=True))
            if text:
                sections.append(Section(text=text, headings=(str(sheet.title),)))
        metadata["sheets"] = len(workbook.worksheets)
    finally:
        workbook.close()
    return ParsedDocument(MIME_XLSX, tuple(sections), title, metadata)


__all__ = ["parse_docx", "parse_pptx", "parse_xlsx"]
