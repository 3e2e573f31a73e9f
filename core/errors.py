"""The one error tree of the project.

    KBError
    ├── ConfigError            invalid or unreadable configuration (names field and file)
    ├── DatabaseError          the knowledge-base database cannot be used
    │   ├── DatabaseUnavailable    unreachable, refused, or went away
    │   ├── PgvectorMissing        extension missing or older than required
    │   ├── DataDirLocked          another process owns the data directory
    │   └── SchemaMismatch         schema revision differs from this kb's (not migrated)
    ├── NotFound               the thing does not exist *or the caller may not see it*
    ├── AccessDenied           the caller is known but lacks a right (admin operations only)
    ├── InvalidRequest         the request itself is malformed (bad filter, bad argument)
    ├── ConnectorError         a source could not be read or its configuration is wrong
    │   └── DocumentParseError     one document could not be parsed (recorded, run continues)
    ├── PolicyError            a policy could not be compiled or evaluated (fail closed)
    └── AuthError              credentials missing or invalid
        └── InsufficientScope      valid credentials without the required scope

Domain errors carry no transport status: HTTP, MCP and the CLI each map this tree once.
Messages are safe to show to the caller: no SQL, stack traces or file-system paths of the
server. Details for operators go to the log, never into the message.
"""

from __future__ import annotations


class KBError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(KBError):
    """Configuration is missing, unreadable or invalid."""


class DatabaseError(KBError):
    """The knowledge-base database cannot be used."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or dropped the connection."""


class PgvectorMissing(DatabaseError):
    """The database has no pgvector extension, or one that is too old."""


class DataDirLocked(DatabaseError):
    """Another process holds the data directory."""


class SchemaMismatch(DatabaseError):
    """The database's schema revision is not the one this kb expects; nothing migrates it
    implicitly (only `kb serve` and `kb db upgrade` do)."""


class NotFound(KBError):
    """The object does not exist, or the caller may not know that it exists."""


class AccessDenied(KBError):
    """The caller is identified but lacks the right for an administrative action."""


class InvalidRequest(KBError):
    """The request is malformed: an unknown filter, a bad argument, an oversized value."""


class ConnectorError(KBError):
    """A source could not be read, or its configuration does not match the source."""


class DocumentParseError(ConnectorError):
    """One document could not be parsed; the run records it and goes on."""


class PolicyError(KBError):
    """A policy rule could not be compiled or evaluated. Callers fail closed."""


class AuthError(KBError):
    """Credentials are missing or invalid."""


class InsufficientScope(AuthError):
    """Valid credentials that lack a required scope."""

    def __init__(self, message: str, required: list[str]) -> None:
        super().__init__(message)
        self.required = required


__all__ = [
    "AccessDenied",
    "AuthError",
    "ConfigError",
    "ConnectorError",
    "DataDirLocked",
    "DatabaseError",
    "DatabaseUnavailable",
    "DocumentParseError",
    "InsufficientScope",
    "InvalidRequest",
    "KBError",
    "NotFound",
    "PgvectorMissing",
    "PolicyError",
    "SchemaMismatch",
]
