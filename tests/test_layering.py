"""Architecture rules the type checker cannot see, enforced over the source tree.

The import arrows themselves (core at the bottom, no door imported by a lower layer, no
cycles) are import-linter contracts in pyproject.toml, run by `make lint`. These AST
checks cover what an import graph cannot say:

1. ``enforce(`` (Casbin) is called only inside ``policies/``.
2. Access filters are built only inside ``policies/`` (``make_access_filter``).
3. Only an exact allow-list of modules may touch the ``Chunk``/``Document`` models: a new
   module that reads content must be added here on purpose, in review.
4. Every public query of the search repository that touches chunks or documents takes an
   ``AccessFilter``: no unscoped read of content can be written there.
5. Schema changes are explicit: only the named modules call Alembic's upgrade/downgrade.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "connectors", "policies", "core")
CONTENT_MODELS = {"Chunk", "Document"}

# Modules that may name the Chunk/Document models, each for a stated reason.
CONTENT_MODULES = {
    "server.db.models": "defines them",
    "server.search.repository": "access-filtered reads (rule 4)",
    "server.search.keyword": "access-filtered BM25 reads (rule 4)",
    "server.ingest.repository": "the ingestion writer: replaces and withdraws documents",
    "policies.store": "counts readable documents per source with the access predicate",
    "server.observability.repository": "/metrics: document and chunk counts per source only",
}
# The search repository: every public coroutine naming a content model takes an AccessFilter.
SEARCH_REPOSITORY = ("server.search.repository", "server.search.keyword")

# Who may move the schema: `kb db upgrade|downgrade` and prepare_database(run_migrations=True)
# (used by `kb serve` only). Downgrades only from `kb db downgrade`.
UPGRADE_CALLERS = {"server.cli.db", "server.runtime"}
DOWNGRADE_CALLERS = {"server.cli.db"}


def module_name(rel: Path) -> str:
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            yield module_name(rel), ast.parse(path.read_text(), str(path))


def test_enforce_only_in_policies() -> None:
    offenders = []
    for module, tree in source_files():
        if module.split(".")[0] == "policies":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in {"enforce", "enforce_ex", "batch_enforce"}:
                    offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


def test_access_filters_made_only_by_policies() -> None:
    offenders = []
    for module, tree in source_files():
        if module.split(".")[0] == "policies":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "make_access_filter":
                offenders.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name == "make_access_filter":
                offenders.append(module)
    assert offenders == []


def content_model_uses(tree: ast.Module) -> list[int]:
    """Lines that import Chunk/Document, or reach them through the models module."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if node.module == "server.db.models" and names & (CONTENT_MODELS | {"*"}):
                lines.append(node.lineno)
            if node.module == "server.db" and "models" in names:
                lines.append(node.lineno)
        elif isinstance(node, ast.Import):
            if any(a.name == "server.db.models" for a in node.names):
                lines.append(node.lineno)
    return lines


def test_only_the_allow_list_touches_chunk_and_document_models() -> None:
    users = {module for module, tree in source_files() if content_model_uses(tree)}
    users.add("server.db.models")  # defines them, so imports neither
    unexpected = sorted(users - set(CONTENT_MODULES))
    assert unexpected == [], (
        "these modules name the Chunk/Document models; read content through the search "
        "repository (which takes an AccessFilter), or add the module to CONTENT_MODULES "
        f"with its reason: {unexpected}"
    )
    # A stale entry would let a future module of that name in unreviewed.
    assert sorted(set(CONTENT_MODULES) - users) == [], "remove stale CONTENT_MODULES entries"


def test_the_lint_catches_every_import_form() -> None:
    for code in (
        "from server.db.models import Chunk",
        "from server.db.models import Source, Document",
        "from server.db import models",
        "import server.db.models",
        "from server.db.models import *",
    ):
        assert content_model_uses(ast.parse(code)), code
    assert not content_model_uses(ast.parse("from server.db.models import ApiKey"))


def _annotation_names(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> set[str]:
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    return {ast.unparse(a.annotation) for a in args if a.annotation is not None}


def unscoped_content_queries(tree: ast.Module) -> list[str]:
    """Public coroutines that name Chunk/Document but take no AccessFilter parameter."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef) or node.name.startswith("_"):
            continue
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        # Helpers such as _chunk_scope(access, ...) and _document_scope(access) count too.
        touches = names & CONTENT_MODELS or {"_chunk_scope", "_document_scope"} & names
        if touches and "AccessFilter" not in _annotation_names(node):
            found.append(f"{node.name} (line {node.lineno})")
    return found


def test_every_search_repository_query_takes_an_access_filter() -> None:
    trees = dict(source_files())
    offenders = {m: unscoped_content_queries(trees[m]) for m in SEARCH_REPOSITORY}
    assert {m: o for m, o in offenders.items() if o} == {}


def test_the_access_filter_check_catches_an_unscoped_query() -> None:
    unscoped = ast.parse(
        "async def peek(session, chunk_ids: list[int]) -> set[int]:\n"
        "    return set(await session.scalars(select(Chunk.id).where(Chunk.id.in_(chunk_ids))))\n"
    )
    scoped = ast.parse(
        "async def peek(session, access: AccessFilter, ids: list[int]) -> set[int]:\n"
        "    return set(await session.scalars(select(Chunk.id).where(access.where(cols))))\n"
    )
    assert unscoped_content_queries(unscoped) == ["peek (line 1)"]
    assert unscoped_content_queries(scoped) == []


def _migration_calls(tree: ast.Module, verb: str) -> list[int]:
    """Calls ``migrate.<verb>(...)`` / ``command.<verb>(...)`` (Alembic, directly or not)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == verb
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"migrate", "command"}
        ):
            lines.append(node.lineno)
    return lines


def test_schema_moves_only_where_asked() -> None:
    upgraders = {m for m, tree in source_files() if _migration_calls(tree, "upgrade")}
    downgraders = {m for m, tree in source_files() if _migration_calls(tree, "downgrade")}
    # server.db.migrate wraps Alembic's command module; it decides nothing itself.
    assert upgraders - {"server.db.migrate"} == UPGRADE_CALLERS
    assert downgraders - {"server.db.migrate"} == DOWNGRADE_CALLERS
