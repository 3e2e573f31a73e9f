"""Render sample content into files, one writer per format, byte-for-byte reproducibly.

Office formats are zip files that record the time they were written (zip entry times,
``docProps/core.xml``); :func:`_normalise_zip` pins both, so regenerating the sample
company leaves ``git status`` clean.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from northwind.model import Content, Deck, Prose, Section, Workbook

# One fixed moment for every timestamp a format records.
FIXED_TIME = datetime(2025, 10, 1, 9, 0, 0, tzinfo=UTC)
_ZIP_TIME = (2025, 10, 1, 9, 0, 0)
_C = TypeVar("_C", Prose, Deck, Workbook)
_CORE_DATES = re.compile(
    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:(?:created|modified)>)"
)


def write(path: Path, content: Content) -> None:
    """Write ``content`` in the format named by ``path``'s extension."""
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"no writer for {path.suffix!r} files")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path, content)


def _expect(content: Content, kind: type[_C], path: Path) -> _C:
    if not isinstance(content, kind):
        raise TypeError(f"{path.name}: a {path.suffix} file needs {kind.__name__} content")
    return content


# --- office formats -------------------------------------------------------------------


def _write_docx(path: Path, content: Content) -> None:
    import docx

    doc_ = _expect(content, Prose, path)
    document = docx.Document()
    props = document.core_properties
    props.title, props.author, props.last_modified_by = doc_.title, doc_.author, doc_.author
    props.created = props.modified = FIXED_TIME.replace(tzinfo=None)
    props.revision = 1
    document.add_heading(doc_.title, level=0)
    if doc_.subtitle:
        document.add_paragraph(doc_.subtitle, style="Subtitle")
    for section in doc_.sections:
        document.add_heading(section.heading, level=1)
        for paragraph in section.paragraphs:
            document.add_paragraph(paragraph)
        for bullet in section.bullets:
            document.add_paragraph(bullet, style="List Bullet")
        if section.table:
            table = document.add_table(rows=0, cols=len(section.table[0]), style="Table Grid")
            for row in section.table:
                cells = table.add_row().cells
                for cell, value in zip(cells, row, strict=True):
                    cell.text = value
    document.save(str(path))
    _normalise_zip(path)


def _write_pptx(path: Path, content: Content) -> None:
    from pptx import Presentation

    deck = _expect(content, Deck, path)
    prs = Presentation()
    props = prs.core_properties
    props.title, props.author, props.last_modified_by = deck.title, deck.author, deck.author
    props.created = props.modified = FIXED_TIME.replace(tzinfo=None)
    props.revision = 1
    title_slide = prs.slides.add_slide(prs.slide_layouts[0])
    title_slide.shapes.title.text = deck.title
    title_slide.placeholders[1].text = deck.subtitle
    for spec in deck.slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = spec.title
        body = slide.placeholders[1].text_frame
        body.text = spec.bullets[0] if spec.bullets else ""
        for bullet in spec.bullets[1:]:
            body.add_paragraph().text = bullet
        if spec.notes:
            slide.notes_slide.notes_text_frame.text = spec.notes
    prs.save(str(path))
    _normalise_zip(path)


