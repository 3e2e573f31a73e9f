"""Choosing a parser: by file extension first, by content sniffing when the name says nothing.

A wrong extension is not trusted blindly either: a ``.txt`` holding binary data fails as
"not text", a ``.pdf`` that is not a PDF fails as a corrupt PDF.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from connectors.parsers.html import parse_html
from connectors.parsers.model import ParsedDocument
from connectors.parsers.office import parse_docx, parse_pptx, parse_xlsx
from connectors.parsers.pdf import parse_pdf
from connectors.parsers.text import parse_csv, parse_markdown, parse_plain_text
from connectors.zip_limits import DEFAULT_ZIP_LIMITS, ZIP_MAGIC, ZipLimits, check_zip
from core.errors import DocumentParseError

Parser = Callable[[bytes], ParsedDocument]

PARSERS_BY_EXTENSION: dict[str, Parser] = {
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".docm": parse_docx,
    ".pptx": parse_pptx,
    ".pptm": parse_pptx,
    ".xlsx": parse_xlsx,
    ".xlsm": parse_xlsx,
    ".html": parse_html,
    ".htm": parse_html,
    ".xhtml": parse_html,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_plain_text,
    ".text": parse_plain_text,
    ".log": parse_plain_text,
    ".csv": parse_csv,
    ".tsv": parse_csv,
}
SUPPORTED_EXTENSIONS = tuple(sorted(PARSERS_BY_EXTENSION))
_LEGACY_OFFICE = {".doc": "DOCX", ".ppt": "PPTX", ".xls": "XLSX"}
_OOXML_PARTS = (
    ("word/document.xml", parse_docx),
    ("ppt/presentation.xml", parse_pptx),
    ("xl/workbook.xml", parse_xlsx),
)


def parser_for(extension: str, head: bytes, data: bytes) -> Parser:
    """The parser for a file given its lower-case extension (with the dot) and content."""
    parser = PARSERS_BY_EXTENSION.get(extension)
    if parser is not None:
        return parser
    if extension in _LEGACY_OFFICE:
        raise DocumentParseError(
            f"unsupported format: legacy binary Office file ({extension}); "
            f"save it as {_LEGACY_OFFICE[extension]}"
        )
    return _sniff(head, data)


def _sniff(head: bytes, data: bytes) -> Parser:
    if head.startswith(b"%PDF-"):
        return parse_pdf
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            names = set()
        for part, parser in _OOXML_PARTS:
            if part in names:
                return parser
        raise DocumentParseError("unsupported format: a ZIP archive that is not an Office file")
    lowered = head[:2048].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return parse_html
    return parse_plain_text


def parse_bytes(extension: str, data: bytes, zip_limits: ZipLimits | None = None) -> ParsedDocument:
    """Parse a file's content; DocumentParseError with a reason when it cannot be read.

    Any ZIP container (whatever its extension says) is measured against ``zip_limits``
    before a parser opens it, and before sniffing reads its member list."""
    if data[:4] == ZIP_MAGIC:
        check_zip(data, zip_limits or DEFAULT_ZIP_LIMITS)
    parser = parser_for(extension.lower(), data[:4096], data)
    try:
        return parser(data)
    except DocumentParseError:
        raise
    except MemoryError:
        raise DocumentParseError("file too complex to parse within memory limits") from None
    except Exception as exc:
        # Third-party parsers raise anything on malformed input; one bad file must not stop
        # the run, and the type name is enough for an operator to start looking.
        raise DocumentParseError(f"cannot parse file: {type(exc).__name__}") from None


__all__ = ["PARSERS_BY_EXTENSION", "SUPPORTED_EXTENSIONS", "Parser", "parse_bytes", "parser_for"]
