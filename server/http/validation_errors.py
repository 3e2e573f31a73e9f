"""422 answers that can always be sent, whatever the client put in the request.

FastAPI's default handler echoes each invalid value back (``input``) and encodes the
answer as UTF-8, which fails on the very values worth refusing: a lone surrogate
(``"\\ud800"`` in JSON) turned a 422 into a 500. Same shape here, written as ASCII JSON,
where such a character is an escape sequence.
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response


async def validation_error(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body = json.dumps({"detail": jsonable_encoder(errors)}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


__all__ = ["validation_error"]
