"""Verified token claims -> :class:`~core.identity.Caller`.

``user:<sub>``, ``email:<address>`` (only when ``email_verified`` is true), ``group:<name>``
from the configured groups claim path, and ``svc:<client id>`` for client-credentials
tokens. A groups claim that is missing or replaced by an Entra ID overage pointer gives no
groups and a warning: it never widens access.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.errors import AuthError
from core.identity import Caller, Transport
from server.settings import AuthSettings

log = logging.getLogger(__name__)

# Remember whom we already warned about, so one user does not flood the log.
_WARNED: set[tuple[str, str]] = set()
_WARNED_MAX = 4096


def _warn_once(subject: str, reason: str) -> None:
    key = (subject, reason)
    if key in _WARNED:
        return
    if len(_WARNED) >= _WARNED_MAX:
        _WARNED.clear()
    _WARNED.add(key)
    log.warning("token of %s: %s; the caller gets no groups", subject, reason)


def claim_at(claims: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dotted path (``realm_access.roles``); (False, None) when absent."""
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _is_true(value: Any) -> bool:
    # Some IdPs send the string "true"; anything else (missing, "false", 1) is not verified.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (RFC 8693/9068, space separated) or ``scp`` (string or list)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str) and v and " " not in v)
    return frozenset(found)


def client_id_of(claims: Mapping[str, Any]) -> str | None:
    for name in ("client_id", "azp", "appid"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def groups_of(claims: Mapping[str, Any], settings: AuthSettings, subject: str) -> list[str]:
    names = settings.groups_claim.split(".")
    claim_names = claims.get("_claim_names")
    # Entra ID: too many groups -> the claim is replaced by a pointer to Graph.
    if (isinstance(claim_names, Mapping) and names[0] in claim_names) or claims.get("hasgroups"):
        _warn_once(subject, "the groups claim overflowed (Entra ID group overage)")
        return []
    present, value = claim_at(claims, settings.groups_claim)
    if not present:
        _warn_once(subject, f"no {settings.groups_claim!r} claim")
        return []
    # Only a JSON list is a list of groups. A bare string is refused rather than read as
    # one group: an IdP (or a mapper) that flattens a list into "a,b" or "a b" would
    # otherwise grant a group nobody has (docs/auth.md; pinned in the decision table).
    if not isinstance(value, list):
        _warn_once(subject, f"the {settings.groups_claim!r} claim is not a list")
        return []
    return sorted({v.strip() for v in value if isinstance(v, str) and v.strip()})


def caller_from_claims(
    claims: Mapping[str, Any], settings: AuthSettings, *, transport: Transport
) -> Caller:
    """Map verified claims to a caller. Raises :class:`AuthError` if nobody can be named."""
    sub = claims.get("sub")
    sub = sub if isinstance(sub, str) and sub else None
    client_id = client_id_of(claims)
    scopes = scopes_of(claims)
    # Client credentials: no resource owner, or the owner is the client itself
    # (Okta, Auth0); Entra ID marks app-only tokens with idtyp=app.
    is_service = sub is None or sub == client_id or claims.get("idtyp") == "app"
    if is_service:
        if client_id is None:
            if sub is None:
                raise AuthError("the token names neither a subject nor a client")
            client_id = sub
        subject = f"svc:{client_id}"
        return Caller(
            subject=subject,
            principals=frozenset({subject}),
            transport=transport,
            client_id=client_id,
            scopes=scopes,
        )
    assert sub is not None
    subject = f"user:{sub}"
    principals = {subject}
    email = claims.get(settings.email_claim)
    if isinstance(email, str) and "@" in email and _is_true(claims.get("email_verified")):
        principals.add(f"email:{email.strip().lower()}")
    principals.update(f"group:{g}" for g in groups_of(claims, settings, subject))
    return Caller(
        subject=subject,
        principals=frozenset(principals),
        transport=transport,
        client_id=client_id,
        scopes=scopes,
    )


__all__ = ["caller_from_claims", "claim_at", "client_id_of", "groups_of", "scopes_of"]
