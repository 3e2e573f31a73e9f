"""Normalising source-system ACL values into the server's principal namespace.

Principals look like ``user:<id>``, ``email:<address>``, ``group:<name>``, ``svc:<client>``
or ``role:<name>`` (see :mod:`core.identity`). Sources often store bare names (``hr``)
or lists in one column (``"hr, finance"`` or ``["hr", "finance"]``); a configured prefix
turns a bare name into a principal. Email addresses are lower-cased, since mail systems
treat them case-insensitively and the identity side must match them exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from core.identity import PRINCIPAL_PREFIXES, is_principal

_SPLIT = re.compile(r"[,;\n]")


def normalise_principal(value: str, default_prefix: str | None = None) -> str:
    """One principal, prefixed; raises ValueError for a bare value without a default."""
    value = value.strip()
    if not value:
        raise ValueError("empty principal")
    if value in PRINCIPAL_PREFIXES:
        raise ValueError(f"principal {value!r} has a prefix but no name")
    if not is_principal(value):
        if default_prefix is None:
            raise ValueError(
                f"principal {value!r} needs a prefix ({', '.join(PRINCIPAL_PREFIXES)})"
            )
        value = default_prefix + value
    if value.startswith("email:"):
        value = value.lower()
    return value


def validate_principals(values: Iterable[str]) -> list[str]:
    """For configuration: every value must already be a prefixed principal."""
    return sorted({normalise_principal(v) for v in values})


def split_acl_value(raw: object) -> list[str]:
    """The individual names in one ACL cell: a list, a JSON array or a separated string."""
    if raw is None:
        return []
    if isinstance(raw, list | tuple | set | frozenset):
        return [str(v).strip() for v in raw if v is not None and str(v).strip()]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = str(raw).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(v).strip() for v in parsed if v is not None and str(v).strip()]
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]


def principals_from_cells(cells: Iterable[object], default_prefix: str) -> set[str]:
    """Every principal named in some ACL cells, bare names prefixed with ``default_prefix``."""
    return {normalise_principal(name, default_prefix) for c in cells for name in split_acl_value(c)}


__all__ = [
    "normalise_principal",
    "principals_from_cells",
    "split_acl_value",
    "validate_principals",
]
