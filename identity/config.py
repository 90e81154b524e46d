"""Settings: every knob of idgraph in one object, read from ``IDGRAPH_*`` variables.

A bad value fails at start with a message naming the environment variable, never later in
the middle of a load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from identity.errors import ConfigError

ENV_PREFIX = "IDGRAPH_"
_URI_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
_MEMORY = re.compile(r"^\d+[kKmMgG]$")

Port = Annotated[int, Field(ge=1, le=65535)]


JAVA_SIZE = r"^\d+[kKmMgG]$"  # a JVM memory size, as -Xmx takes it: 1200m, 4g


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "idgraph"


class Settings(BaseSettings):
    """idgraph's configuration; each field is read from ``IDGRAPH_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True
    )

    neo4j_uri: str | None = Field(
        default=None,
        description="Bolt URI of an existing Neo4j; unset means the local server.",
    )
    neo4j_user: str = Field(default="neo4j", min_length=1)
    neo4j_password: SecretStr = Field(default=SecretStr("idgraph-local-password"))
    neo4j_database: str = Field(default="neo4j", pattern=r"^[A-Za-z][A-Za-z0-9.\-]{0,62}$")
    state_dir: Path = Field(default_factory=_default_state_dir)
    policy: Path | None = Field(default=None, description="Linking policy TOML file.")

    neo4j_version: str = Field(default="5.26.30", pattern=r"^5\.26\.\d+$")
    neo4j_bolt_port: Port = 7687
    neo4j_http_port: Port | None = Field(
        default=None, description="Also serve Neo4j's HTTP API (Browser) on this port."
    )
    neo4j_heap: str = Field(
        default="auto",
        description="Heap of the local server: a size (512m, 4g) or auto (sized to the machine).",
    )
    neo4j_pagecache: str = Field(
        default="auto",
        description="Page cache of the local server: a size or auto (sized to the machine).",
    )
    neo4j_start_timeout: float = Field(default=120.0, gt=0)

    default_region: str = Field(
        default="FR", pattern=r"^[A-Z]{2}$", description="Region of national-format phones."
    )
    hash_pii: bool = Field(
        default=False, description="Store emails and phones as SHA-256 of the normalized value."
    )
    chunk_size: int = Field(default=5000, ge=1, le=100_000)
    writers: int = Field(
        default=2, ge=1, le=8, description="Identity units a resolve writes concurrently."
    )
    load_writers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Chunks a load writes concurrently (its parsing runs beside them).",
    )
    dedup_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days of its events an identifier remembers the messageIds of (duplicates).",
    )
    max_record_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    rejects_dir: Path | None = Field(
        default=None, description="Where rejects files go; default <state dir>/rejects."
    )
    backfill_memory: str = Field(
        default="2GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory idgraph backfill's on-disk aggregation (DuckDB) may use; it spills "
        "to disk beyond it.",
    )
    backfill_heap: str = Field(
        default="1200m",
        pattern=JAVA_SIZE,
        description="Java heap of neo4j-admin database import (idgraph backfill).",
    )

    spark_master: str = Field(
        default="local[*]",
        min_length=1,
        description="Spark master of `idgraph resolve --engine spark`: local[*] (every core "
        "of this machine), local[N], spark://host:7077, yarn, k8s://...",
    )
    spark_driver_memory: str = Field(
        default="4g",
        pattern=JAVA_SIZE,
        description="Memory of the Spark driver (in local mode it runs every task too).",
    )
    spark_exchange: str | None = Field(
        default=None,
        description="Where the Spark engine writes its Parquet files: a directory that the "
        "driver and the executors both reach (hdfs://, s3://, a shared mount); default a "
        "temporary directory, which serves local mode.",
    )

    api_keys: str | None = Field(
        default=None,
        description="API keys: a JSON object mapping each key to its role (or to "
        '{"role": ..., "name": ...}), or the path of a file holding one.',
    )
    write_keys: str | None = Field(
        default=None,
        description="Ingestion write keys: a JSON object mapping each key to its source name, "
        "a JSON list of keys (source 'segment'), or the path of a file holding either.",
    )
    api_max_depth: int = Field(default=12, ge=2, le=50, description="GraphQL query depth limit.")
    api_max_cost: int = Field(
        default=50_000, ge=10, description="GraphQL query cost limit (fields x page sizes)."
    )
    api_max_page: int = Field(default=200, ge=1, le=10_000, description="Largest page size.")
    api_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest GraphQL request body."
    )
    api_rate_limit: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second allowed per API key (bursts of twice that); 0: off.",
    )
    api_neo4j_timeout: float = Field(
        default=3.0, gt=0, description="Seconds the API waits for Neo4j before answering 503."
    )
    export_dir: Path | None = Field(
        default=None, description="Where audience exports go; default <state dir>/exports."
    )
    purge_interval_hours: float = Field(
        default=24.0,
        ge=0,
        description="How often the server runs the retention purge (idgraph purge); 0: never.",
    )
    webhook_worker: bool = Field(
        default=True,
        description="Whether `idgraph serve` delivers webhooks (off: run `idgraph webhook "
        "deliver` as a process of its own).",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a receiver has to answer a delivery."
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Deliveries in flight at once to one webhook."
    )
    webhook_retry_base: float = Field(
        default=5.0,
        gt=0,
        description="Seconds before the first retry of a failed delivery; each retry waits "
        "twice as long (with jitter), at most webhook_retry_max.",
    )
    webhook_retry_max: float = Field(
        default=3600.0, gt=0, description="Longest wait between two attempts, in seconds."
    )
    webhook_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="Hours a delivery is retried before it is marked failed (redeliverable).",
    )
    webhook_allow_hosts: str = Field(
        default="",
        description="Comma-separated hosts and networks (CIDR) webhooks may reach although "
        "refused by default (link-local and cloud metadata addresses).",
    )
    outbox_poll: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="Seconds between two looks at the outbox (webhooks and subscriptions).",
    )
    outbox_keep_days: float = Field(
        default=7.0,
        gt=0,
        description="Days delivered deliveries and segment change pages are kept.",
    )
    match_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="Memory record matching's DuckDB may hold (MB); beyond it, it spills to "
        "a temporary directory.",
    )
    log_json: bool = Field(default=False, description="Structured JSON logs, one per line.")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("neo4j_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in _URI_SCHEMES or not rest:
            raise ValueError(
                f"expected a Bolt URI such as bolt://127.0.0.1:7687, got {value!r} "
                f"(schemes: {', '.join(_URI_SCHEMES)})"
            )
        return value

    @field_validator("neo4j_password")
    @classmethod
    def _check_password(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("Neo4j requires at least 8 characters")
        return value

    @field_validator("neo4j_heap", "neo4j_pagecache")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        if value != "auto" and not _MEMORY.match(value):
            raise ValueError(f"expected auto or a size such as 512m or 4g, got {value!r}")
        return value

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def neo4j_home(self) -> Path:
        """Where the local server keeps its configuration, data and logs."""
        return self.state_dir / "neo4j"

    @property
    def rejects_path(self) -> Path:
        return self.rejects_dir or self.state_dir / "rejects"

    @property
    def exports_path(self) -> Path:
        return self.export_dir or self.state_dir / "exports"

    @property
    def neo4j_cache(self) -> Path:
        """Where the Neo4j jars fetched from Maven Central are kept, per version."""
        return self.state_dir / "cache" / "neo4j"


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, raising :class:`ConfigError` when invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{ENV_PREFIX}{field.upper()}: {message}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from e
