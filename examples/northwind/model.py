"""The shapes sample documents take before a writer renders them into a file format.

One content value can be rendered into several formats (a :class:`Prose` becomes PDF, DOCX,
HTML, Markdown or plain text), so each document is written once, as data, and the file
extension chooses the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Cell = str | int | float | None


@dataclass(frozen=True)
class Section:
    """A heading with paragraphs, an optional bullet list and an optional table."""

    heading: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()  # first row is the header


@dataclass(frozen=True)
class Prose:
    """A document of headed sections: PDF, DOCX, HTML, Markdown or plain text."""

    title: str
    sections: tuple[Section, ...]
    subtitle: str = ""
    author: str = "Northwind Robotics"


@dataclass(frozen=True)
class Slide:
    title: str
    bullets: tuple[str, ...]
    notes: str = ""


@dataclass(frozen=True)
class Deck:
    """A slide deck with speaker notes: PPTX."""

    title: str
    subtitle: str
    slides: tuple[Slide, ...]
    author: str = "Northwind Robotics"


@dataclass(frozen=True)
class Sheet:
    name: str
    rows: tuple[tuple[Cell, ...], ...]  # first row is the header


@dataclass(frozen=True)
class Workbook:
    """Worksheets: XLSX (every sheet) or CSV (the first sheet only)."""

    title: str
    sheets: tuple[Sheet, ...]
    author: str = "Northwind Robotics"


Content = Prose | Deck | Workbook


@dataclass(frozen=True)
class Folder:
    """A folder of the sample share and who may read it (written as its sidecar file)."""

    path: str  # relative to examples/docs
    collection: str
    level: int
    acl: tuple[str, ...]
    description: str
    documents: dict[str, Content] = field(default_factory=dict)  # file name -> content
