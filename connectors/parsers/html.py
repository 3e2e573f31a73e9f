"""HTML: main content only (trafilatura drops navigation, footers and boilerplate), with a
BeautifulSoup + lxml fallback for pages trafilatura declines (very short or odd markup)."""

from __future__ import annotations

import logging
import re
from typing import Any

import trafilatura
from bs4 import BeautifulSoup, Tag

from connectors.parsers.model import MIME_HTML, ParsedDocument, clean_title
from connectors.parsers.text import markdown_sections
from core.errors import DocumentParseError

log = logging.getLogger(__name__)
_BOILERPLATE = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLANK_RUNS = re.compile(r"\n\s*\n+")
SHORT_PAGE_CHARS = 500


def parse_html(data: bytes) -> ParsedDocument:
    try:
        soup = BeautifulSoup(data, "lxml")
    except Exception as exc:
        raise DocumentParseError(f"malformed HTML: {type(exc).__name__}") from None
    title = clean_title(soup.title.get_text()) if soup.title is not None else None
    metadata: dict[str, Any] = {}
    author = soup.find("meta", attrs={"name": "author"})
    if isinstance(author, Tag) and clean_title(author.get("content")):
        metadata["author"] = clean_title(author.get("content"))

    fallback = _fallback_text(soup)
    # Trafilatura's boilerplate detection needs text mass: on a short page it falls back to
    # everything (menus included) and flattens headings, so short pages use our own pass.
    markdown = None if len(fallback) < SHORT_PAGE_CHARS else _main_content(data)
    if markdown is None:
        markdown = fallback
    sections, first_heading = markdown_sections(markdown)
    return ParsedDocument(MIME_HTML, sections, title or clean_title(first_heading), metadata)


def _main_content(data: bytes) -> str | None:
    try:
        text = trafilatura.extract(
            data,
            output_format="markdown",
            include_tables=True,
            include_formatting=True,
            include_comments=False,
            include_links=False,
            include_images=False,
            favor_recall=True,
        )
    except Exception as exc:  # trafilatura is a heuristic stack; never let it fail a file
        log.debug("trafilatura failed (%s); using the fallback", exc)
        return None
    return text if text and text.strip() else None


def _fallback_text(soup: BeautifulSoup) -> str:
    """Visible text with headings kept as Markdown headings, boilerplate elements dropped."""
    root = soup.body or soup
    for element in root.find_all(_BOILERPLATE):
        element.decompose()
    for heading in root.find_all(_HEADINGS):
        text = " ".join(heading.get_text(" ").split())
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {text}\n\n" if text else "")
    text = root.get_text("\n")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


__all__ = ["parse_html"]
