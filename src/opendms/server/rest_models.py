"""The request and response bodies of the REST API (``/api/v1``), as pydantic models:
they are the schemas of its OpenAPI document. Requests reject unknown keys; a password
is write-only (no response model has one)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_-]{0,254}$"
TEXT = r"^[^\x00-\x1f\x7f]*$"  # one line, no control characters
Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER,
        max_length=255,
        description="Starts with a letter; letters, digits, '-' and '_'.",
    ),
]
Text = Annotated[str, Field(pattern=TEXT, max_length=4096)]

# the DMS engine names of resources.SCHEMES, and its SETTINGS_KEYS (a test compares them)
EngineName = Literal[
    "aurora",
    "aurora-postgresql",
    "dynamodb",
    "file",
    "mariadb",
    "mysql",
    "postgres",
    "s3",
    "sqlite",
]
SettingsKey = Literal["S3Settings", "PostgreSQLSettings", "MySQLSettings", "DynamoDbSettings"]


class EndpointType(enum.StrEnum):
    SOURCE = "source"
    TARGET = "target"


class MigrationType(enum.StrEnum):
    FULL_LOAD = "full-load"
    CDC = "cdc"
    FULL_LOAD_AND_CDC = "full-load-and-cdc"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointFields(_In):
    """The changeable fields of an endpoint (all optional in a PATCH)."""

    server_name: Text | None = Field(None, description="Host name (databases).")
    port: int | None = Field(None, ge=1, le=65535)
    database_name: Text | None = Field(
        None,
        description="Database; for sqlite the file's absolute path, for file the lake's "
        "absolute folder path.",
    )
    username: Text | None = None
    password: Annotated[str, Field(max_length=1024, pattern=r"^[^\x00]*$")] | None = Field(
        None,
        description="Write-only. Stored encrypted; 'env:VARNAME' reads it from the "
        "server's environment when a task file is written or the connection tested.",
        json_schema_extra={"writeOnly": True},
    )
    extra_connection_attributes: Text | None = Field(
        None, description="DMS extra connection attributes, 'k=v;k=v'."
    )
    settings: dict[SettingsKey, dict[str, Any]] | None = Field(
        None, description="Engine settings objects, as DMS names them (S3Settings, ...)."
    )


class EndpointCreate(EndpointFields):
    """A new endpoint."""

    identifier: Identifier
    endpoint_type: EndpointType
    engine_name: EngineName


class EndpointPatch(EndpointFields):
    """Changes to an endpoint: the fields given are replaced."""

    endpoint_type: EndpointType | None = None
    engine_name: EngineName | None = None


class ConnectionOut(BaseModel):
    """The result of an endpoint's last connection test."""

    endpoint: str
    status: str = Field(description="successful or failed")
    message: str | None = Field(None, description="Why it failed.")


class EndpointOut(BaseModel):
    """An endpoint (never its password)."""

    identifier: str
    arn: str
    endpoint_type: EndpointType
    engine_name: str
    server_name: str
    port: int | None
    database_name: str
    username: str
    password_set: bool = Field(description="Whether a password is stored.")
    password_env: str | None = Field(
        description="The environment variable the password is read from, if any."
    )
    extra_connection_attributes: str
    settings: dict[str, dict[str, Any]] = Field(description="Secret values shown as ****.")
    created_at: float = Field(description="Unix time.")
    connection: ConnectionOut | None = Field(description="The last connection test.")


class TaskFields(_In):
    migration_type: MigrationType | None = None
    table_mappings: dict[str, Any] | None = Field(
        None, description="A DMS table-mapping document ({'rules': [...]})."
    )
    task_settings: dict[str, Any] | None = Field(
        None, description="DMS task settings (TargetMetadata, FullLoadSettings, ...)."
    )
    schedule: str | None = Field(
        None,
        description="A cron schedule (five fields, the server's local time) the server "
        "starts the task on; empty: none.",
        max_length=200,
    )
    schedule_type: Literal["reload-target", "start-replication"] | None = Field(
        None, description="What a scheduled start does (default reload-target)."
    )


class TaskCreate(TaskFields):
    """A new replication task between two endpoints (by identifier)."""

    identifier: Identifier
    source: Identifier = Field(description="The source endpoint's identifier.")
    target: Identifier = Field(description="The target endpoint's identifier.")
    migration_type: MigrationType = MigrationType.FULL_LOAD
    table_mappings: dict[str, Any] = Field(
        description="A DMS table-mapping document ({'rules': [...]})."
    )


