"""Docs kept honest: every setting and every `kb` command is documented, the generated pages
are current, the README's links resolve, and the example configuration and policy load."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from policies.lint import lint
from policies.rules import parse_policy_yaml
from server.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def load_script(name: str) -> ModuleType:
    """Import docs/<name>.py (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"kb_docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setting_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf setting as (dotted key, field), independent of the generator's walk."""
    out: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += setting_keys(annotation, f"{key}.")
        else:
            out.append((key, field))
            args = getattr(annotation, "__args__", ())
            if getattr(annotation, "__origin__", None) is dict and len(args) == 2:
                value = args[1]
                if isinstance(value, type) and issubclass(value, BaseModel):
                    out += setting_keys(value, f"{key}.<name>.")
    return out


@pytest.fixture
def no_kb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example configuration must validate on its own, whatever the caller's shell has."""
    for key in list(os.environ):
        if key.startswith("KB_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)


# --- configuration.md -------------------------------------------------------------------


def test_configuration_doc_is_current() -> None:
    generator = load_script("gen_config_docs")
    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert current == generator.render(), (
        "docs/configuration.md is stale: run `python docs/gen_config_docs.py`"
    )


def test_every_setting_is_documented_with_a_description() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [k for k, _ in setting_keys(Settings) if f"`{k}`" not in text]
    assert missing == [], f"settings missing from docs/configuration.md: {missing}"
    undescribed = [k for k, f in setting_keys(Settings) if not (f.description or "").strip()]
    assert undescribed == [], f"settings without a description in server/settings.py: {undescribed}"
    for key, _ in setting_keys(Settings):
        if "<name>" not in key:
            env = "KB_" + key.upper().replace(".", "__")
            assert f"`{env}`" in text, f"{key}: environment variable {env} not documented"


def test_every_connector_setting_is_documented() -> None:
    from connectors.registry import connector_classes

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for kind, cls in connector_classes().items():
        assert f"`kind: {kind}`" in text
        for name in cls.config_model.model_fields:
            assert f"`{name}`" in text, f"{kind} source setting {name} not documented"


# --- cli.md -----------------------------------------------------------------------------


def test_every_cli_command_is_documented() -> None:
    generator = load_script("gen_cli_docs")
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    paths = generator.command_paths()
    assert {"kb", "kb serve", "kb db upgrade", "kb search", "kb token mint"} <= set(paths)
    missing = [p for p in paths if not re.search(rf"^#+ `{re.escape(p)}`$", text, re.M)]
    assert missing == [], f"commands missing from docs/cli.md: {missing}"
    assert text == generator.render(), "docs/cli.md is stale: run `python docs/gen_cli_docs.py`"


# --- README -----------------------------------------------------------------------------


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:30])
    assert "make run" in first_screen and "make test" in first_screen
    for needle in ("curl -s 127.0.0.1:8000/readyz", "docker compose up", "--as"):
        assert needle in readme


@pytest.mark.parametrize("page", ["README.md", "examples/README.md"])
def test_relative_links_resolve(page: str) -> None:
    path = ROOT / page
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "the page links to nothing"
    broken = [link for link in local if not (path.parent / link).exists()]
    assert broken == [], f"{page} links to missing files: {broken}"


def test_readme_links_the_other_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("configuration", "cli", "policies", "auth", "clients", "benchmarks"):
        assert f"docs/{doc}.md" in readme


# --- examples ---------------------------------------------------------------------------


def test_example_config_validates(no_kb_env: None) -> None:
    settings = load_settings(ROOT / "examples" / "kb.yaml")
    assert settings.home_dir == ROOT / ".kb"
    assert settings.auth.mode == "dev"
    assert settings.policy_file is not None and settings.resolve(settings.policy_file).is_file()
    kinds = {s.name: s.kind for s in settings.sources}
    assert kinds == {"company-docs": "files", "northwind-db": "sql"}


def test_example_policies_load_and_lint_clean() -> None:
    path = ROOT / "examples" / "policies.yaml"
    policy = parse_policy_yaml(path.read_text(encoding="utf-8"), str(path))
    assert len(policy.rules) >= 5 and policy.roles and policy.collections
    assert any(r.effect == "deny" for r in policy.rules)
    assert [str(i) for i in lint(policy)] == []


# --- deployment -------------------------------------------------------------------------


def test_compose_describes_the_production_topology() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    # The topology itself; optional extras (monitoring) start only with their profile.
    assert {n for n, s in services.items() if "profiles" not in s} == {
        "db",
        "migrate",
        "server",
        "worker",
    }
    assert {n for n, s in services.items() if "profiles" in s} == {
        "prometheus",
        "grafana",
        "server-2",  # profile replicas (tests/scale/test_deploy.py)
        "lb",
        "db-replica",  # profile read-replica
    }
    assert services["db"]["image"].startswith("pgvector/pgvector:pg")
    assert "healthcheck" in services["db"] and "pgdata" in compose["volumes"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["server"]["command"][:2] == ["serve", "--no-migrate"]
    assert services["server"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["worker"]["command"] == ["worker"]
    assert "DATABASE_URL" in services["server"]["environment"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile and "torch==2.13.0" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M)


def test_example_policy_tests_pass() -> None:
    """examples/policy-tests.yaml (run by `kb policy test`) holds for examples/policies.yaml,
    by the explainer and by the per-row Casbin re-check alike."""
    from core.identity import Caller
    from policies.access import RowAttributes
    from policies.engine import PolicyEngine
    from policies.explain import explain

    examples = ROOT / "examples"
    policy = parse_policy_yaml((examples / "policies.yaml").read_text(encoding="utf-8"))
    engine = PolicyEngine.of(policy, version=1)
    cases = yaml.safe_load((examples / "policy-tests.yaml").read_text(encoding="utf-8"))["tests"]
    assert len(cases) >= 10 and {c["expect"] for c in cases} == {"allow", "deny"}
    for index, case in enumerate(cases, start=1):
        principals = case["as"] if isinstance(case["as"], list) else [case["as"]]
        d = case["document"]
        row = RowAttributes(
            document_id="00000000-0000-0000-0000-000000000000",
            source=d["source"],
            collection=d["collection"],
            path=d["path"],
            level=d["level"],
            acl=tuple(d["acl"]),
            content_type=d.get("content_type", "text/plain"),
            metadata=d.get("metadata", {}),
        )
        expected = case["expect"] == "allow"
        assert explain(engine.snapshot, principals, row).allowed is expected, index
        caller = Caller.of(*principals)
        assert engine.filter_for(caller).permits(row) is expected, index
