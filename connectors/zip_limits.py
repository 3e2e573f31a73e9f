"""Zip bombs: ZIP-based files (DOCX, PPTX, XLSX and any other container) are measured by
their central directory before any parser opens them.

``ingest.max_file_bytes`` bounds the compressed size only; a 1 MB DOCX can hold a GiB of
XML that python-docx would load into memory. The central directory states every member's
uncompressed size, and :mod:`zipfile` never returns more bytes than a member states (it
stops at ``file_size`` and fails the CRC check), so checking the stated sizes bounds what
the parsers can inflate. Reading the directory costs a few kilobytes, whatever the size.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from core.errors import DocumentParseError

ZIP_MAGIC = b"PK\x03\x04"
RATIO_FLOOR_BYTES = 1024 * 1024  # small members compress as they like (a blank sheet is 1000:1)
MAX_MEMBERS = 20_000


@dataclass(frozen=True)
class ZipLimits:
    max_uncompressed_bytes: int
    max_compression_ratio: int


# The settings' defaults, for callers that pass none.
DEFAULT_ZIP_LIMITS = ZipLimits(max_uncompressed_bytes=256 * 1024 * 1024, max_compression_ratio=100)


def check_zip(data: bytes, limits: ZipLimits) -> None:
    """Raise DocumentParseError if the ZIP in ``data`` would inflate past the limits.

    Data that is not a readable ZIP passes: the format's parser reports it as corrupt."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return
    if len(members) > MAX_MEMBERS:
        raise DocumentParseError(
            f"refused: the ZIP container has {len(members)} members (limit {MAX_MEMBERS})"
        )
    total = 0
    for info in members:
        total += info.file_size
        if info.file_size > RATIO_FLOOR_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise DocumentParseError(
                    f"refused as a zip bomb: member {info.filename[:100]!r} expands "
                    f"{ratio:.0f} times ({info.compress_size} -> {info.file_size} bytes; "
                    f"limit {limits.max_compression_ratio}, ingest.max_compression_ratio)"
                )
    if total > limits.max_uncompressed_bytes:
        raise DocumentParseError(
            f"refused: the ZIP container expands to {total} bytes, more than the limit of "
            f"{limits.max_uncompressed_bytes} bytes (ingest.max_uncompressed_bytes)"
        )


__all__ = ["DEFAULT_ZIP_LIMITS", "ZIP_MAGIC", "ZipLimits", "check_zip"]
