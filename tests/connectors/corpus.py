"""Documents of every supported format, generated on the spot (no binary fixtures in git)."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import openpyxl
import pptx
import pypdf
from fpdf import FPDF
from pptx.util import Inches

CP1252_TEXT = (
    "Sehr geehrte Damen und Herren, die Größe der Büros wird ab März geändert. "
    "Außerdem gilt: Überstunden müssen vorab genehmigt werden. Café, naïve – „Zitat“ € 100.\n"
) * 3
SHIFT_JIS_TEXT = "社内規程：年次有給休暇は二十日とします。申請は上長の承認が必要です。\n" * 3


def make_pdf(path: Path, *, title: str = "Expense policy", author: str = "Finance Team") -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(
        0, 10, "Expenses must be filed within 30 days.\nReceipts are required above 25 EUR."
    )
    pdf.add_page()
    pdf.multi_cell(0, 10, "Travel: economy class for flights under six hours.")
    data = bytes(pdf.output())
    path.write_bytes(data)
    return data


def make_encrypted_pdf(path: Path) -> None:
    plain = io.BytesIO()
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "Board minutes: secret.")
    plain.write(bytes(pdf.output()))
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(plain.getvalue()))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())


def make_corrupt_pdf(path: Path) -> None:
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage" + bytes(300))


def make_docx(path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Employee Handbook"
    document.core_properties.author = "HR Department"
    document.add_paragraph("Introduction text before any heading.")
    document.add_heading("Leave", level=1)
    document.add_paragraph("Employees get 25 days of annual leave.")
    document.add_heading("Carry over", level=2)
    document.add_paragraph("Up to five days carry over into the next year.")
    document.add_heading("Conduct", level=1)
    document.add_paragraph("Be kind to colleagues.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Grade"
    table.cell(0, 1).text = "Days"
    table.cell(1, 0).text = "A"
    table.cell(1, 1).text = "25"
    document.save(str(path))


def make_docx_untitled(path: Path) -> None:
    document = docx.Document()
    document.add_heading("Onboarding checklist", level=1)
    document.add_paragraph("Collect your badge at reception.")
    document.save(str(path))


def make_pptx(path: Path) -> None:
    presentation = pptx.Presentation()
    presentation.core_properties.author = "Sales Ops"
    layout = presentation.slide_layouts[1]  # title and content
    for title, body, notes in (
        ("Quarterly results", "Revenue grew 12 percent.", "Mention the Berlin office."),
        ("Next steps", "Hire two account managers.", ""),
    ):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    blank = presentation.slides.add_slide(presentation.slide_layouts[6])
    box = blank.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
    box.text_frame.text = "Appendix without a title"
    presentation.save(str(path))


def make_xlsx(path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Staff"
    sheet.append(["Name", "Department", "Start"])
    sheet.append(["Alice", "HR", 2019])
    sheet.append(["Bob", "Finance", 2021])
    other = workbook.create_sheet("Budget")
    other.append([None, None])
    other.append(["Travel", 12000.0])
    workbook.properties.title = "Staff list"
    workbook.properties.creator = "People Team"
    workbook.save(str(path))


HTML_PAGE = """<!doctype html><html><head><title>Leave policy | Intranet</title>
<meta charset="utf-8"><meta name="author" content="Jane Doe"></head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | NAVIGATION-MENU-TEXT</nav>
<article><h1>Annual leave</h1>
<p>Employees get 25 days of annual leave per year. This paragraph is long enough to be
recognised as the main content of the page by the extractor.</p>
<h2>Carry over</h2>
<p>Up to five days may be carried over into the next calendar year with the approval
of your manager. Requests go through the HR portal.</p>
<p>Leave that is not taken by the end of March lapses, unless the company asked you to
postpone it for operational reasons; in that case it is paid out with the April salary.</p>
<p>Part-time employees receive leave in proportion to their contractual hours, rounded up
to the next half day. Questions go to the people team through the usual channels.</p></article>
<div class="sidebar related-links">SIDEBAR-RELATED-LINKS: <a href="/a">Pensions</a>
<a href="/b">Canteen menu</a> <a href="/c">Car park</a></div>
<footer>FOOTER-COPYRIGHT-TEXT 2024 ACME Corporation</footer></body></html>"""

MARKDOWN_DOC = """---
author: Platform Team
---
Intro line before headings.

# Deploying services

Use the pipeline.

## Rollbacks

Run `deploy --rollback`.

```bash
# not a heading
echo hi
```

Setext heading
--------------

Under setext.
"""


def write_corpus(root: Path) -> None:
    """A small tree with one good file of each format and every kind of bad file."""
    (root / "policies").mkdir(parents=True)
    (root / "sales").mkdir()
    (root / "bad").mkdir()
    make_pdf(root / "policies" / "expenses.pdf")
    make_docx(root / "policies" / "handbook.docx")
    make_pptx(root / "sales" / "q3.pptx")
    make_xlsx(root / "sales" / "staff.xlsx")
    (root / "policies" / "leave.html").write_text(HTML_PAGE, encoding="utf-8")
    (root / "policies" / "deploy.md").write_text(MARKDOWN_DOC, encoding="utf-8")
    (root / "sales" / "notes.txt").write_text("Call the client on Monday.\n", encoding="utf-8")
    (root / "sales" / "leads.csv").write_text("name,city\nAcme,Berlin\nGlobex,Paris\n")
    (root / "policies" / "german.txt").write_bytes(CP1252_TEXT.encode("cp1252"))
    (root / "policies" / "japanese.txt").write_bytes(SHIFT_JIS_TEXT.encode("shift_jis"))
    make_encrypted_pdf(root / "bad" / "locked.pdf")
    make_corrupt_pdf(root / "bad" / "broken.pdf")
    (root / "bad" / "empty.txt").write_bytes(b"")
    (root / "bad" / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (root / "bad" / "unknown-encoding.txt").write_bytes(bytes(range(0x80, 0x100)) * 20)
