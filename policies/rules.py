"""The typed policy model and the YAML policy file format.

A policy is three kinds of rows, stored in ``policy_rules`` (``ptype`` and ``v0..v4``):

* :class:`AccessRule` (``p``): ``subject`` (a principal or ``role:NAME``), ``object`` (a
  selector, see :mod:`policies.selectors`), ``effect`` (``allow`` or ``deny``; deny beats
  allow), optional ``max_level`` (allow only: the rule covers documents whose level is at
  most this), optional ``when`` (conditions over document attributes).
* :class:`RoleLink` (``g``): ``member`` holds ``role``. Members are principals or roles
  (role hierarchy); roles are ``role:NAME``.
* :class:`CollectionLink` (``g2``): collection ``child`` sits below ``parent``, so a rule on
  the parent covers the child (in addition to "/" nesting).

The policy file (``kb policy import|export|diff|lint``)::

    # every key is optional
    roles:                      # member -> role or list of roles
      group:hr: role:hr
      user:alice@example.com: [role:hr, role:auditor]
      role:hr: role:staff       # role hierarchy
    collections:                # child -> parent or list of parents
      payroll: hr
    rules:
      - subject: role:staff
        object: acl:source      # what the source itself shares with the caller
      - subject: role:hr
        object: collection:hr
        max_level: 3
        when: metadata.region in ["eu", "global"]
        comment: HR reads its own collection up to level 3
      - subject: group:contractors
        object: path:/hr/salaries/
        effect: deny

Unknown keys, a wrong type or a malformed rule fail with the rule's position named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from core.errors import PolicyError
from policies.selectors import canonical_conditions

Effect = Literal["allow", "deny"]
RULE_KEYS = {"subject", "object", "effect", "max_level", "when", "comment"}
FILE_KEYS = {"roles", "collections", "rules", "version"}


@dataclass(frozen=True)
class AccessRule:
    subject: str
    object: str
    effect: Effect = "allow"
    max_level: int | None = None
    when: str = ""
    comment: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, ...]:
        """The stored identity (``ptype, v0..v4``); the comment is not part of it."""
        level = "" if self.max_level is None else str(self.max_level)
        return ("p", self.subject, self.object, self.effect, level, self.when)

    def describe(self) -> str:
        parts = [f"{self.effect} {self.subject} -> {self.object}"]
        if self.max_level is not None:
            parts.append(f"max_level {self.max_level}")
        if self.when:
            parts.append(f"when {self.when}")
        return ", ".join(parts)


@dataclass(frozen=True)
class RoleLink:
    member: str
    role: str

    @property
    def key(self) -> tuple[str, ...]:
        return ("g", self.member, self.role, "", "", "")

    def describe(self) -> str:
        return f"{self.member} holds {self.role}"


@dataclass(frozen=True)
class CollectionLink:
    child: str
    parent: str

    @property
    def key(self) -> tuple[str, ...]:
        return ("g2", self.child, self.parent, "", "", "")

    def describe(self) -> str:
        return f"collection {self.child} is below {self.parent}"


PolicyItem = AccessRule | RoleLink | CollectionLink


@dataclass(frozen=True)
class Unreadable:
    """A stored row that could not be read as written, and what is enforced instead:
    ``rule`` is the unconditional deny it became (``widened``) or the allow it meant
    (``dropped``, not enforced)."""

    rule: AccessRule
    message: str
    consequence: Literal["dropped", "widened"]


@dataclass(frozen=True)
class PolicySet:
    """An immutable, de-duplicated policy (order kept as written)."""

    rules: tuple[AccessRule, ...] = ()
    roles: tuple[RoleLink, ...] = ()
    collections: tuple[CollectionLink, ...] = ()
    #: Stored rows that could not be read (see ``policies.store``); widened denies are
    #: also in ``rules``. Not part of the policy's identity.
    unreadable: tuple[Unreadable, ...] = field(default=(), compare=False)

    def with_unreadable(self, rows: Iterable[Unreadable]) -> PolicySet:
        return PolicySet(self.rules, self.roles, self.collections, tuple(rows))

    @classmethod
    def of(cls, items: Iterable[PolicyItem]) -> PolicySet:
        rules: dict[tuple[str, ...], AccessRule] = {}
        roles: dict[tuple[str, ...], RoleLink] = {}
        colls: dict[tuple[str, ...], CollectionLink] = {}
        for item in items:
            if isinstance(item, AccessRule):
                rules.setdefault(item.key, item)
            elif isinstance(item, RoleLink):
                roles.setdefault(item.key, item)
            else:
                colls.setdefault(item.key, item)
        return cls(tuple(rules.values()), tuple(roles.values()), tuple(colls.values()))

    def items(self) -> list[PolicyItem]:
        return [*self.rules, *self.roles, *self.collections]

    def __len__(self) -> int:
        return len(self.rules) + len(self.roles) + len(self.collections)


def item_from_row(ptype: str, values: tuple[str, ...], comment: str = "") -> PolicyItem:
    """A stored row back into a typed item. Raises :class:`PolicyError` if it is not one."""
    v = (*values, "", "", "", "", "", "")[:5]
    if ptype == "p":
        effect = v[2]
        if effect not in ("allow", "deny"):
            raise PolicyError(f"rule effect {effect!r} is neither allow nor deny")
        level = None
        if v[3]:
            try:
                level = int(v[3])
            except ValueError:
                raise PolicyError(f"max_level {v[3]!r} is not an integer") from None
        return AccessRule(v[0], v[1], effect, level, v[4], comment)  # type: ignore[arg-type]
    if ptype == "g":
        return RoleLink(v[0], v[1])
    if ptype == "g2":
        return CollectionLink(v[0], v[1])
    raise PolicyError(f"unknown policy row type {ptype!r}")


# --- the YAML file format ---------------------------------------------------------------


def parse_policy_yaml(text: str, origin: str = "policy file") -> PolicySet:
    """Parse the YAML format above. Syntax only: run :func:`policies.lint.lint` for meaning."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"{origin} is not valid YAML{where}") from None
    if data is None:
        return PolicySet()
    return parse_policy_data(data, origin)


