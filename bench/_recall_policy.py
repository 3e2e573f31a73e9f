"""The callers of the filtered-search benchmark: six predicate shapes at four selectivities.

Each caller is a principal set and the access rules written for it; the rules go through
the real policy file parser and :class:`~policies.engine.PolicyEngine`, which compiles the
SQL predicate the production search runs. :func:`allowed_documents` decides the same
rules a second, independent way (plain Python over the generated attributes of
:mod:`bench._recall_corpus`), and that decision is the ground truth's allowed set.

Selectivity ``10^-e`` of the documents (e = 0..3: 100 / 10 / 1 / 0.1 %):

* ``acl``: one ``acl:source`` rule; the caller holds ``group:a<e zeros>``
  (``group:staff`` at 100 %).
* ``collection``: ``collection:dept/0/...`` (e levels; ``dept`` at 100 %).
* ``path``: ``path:/p/0/.../`` (e levels; ``/p/`` at 100 %).
* ``or20``: 20 rules of mixed kinds (5 collection, some with a metadata condition, 7 path,
  7 metadata conditions, 1 ``acl:source``), each a slice of 1/10 or 1/100 of the share.
* ``and_not``: the collection caller's allow (on ``dept/1/...``) minus a deny of
  ``path:/p/9/`` (a tenth of every slice), i.e. ``allow AND NOT deny``.
* ``metadata``: ``*`` with ``when: metadata.m<e> == "<e zeros>"`` (``scope == "all"``).

The shares are nominal: rules on independent attributes overlap a little (``or20``) and
the deny removes a tenth (``and_not``); the benchmark reports the real allowed count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench._recall_corpus import Corpus

SHAPES = ("acl", "collection", "path", "or20", "and_not", "metadata")
LEVELS = (0, 1, 2, 3)  # selectivity 10^-level


@dataclass(frozen=True)
class Rule:
    object: str
    effect: str = "allow"
    when: str = ""  # empty, or one clause: metadata.KEY == "VALUE"


@dataclass(frozen=True)
class BenchCaller:
    shape: str
    level: int
    principals: tuple[str, ...]
    rules: tuple[Rule, ...]

    @property
    def subject(self) -> str:
        return self.principals[0]

    @property
    def share(self) -> float:
        return float(10.0**-self.level)

    @property
    def label(self) -> str:
        return f"{self.share * 100:g} %"


def _collection(prefix: str) -> Rule:
    """A collection slice of 10^-len(prefix); below the 3 collection levels, narrowed by a
    metadata condition (an independent attribute), so the rule stays a collection rule."""
    if not prefix:
        return Rule("collection:dept")
    head, tail = prefix[:3], prefix[3:]
    rule = "collection:dept/" + "/".join(head)
    when = f'metadata.m{len(tail)} == "{"3" * len(tail)}"' if tail else ""
    return Rule(rule, when=when)


def _path(prefix: str) -> Rule:
    return Rule("path:/p/" + "".join(d + "/" for d in prefix))


def _metadata(prefix: str) -> Rule:
    if not prefix:
        return Rule("*", when='metadata.scope == "all"')
    return Rule("*", when=f'metadata.m{len(prefix)} == "{prefix}"')


def _or20(level: int) -> tuple[tuple[str, ...], tuple[Rule, ...]]:
    z = "0" * level
    if level == 0:
        rules = [
            *(_collection(d) for d in "01234"),
            *(_path(d) for d in "0123456"),
            *(_metadata(d) for d in "0123456"),
        ]
        groups: tuple[str, ...] = ("group:a0",)
    else:
        # Slices of 1/10 (one more digit) and 1/100 (two more) of the nominal share.
        rules = [
            *(_collection(z + d) for d in "12"),
            *(_collection(z + "3" + d) for d in "123"),
            *(_path(z + d) for d in "123"),
            *(_path(z + "4" + d) for d in "1234"),
            *(_metadata(z + d) for d in "123"),
            *(_metadata(z + "4" + d) for d in "1234"),
        ]
        groups = (f"group:a{z}1", f"group:a{z}2")
    rules.append(Rule("acl:source"))
    assert len(rules) == 20
    return groups, tuple(rules)


def make_callers() -> list[BenchCaller]:
    callers: list[BenchCaller] = []
    for level in LEVELS:
        z = "0" * level

        def caller(
            shape: str, rules: tuple[Rule, ...], *groups: str, level: int = level
        ) -> BenchCaller:
            return BenchCaller(shape, level, (f"user:bench-{shape}-{level}", *groups), rules)

        callers.append(
            caller("acl", (Rule("acl:source"),), f"group:a{z}" if level else "group:staff")
        )
        callers.append(caller("collection", (_collection(z),)))
        callers.append(caller("path", (_path(z),)))
        groups, rules = _or20(level)
        callers.append(caller("or20", rules, *groups))
        deny = Rule("path:/p/9/", effect="deny")
        callers.append(caller("and_not", (_collection("1" * level), deny)))
        callers.append(caller("metadata", (_metadata(z),)))
    return callers


def policy_yaml(callers: Sequence[BenchCaller]) -> str:
    """The policy file: every caller's rules with the caller's user as subject."""
    lines = ["rules:"]
    for c in callers:
        for r in c.rules:
            lines.append(f"  - subject: {c.subject}")
            lines.append(f"    object: '{r.object}'")
            if r.effect != "allow":
                lines.append(f"    effect: {r.effect}")
            if r.when:
                lines.append(f"    when: '{r.when}'")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ independent evaluation
_WHEN = re.compile(r'metadata\.([A-Za-z0-9_]+) == "([^"]*)"\Z')


def _rule_mask(rule: Rule, corpus: Corpus, principals: frozenset[str]) -> np.ndarray:
    kind, _, value = rule.object.partition(":")
    if rule.object == "*":
        hit = [True] * corpus.n_docs
    elif kind == "collection":
        hit = [c == value or c.startswith(value + "/") for c in corpus.collection]
    elif kind == "path":
        hit = [p.startswith(value) for p in corpus.path]
    elif kind == "acl" and value == "source":
        hit = [not principals.isdisjoint(a) for a in corpus.acl]
    else:
        raise ValueError(f"the evaluator does not know {rule.object!r}")
    mask = np.asarray(hit, dtype=bool)
    if rule.when:
        m = _WHEN.match(rule.when)
        if m is None:
            raise ValueError(f"the evaluator does not know the condition {rule.when!r}")
        key, want = m.groups()
        mask &= np.asarray([md.get(key) == want for md in corpus.metadata], dtype=bool)
    return mask


def allowed_documents(corpus: Corpus, caller: BenchCaller) -> np.ndarray:
    """Which documents the caller may read: any allow, and no deny (deny beats allow)."""
    principals = frozenset(caller.principals)
    allow = np.zeros(corpus.n_docs, dtype=bool)
    deny = np.zeros(corpus.n_docs, dtype=bool)
    for rule in caller.rules:
        target = allow if rule.effect == "allow" else deny
        target |= _rule_mask(rule, corpus, principals)
    return allow & ~deny
