"""Configuration of the ``sql`` connector: a database URL and the tables or queries to read."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors.acl_rules import COLLECTION_PATTERN
from connectors.config import SourceConfigBase
from connectors.principals import validate_principals
from connectors.sql_guard import UnsafeQuery, check_select
from connectors.templating import template_fields
from core.identity import PRINCIPAL_PREFIXES

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


ColumnList = Annotated[list[str], BeforeValidator(_as_list)]


class SqlEntryConfig(BaseModel):
    """One table or one read-only query; each row becomes one document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name used in external ids ('<name>:<pk>') and paths; defaults to the "
        "table name, required for a query.",
    )
    table: str | None = Field(
        default=None, description="Table to read ('schema.table' for another schema)."
    )
    query: str | None = Field(
        default=None,
        description="A single read-only SELECT instead of a table (no comments, no ';' "
        "inside); anything else is refused.",
    )
    primary_key: ColumnList = Field(
        min_length=1, description="Column(s) identifying a row; a string or a list."
    )
    text_template: str | list[str] = Field(
        description="Document text: a str.format template over column names "
        "('{subject}\\n{body}'), or a list of columns rendered as 'column: value' lines."
    )
    title_column: str | None = Field(default=None, description="Column holding the title.")
    title_template: str | None = Field(
        default=None, description="str.format template for the title (instead of title_column)."
    )
    updated_at: str | None = Field(
        default=None,
        description="Column with the row's last change (timestamp, ISO text or epoch number). "
        "Enables incremental polls; without it every poll reads all rows and unchanged ones "
        "are skipped by content hash.",
    )
    lookback_seconds: int = Field(
        default=300,
        ge=0,
        description="Re-read rows changed this long before the cursor, for late commits "
        "and clock skew.",
    )
    acl_columns: ColumnList = Field(
        default_factory=list,
        description="Columns holding readers: a comma/semicolon separated string, a JSON "
        "array or an array column. Bare names get acl_prefix.",
    )
    acl_prefix: str = Field(
        default="group:",
        description="Prefix for bare names in acl_columns (user:, email:, group:, svc:, role:).",
    )
    acl: list[str] | None = Field(
        default=None,
        description="Fixed principals for every row (added to acl_columns' principals). "
        "Unset, with no acl_columns: the source's acl (unset there too: shared with nobody, "
        "read only by admins and policy rules naming the documents).",
    )
    collection: str | None = Field(
        default=None, pattern=COLLECTION_PATTERN, description="Collection for these rows."
    )
    collection_column: str | None = Field(
        default=None, description="Column naming each row's collection (NULL: the default)."
    )
    level: int | None = Field(
        default=None, ge=0, le=9, description="Classification level (0 public .. 9 most secret)."
    )
    level_column: str | None = Field(
        default=None, description="Column holding each row's level 0..9 (NULL: the default)."
    )
    metadata_columns: ColumnList = Field(
        default_factory=list, description="Columns copied into document metadata."
    )

    @field_validator("acl")
    @classmethod
    def _principals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else validate_principals(value)

    @field_validator("acl_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value not in PRINCIPAL_PREFIXES:
            raise ValueError(f"acl_prefix must be one of {', '.join(PRINCIPAL_PREFIXES)}")
        return value

    @field_validator("query")
    @classmethod
    def _read_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_select(value)
        except UnsafeQuery as exc:
            raise ValueError(f"query refused: {exc}") from None

    @model_validator(mode="after")
    def _consistent(self) -> SqlEntryConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query is not None and self.name is None:
            raise ValueError("a query entry needs a 'name'")
        for a, b in (
            ("title_column", "title_template"),
            ("collection", "collection_column"),
            ("level", "level_column"),
        ):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"give at most one of {a!r} or {b!r}")
        if isinstance(self.text_template, list) and not self.text_template:
            raise ValueError("text_template needs at least one column")
        self.template_columns()  # raises on a malformed template
        return self

    @property
    def entry_name(self) -> str:
        return self.name or str(self.table)

    def template_columns(self) -> list[str]:
        if isinstance(self.text_template, str):
            return template_fields(self.text_template)
        return list(self.text_template)

    def required_columns(self) -> dict[str, str]:
        """Every column this entry reads, mapped to the setting that needs it."""
        needs: dict[str, str] = {}
        for column in self.primary_key:
            needs.setdefault(column, "primary_key")
        for column in self.template_columns():
            needs.setdefault(column, "text_template")
        if self.title_column:
            needs.setdefault(self.title_column, "title_column")
        if self.title_template:
            for column in template_fields(self.title_template):
                needs.setdefault(column, "title_template")
        for setting in ("updated_at", "collection_column", "level_column"):
            column = getattr(self, setting)
            if column:
                needs.setdefault(column, setting)
        for column in self.acl_columns:
            needs.setdefault(column, "acl_columns")
        for column in self.metadata_columns:
            needs.setdefault(column, "metadata_columns")
        return needs


class SqlSourceConfig(SourceConfigBase):
    """Rows of a relational database (Postgres, MySQL/MariaDB, SQLite, SQL Server)."""

    @field_validator("acl")
    @classmethod
    def _source_principals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else validate_principals(value)

    kind: Literal["sql"] = Field(description="Always 'sql'.")
    url: str = Field(
        description="SQLAlchemy URL, e.g. 'postgresql+psycopg://kb@db/hr', "
        "'mysql+pymysql://kb:${HR_DB_PASSWORD}@db/hr', 'sqlite:///data/hr.db'. Credentials "
        "must be ${ENV_VAR} references (expanded at connect time, never stored expanded); "
        "a relative SQLite path resolves against the configuration's folder.",
    )
    tables: list[SqlEntryConfig] = Field(
        min_length=1, description="Tables or queries to read; entry names must be unique."
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Rows read per page. Each page is one short read-only transaction "
        "(keyset pagination by primary key), so no lock is held on the source between pages.",
    )
    connect_timeout_seconds: int = Field(
        default=10, ge=1, le=600, description="Give up connecting after this many seconds."
    )
    lock_timeout_seconds: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="A read that waits this long for a lock (for example behind an ALTER TABLE) "
        "fails instead of queueing: MariaDB/MySQL lock_wait_timeout, Postgres lock_timeout.",
    )
    statement_timeout_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="One page's query is cancelled after this long: MariaDB "
        "max_statement_time, MySQL max_execution_time, Postgres statement_timeout.",
    )

    watch_interval_seconds: float = Field(
        default=2.0,
        ge=0.2,
        le=3600,
        description="With watch: seconds between two polls of the source. A poll that finds "
        "the row count, the key checksum and the highest updated_at of every entry "
        "unchanged costs one aggregate query per entry and starts no sync.",
    )
    watch_full_scan_seconds: int = Field(
        default=600,
        ge=10,
        le=86_400,
        description="With watch: compare every primary key with the index (deletions the "
        "count and checksum could miss) at least this often.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a valid SQLAlchemy URL (dialect+driver://user@host/db)") from None
        if url.password is not None and not ENV_REFERENCE.fullmatch(str(url.password)):
            raise ValueError(
                "the URL holds a literal password; put it in an environment variable and "
                "write ${VARIABLE_NAME} in its place"
            )
        return value

    @model_validator(mode="after")
    def _unique_entries(self) -> SqlSourceConfig:
        seen: set[str] = set()
        for entry in self.tables:
            if entry.entry_name in seen:
                raise ValueError(f"two entries are named {entry.entry_name!r}; give each a name")
            seen.add(entry.entry_name)
        return self


__all__ = ["ENV_REFERENCE", "SqlEntryConfig", "SqlSourceConfig"]
