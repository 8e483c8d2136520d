"""Typed task definitions: the YAML task file and the DMS task settings.

Validation errors carry the file and the JSON path of the bad field. Unknown
keys are rejected, never ignored.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opendms.endpoints.base import PrepMode
from opendms.errors import ConfigError, UnknownSchemeError


class MigrationType(enum.StrEnum):
    FULL_LOAD = "full-load"
    CDC = "cdc"
    FULL_LOAD_AND_CDC = "full-load-and-cdc"


class DataErrorPolicyKind(enum.StrEnum):
    """What happens to a row whose value the target cannot hold (DMS names)."""

    IGNORE_RECORD = "IGNORE_RECORD"
    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"


ApplyPolicy = Literal[
    "IGNORE_RECORD", "LOG_ERROR", "SUSPEND_TABLE", "STOP_TASK", "INSERT_RECORD", "UPDATE_RECORD"
]
DeletePolicy = Literal["IGNORE_RECORD", "LOG_ERROR", "SUSPEND_TABLE", "STOP_TASK"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class FullLoadSection(_Strict):
    TargetTablePrepMode: PrepMode = PrepMode.DROP_AND_CREATE
    MaxFullLoadSubTasks: int = Field(8, ge=1, le=49)
    CommitRate: int = Field(10000, ge=1, le=1_000_000)
    CreatePkAfterFullLoad: bool = False
    StopTaskCachedChangesApplied: bool = False
    StopTaskCachedChangesNotApplied: bool = False
    TransactionConsistencyTimeout: int = Field(600, ge=0)


SuspendOrStop = Literal["SUSPEND_TABLE", "STOP_TASK"]
EscalationPolicy = Literal["LOG_ERROR", "SUSPEND_TABLE", "STOP_TASK"]


class ErrorBehaviorSection(_Strict):
    """DMS ErrorBehavior (names and defaults of the DMS user guide, "Error handling task
    settings"). opendms applies the data, table and apply-conflict policies during the
    full load and CDC, and the recoverable-error retries (see engine/errors.py)."""

    DataErrorPolicy: DataErrorPolicyKind = DataErrorPolicyKind.LOG_ERROR
    DataTruncationErrorPolicy: DataErrorPolicyKind = DataErrorPolicyKind.LOG_ERROR
    DataErrorEscalationPolicy: SuspendOrStop = "SUSPEND_TABLE"
    DataErrorEscalationCount: int = Field(0, ge=0)
    EventErrorPolicy: Literal["IGNORE", "STOP_TASK"] = "IGNORE"
    TableErrorPolicy: SuspendOrStop = "SUSPEND_TABLE"
    TableErrorEscalationPolicy: Literal["STOP_TASK"] = "STOP_TASK"
    TableErrorEscalationCount: int = Field(0, ge=0)
    # Environmental errors (a lost connection, a server restart): the task is retried.
    RecoverableErrorCount: int = Field(-1, ge=-1)
    RecoverableErrorInterval: int = Field(5, ge=0)
    RecoverableErrorThrottling: bool = True
    RecoverableErrorThrottlingMax: int = Field(1800, ge=0)
    RecoverableErrorStopRetryAfterThrottlingMax: bool = True
    # What a CDC change that does not fit the target does (DMS names and defaults):
    # a duplicate insert, an update or delete of a missing row.
    ApplyErrorInsertPolicy: ApplyPolicy = "LOG_ERROR"
    ApplyErrorUpdatePolicy: ApplyPolicy = "LOG_ERROR"
    ApplyErrorDeletePolicy: DeletePolicy = "IGNORE_RECORD"
    ApplyErrorEscalationPolicy: EscalationPolicy = "LOG_ERROR"
    ApplyErrorEscalationCount: int = Field(0, ge=0)
    ApplyErrorFailOnTruncationDdl: bool = False
    FailOnNoTablesCaptured: bool = True
    FailOnTransactionConsistencyBreached: bool = False
    FullLoadIgnoreConflicts: bool = True

    def apply_policies(self) -> dict[str, str]:
        """Per operation; DMS's UPDATE_RECORD (insert a missing row) is INSERT_RECORD."""
        update = self.ApplyErrorUpdatePolicy
        return {
            "insert": self.ApplyErrorInsertPolicy,
            "update": "INSERT_RECORD" if update == "UPDATE_RECORD" else update,
            "delete": self.ApplyErrorDeletePolicy,
        }


class TargetMetadataSection(_Strict):
    TargetSchema: str = ""
    SupportLobs: bool = True
    FullLobMode: bool = False
    LobChunkSize: int = 64
    LimitedSizeLobMode: bool = True
    LobMaxSize: int = 32
    BatchApplyEnabled: bool = False
    ParallelLoadThreads: int = Field(0, ge=0)
    ParallelLoadBufferSize: int = Field(0, ge=0)


class ChangeProcessingTuningSection(_Strict):
    """DMS batch-apply tuning for CDC."""

    BatchApplyTimeoutMin: int = Field(default=1, ge=0)
    BatchApplyTimeoutMax: int = Field(default=30, ge=1)
    BatchApplyMemoryLimit: int = Field(default=500, ge=1)
    BatchSplitSize: int = Field(default=0, ge=0)
    CommitTimeout: int = Field(default=1, ge=1)
    MemoryLimitTotal: int = Field(default=1024, ge=1)
    MemoryKeepTime: int = Field(default=60, ge=0)
    StatementCacheSize: int = Field(default=50, ge=0)


class DdlHandlingSection(_Strict):
    """DMS ChangeProcessingDdlHandlingPolicy: whether a source table's DROP and TRUNCATE
    during CDC are done to the target table too (ALTER is always followed)."""

    HandleSourceTableDropped: bool = True
    HandleSourceTableTruncated: bool = True
    HandleSourceTableAltered: bool = True


class ValidationSection(_Strict):
    """DMS ValidationSettings (``opendms validate``; EnableValidation also validates each
    table after a task's full load)."""

    EnableValidation: bool = False
    ValidationOnly: bool = False
    FailureMaxCount: int = Field(10000, ge=0)
    TableFailureMaxCount: int = Field(1000, ge=0)
    ThreadCount: int = Field(5, ge=1)
    PartitionSize: int = Field(10000, ge=1)
    ValidationMode: str = "ROW_LEVEL"
    HandleCollationDiff: bool = False
    RecordFailureDelayLimitInMinutes: int = Field(0, ge=0)
    InDatabaseChecksums: bool = False  # opendms: checksum bisection in the databases


class TaskSettings(_Strict):
    """The subset of the DMS task-settings JSON that opendms honours."""

    FullLoadSettings: FullLoadSection = FullLoadSection()
    ErrorBehavior: ErrorBehaviorSection = ErrorBehaviorSection()
    TargetMetadata: TargetMetadataSection = TargetMetadataSection()
    ChangeProcessingTuning: ChangeProcessingTuningSection = ChangeProcessingTuningSection()
    ChangeProcessingDdlHandlingPolicy: DdlHandlingSection = DdlHandlingSection()
    ValidationSettings: ValidationSection = ValidationSection()


class EndpointSpec(_Strict):
    """An endpoint: a URL plus optional settings (a dict or ``k=v;k=v``)."""

    url: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("settings", mode="before")
    @classmethod
    def _parse_eca(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_extra_connection_attributes(value)
        return value


class TaskSpec(_Strict):
    """One migration task as written in a YAML task file."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,254}$")
    source: EndpointSpec
    target: EndpointSpec
    migration_type: MigrationType = MigrationType.FULL_LOAD
    table_mappings: Any = None
    task_settings: TaskSettings = TaskSettings()
    state: str | None = None
    # DMS start-replication parameters: where a ``cdc`` task starts reading ("now", an
    # LSN, a binlog file:pos or GTID) and where any CDC task stops (a position, or
    # ``commit_time:2026-01-31T12:00:00`` / ``server_time:...`` in UTC).
    cdc_start_position: str | None = Field(None, alias="CdcStartPosition")
    cdc_stop_position: str | None = Field(None, alias="CdcStopPosition")
    # DROP_AND_CREATE creates target tables from ``opendms convert``'s DDL (defaults,
    # unique and check constraints, indexes, comments, enums) instead of columns only.
    convert_schema: bool = False

    @field_validator("source", "target", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


def parse_extra_connection_attributes(text: str) -> dict[str, str]:
    """Parse DMS extra connection attributes ``k=v;k=v`` (keys keep their case)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"extra connection attribute {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def json_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a JSON path (``$.a.b[2]``)."""
    path = "$"
    for item in loc:
        path += f"[{item}]" if isinstance(item, int) else f".{item}"
    return path


def raise_config_error(exc: ValidationError, where: str) -> None:
    """Turn the first pydantic error into a ConfigError with its JSON path."""
    err = exc.errors()[0]
    loc = tuple(x for x in err["loc"] if not str(x).startswith("function-"))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    raise ConfigError(msg, where=where, path=json_path(loc)) from None


def load_task_file(path: str | Path) -> TaskSpec:
    """Read and validate a task YAML (or JSON) file."""
    file = Path(path)
    where = str(file)
    text = _read_text(file, where, "")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", where=where) from exc
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        reason = str(exc).split(";")[0]
        raise ConfigError(f"YAML that cannot be read: {reason}", where=where) from None
    if not isinstance(data, dict):
        raise ConfigError("a task file must hold a mapping", where=where, path="$")
    return task_from_dict(data, where=where, base=file.parent)


def task_from_dict(data: dict[str, Any], where: str, base: Path | None = None) -> TaskSpec:
    """Validate a task given as a dict; resolves table_mappings file references."""
    data = dict(data)
    mappings = data.get("table_mappings")
    if isinstance(mappings, str) and not mappings.lstrip().startswith(("{", "[")):
        data["table_mappings"] = _read_mapping_file(mappings, base, where)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        raise_config_error(exc, where)
        raise AssertionError("unreachable") from None
    _check_mappings(spec, where)
    _check_schemes(spec, where)
    return spec


def _check_schemes(spec: TaskSpec, where: str) -> None:
    """Endpoint URLs parse and name a known engine (no connection is made)."""
    from opendms.endpoints import engine_for
    from opendms.endpoints.base import EndpointURL

    for role in ("source", "target"):
        endpoint: EndpointSpec = getattr(spec, role)
        try:
            engine_for(EndpointURL.parse(endpoint.url), role)
        except ConfigError as exc:
            raise ConfigError(exc.message, where=where, path=f"$.{role}") from None
        except UnknownSchemeError as exc:
            raise ConfigError(exc.message, where=where, path=f"$.{role}.url") from None


def _check_mappings(spec: TaskSpec, where: str) -> None:
    """Table mappings are checked with the file, before any connection: a typo is one
    ConfigError with its JSON path (``where: table_mappings: $.rules[0]...``)."""
    from opendms.mapping import parse_table_mappings

    if spec.table_mappings is not None:
        parse_table_mappings(spec.table_mappings, where=f"{where}: table_mappings")


def _read_text(file: Path, where: str, path: str) -> str:
    """A UTF-8 text file, or a ConfigError saying why it cannot be read."""
    what = "task file" if not path else f"file {str(file)!r}"
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", where=where, path=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8",
            where=where,
            path=path,
        ) from None


def _read_mapping_file(name: str, base: Path | None, where: str) -> Any:
    file = Path(name)
    if not file.is_absolute() and base is not None:
        file = base / file
    text = _read_text(file, where, "$.table_mappings")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"table mappings file {str(file)!r} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno} column {exc.colno}",
            where=where,
            path="$.table_mappings",
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        message = f"table mappings file {str(file)!r} cannot be read: {str(exc).split(';')[0]}"
        raise ConfigError(message, where=where, path="$.table_mappings") from None
