"""RFC 9728 protected-resource metadata, served at the host root (not under /mcp)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.auth.metadata import protected_resource_metadata
from server.auth.service import METADATA_PATH
from server.settings import Settings

router = APIRouter(tags=["auth"])


def _document(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    return JSONResponse(
        protected_resource_metadata(settings),
        headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"},
    )


@router.get(METADATA_PATH, summary="OAuth protected-resource metadata (RFC 9728)")
async def resource_metadata(request: Request) -> JSONResponse:
    return _document(request)


@router.get(METADATA_PATH + "/mcp", summary="OAuth protected-resource metadata of /mcp (RFC 9728)")
async def mcp_resource_metadata(request: Request) -> JSONResponse:
    return _document(request)
