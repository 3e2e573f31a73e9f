"""Insecure authentication modes stay on loopback unless an operator says otherwise.

``auth.mode: dev`` accepts tokens anyone with the data directory can mint, and ``none``
makes every caller anonymous: fine on a laptop, dangerous on 0.0.0.0. ``kb serve`` refuses
them on a non-loopback bind unless ``--allow-insecure-bind`` (or
``auth.allow_insecure_bind``) is given, and then logs a warning that says so.
"""

from __future__ import annotations

import ipaddress
import logging

from core.errors import ConfigError
from server.settings import Settings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a name) is exposed."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, *, allow_insecure: bool = False) -> None:
    """Refuse ``auth.mode`` dev or none on a non-loopback bind unless explicitly allowed."""
    mode, host = settings.auth.mode, settings.http.host
    if mode == "prod" or is_loopback(host):
        return
    if allow_insecure or settings.auth.allow_insecure_bind:
        log.warning(
            "INSECURE: auth.mode is %r and the server listens on %s, reachable from other "
            "machines (%s). Anyone who can reach it %s.",
            mode,
            host,
            "--allow-insecure-bind" if allow_insecure else "auth.allow_insecure_bind",
            "is anonymous" if mode == "none" else "holding a dev token minted here gets in",
        )
        return
    raise ConfigError(
        f"auth.mode is {mode!r} but http.host is {host!r}, which other machines can reach; "
        "use auth.mode: prod, bind to 127.0.0.1, or pass --allow-insecure-bind "
        "(auth.allow_insecure_bind) to accept the risk"
    )


__all__ = ["check_bind", "is_loopback"]
