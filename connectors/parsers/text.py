"""Plain text, Markdown and CSV: decoding unknown encodings and finding heading structure."""

from __future__ import annotations

import codecs
import csv
import io
import re

import charset_normalizer
import yaml

from connectors.base import Section
from connectors.parsers.model import (
    MIME_CSV,
    MIME_MARKDOWN,
    MIME_TEXT,
    ParsedDocument,
    clean_title,
)
from connectors.parsers.tables import rows_to_text
from core.errors import DocumentParseError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Windows-1252 is the legacy encoding office files most often carry; when the detector finds
# it as good as another single-byte code page (short texts tie often), it is the likelier one.
_PREFERRED_LEGACY = "cp1252"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_RATIO = 0.01


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; DocumentParseError("not text ...") for binary data."""
    text = _decode(data)
    if text and len(_CONTROL.findall(text)) / len(text) > _MAX_CONTROL_RATIO:
        raise DocumentParseError("not text: the file holds binary data")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise DocumentParseError(f"not text: invalid {encoding} after its BOM") from None
    if b"\x00" not in data:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if b"\x00" in data and (best is None or not best.encoding.startswith(("utf_16", "utf_32"))):
        raise DocumentParseError("not text: the file holds binary data")
    if best is None:
        raise DocumentParseError("not text: no character encoding fits the content")
    floor = min(m.percent_chaos for m in matches)
    for m in matches:
        if m.percent_chaos <= floor + 1.0 and _PREFERRED_LEGACY in m.could_be_from_charset:
            return data.decode(_PREFERRED_LEGACY)
    return str(best)


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_sections(text: str) -> tuple[tuple[Section, ...], str | None]:
    """Split Markdown at ATX and setext headings; returns sections and the first heading."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    first_heading: str | None = None
    fence: str | None = None

    def flush() -> None:
        chunk = "\n".join(body).strip()
        if chunk:
            sections.append(Section(text=chunk, headings=tuple(t for _, t in stack)))
        body.clear()

    def open_heading(level: int, title: str) -> None:
        nonlocal first_heading
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        first_heading = first_heading or title

    for line in text.split("\n"):
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            fence = None if fence == marker else (fence or marker)
            body.append(line)
            continue
        if fence is None:
            atx = _ATX.match(line)
            if atx and atx.group(2):
                open_heading(len(atx.group(1)), atx.group(2))
                continue
            setext = _SETEXT.match(line)
            if setext and body and body[-1].strip():
                title = body.pop().strip()
                open_heading(1 if setext.group(1)[0] == "=" else 2, title)
                continue
        body.append(line)
    flush()
    return tuple(sections), first_heading


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)


def parse_markdown(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    metadata: dict[str, object] = {}
    title: str | None = None
    front = _FRONT_MATTER.match(text)
    if front:
        try:
            meta = yaml.safe_load(front.group(1))
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict):
            title = clean_title(meta.get("title"))
            author = meta.get("author")
            if isinstance(author, str) and author.strip():
                metadata["author"] = author.strip()
            text = text[front.end() :]
    sections, first_heading = markdown_sections(text)
    return ParsedDocument(MIME_MARKDOWN, sections, title or clean_title(first_heading), metadata)


def parse_plain_text(data: bytes) -> ParsedDocument:
    text = decode_text(data).strip()
    return ParsedDocument(MIME_TEXT, (Section(text=text),) if text else ())


def parse_csv(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    sample = text[:16384]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:
        raise DocumentParseError(f"malformed CSV: {exc}") from None
    body = rows_to_text(rows)
    return ParsedDocument(
        MIME_CSV, (Section(text=body),) if body else (), metadata={"rows": len(rows)}
    )


__all__ = ["decode_text", "markdown_sections", "parse_csv", "parse_markdown", "parse_plain_text"]
