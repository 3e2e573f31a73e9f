"""Who is calling: the principal set every service call carries.

Principals share one namespace with source ACLs: ``user:<sub>``, ``email:<address>``,
``group:<name>``, ``svc:<client>``, ``role:<name>``. Groups come from the request (token
claims) and are never written into the stored role graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["http", "stdio", "cli", "rest", "internal"]

PRINCIPAL_PREFIXES = ("user:", "email:", "group:", "svc:", "role:")


def is_principal(value: str) -> bool:
    return any(value.startswith(p) and len(value) > len(p) for p in PRINCIPAL_PREFIXES)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. ``principals`` holds every name the caller acts as."""

    subject: str
    principals: frozenset[str]
    transport: Transport
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    # API keys may be narrowed to some sources or collections; None means no narrowing.
    restrict_sources: frozenset[str] | None = None
    restrict_collections: frozenset[str] | None = None

    def __post_init__(self) -> None:
        bad = [p for p in self.principals if not is_principal(p)]
        if bad:
            raise ValueError(f"principals must be prefixed (user:, group:, ...): {sorted(bad)}")
        if self.subject not in self.principals:
            raise ValueError("the subject must be one of the principals")

    @classmethod
    def of(
        cls,
        *principals: str,
        transport: Transport = "internal",
        client_id: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> Caller:
        """A caller from principals; the first one is the subject."""
        if not principals:
            raise ValueError("a caller needs at least one principal")
        return cls(
            subject=principals[0],
            principals=frozenset(principals),
            transport=transport,
            client_id=client_id,
            scopes=scopes or frozenset(),
        )


__all__ = ["PRINCIPAL_PREFIXES", "Caller", "Transport", "is_principal"]
