"""Make any request storable in the audit log, and safe to keep there.

Three things happen to every value on its way into an audit row:

- **Text is made storable.** PostgreSQL text and JSONB refuse NUL characters, and UTF-8
  cannot encode a lone surrogate (``"\\ud800"`` arrives through JSON escapes): either
  would make the insert fail and lose the row. NUL becomes U+FFFD and a lone surrogate
  its ``\\udXXX`` escape, so the row is written and still shows what was sent.
- **Secrets are withheld.** A value under a key that names a credential (``password``,
  ``secret``, ``token``, ``dsn``, ...) is stored as ``"[redacted]"`` unless it is a
  ``${VAR}`` reference, which names the variable and not its value.
- **Query text is hashed** when ``audit.query_text`` is ``hash``.

Values JSON cannot hold (dates, UUIDs, sets) become text or lists; the depth and size of
what is stored are bounded so one hostile call cannot bloat the log.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

# Argument names that hold free query text (hashed when audit.query_text is "hash").
QUERY_KEYS = frozenset({"query", "q", "text", "question"})
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|credential|api_?key|private_?key|dsn|authorization)",
    re.IGNORECASE,
)
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@/\s]+)(@)")
MAX_DEPTH = 8
MAX_STRING = 4000
MAX_ITEMS = 200


def clean_text(value: str, *, limit: int = MAX_STRING) -> str:
    """Text that PostgreSQL text/JSONB and UTF-8 accept: no NUL, no lone surrogate."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def _sha256(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        # Connection URLs may embed a password: user:secret@host -> user:[redacted]@host.
        return clean_text(_URL_PASSWORD.sub(r"\1" + REDACTED + r"\3", value))
    if depth >= MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, Mapping):
        return _mapping(value, depth + 1, hash_queries=False)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        return [_value(v, depth + 1) for v in items[:MAX_ITEMS]]
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return clean_text(str(value))


def _mapping(data: Mapping[Any, Any], depth: int, *, hash_queries: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in list(data.items())[:MAX_ITEMS]:
        key = clean_text(str(raw_key), limit=200)
        if is_secret_key(key) and not (isinstance(value, str) and _ENV_REFERENCE.match(value)):
            out[key] = REDACTED if value not in (None, "") else value
        elif hash_queries and key in QUERY_KEYS and isinstance(value, str):
            out[key] = _sha256(value)
        else:
            out[key] = _value(value, depth)
    return out


def scrub(arguments: Mapping[str, Any], *, hash_queries: bool = False) -> dict[str, Any]:
    """The request as stored: storable text, no secrets, query text hashed if asked."""
    return _mapping(arguments, 0, hash_queries=hash_queries)


__all__ = ["QUERY_KEYS", "REDACTED", "clean_text", "is_secret_key", "scrub"]
