"""Our authenticator behind the MCP SDK's ``TokenVerifier`` protocol.

The SDK's bearer middleware calls :meth:`KbTokenVerifier.verify_token`; what it returns
is available inside handlers through ``get_access_token()``. Use :func:`caller_of` there
to get our :class:`~core.identity.Caller` back.
"""

from __future__ import annotations

import logging

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from pydantic import ConfigDict

from core.errors import AuthError
from core.identity import Caller
from server.auth.service import Authenticated, Authenticator

log = logging.getLogger(__name__)


class CallerAccessToken(AccessToken):
    """An SDK access token that also carries the caller and how it authenticated."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    caller: Caller
    method: str


class KbTokenVerifier:
    """Implements ``mcp.server.auth.provider.TokenVerifier``."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            authenticated: Authenticated = await self.authenticator.authenticate_token(
                token, transport="http"
            )
        except AuthError as exc:
            log.info("MCP bearer token refused: %s", exc.message)
            return None
        caller = authenticated.caller
        return CallerAccessToken(
            token="",  # never keep the raw credential around (it is never forwarded either)
            client_id=caller.client_id or caller.subject,
            scopes=sorted(caller.scopes),
            expires_at=authenticated.expires_at,
            # The audience was verified; report the resource so the SDK's own check agrees.
            resource=self.authenticator.resource_uri,
            subject=caller.subject,
            claims={"iss": authenticated.claims["iss"]} if "iss" in authenticated.claims else None,
            caller=caller,
            method=authenticated.method,
        )


def caller_of(token: AccessToken | None) -> Caller | None:
    """The caller inside an MCP handler, from the SDK's access token."""
    return token.caller if isinstance(token, CallerAccessToken) else None


def current_mcp_caller() -> Caller | None:
    """Shortcut for ``caller_of(get_access_token())``."""
    return caller_of(get_access_token())


__all__ = ["CallerAccessToken", "KbTokenVerifier", "caller_of", "current_mcp_caller"]
