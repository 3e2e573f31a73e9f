"""Request parameter types shared by the REST routes: values the database can honour.

An id past PostgreSQL's ``bigint`` range, or text holding a NUL character or a lone
surrogate (``"\\u0000"``, ``"\\ud800"`` in JSON), reaches the query and the database or
the driver refuses it: a 500 or a misleading 503. Checked here, each is a 422 naming the
field instead, before anything is stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator

BIGINT_MAX = 2**63 - 1

# A database row id in a path: a positive bigint.
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="A row id (1 to 2^63-1).")]


def storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL character, no unpaired surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain unpaired surrogates (invalid Unicode)") from None
    return value


# Free text that will be stored (names, scopes, source and collection names).
StorableText = Annotated[str, AfterValidator(storable)]

__all__ = ["BIGINT_MAX", "RowId", "StorableText", "storable"]
