"""Configuration of the ``files`` connector, apart from its implementation.

Settings validate every source at start; keeping the model here means that loading the
configuration (``kb mcp``, ``kb policy list``, ...) does not import the parsers
(pypdfium2, python-docx, python-pptx, openpyxl, trafilatura). The registry finds this model
through the ``kb.connector_configs`` entry point; :mod:`connectors.files` does the reading.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from connectors.acl_rules import PathRule
from connectors.config import SourceConfigBase
from connectors.principals import validate_principals

# The extensions connectors.parsers can read; a test keeps the two equal (importing the
# parsers here would load every parser library just to validate a configuration).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".csv",
    ".docm",
    ".docx",
    ".htm",
    ".html",
    ".log",
    ".markdown",
    ".md",
    ".pdf",
    ".pptm",
    ".pptx",
    ".text",
    ".tsv",
    ".txt",
    ".xhtml",
    ".xlsm",
    ".xlsx",
)
DEFAULT_INCLUDE = [f"*{ext}" for ext in SUPPORTED_EXTENSIONS]
DEFAULT_EXCLUDE = [".*", "~$*", "*.tmp", "__pycache__/"]


class FilesSourceConfig(SourceConfigBase):
    """A folder tree of documents."""

    @field_validator("acl")
    @classmethod
    def _source_principals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else validate_principals(value)

    kind: Literal["files"] = Field(description="Always 'files'.")
    root: str = Field(
        description="Folder to index; a relative path resolves against the configuration's "
        "folder (the context's base_dir). '~' expands to the home folder."
    )
    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        min_length=1,
        description="Globs of files to index (default: every supported extension). '*' stays "
        "within a folder, '**' spans folders, a glob without '/' matches file names anywhere.",
    )
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="Globs of files or folders to skip; a matching folder skips everything "
        "below it (default: hidden files and folders, Office lock files, *.tmp).",
    )
    rules: list[PathRule] = Field(
        default_factory=list,
        description="Path-glob rules setting acl, collection, level or metadata. The FIRST "
        "matching rule applies (list specific globs before general ones) and overrides "
        "sidecar files and the source's defaults for the fields it sets.",
    )
    sidecar_file: str | None = Field(
        default=".kb-acl.yaml",
        pattern=r"^[^/\\]+$",
        description="Name of the per-folder YAML file giving acl, collection, level and "
        "metadata for that folder and below (deeper files override); null disables sidecars.",
    )
    follow_symlinks: bool = Field(
        default=False,
        description="Follow symbolic links to files and folders (loops are detected).",
    )
    watch_debounce_ms: int = Field(
        default=200,
        ge=10,
        le=60_000,
        description="With watch: filesystem events are gathered for up to this long "
        "(while they keep arriving) before one sync applies them.",
    )
    url_base: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+/$",
        description="Public URL of the root folder (ending in '/'), e.g. "
        "https://drive.example.com/company/: results then link to url_base + the file's path "
        "(URL-encoded) instead of the server's file:// path.",
    )


__all__ = ["DEFAULT_EXCLUDE", "DEFAULT_INCLUDE", "SUPPORTED_EXTENSIONS", "FilesSourceConfig"]
