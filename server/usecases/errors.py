"""Errors the application layer adds to the tree in :mod:`core.errors`."""

from __future__ import annotations

from core.errors import InvalidRequest


class Conflict(InvalidRequest):
    """The request is valid but collides with the current state (a sync already queued or
    running). Doors map it once: HTTP 409."""


__all__ = ["Conflict"]
