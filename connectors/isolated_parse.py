"""Parse one file in a forked child process, so a parser that dies takes only the child down.

A file whose parse once killed the worker (out of memory, a crash in C code, or an
operator's ``kill -9`` that happened to land mid-parse: the three look the same) is parsed
here from then on, until it ingests. If the child dies again, the document fails with
:data:`CRASHED_AGAIN` and the worker goes on; if it was not the file's fault, the document
simply ingests. Either way no file can take the worker down twice.

The child is forked, not spawned: it starts at once with the parsers already imported
(and, in tests, with whatever the parent patched). It only parses: no database, no model,
no threads of its own. Its address space is capped a fixed amount above the parent's, and
a child that neither answers nor dies within ``timeout_s`` is killed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
from multiprocessing.connection import Connection
from pathlib import Path

from connectors.parsers.dispatch import parse_bytes
from connectors.parsers.model import ParsedDocument
from connectors.zip_limits import ZipLimits
from core.errors import DocumentParseError

CRASHED_AGAIN = (
    "crashed the worker while being parsed, and again when parsed on its own in a child "
    "process (see ingest.max_uncompressed_bytes and ingest.max_file_bytes)"
)
# Room the child may take beyond what it inherits from the worker (model, buffers).
CHILD_MEMORY_BYTES = 2 * 1024**3
DEFAULT_TIMEOUT_S = 300.0


def _virtual_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(
    sender: Connection,
    extension: str,
    data: bytes,
    zip_limits: ZipLimits | None,
    memory_bytes: int,
) -> None:
    limit = _virtual_size() + memory_bytes
    with contextlib.suppress(ValueError, OSError):  # no /proc or no permission: no cap
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result: ParsedDocument | DocumentParseError
    try:
        result = parse_bytes(extension, data, zip_limits)
    except DocumentParseError as exc:
        result = exc
    sender.send(result)
    sender.close()


def parse_in_child(
    extension: str,
    data: bytes,
    zip_limits: ZipLimits | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = CHILD_MEMORY_BYTES,
) -> ParsedDocument:
    """What :func:`parse_bytes` returns, computed in a child; DocumentParseError if it dies."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child,
        args=(sender, extension, data, zip_limits, memory_bytes),
        name="kb-isolated-parse",
        daemon=True,
    )
    child.start()
    sender.close()  # the child holds the only writer: its death closes the pipe
    try:
        if not receiver.poll(timeout_s):
            raise DocumentParseError(
                f"parsing took longer than {timeout_s:.0f} s in a child process"
            )
        try:
            result: ParsedDocument | DocumentParseError = receiver.recv()
        except EOFError:
            raise DocumentParseError(CRASHED_AGAIN) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if isinstance(result, DocumentParseError):
        raise result
    return result


__all__ = ["CHILD_MEMORY_BYTES", "CRASHED_AGAIN", "parse_in_child"]
