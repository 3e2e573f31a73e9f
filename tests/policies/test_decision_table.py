"""An independent decision table for access control, written from docs/policies.md.

The leak oracle compares the engine with Casbin over the same selector functions, so a
semantic bug shared by both passes it. This table does not reuse that code: every case
states, by hand and from the documentation alone, who (a principal set), what (one
document's attributes), which rules, and the expected answer. Each case is checked
through BOTH enforcement paths:

* the compiled SQL predicate, on a real database, over the ``documents`` row and the
  ``chunks`` row of the document (each path has its own copy of the columns);
* the per-row re-check (``AccessFilter.permits``) on the same attributes.

API-key narrowing cases create a real key in the database and authenticate it, so the
narrowing comes from the stored key. Rules pinned here (docs/policies.md, docs/auth.md):
deny beats allow; admins read everything of an enabled source and no deny stops them; an
empty or unset ACL is read only by admins and rules naming the document (never by
``acl:source``); collection links are transitive and never work upwards; a groups claim
that is not a list gives no groups; a disabled source is served to nobody.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from core.identity import Caller
from policies.access import AuthzColumns, RowAttributes
from policies.engine import PolicyEngine
from policies.rules import AccessRule, CollectionLink, PolicyItem, PolicySet, RoleLink
from server.auth.api_keys import ApiKeyService
from server.auth.principals import caller_from_claims
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.db.models import Chunk, Document, Source
from server.settings import AuthSettings, Settings

pytestmark = pytest.mark.anyio


# --- the documents --------------------------------------------------------------------


@dataclass(frozen=True)
class D:
    collection: str = "misc"
    path: str = "/misc/x.md"
    source: str = "wiki"
    level: int = 0
    acl: tuple[str, ...] = ()
    content_type: str = "text/plain"
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


DOCS: dict[str, D] = {
    "eng": D("eng", "/eng/a.md", acl=("group:eng",)),
    "eng/platform": D("eng/platform", "/eng/platform/b.md", acl=("group:eng",)),
    "engine": D("engine", "/engine/c.md", acl=("group:eng",)),  # not below "eng"
    "hr": D("hr", "/hr/handbook.md", "drive", 1, ("group:hr",)),
    "payroll": D("payroll", "/hr/salaries/2024.xlsx", "drive", 3),  # empty ACL
    "payroll/2024": D("payroll/2024", "/hr/salaries/2024/q1.xlsx", "drive", 2),
    "a": D("a", "/t/a"),
    "b": D("b", "/t/b"),
    "c": D("c", "/t/c"),
    "pct": D("h%", "/h%/p"),  # LIKE metacharacters are literal
    "hx": D("hx", "/hx/p"),
    "under": D("misc", "/hr_x/doc"),
    "hrax": D("misc", "/hrax/doc"),
    "upper": D("misc", "/HR/x"),
    "pdf_eu": D(content_type="application/pdf", metadata={"team": "platform", "region": "eu"}),
    "md_us": D(content_type="text/markdown", metadata={"team": "sre", "region": "us"}),
    "meta_int": D(metadata={"team": 5}),
    "meta_list": D(metadata={"team": ["platform"]}),
    "meta_none": D(),
    "lvl0": D(level=0),
    "lvl2": D(level=2),
    "lvl4": D(level=4),
    "alice_acl": D(acl=("user:alice",)),
    "role_acl": D(acl=("role:staff",)),
    "email_acl": D(acl=("email:a@x.io",)),
    "svc_acl": D(acl=("svc:bot",)),
    "old": D("misc", "/old/x", "legacy", acl=("group:eng",)),
    "unset": D("eng", "/eng/unset.md"),  # no ACL from the source, in an allowed collection
}
IDS = {name: uuid.uuid5(uuid.NAMESPACE_URL, f"kb-decision/{name}") for name in DOCS}
SOURCES = sorted({d.source for d in DOCS.values()})


def attributes(name: str) -> RowAttributes:
    d = DOCS[name]
    return RowAttributes(
        str(IDS[name]), d.source, d.collection, d.path, d.level, d.acl, d.content_type, d.metadata
    )


# --- the cases ------------------------------------------------------------------------


def allow(subject: str, obj: str, max_level: int | None = None, when: str = "") -> AccessRule:
    return AccessRule(subject, obj, "allow", max_level, when)


def deny(subject: str, obj: str, when: str = "", max_level: int | None = None) -> AccessRule:
    return AccessRule(subject, obj, "deny", max_level, when)


def role(member: str, name: str) -> RoleLink:
    return RoleLink(member, name)


def below(child: str, parent: str) -> CollectionLink:
    return CollectionLink(child, parent)


@dataclass(frozen=True)
class Case:
    name: str
    who: tuple[str, ...]
    doc: str
    rules: tuple[PolicyItem, ...]
    expect: bool
    admins: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    key: tuple[tuple[str, ...] | None, tuple[str, ...] | None] | None = None  # sources, colls
    claims: dict[str, Any] | None = field(default=None, hash=False)


A = ("user:alice",)
ENG = ("user:alice", "group:eng")
HR = ("user:hank", "group:hr")
Y, N = True, False


def c(
    name: str, who: tuple[str, ...], doc: str, rules: list[PolicyItem], expect: bool, **kw: Any
) -> Case:
    return Case(name, who, doc, tuple(rules), expect, **kw)


CASES = [
    # -- no rules, subjects ------------------------------------------------------------
    c("no rules: nobody", ENG, "eng", [], N),
    c("user subject", A, "eng", [allow("user:alice", "*")], Y),
    c("other user's rule", A, "eng", [allow("user:bob", "*")], N),
    c("group subject", ENG, "eng", [allow("group:eng", "collection:eng")], Y),
    c("email subject", ("email:a@x.io",), "eng", [allow("email:a@x.io", "*")], Y),
    c("svc subject", ("svc:bot",), "eng", [allow("svc:bot", "source:wiki")], Y),
    c("a rule on a role the caller lacks", A, "eng", [allow("role:staff", "*")], N),
    # -- role links and hierarchy --------------------------------------------------------
    c("role via link", ENG, "eng", [role("group:eng", "role:dev"), allow("role:dev", "*")], Y),
    c(
        "role hierarchy two hops",
        A,
        "eng",
        [role("user:alice", "role:a"), role("role:a", "role:b"), allow("role:b", "*")],
        Y,
    ),
    c(
        "role hierarchy does not flow down",
        A,
        "eng",
        [role("user:alice", "role:b"), role("role:a", "role:b"), allow("role:a", "*")],
        N,
    ),
    c(
        "deny through a role",
        ENG,
        "eng",
        [allow("user:alice", "*"), role("group:eng", "role:x"), deny("role:x", "collection:eng")],
        N,
    ),
    c("a role carried directly holds its rules", ("role:dev",), "eng", [allow("role:dev", "*")], Y),
    # -- collection selector -----------------------------------------------------------
    c("collection itself", ENG, "eng", [allow("group:eng", "collection:eng")], Y),
    c("collection nested by /", ENG, "eng/platform", [allow("group:eng", "collection:eng")], Y),
    c("collection is not a prefix", ENG, "engine", [allow("group:eng", "collection:eng")], N),
    c(
        "child does not cover parent",
        ENG,
        "eng",
        [allow("group:eng", "collection:eng/platform")],
        N,
    ),
    c(
        "collection link",
        HR,
        "payroll",
        [below("payroll", "hr"), allow("group:hr", "collection:hr")],
        Y,
    ),
    c(
        "collection link covers nested child",
        HR,
        "payroll/2024",
        [below("payroll", "hr"), allow("group:hr", "collection:hr")],
        Y,
    ),
    c(
        "collection links are transitive (a -> b -> c)",
        A,
        "a",
        [below("a", "b"), below("b", "c"), allow("user:alice", "collection:c")],
        Y,
    ),
    c(
        "transitive middle",
        A,
        "b",
        [below("a", "b"), below("b", "c"), allow("user:alice", "collection:c")],
        Y,
    ),
    c(
        "links never work upwards",
        A,
        "c",
        [below("a", "b"), below("b", "c"), allow("user:alice", "collection:a")],
        N,
    ),
    c(
        "deny follows the collection hierarchy",
        HR,
        "payroll",
        [below("payroll", "hr"), allow("group:hr", "*"), deny("group:hr", "collection:hr")],
        N,
    ),
    c("LIKE metacharacters are literal (%)", A, "hx", [allow("user:alice", "collection:h%")], N),
    c("collection with % itself", A, "pct", [allow("user:alice", "collection:h%")], Y),
    c("no link: sibling not covered", HR, "payroll", [allow("group:hr", "collection:hr")], N),
    # -- path selector ---------------------------------------------------------------------
    c("path prefix", A, "payroll", [allow("user:alice", "path:/hr/")], Y),
    c("path prefix deeper", A, "payroll", [allow("user:alice", "path:/hr/salaries/")], Y),
    c("path prefix mismatch", A, "eng", [allow("user:alice", "path:/hr/")], N),
    c("path _ is literal", A, "hrax", [allow("user:alice", "path:/hr_")], N),
    c("path _ literal match", A, "under", [allow("user:alice", "path:/hr_")], Y),
    c("path is case-sensitive", A, "upper", [allow("user:alice", "path:/hr/")], N),
    c(
        "path exact full path",
        A,
        "payroll",
        [allow("user:alice", "path:/hr/salaries/2024.xlsx")],
        Y,
    ),
    c(
        "path with * in an allow is dropped",
        A,
        "payroll",
        [allow("user:alice", "path:/hr/*/2024.xlsx")],
        N,
    ),
    c(
        "path with * in a deny denies the literal prefix",
        A,
        "hr",
        [allow("user:alice", "*"), deny("user:alice", "path:/hr/*/salary")],
        N,
    ),
    c(
        "widened path deny leaves other prefixes",
        A,
        "eng",
        [allow("user:alice", "*"), deny("user:alice", "path:/hr/*/salary")],
        Y,
    ),
    # -- source, doc, * ----------------------------------------------------------------------
    c("source selector", HR, "hr", [allow("group:hr", "source:drive")], Y),
    c("source selector other source", HR, "eng", [allow("group:hr", "source:drive")], N),
    c("doc selector", A, "lvl4", [allow("user:alice", f"doc:{IDS['lvl4']}")], Y),
    c("doc selector other doc", A, "lvl2", [allow("user:alice", f"doc:{IDS['lvl4']}")], N),
    c(
        "doc selector upper-case uuid",
        A,
        "lvl4",
        [allow("user:alice", f"doc:{str(IDS['lvl4']).upper()}")],
        Y,
    ),
    c("star", A, "md_us", [allow("user:alice", "*")], Y),
    # -- acl:source --------------------------------------------------------------------------
    c("acl names the group", ENG, "eng", [allow("group:eng", "acl:source")], Y),
    c(
        "acl through another principal of the caller",
        ENG,
        "eng",
        [allow("user:alice", "acl:source")],
        Y,
    ),
    c("acl names someone else", HR, "eng", [allow("group:hr", "acl:source")], N),
    c("acl names the user", A, "alice_acl", [allow("user:alice", "acl:source")], Y),
    c(
        "acl names a role the caller holds",
        A,
        "role_acl",
        [role("user:alice", "role:staff"), allow("user:alice", "acl:source")],
        Y,
    ),
    c("acl names a role the caller lacks", A, "role_acl", [allow("user:alice", "acl:source")], N),
    c(
        "acl names the email",
        ("email:a@x.io",),
        "email_acl",
        [allow("email:a@x.io", "acl:source")],
        Y,
    ),
    c("acl names the service", ("svc:bot",), "svc_acl", [allow("svc:bot", "acl:source")], Y),
    c("empty ACL: acl:source never matches", ENG, "payroll", [allow("group:eng", "acl:source")], N),
    c(
        "empty ACL: collection rule reads it",
        HR,
        "payroll",
        [allow("group:hr", "collection:payroll")],
        Y,
    ),
    c("empty ACL: path rule reads it", HR, "payroll", [allow("group:hr", "path:/hr/")], Y),
    c("empty ACL: * reads it", HR, "payroll", [allow("group:hr", "*")], Y),
    c(
        "unset ACL in an allowed collection",
        ENG,
        "unset",
        [allow("group:eng", "collection:eng")],
        Y,
    ),
    c("unset ACL, acl:source only", ENG, "unset", [allow("group:eng", "acl:source")], N),
    c("acl deny", ENG, "eng", [allow("group:eng", "*"), deny("user:alice", "acl:source")], N),
    # -- effect: deny beats allow ------------------------------------------------------------
    c(
        "deny beats allow, same subject",
        A,
        "eng",
        [allow("user:alice", "*"), deny("user:alice", "*")],
        N,
    ),
    c(
        "group deny beats user allow",
        ("user:alice", "group:contractors"),
        "hr",
        [allow("user:alice", "collection:hr"), deny("group:contractors", "collection:hr")],
        N,
    ),
    c(
        "the same user without the group",
        A,
        "hr",
        [allow("user:alice", "collection:hr"), deny("group:contractors", "collection:hr")],
        Y,
    ),
    c(
        "deny elsewhere does not matter",
        A,
        "eng",
        [allow("user:alice", "*"), deny("user:alice", "collection:hr")],
        Y,
    ),
    c("deny alone grants nothing", A, "eng", [deny("user:alice", "collection:hr")], N),
    c(
        "conditional deny applies when it holds",
        A,
        "pdf_eu",
        [allow("user:alice", "*"), deny("user:alice", "*", 'content_type == "application/pdf"')],
        N,
    ),
    c(
        "conditional deny skipped when it does not hold",
        A,
        "md_us",
        [allow("user:alice", "*"), deny("user:alice", "*", 'content_type == "application/pdf"')],
        Y,
    ),
    # -- max_level -------------------------------------------------------------------------
    c("max_level equal", A, "lvl2", [allow("user:alice", "*", max_level=2)], Y),
    c("max_level above", A, "lvl4", [allow("user:alice", "*", max_level=2)], N),
    c("max_level 0 reads level 0", A, "lvl0", [allow("user:alice", "*", max_level=0)], Y),
    c(
        "another allow without a bound",
        A,
        "lvl4",
        [allow("user:alice", "*", max_level=2), allow("user:alice", "source:wiki")],
        Y,
    ),
    c(
        "max_level on a deny is widened (denies every level)",
        A,
        "lvl0",
        [allow("user:alice", "*"), deny("user:alice", "*", max_level=2)],
        N,
    ),
    # -- conditions ------------------------------------------------------------------------
    c(
        "content_type ==",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='content_type == "application/pdf"')],
        Y,
    ),
    c(
        "content_type == no",
        A,
        "md_us",
        [allow("user:alice", "*", when='content_type == "application/pdf"')],
        N,
    ),
    c(
        "content_type !=",
        A,
        "md_us",
        [allow("user:alice", "*", when='content_type != "application/pdf"')],
        Y,
    ),
    c(
        "content_type != no",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='content_type != "application/pdf"')],
        N,
    ),
    c(
        "content_type in",
        A,
        "md_us",
        [allow("user:alice", "*", when='content_type in ["text/markdown", "text/html"]')],
        Y,
    ),
    c(
        "content_type in no",
        A,
        "lvl0",
        [allow("user:alice", "*", when='content_type in ["text/markdown"]')],
        N,
    ),
    c("content_type in []", A, "lvl0", [allow("user:alice", "*", when="content_type in []")], N),
    c(
        "metadata ==",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='metadata.team == "platform"')],
        Y,
    ),
    c(
        "metadata == other value",
        A,
        "md_us",
        [allow("user:alice", "*", when='metadata.team == "platform"')],
        N,
    ),
    c(
        "metadata == non-string never equal",
        A,
        "meta_int",
        [allow("user:alice", "*", when='metadata.team == "5"')],
        N,
    ),
    c(
        "metadata == list never equal",
        A,
        "meta_list",
        [allow("user:alice", "*", when='metadata.team == "platform"')],
        N,
    ),
    c(
        "metadata == missing never equal",
        A,
        "meta_none",
        [allow("user:alice", "*", when='metadata.team == "platform"')],
        N,
    ),
    c(
        "metadata != holds for missing",
        A,
        "meta_none",
        [allow("user:alice", "*", when='metadata.team != "platform"')],
        Y,
    ),
    c(
        "metadata != holds for non-string",
        A,
        "meta_int",
        [allow("user:alice", "*", when='metadata.team != "5"')],
        Y,
    ),
    c(
        "metadata != no",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='metadata.team != "platform"')],
        N,
    ),
    c(
        "metadata in",
        A,
        "md_us",
        [allow("user:alice", "*", when='metadata.region in ["eu", "us"]')],
        Y,
    ),
    c(
        "metadata in no",
        A,
        "meta_none",
        [allow("user:alice", "*", when='metadata.region in ["eu", "us"]')],
        N,
    ),
    c("level <=", A, "lvl2", [allow("user:alice", "*", when="level <= 2")], Y),
    c("level <= no", A, "lvl4", [allow("user:alice", "*", when="level <= 2")], N),
    c("level >=", A, "lvl4", [allow("user:alice", "*", when="level >= 3")], Y),
    c("level >= no", A, "lvl2", [allow("user:alice", "*", when="level >= 3")], N),
    c("level ==", A, "lvl2", [allow("user:alice", "*", when="level == 2")], Y),
    c("level == no", A, "lvl0", [allow("user:alice", "*", when="level == 2")], N),
    c(
        "every clause must hold",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='metadata.team == "platform" && metadata.region == "us"')],
        N,
    ),
    c(
        "all clauses hold",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='metadata.team == "platform" && level <= 0')],
        Y,
    ),
    # -- rules that cannot be compiled: fail closed -------------------------------------------
    c(
        "uncompilable condition on an allow: dropped",
        A,
        "pdf_eu",
        [allow("user:alice", "*", when='title == "x"')],
        N,
    ),
    c("unknown selector on an allow: dropped", A, "eng", [allow("user:alice", "bogus:x")], N),
    c(
        "unknown selector on a deny: denies everything for its subject",
        A,
        "eng",
        [allow("user:alice", "*"), deny("user:alice", "bogus:x")],
        N,
    ),
    c(
        "uncompilable condition on a deny: unconditional",
        A,
        "md_us",
        [allow("user:alice", "*"), deny("user:alice", "collection:misc", 'title == "x"')],
        N,
    ),
    c(
        "widened deny of another subject does not apply",
        A,
        "eng",
        [allow("user:alice", "*"), deny("user:bob", "bogus:x")],
        Y,
    ),
    # -- admins ----------------------------------------------------------------------------
    c("bootstrap admin reads all", ("user:root",), "hr", [], Y, admins=("user:root",)),
    c("admin reads an empty-ACL document", ("user:root",), "payroll", [], Y, admins=("user:root",)),
    c(
        "deny does not stop an admin",
        ("user:root",),
        "eng",
        [deny("user:root", "*")],
        Y,
        admins=("user:root",),
    ),
    c("admin by role link", ("user:boss",), "lvl4", [role("user:boss", "role:admin")], Y),
    c(
        "admin through a group and role chain",
        ("user:x", "group:ops"),
        "hr",
        [role("group:ops", "role:sre"), role("role:sre", "role:admin")],
        Y,
    ),
    c("admin principal list, someone else", A, "hr", [], N, admins=("user:root",)),
    # -- disabled sources: served to nobody -------------------------------------------------
    c("disabled source", ENG, "old", [allow("group:eng", "*")], N, disabled=("legacy",)),
    c(
        "disabled source, admin too",
        ("user:root",),
        "old",
        [],
        N,
        admins=("user:root",),
        disabled=("legacy",),
    ),
    c("another source disabled", ENG, "eng", [allow("group:eng", "*")], Y, disabled=("legacy",)),
    # -- identity: the groups claim ----------------------------------------------------------
    c(
        "groups claim list",
        (),
        "eng",
        [allow("group:eng", "*")],
        Y,
        claims={"sub": "u1", "groups": ["eng"]},
    ),
    c(
        "groups claim string gives no groups",
        (),
        "eng",
        [allow("group:eng", "*")],
        N,
        claims={"sub": "u1", "groups": "eng"},
    ),
    c("groups claim missing", (), "eng", [allow("group:eng", "*")], N, claims={"sub": "u1"}),
    # -- API keys narrowed to sources or collections (keys stored in the database) ------------
    c(
        "key narrowed to its source",
        ("svc:k",),
        "eng",
        [allow("svc:k", "*")],
        Y,
        key=(("wiki",), None),
    ),
    c(
        "key narrowed away from a source",
        ("svc:k",),
        "hr",
        [allow("svc:k", "*")],
        N,
        key=(("wiki",), None),
    ),
    c(
        "key narrowed to a collection",
        ("svc:k",),
        "eng/platform",
        [allow("svc:k", "*")],
        Y,
        key=(None, ("eng",)),
    ),
    c(
        "key collection is not a prefix",
        ("svc:k",),
        "engine",
        [allow("svc:k", "*")],
        N,
        key=(None, ("eng",)),
    ),
    c(
        "key collection follows links",
        ("svc:k",),
        "payroll/2024",
        [allow("svc:k", "*"), below("payroll", "hr")],
        Y,
        key=(None, ("hr",)),
    ),
    c(
        "key narrowing never widens",
        ("svc:k",),
        "hr",
        [allow("svc:k", "collection:eng")],
        N,
        key=(("drive",), None),
    ),
    c(
        "key with both narrowings",
        ("svc:k",),
        "hr",
        [allow("svc:k", "*")],
        N,
        key=(("drive",), ("eng",)),
    ),
    c(
        "admin key narrowed to a source",
        ("svc:k",),
        "hr",
        [role("svc:k", "role:admin")],
        N,
        key=(("wiki",), None),
    ),
    c(
        "admin key inside its narrowing",
        ("svc:k",),
        "eng",
        [role("svc:k", "role:admin")],
        Y,
        key=(("wiki",), None),
    ),
]


def test_the_table_is_large_and_covers_every_part() -> None:
    assert len(CASES) >= 80
    assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"
    objects = {
        r.object.split(":")[0] for case in CASES for r in case.rules if isinstance(r, AccessRule)
    }
    assert {"*", "collection", "path", "source", "doc", "acl"} <= objects
    whens = " ".join(r.when for case in CASES for r in case.rules if isinstance(r, AccessRule))
    for op in ("==", "!=", " in ", "<=", ">="):
        assert op in whens
    assert (
        sum(1 for case in CASES if case.key) >= 5 and sum(1 for case in CASES if case.admins) >= 3
    )


# --- checking ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_db(sync_engine: Engine) -> Engine:
    with sync_engine.begin() as conn:
        conn.execute(insert(Source), [{"name": s, "kind": "files"} for s in SOURCES])
        for name, d in DOCS.items():
            row = {
                "id": IDS[name],
                "source": d.source,
                "external_id": name,
                "uri": f"kb://{name}",
                "title": name,
                "content_type": d.content_type,
                "content_hash": "h",
                "metadata": d.metadata,
                "collection": d.collection,
                "path": d.path,
                "level": d.level,
                "acl": list(d.acl),
            }
            conn.execute(insert(Document.__table__), [row])
            conn.execute(
                insert(Chunk.__table__),
                [
                    {
                        "document_id": IDS[name],
                        "ordinal": 0,
                        "text": name,
                        "embedding": [0.0] * 383 + [1.0],
                        "source": d.source,
                        "collection": d.collection,
                        "path": d.path,
                        "level": d.level,
                        "acl": list(d.acl),
                        "content_type": d.content_type,
                        "doc_metadata": d.metadata,
                    }
                ],
            )
    return sync_engine


@pytest.fixture
def database(module_database: str, tmp_path: Path) -> Iterator[Database]:
    settings = Settings(home=str(tmp_path / "home"), database={"url": module_database})
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(module_database)), settings)
    yield db


async def caller_for(case: Case, db: Database) -> tuple[Caller, tuple[PolicyItem, ...]]:
    """The case's caller, and its rules (``svc:k`` renamed to a stored key's principal)."""
    if case.claims is not None:
        return caller_from_claims(case.claims, AuthSettings(), transport="http"), case.rules
    if case.key is None:
        return Caller.of(*case.who), case.rules
    sources, collections = case.key
    keys = ApiKeyService(db, default_scopes=["kb.read"])
    made = await keys.create(
        f"k-{uuid.uuid4().hex[:8]}", created_by="test", sources=sources, collections=collections
    )
    caller = await keys.authenticate(made.secret, transport="http")
    assert caller.restrict_sources == (frozenset(sources) if sources else None)
    assert caller.restrict_collections == (frozenset(collections) if collections else None)

    def rename(item: PolicyItem) -> PolicyItem:
        if isinstance(item, AccessRule) and item.subject == "svc:k":
            return AccessRule(caller.subject, item.object, item.effect, item.max_level, item.when)
        if isinstance(item, RoleLink) and item.member == "svc:k":
            return RoleLink(caller.subject, item.role)
        return item

    return caller, tuple(rename(i) for i in case.rules)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_decision(case: Case, table_db: Engine, database: Database) -> None:
    try:
        caller, rules = await caller_for(case, database)
        engine = PolicyEngine.of(
            PolicySet.of(rules),
            version=1,
            admin_principals=case.admins,
            disabled_sources=case.disabled,
        )
        access = engine.filter_for(caller)
        doc_id = IDS[case.doc]
        async with database.sessions() as session:
            in_documents = (
                await session.execute(
                    select(Document.id).where(
                        Document.id == doc_id, access.where(AuthzColumns.of_documents(Document))
                    )
                )
            ).first() is not None
            in_chunks = (
                await session.execute(
                    select(Chunk.id).where(
                        Chunk.document_id == doc_id, access.where(AuthzColumns.of_chunks(Chunk))
                    )
                )
            ).first() is not None
        rechecked = access.permits(attributes(case.doc))
        assert (in_documents, in_chunks, rechecked) == (case.expect,) * 3
    finally:
        await database.dispose()
