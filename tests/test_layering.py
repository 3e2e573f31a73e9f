"""Architecture rules the type checker cannot see, enforced over the source tree.

1. ``enforce(`` (Casbin) is called only inside ``policies/``.
2. Access filters are built only inside ``policies/`` (``make_access_filter``).
3. SQL over chunks and documents lives in repositories: only repository modules, the
   ingestion writer and ``policies/`` may import the ``Chunk``/``Document`` models.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "connectors", "policies")


def source_files() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(), str(path))


def test_enforce_only_in_policies() -> None:
    offenders = []
    for rel, tree in source_files():
        if rel.parts[0] == "policies":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in {"enforce", "enforce_ex", "batch_enforce"}:
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_access_filters_made_only_by_policies() -> None:
    offenders = []
    for rel, tree in source_files():
        if rel.parts[0] == "policies":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "make_access_filter":
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name == "make_access_filter":
                offenders.append(f"{rel}")
    assert offenders == []


def _may_query_content(rel: Path) -> bool:
    name = rel.stem
    return (
        rel.parts[0] == "policies"
        or rel.parts[:2] == ("server", "db")
        or rel.parts[:2] == ("server", "ingest")
        or "repository" in name
        or "repositories" in rel.parts
    )


def test_chunk_and_document_sql_only_in_repositories() -> None:
    offenders = []
    for rel, tree in source_files():
        if _may_query_content(rel):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "server.db.models":
                names = {a.name for a in node.names}
                if names & {"Chunk", "Document"}:
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == [], "query chunks/documents through a repository that takes an AccessFilter"
