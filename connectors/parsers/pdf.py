"""PDF text: pypdfium2 first (fast, robust), pypdf as the fallback; one section per page.

PDFium is not thread-safe, and the pipeline may parse on several worker threads, so every
call into it holds one process-wide lock.
"""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

import pypdf
import pypdfium2 as pdfium
from pypdf.errors import FileNotDecryptedError, PyPdfError

from connectors.base import Section
from connectors.parsers.model import MIME_PDF, ParsedDocument, clean_title
from core.errors import DocumentParseError

log = logging.getLogger(__name__)
_PDFIUM_LOCK = threading.Lock()
ENCRYPTED = "encrypted PDF: a password is required to read it"


def parse_pdf(data: bytes) -> ParsedDocument:
    try:
        parsed = _with_pdfium(data)
    except _Encrypted:
        raise DocumentParseError(ENCRYPTED) from None
    except Exception as first:
        log.debug("pdfium could not read a PDF (%s); trying pypdf", first)
        parsed = _with_pypdf(data, first)
    if not parsed.has_text:
        raise DocumentParseError("PDF has no extractable text (scanned images need OCR)")
    return parsed


class _Encrypted(Exception):
    pass


def _with_pdfium(data: bytes) -> ParsedDocument:
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise _Encrypted from None
            raise
        try:
            meta = doc.get_metadata_dict(skip_empty=True)
            sections: list[Section] = []
            for index in range(len(doc)):
                page = doc[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = textpage.get_text_bounded()
                    finally:
                        textpage.close()
                finally:
                    page.close()
                text = text.replace("\r\n", "\n").strip()
                if text:
                    sections.append(Section(text=text))
            pages = len(doc)
        finally:
            doc.close()
    return _document(sections, meta.get("Title"), meta.get("Author"), pages)


def _with_pypdf(data: bytes, first: Exception) -> ParsedDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentParseError(ENCRYPTED)
        info = reader.metadata
        sections = [
            Section(text=t) for p in reader.pages if (t := (p.extract_text() or "").strip())
        ]
        pages = len(reader.pages)
    except FileNotDecryptedError:
        raise DocumentParseError(ENCRYPTED) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        log.debug("pypdf could not read a PDF either: %r", exc)
        raise DocumentParseError(
            f"corrupt PDF: neither PDFium ({_short(first)}) nor pypdf ({type(exc).__name__}) "
            "can read it"
        ) from None
    title = info.title if info is not None else None
    author = info.author if info is not None else None
    return _document(sections, title, author, pages)


def _short(exc: Exception) -> str:
    text = str(exc)
    # PDFium messages read "Failed to load document (PDFium: Data format error)."
    if "PDFium:" in text:
        return text.split("PDFium:", 1)[1].strip(" ).")
    return type(exc).__name__


def _document(sections: list[Section], title: Any, author: Any, pages: int) -> ParsedDocument:
    metadata: dict[str, Any] = {"pages": pages}
    if clean_title(author):
        metadata["author"] = clean_title(author)
    return ParsedDocument(MIME_PDF, tuple(sections), clean_title(title), metadata)


__all__ = ["ENCRYPTED", "parse_pdf"]
