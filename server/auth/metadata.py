"""RFC 9728 OAuth 2.0 Protected Resource Metadata for the MCP endpoint."""

from __future__ import annotations

from typing import Any

from server.auth.service import resource_uri
from server.settings import Settings


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    auth = settings.auth
    scopes = list(dict.fromkeys([*auth.required_scopes, auth.admin_scope]))
    document: dict[str, Any] = {
        "resource": resource_uri(settings),
        "authorization_servers": list(auth.authorization_servers),
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": list(auth.algorithms),
        "resource_name": settings.mcp.name,
    }
    if not document["authorization_servers"] and auth.issuer:
        # An issuer is an authorization server identifier; list it when none is configured.
        document["authorization_servers"] = [auth.issuer]
    return document


__all__ = ["protected_resource_metadata"]