class TaskPatch(TaskFields):
    """Changes to a stopped task: the fields given are replaced."""


class Progress(BaseModel):
    """Full-load progress."""

    percent: int = Field(description="Tables loaded, in percent of all tables.")
    tables_loaded: int
    tables_loading: int
    tables_queued: int
    tables_errored: int
    elapsed_ms: int


class Cdc(BaseModel):
    """Change data capture metrics, while changes are applied."""

    source_latency_s: float | None
    target_latency_s: float | None
    throughput_rows_s: float | None
    incoming_changes: float | None
    position: str | None = Field(description="The source position the target holds.")


class TaskOut(BaseModel):
    """A replication task and its status."""

    identifier: str
    arn: str
    status: str = Field(
        description="ready, starting, running, stopping, stopped, failed, deleting, creating"
    )
    stop_reason: str | None
    migration_type: str
    source: str | None = Field(description="The source endpoint's identifier.")
    target: str | None = Field(description="The target endpoint's identifier.")
    table_mappings: Any
    task_settings: dict[str, Any] | None
    created_at: float
    started_at: float | None
    stopped_at: float | None
    progress: Progress
    cdc: Cdc
    schedule: str | None = None
    schedule_type: str | None = None


class TableOut(BaseModel):
    """One table's statistics in a task."""

    schema_name: str
    table_name: str
    state: str
    full_load_rows: int
    estimated_rows: int
    error_rows: int
    inserts: int
    updates: int
    deletes: int
    ddls: int
    started_at: str | None
    ended_at: str | None
    last_change_at: str | None
    error: str | None


class DataErrorOut(BaseModel):
    """A row an error policy skipped or logged."""

    table: str
    key: str
    column: str
    reason: str


class CheckOut(BaseModel):
    """One premigration assessment check."""

    id: str
    status: str = Field(description="passed, warning, failed or skipped")
    message: str
    objects: list[str]
    remediation: str


class AssessmentOut(BaseModel):
    """A task's premigration assessment run and its checks (empty while it runs)."""

    name: str
    status: str = Field(description="running, passed, warning, failed, error-executing, ...")
    created_at: float
    failure: str | None
    checks: list[CheckOut]


class LogQuery(BaseModel):
    """Which records of a task's log to return."""

    level: Literal["E", "W", "I", "D", "error", "warning", "info", "debug"] | None = None
    search: str | None = Field(None, max_length=200)
    component: (
        Literal[
            "TASK_MANAGER",
            "SOURCE_UNLOAD",
            "TARGET_LOAD",
            "SOURCE_CAPTURE",
            "TARGET_APPLY",
            "VALIDATOR",
        ]
        | None
    ) = None
    limit: int = Field(500, ge=1, le=5000)


class LogLineOut(BaseModel):
    """One record of a task's log (DMS style: component and level E, W, I or D)."""

    time: str
    component: str
    level: str
    message: str


class ScheduleRunOut(BaseModel):
    """One due time of a task's schedule and what came of it."""

    due: str
    at: str
    outcome: str = Field(description="started, skipped or failed")
    reason: str


class QueryIn(BaseModel):
    """A federated query (docs/query.md) over the server's endpoints, named by their
    identifiers, and any ``endpoints`` given here (name -> opendms URL)."""

    model_config = ConfigDict(extra="forbid")
    sql: str = Field(min_length=1, description="Tables as endpoint.schema.table")
    endpoints: dict[str, str] = Field(default_factory=dict)
    keys: dict[str, list[str]] = Field(
        default_factory=dict, description="A lake table's key columns by endpoint.schema.table"
    )
    max_rows: int = Field(default=1000, ge=1, le=100_000, description="Rows answered at most")
    explain: bool = Field(default=False, description="Only what each source would be asked")


class QuerySourceOut(BaseModel):
    """One table reference: what its source was asked and what it read."""

    table: str
    endpoint: str
    request: str
    rows: int
    seconds: float


class QueryOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    seconds: float
    sources: list[QuerySourceOut]
    duckdb_sql: str


class ErrorBody(BaseModel):
    code: str = Field(
        description="bad_request, unauthorized, forbidden, not_found, conflict, "
        "body_too_large, validation_error, method_not_allowed"
    )
    message: str
    path: str | None = Field(description="The JSON path of the bad field, if one.")


class ErrorOut(BaseModel):
    """Every error's shape."""

    error: ErrorBody


class Deleted(BaseModel):
    identifier: str
    deleted: bool