def parse_policy_data(data: Any, origin: str = "policy") -> PolicySet:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{origin} must hold a mapping with roles, collections and rules")
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise PolicyError(f"{origin}: unknown top-level keys {sorted(map(str, unknown))}")
    items: list[PolicyItem] = []
    for member, role in _links(data.get("roles"), f"{origin}: roles"):
        items.append(RoleLink(member, role))
    for child, parent in _links(data.get("collections"), f"{origin}: collections"):
        items.append(CollectionLink(child, parent))
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise PolicyError(f"{origin}: rules must be a list")
    for index, raw in enumerate(raw_rules, start=1):
        items.append(rule_from_mapping(raw, f"{origin}: rule {index}"))
    return PolicySet.of(items)


def _links(raw: Any, where: str) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must map each member to a name or a list of names")
    out: list[tuple[str, str]] = []
    for key, value in raw.items():
        targets = value if isinstance(value, list) else [value]
        for target in targets:
            if not isinstance(key, str) or not isinstance(target, str) or not key or not target:
                raise PolicyError(f"{where}: {key!r} -> {target!r} must be non-empty strings")
            out.append((key, target))
    return out


def rule_from_mapping(raw: Any, where: str = "rule") -> AccessRule:
    """One rule from a mapping (YAML or JSON body); conditions are stored canonically."""
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where} must be a mapping with subject and object")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    subject, obj = raw.get("subject"), raw.get("object")
    if not isinstance(subject, str) or not subject:
        raise PolicyError(f"{where}: subject must be a non-empty string")
    if not isinstance(obj, str) or not obj:
        raise PolicyError(f"{where}: object must be a non-empty string")
    effect = raw.get("effect", "allow")
    if effect not in ("allow", "deny"):
        raise PolicyError(f"{where}: effect must be allow or deny")
    level = raw.get("max_level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        raise PolicyError(f"{where}: max_level must be an integer")
    when = raw.get("when") or ""
    if isinstance(when, list):
        when = " && ".join(str(w) for w in when)
    if not isinstance(when, str):
        raise PolicyError(f"{where}: when must be a string or a list of strings")
    comment = raw.get("comment") or ""
    if not isinstance(comment, str):
        raise PolicyError(f"{where}: comment must be a string")
    try:
        when = canonical_conditions(when)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    return AccessRule(subject, obj, effect, level, when, comment)


def rule_to_mapping(rule: AccessRule) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": rule.subject, "object": rule.object}
    if rule.effect != "allow":
        out["effect"] = rule.effect
    if rule.max_level is not None:
        out["max_level"] = rule.max_level
    if rule.when:
        out["when"] = rule.when
    if rule.comment:
        out["comment"] = rule.comment
    return out


def policy_to_data(policy: PolicySet) -> dict[str, Any]:
    roles: dict[str, list[str]] = {}
    for link in policy.roles:
        roles.setdefault(link.member, []).append(link.role)
    colls: dict[str, list[str]] = {}
    for clink in policy.collections:
        colls.setdefault(clink.child, []).append(clink.parent)

    def flat(m: dict[str, list[str]]) -> dict[str, Any]:
        return {k: v[0] if len(v) == 1 else v for k, v in m.items()}

    return {
        "roles": flat(roles),
        "collections": flat(colls),
        "rules": [rule_to_mapping(r) for r in policy.rules],
    }


def dump_policy_yaml(policy: PolicySet) -> str:
    return yaml.safe_dump(policy_to_data(policy), sort_keys=False, allow_unicode=True)


__all__ = [
    "AccessRule",
    "CollectionLink",
    "Effect",
    "PolicyItem",
    "PolicySet",
    "RoleLink",
    "Unreadable",
    "dump_policy_yaml",
    "item_from_row",
    "parse_policy_data",
    "parse_policy_yaml",
    "policy_to_data",
    "rule_from_mapping",
    "rule_to_mapping",
]
