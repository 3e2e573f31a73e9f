"""The object language of access rules: typed selectors and attribute conditions.

Selectors (the ``object`` of a rule)::

    collection:NAME     the collection, its "/"-nested sub-collections, and every collection
                        linked below it by ``g2`` (child -> parent) rules
    path:/prefix/       documents whose path starts with this literal prefix (no wildcards)
    source:NAME         documents of one source
    doc:<uuid>          one document
    acl:source          documents whose own source ACL names one of the caller's principals
                        (or a role the caller holds)
    *                   every document

Conditions (the ``when`` of a rule) are clauses joined by ``&&``, each
``ATTRIBUTE OP LITERAL`` with a JSON literal::

    content_type == "application/pdf"     content_type != "..."    content_type in ["a", "b"]
    metadata.team == "platform"           metadata.team != "..."   metadata.region in ["eu"]
    level <= 2                            level >= 1               level == 0

``metadata.KEY`` compares only string values of a top-level key; a missing or non-string
value is never equal (so ``!=`` holds for it). This module parses both and evaluates them
in Python (the Casbin re-check and ``explain``); :mod:`policies.compiler` turns the same
parsed values into SQL. Anything these parsers refuse cannot be compiled.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from core.errors import PolicyError

SelectorKind = Literal["all", "collection", "path", "source", "doc", "acl"]
ConditionOp = Literal["==", "!=", "in", "<=", ">="]

#: Characters that would make a path selector look like a glob (Casbin's keyMatch treats
#: only the part before the first ``*`` as a prefix, a measured pitfall); refused outright.
PATH_WILDCARDS = ("*",)

_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_CLAUSE_HEAD = re.compile(
    r"\s*(?P<attr>content_type|level|metadata\.[^\s=!<>]*)\s*(?P<op>==|!=|<=|>=|in(?=[\s\[]))\s*"
)
_AND = re.compile(r"\s*&&\s*")


@dataclass(frozen=True)
class Selector:
    kind: SelectorKind
    value: str = ""

    def __str__(self) -> str:
        if self.kind == "all":
            return "*"
        if self.kind == "acl":
            return "acl:source"
        return f"{self.kind}:{self.value}"


ALL = Selector("all")


@lru_cache(maxsize=4096)
def parse_selector(text: str) -> Selector:
    """Parse an object selector; raises :class:`PolicyError` for anything not compilable."""
    if text == "*":
        return ALL
    if text == "acl:source":
        return Selector("acl")
    kind, sep, value = text.partition(":")
    if not sep or not value:
        raise PolicyError(f"object {text!r} is not a selector (collection:, path:, source:, ...)")
    if kind == "collection":
        if value.startswith("/") or value.endswith("/") or "//" in value:
            raise PolicyError(f"collection {value!r} must not start or end with '/' or hold '//'")
        return Selector("collection", value)
    if kind == "path":
        if any(w in value for w in PATH_WILDCARDS):
            raise PolicyError(
                f"path {value!r} holds a wildcard; path selectors are literal prefixes"
            )
        return Selector("path", value)
    if kind == "source":
        return Selector("source", value)
    if kind == "doc":
        try:
            return Selector("doc", str(uuid.UUID(value)))
        except ValueError:
            raise PolicyError(f"doc selector {value!r} is not a UUID") from None
    if kind == "acl":
        raise PolicyError("the ACL selector is written acl:source")
    raise PolicyError(f"unknown selector kind {kind!r}")


def widest_reading(text: str) -> Selector:
    """The broadest selector a malformed one could mean: what a broken deny falls back to."""
    kind, _, value = text.partition(":")
    if kind == "path" and value:
        prefix = value.split("*", 1)[0]
        if prefix:
            return Selector("path", prefix)
    return ALL


@dataclass(frozen=True)
class Condition:
    attribute: str  # content_type | level | metadata.KEY
    op: ConditionOp
    value: str | int | tuple[str, ...]

    @property
    def metadata_key(self) -> str | None:
        return (
            self.attribute[len("metadata.") :] if self.attribute.startswith("metadata.") else None
        )

    def __str__(self) -> str:
        literal = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.attribute} {self.op} {json.dumps(literal, ensure_ascii=False)}"


@lru_cache(maxsize=4096)
def parse_conditions(text: str) -> tuple[Condition, ...]:
    """Parse ``clause && clause ...``; the empty string means no condition."""
    if not text.strip():
        return ()
    decoder = json.JSONDecoder()
    clauses: list[Condition] = []
    pos = 0
    while True:
        head = _CLAUSE_HEAD.match(text, pos)
        if head is None:
            raise PolicyError(f"condition {text!r}: expected ATTRIBUTE OP VALUE at offset {pos}")
        try:
            literal, pos = decoder.raw_decode(text, head.end())
        except json.JSONDecodeError:
            raise PolicyError(
                f"condition {text!r}: the value at offset {head.end()} is not a JSON literal"
            ) from None
        clauses.append(_make_condition(head["attr"], head["op"], literal))
        sep = _AND.match(text, pos)
        if sep is None:
            if text[pos:].strip():
                raise PolicyError(f"condition {text!r}: unexpected text at offset {pos}")
            return tuple(clauses)
        pos = sep.end()


def _make_condition(attr: str, op: str, literal: Any) -> Condition:
    if attr == "level":
        if op not in ("<=", ">=", "=="):
            raise PolicyError(f"level supports <=, >= and ==, not {op}")
        if not isinstance(literal, int) or isinstance(literal, bool):
            raise PolicyError(f"level must be compared with an integer, not {literal!r}")
        if not -32768 <= literal <= 32767:
            raise PolicyError(f"level {literal} is out of range")
        return Condition("level", op, literal)  # type: ignore[arg-type]
    if attr.startswith("metadata.") and not _METADATA_KEY.match(attr[len("metadata.") :]):
        raise PolicyError(f"{attr!r}: metadata keys are letters, digits, '_' and '-'")
    if op in ("==", "!="):
        if not isinstance(literal, str):
            raise PolicyError(f"{attr} {op} needs a string value, not {literal!r}")
        return Condition(attr, op, literal)  # type: ignore[arg-type]
    if op == "in":
        if not isinstance(literal, list) or not all(isinstance(v, str) for v in literal):
            raise PolicyError(f"{attr} in needs a list of strings, not {literal!r}")
        return Condition(attr, "in", tuple(literal))
    raise PolicyError(f"{attr} supports ==, != and in, not {op}")


def canonical_conditions(text: str) -> str:
    """The stored form of a condition: parsed and re-rendered (raises if invalid)."""
    return " && ".join(str(c) for c in parse_conditions(text))


def parse_max_level(text: str) -> int | None:
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise PolicyError(f"max_level {text!r} is not an integer") from None
    if not -32768 <= value <= 32767:
        raise PolicyError(f"max_level {value} is out of range")
    return value


# --- Python evaluation (shared by the Casbin functions and explain) --------------------


def collection_prefixes(collection: str) -> list[str]:
    """The collection and every "/"-ancestor of it: ``a/b/c`` -> ``a/b/c``, ``a/b``, ``a``."""
    out = [collection]
    cut = collection.rfind("/")
    while cut >= 0:
        out.append(collection[:cut])
        cut = collection.rfind("/", 0, cut)
    return out


def condition_holds(cond: Condition, attrs: Any) -> bool:
    """``attrs`` has ``content_type``, ``level`` and ``metadata`` (a RowAttributes)."""
    key = cond.metadata_key
    actual: Any
    if cond.attribute == "level":
        level: int = attrs.level
        if cond.op == "<=":
            return level <= cond.value  # type: ignore[operator]
        if cond.op == ">=":
            return level >= cond.value  # type: ignore[operator]
        return level == cond.value
    if key is None:
        actual = attrs.content_type
    else:
        metadata: Mapping[str, Any] = attrs.metadata
        actual = metadata.get(key) if isinstance(metadata, Mapping) else None
    is_str = isinstance(actual, str)
    if cond.op == "==":
        return is_str and actual == cond.value
    if cond.op == "!=":
        return not (is_str and actual == cond.value)
    return is_str and actual in cond.value  # type: ignore[operator]


def conditions_hold(conds: tuple[Condition, ...], attrs: Any) -> bool:
    return all(condition_holds(c, attrs) for c in conds)


__all__ = [
    "ALL",
    "Condition",
    "ConditionOp",
    "Selector",
    "SelectorKind",
    "canonical_conditions",
    "collection_prefixes",
    "condition_holds",
    "conditions_hold",
    "parse_conditions",
    "parse_max_level",
    "parse_selector",
    "widest_reading",
]
