"""Zip bombs for the tests: small OOXML files that inflate to a lot of XML, written in a
streaming way (the inflated XML never exists in memory or on disk)."""

from __future__ import annotations

import zipfile
from pathlib import Path

GIB = 1 << 30
_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    b'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)


def write_docx_bomb(path: Path, inflated: int = GIB) -> int:
    """A DOCX whose word/document.xml is ``inflated`` bytes of paragraphs; returns its size."""
    block = b"a" * (1 << 20)  # one run of text: deflate's best case, about 1000:1
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        with z.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(
                b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
                b'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
            )
            written = 0
            while written < inflated:
                member.write(block)
                written += len(block)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return path.stat().st_size