def _write_xlsx(path: Path, content: Content) -> None:
    from openpyxl import Workbook as XlsxWorkbook
    from openpyxl.styles import Font

    book = _expect(content, Workbook, path)
    wb = XlsxWorkbook()
    wb.remove(wb.active)
    wb.properties.title, wb.properties.creator = book.title, book.author
    wb.properties.created = FIXED_TIME.replace(tzinfo=None)
    for sheet in book.sheets:
        ws = wb.create_sheet(sheet.name)
        for row in sheet.rows:
            ws.append(list(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for column in ws.columns:
            width = max(len(str(c.value)) for c in column if c.value is not None)
            ws.column_dimensions[column[0].column_letter].width = min(width + 2, 60)
    wb.save(str(path))
    _normalise_zip(path)


def _normalise_zip(path: Path) -> None:
    """Pin entry times and document dates so the same content gives the same bytes."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = _CORE_DATES.sub(rb"\g<1>2025-10-01T09:00:00Z\g<2>", data)
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    path.write_bytes(buffer.getvalue())


# --- PDF ------------------------------------------------------------------------------


def _write_pdf(path: Path, content: Content) -> None:
    from fpdf import FPDF

    doc_ = _expect(content, Prose, path)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_TIME)
    pdf.set_title(doc_.title)
    pdf.set_author(doc_.author)
    pdf.set_creator("examples/generate.py")
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 9, doc_.title, new_x="LMARGIN", new_y="NEXT")
    if doc_.subtitle:
        pdf.set_font("Helvetica", "I", 11)
        pdf.multi_cell(0, 7, doc_.subtitle, new_x="LMARGIN", new_y="NEXT")
    for section in doc_.sections:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 13)
        pdf.multi_cell(0, 8, section.heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        for bullet in section.bullets:
            pdf.multi_cell(0, 6, f"- {bullet}", new_x="LMARGIN", new_y="NEXT")
        if section.table:
            with pdf.table(first_row_as_headings=True) as table:
                for row in section.table:
                    table.row(row)
    pdf.output(str(path))


# --- text formats ---------------------------------------------------------------------

_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} | Northwind Robotics</title>
<meta name="author" content="{author}">
<link rel="stylesheet" href="/assets/site.css">
</head>
<body>
<div class="cookie-banner">We use cookies to improve this site. <a href="/privacy">Privacy</a>
<button>Accept all</button></div>
<header class="site-header">
<a class="logo" href="/">Northwind Robotics</a>
<nav aria-label="Main"><ul>
<li><a href="/">Home</a></li><li><a href="/products">Products</a></li>
<li><a href="/customers">Customers</a></li><li><a href="/careers">Careers</a></li>
<li><a href="/contact">Contact</a></li>
</ul></nav>
</header>
<main>
<article>
<h1>{title}</h1>
{body}
</article>
</main>
<aside class="related"><h2>Related pages</h2><ul>
<li><a href="/news">Newsroom</a></li><li><a href="/events">Events</a></li></ul></aside>
<footer class="site-footer">
<p>&copy; 2025 Northwind Robotics B.V. &middot; Eindhoven &middot; KvK 12345678</p>
<p><a href="/privacy">Privacy</a> &middot; <a href="/terms">Terms</a> &middot;
<a href="/cookies">Cookie settings</a> &middot; <a href="/sitemap">Sitemap</a></p>
</footer>
</body>
</html>
"""


def _write_html(path: Path, content: Content) -> None:
    doc_ = _expect(content, Prose, path)
    e = html.escape
    parts: list[str] = []
    if doc_.subtitle:
        parts.append(f'<p class="lead">{e(doc_.subtitle)}</p>')
    for section in doc_.sections:
        parts.append(f"<h2>{e(section.heading)}</h2>")
        parts.extend(f"<p>{e(p)}</p>" for p in section.paragraphs)
        if section.bullets:
            items = "".join(f"<li>{e(b)}</li>" for b in section.bullets)
            parts.append(f"<ul>{items}</ul>")
        if section.table:
            head, *rows = section.table
            header = "".join(f"<th>{e(c)}</th>" for c in head)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows
            )
            parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>")
    page = _HTML_PAGE.format(title=e(doc_.title), author=e(doc_.author), body="\n".join(parts))
    path.write_text(page, encoding="utf-8", newline="\n")


def _write_markdown(path: Path, content: Content) -> None:
    doc_ = _expect(content, Prose, path)
    lines = [f"# {doc_.title}", ""]
    if doc_.subtitle:
        lines += [f"_{doc_.subtitle}_", ""]
    for section in doc_.sections:
        lines += [f"## {section.heading}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"- {b}" for b in section.bullets] + [""]
        if section.table:
            head, *rows = section.table
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8", newline="\n")


def _write_text(path: Path, content: Content) -> None:
    doc_ = _expect(content, Prose, path)
    lines = [doc_.title.upper(), "=" * len(doc_.title), ""]
    if doc_.subtitle:
        lines += [doc_.subtitle, ""]
    for section in doc_.sections:
        lines += [section.heading, "-" * len(section.heading), ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"  * {b}" for b in section.bullets] + [""]
        if section.table:
            lines += [*_text_table(section), ""]
    path.write_text("\n".join(lines), encoding="utf-8", newline="\n")


def _text_table(section: Section) -> list[str]:
    widths = [max(len(row[i]) for row in section.table) for i in range(len(section.table[0]))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in section.table
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _write_csv(path: Path, content: Content) -> None:
    book = _expect(content, Workbook, path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        for row in book.sheets[0].rows:
            out.writerow(["" if c is None else str(c) for c in row])


_WRITERS: dict[str, Callable[[Path, Content], None]] = {
    ".docx": _write_docx,
    ".pptx": _write_pptx,
    ".xlsx": _write_xlsx,
    ".pdf": _write_pdf,
    ".html": _write_html,
    ".md": _write_markdown,
    ".txt": _write_text,
    ".csv": _write_csv,
}

SUPPORTED_EXTENSIONS = tuple(sorted(_WRITERS))
