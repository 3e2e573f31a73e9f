"""Placement of files: source defaults, per-folder sidecars, then the first matching rule."""

from __future__ import annotations

from pathlib import Path

from connectors.base import SourceDocument

from .test_files_formats import files_connector, split


def _tree(root: Path) -> None:
    for rel in (
        "readme.md",
        "hr/policy.md",
        "hr/payroll/salaries.md",
        "hr/payroll/summary.md",
        "eng/design.md",
        "eng/drafts/idea.md",
    ):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {path.stem}\n\nBody of {rel}.\n")


def _placements(root: Path, **config: object) -> dict[str, SourceDocument]:
    ok, failed = split(list(files_connector(root, **config).full_load()))
    assert not failed, {k: v.reason for k, v in failed.items()}
    return ok


def test_no_rules_means_unknown_acl(tmp_path: Path) -> None:
    _tree(tmp_path / "r")
    docs = _placements(tmp_path / "r")
    assert {d.acl for d in docs.values()} == {None}
    assert {d.collection for d in docs.values()} == {"default"}
    assert {d.level for d in docs.values()} == {0}


def test_source_defaults_then_sidecars_then_first_rule(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _tree(root)
    (root / "hr" / ".kb-acl.yaml").write_text(
        "acl: [group:hr]\ncollection: hr\nlevel: 2\nmetadata: {department: HR}\n"
    )
    (root / "hr" / "payroll" / ".kb-acl.yaml").write_text(
        "acl: ['group:payroll', 'email:Boss@Example.com']\nlevel: 4\nmetadata: {cost_center: 7}\n"
    )
    docs = _placements(
        root,
        acl=["group:staff"],
        collection="company",
        rules=[
            {"glob": "hr/payroll/summary.md", "acl": ["group:hr"], "level": 3},
            {"glob": "drafts/", "acl": [], "collection": "drafts"},
            {"glob": "**/*.md", "level": 1},  # never reached for the files matched above
        ],
    )
    readme = docs["readme.md"]
    assert (readme.acl, readme.collection, readme.level) == (("group:staff",), "company", 1)

    policy = docs["hr/policy.md"]  # sidecar in hr/, then the general rule sets level 1
    assert (policy.acl, policy.collection, policy.level) == (("group:hr",), "hr", 1)
    assert policy.metadata["department"] == "HR"

    salaries = docs["hr/payroll/salaries.md"]  # deeper sidecar overrides acl; rule sets level
    assert salaries.acl == ("email:boss@example.com", "group:payroll")
    assert (salaries.collection, salaries.level) == ("hr", 1)
    assert salaries.metadata == {**salaries.metadata, "department": "HR", "cost_center": 7}

    summary = docs["hr/payroll/summary.md"]  # the first matching rule wins
    assert (summary.acl, summary.collection, summary.level) == (("group:hr",), "hr", 3)

    idea = docs["eng/drafts/idea.md"]  # a folder rule: empty ACL means nobody but admins
    assert (idea.acl, idea.collection) == ((), "drafts")
    assert docs["eng/design.md"].acl == ("group:staff",)


def test_broken_sidecar_fails_closed_below_it(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _tree(root)
    (root / "hr" / ".kb-acl.yaml").write_text("acl: [hr-team]\n")  # not a principal
    (root / "eng" / ".kb-acl.yaml").write_text("acl: [group:eng\n")  # not YAML
    ok, failed = split(list(files_connector(root).full_load()))
    assert set(ok) == {"readme.md"}
    assert "sidecar hr/.kb-acl.yaml is invalid" in failed["hr/policy.md"].reason
    assert "needs a prefix" in failed["hr/payroll/salaries.md"].reason
    assert failed["eng/design.md"].reason == "sidecar eng/.kb-acl.yaml cannot be read: ParserError"


def test_sidecars_can_be_renamed_or_disabled(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _tree(root)
    (root / "hr" / "_access.yml").write_text("acl: [group:hr]\n")
    (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:wrong]\n")
    docs = _placements(root, sidecar_file="_access.yml")
    assert docs["hr/policy.md"].acl == ("group:hr",)
    assert "hr/_access.yml" not in docs  # a sidecar is never a document
    docs = _placements(root, sidecar_file=None, exclude=[])
    assert docs["hr/policy.md"].acl is None


def test_include_exclude_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _tree(root)
    (root / ".git").mkdir()
    (root / ".git" / "notes.md").write_text("# internal")
    (root / "eng" / "~$lock.md").write_text("lock")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "linked.md").write_text("# Linked\n\nfrom elsewhere")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)

    default = files_connector(root).scan_ids()
    assert default == {
        "readme.md",
        "hr/policy.md",
        "hr/payroll/salaries.md",
        "hr/payroll/summary.md",
        "eng/design.md",
        "eng/drafts/idea.md",
    }
    narrowed = files_connector(root, include=["hr/**"], exclude=["payroll/"]).scan_ids()
    assert narrowed == {"hr/policy.md"}
    anchored = files_connector(root, include=["/*.md"]).scan_ids()
    assert anchored == {"readme.md"}
    followed = files_connector(root, follow_symlinks=True).scan_ids()
    assert followed == default | {"link/linked.md"}  # the loop back to root is not entered
