"""The admin capability: a value only ``policies/`` can mint, like :class:`AccessFilter`.

Every administrative use case (keys, sources, syncs, policy changes, audit reads) takes an
:class:`AdminCaller` in its signature, so no door reaches them with a plain ``Caller``.
:func:`mint_admin` is the one place that decides who is an administrator:

- the caller holds ``role:admin`` directly, through ``auth.admin_principals`` (the
  snapshot links those to the role), or through the stored role graph; and
- the caller is **not** an API key narrowed to sources or collections: a narrowed key is
  meant to read a slice of the corpus, and admin rights (creating keys, rewriting the
  policy) would let it escape its own narrowing.

Refusals raise :class:`~core.errors.AccessDenied` with a reason, and log it.
"""

from __future__ import annotations

import logging
from typing import Protocol

from core.errors import AccessDenied
from core.identity import Caller

log = logging.getLogger(__name__)

_TOKEN = object()


class AdminSnapshot(Protocol):
    """What the mint needs from the policy engine: the role closure check."""

    def is_admin(self, caller: Caller) -> bool: ...


class AdminCaller:
    """A caller proven to be an administrator at the moment it was minted. Immutable."""

    __slots__ = ("caller",)

    caller: Caller

    def __init__(self, caller: Caller, *, token: object) -> None:
        if token is not _TOKEN:
            raise TypeError("AdminCaller is minted by policies.capability.mint_admin only")
        object.__setattr__(self, "caller", caller)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("AdminCaller is immutable")

    @property
    def subject(self) -> str:
        return self.caller.subject

    def __repr__(self) -> str:
        return f"AdminCaller({self.caller.subject!r}, transport={self.caller.transport!r})"


def is_narrowed(caller: Caller) -> bool:
    """An API key restricted to some sources or collections."""
    return caller.restrict_sources is not None or caller.restrict_collections is not None


def mint_admin(caller: Caller, policies: AdminSnapshot) -> AdminCaller:
    """The admin capability for ``caller``, or AccessDenied saying why not."""
    if is_narrowed(caller):
        log.warning(
            "admin refused for %s: an API key narrowed to sources or collections", caller.subject
        )
        raise AccessDenied(
            "this API key is narrowed to some sources or collections and cannot administer"
        )
    if not policies.is_admin(caller):
        log.info("admin refused for %s: no role:admin", caller.subject)
        raise AccessDenied("the admin role is required")
    return AdminCaller(caller, token=_TOKEN)


__all__ = ["AdminCaller", "AdminSnapshot", "is_narrowed", "mint_admin"]
