"""The one mapping from the error tree (:mod:`core.errors`) to HTTP statuses.

Every route raises domain errors and lets them through; this handler answers them, so a
``DatabaseUnavailable`` is a 503 on every route (it was a 400 on some and a 500 on others).

==========================================================  ======
error                                                       status
==========================================================  ======
NotFound                                                    404
Conflict (a sync already queued or running)                 409
InvalidRequest, ConfigError, ConnectorError, PolicyError    400
AccessDenied, InsufficientScope                             403
AuthError                                                   401
DatabaseError (unavailable, pgvector, lock), driver errors  503
any other KBError                                           500
==========================================================  ======
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from core.errors import (
    AccessDenied,
    AuthError,
    ConfigError,
    ConnectorError,
    DatabaseError,
    InsufficientScope,
    InvalidRequest,
    KBError,
    NotFound,
    PolicyError,
)
from server.usecases.errors import Conflict

log = logging.getLogger(__name__)

UNAVAILABLE = "the database is unavailable; try again in a moment"


def status_of(exc: KBError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidRequest | ConfigError | ConnectorError | PolicyError):
        return 400
    if isinstance(exc, AccessDenied | InsufficientScope):
        return 403
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, DatabaseError):
        return 503
    return 500


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KBError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    # Domain messages are written to be shown (no SQL, no paths); 500s say less.
    detail = exc.message if status != 500 else "the request failed on the server"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database error: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers={"Retry-After": "5"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KBError, _domain_error)
    app.add_exception_handler(DBAPIError, _driver_error)


__all__ = ["install_error_handlers", "status_of"]
