"""The DMS task-settings document, every section and key of the DMS user guide.

A DMS task-settings JSON (the guide's example, or the settings saved from a DMS task)
loads unchanged: every section and key the guide names is accepted, a section may be
``null`` (as saved tasks print them), and an unknown key is still an error naming its
JSON path, so a typo never passes. Each key either acts in opendms or is listed in
:data:`NO_EFFECT` with the reason; :func:`settings_without_effect` names those a
document sets to something other than the DMS default, and the task warns once for each
(README, "Task settings with no effect here").
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opendms.endpoints.base import PrepMode


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
SuspendOrStop = Literal["SUSPEND_TABLE", "STOP_TASK"]
EscalationPolicy = Literal["LOG_ERROR", "SUSPEND_TABLE", "STOP_TASK"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _Section(_Strict):
    """A section whose ``null`` (a saved DMS task prints unset sections so) is its
    defaults."""


class FullLoadSection(_Section):
    TargetTablePrepMode: PrepMode = PrepMode.DROP_AND_CREATE
    MaxFullLoadSubTasks: int = Field(8, ge=1, le=49)
    CommitRate: int = Field(10000, ge=1, le=1_000_000)
    CreatePkAfterFullLoad: bool = False
    StopTaskCachedChangesApplied: bool = False
    StopTaskCachedChangesNotApplied: bool = False
    TransactionConsistencyTimeout: int = Field(600, ge=0)


class ErrorBehaviorSection(_Section):
    """DMS ErrorBehavior (names and defaults of the DMS user guide, "Error handling task
    settings"). opendms applies the data, table and apply-conflict policies during the
    full load and CDC, and the recoverable-error retries (see engine/recover.py)."""

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


class TargetMetadataSection(_Section):
    """DMS TargetMetadata. The LOB keys (SupportLobs, FullLobMode, LimitedSizeLobMode,
    LobMaxSize) act only when the document sets them: see opendms.mapping.lobs."""

    TargetSchema: str = ""
    SupportLobs: bool = True
    FullLobMode: bool = False
    LobChunkSize: int = Field(64, ge=0)
    LimitedSizeLobMode: bool = True
    LobMaxSize: int = Field(32, ge=0)
    InlineLobMaxSize: int = Field(0, ge=0)
    LoadMaxFileSize: int = Field(0, ge=0)
    BatchApplyEnabled: bool = False
    TaskRecoveryTableEnabled: bool = False
    ParallelLoadThreads: int = Field(0, ge=0)
    ParallelLoadBufferSize: int = Field(0, ge=0)
    ParallelLoadQueuesPerThread: int = Field(1, ge=0)
    ParallelApplyThreads: int = Field(0, ge=0)
    ParallelApplyBufferSize: int = Field(100, ge=0)
    ParallelApplyQueuesPerThread: int = Field(1, ge=0)


class ChangeProcessingTuningSection(_Section):
    """DMS batch-apply tuning for CDC."""

    BatchApplyPreserveTransaction: bool = True
    BatchApplyTimeoutMin: int = Field(default=1, ge=0)
    BatchApplyTimeoutMax: int = Field(default=30, ge=1)
    BatchApplyMemoryLimit: int = Field(default=500, ge=1)
    BatchSplitSize: int = Field(default=0, ge=0)
    MinTransactionSize: int = Field(default=1000, ge=0)
    CommitTimeout: int = Field(default=1, ge=1)
    MemoryLimitTotal: int = Field(default=1024, ge=1)
    MemoryKeepTime: int = Field(default=60, ge=0)
    StatementCacheSize: int = Field(default=50, ge=0)


class DdlHandlingSection(_Section):
    """DMS ChangeProcessingDdlHandlingPolicy: whether a source table's DROP and TRUNCATE
    during CDC are done to the target table too (ALTER is always followed)."""

    HandleSourceTableDropped: bool = True
    HandleSourceTableTruncated: bool = True
    HandleSourceTableAltered: bool = True


class ValidationSection(_Section):
    """DMS ValidationSettings (``opendms validate``; EnableValidation also validates each
    table after a task's full load)."""

    EnableValidation: bool = False
    ValidationOnly: bool = False
    FailureMaxCount: int = Field(10000, ge=0)
    TableFailureMaxCount: int = Field(1000, ge=0)
    ThreadCount: int = Field(5, ge=1)
    PartitionSize: int = Field(10000, ge=1)
    ValidationMode: Literal["ROW_LEVEL"] = "ROW_LEVEL"
    HandleCollationDiff: bool = False
    RecordFailureDelayInMinutes: int = Field(5, ge=0)
    RecordFailureDelayLimitInMinutes: int = Field(0, ge=0)
    RecordSuspendDelayInMinutes: int = Field(30, ge=0)
    MaxKeyColumnSize: int = Field(8096, ge=0)
    SkipLobColumns: bool = False
    ValidationPartialLobSize: int = Field(0, ge=0)
    ValidationQueryCdcDelaySeconds: int = Field(0, ge=0)
    InDatabaseChecksums: bool = False  # opendms: checksum bisection in the databases


SeverityName = Literal[
    "LOGGER_SEVERITY_ERROR",
    "LOGGER_SEVERITY_WARNING",
    "LOGGER_SEVERITY_INFO",
    "LOGGER_SEVERITY_DEFAULT",
    "LOGGER_SEVERITY_DEBUG",
    "LOGGER_SEVERITY_DETAILED_DEBUG",
]
LOG_COMPONENTS = [
    "ADDONS",
    "COMMON",
    "COMMUNICATION",
    "DATA_STRUCTURE",
    "FILE_FACTORY",
    "FILE_TRANSFER",
    "IO",
    "METADATA_MANAGER",
    "PERFORMANCE",
    "REST_SERVER",
    "SORTER",
    "SOURCE_CAPTURE",
    "SOURCE_UNLOAD",
    "TABLES_MANAGER",
    "TARGET_APPLY",
    "TARGET_LOAD",
    "TASK_MANAGER",
    "TRANSFORMATION",
    "VALIDATOR",
    "VALIDATOR_EXT",
]


class LogComponent(_Strict):
    Id: str
    Severity: SeverityName = "LOGGER_SEVERITY_DEFAULT"

    @field_validator("Id")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in LOG_COMPONENTS:
            raise ValueError(f"unknown log component {value!r}; known: {', '.join(LOG_COMPONENTS)}")
        return value


class LoggingSection(_Section):
    EnableLogging: bool = False
    LogComponents: tuple[LogComponent, ...] = ()
    CloudWatchLogGroup: str | None = None
    CloudWatchLogStream: str | None = None
    DeleteTaskLogs: bool = False


class ControlTablesSection(_Section):
    ControlSchema: str = ""
    HistoryTimeslotInMinutes: int = Field(5, ge=0)
    HistoryTableEnabled: bool = False
    SuspendedTablesTableEnabled: bool = False
    StatusTableEnabled: bool = False
    FullLoadExceptionTableEnabled: bool = False


class StreamBufferSection(_Section):
    StreamBufferCount: int = Field(3, ge=0)
    StreamBufferSizeInMB: int = Field(8, ge=0)
    CtrlStreamBufferSizeInMB: int = Field(5, ge=0)


class TTS3Section(_Section):
    EncryptionMode: Literal["SSE_S3", "SSE_KMS"] = "SSE_S3"
    ServerSideEncryptionKmsKeyId: str = ""
    ServiceAccessRoleArn: str = ""
    BucketName: str = ""
    BucketFolder: str = ""
    EnableDeletingFromS3OnTaskDelete: bool = False


class TTRecordSection(_Section):
    EnableRawData: bool = False
    RawDataFormat: Literal["TEXT", "HEX"] = "TEXT"
    OperationsToLog: str = "ALL"
    MaxRecordSize: int = Field(64, ge=0)


class TimeTravelSection(_Section):
    EnableTT: bool = False
    TTS3Settings: TTS3Section = TTS3Section()
    TTRecordSettings: TTRecordSection = TTRecordSection()


class LoopbackSection(_Section):
    EnableLoopbackPrevention: bool = False
    SourceSchema: str = ""
    TargetSchema: str = ""


class CharacterReplacement(_Strict):
    SourceCharacterCodePoint: int = Field(ge=0)
    TargetCharacterCodePoint: int = Field(ge=0)


class CharacterSetSupportSection(_Strict):
    CharacterSet: str = ""
    ReplaceWithCharacterCodePoint: int = Field(0, ge=0)


class CharacterSetSection(_Section):
    CharacterReplacements: tuple[CharacterReplacement, ...] = ()
    CharacterSetSupport: CharacterSetSupportSection | None = None


class BeforeImageSection(_Section):
    EnableBeforeImage: bool = False
    FieldName: str = ""
    ColumnFilter: Literal["pk-only", "all"] = "pk-only"


class TaskSettings(_Strict):
    """A DMS task-settings document (every section optional, ``null`` = defaults)."""

    TargetMetadata: TargetMetadataSection = TargetMetadataSection()
    FullLoadSettings: FullLoadSection = FullLoadSection()
    TTSettings: TimeTravelSection = TimeTravelSection()
    Logging: LoggingSection = LoggingSection()
    ControlTablesSettings: ControlTablesSection = ControlTablesSection()
    StreamBufferSettings: StreamBufferSection = StreamBufferSection()
    ChangeProcessingTuning: ChangeProcessingTuningSection = ChangeProcessingTuningSection()
    ChangeProcessingDdlHandlingPolicy: DdlHandlingSection = DdlHandlingSection()
    LoopbackPreventionSettings: LoopbackSection = LoopbackSection()
    CharacterSetSettings: CharacterSetSection = CharacterSetSection()
    BeforeImageSettings: BeforeImageSection = BeforeImageSection()
    ErrorBehavior: ErrorBehaviorSection = ErrorBehaviorSection()
    ValidationSettings: ValidationSection = ValidationSection()
    PostProcessingRules: Any = None
    FailTaskWhenCleanTaskResourceFailed: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        if value is None and field.annotation is not Any:
            return field.get_default()
        return value


_LOB_CHUNKS = (
    "the size of the pieces DMS's full LOB mode moves a LOB in; opendms carries each LOB "
    "value whole, inline with its row"
)
_LOB_INLINE = (
    "in DMS's full LOB mode, LOBs up to this size travel inline with their row and larger "
    "ones are looked up on the source; opendms carries every LOB value inline with its row"
)
_PARALLEL_APPLY = (
    "DMS uses it to push changes in parallel to DocumentDB, Kinesis, Kafka (MSK), "
    "OpenSearch and Redshift targets; opendms applies changes in commit order, on one "
    "connection to a database target and file after file to a lake (a DynamoDB target "
    "applies with ParallelApplyThreads threads of ParallelApplyBufferSize changes, each "
    "item's changes in order: there these two act)"
)
_IN_MEMORY_APPLY = (
    "opendms applies whole source transactions in commit order from memory, batching by "
    "BatchApplyTimeoutMin/Max and BatchSplitSize only"
)
_VALIDATION = "opendms validates tables one after another, row by row, and reports at once"

NO_EFFECT: dict[str, str] = {
    "TargetMetadata.LobChunkSize": _LOB_CHUNKS,
    "TargetMetadata.InlineLobMaxSize": _LOB_INLINE,
    "TargetMetadata.LoadMaxFileSize": (
        "PostgreSQL and MySQL targets are loaded by streaming COPY / LOAD DATA, "
        "not from staged CSV files"
    ),
    "TargetMetadata.BatchApplyEnabled": (
        "opendms always applies whole source transactions in commit order, folding and "
        "staging only where that cannot change the result, so either value gives the same "
        "target"
    ),
    "TargetMetadata.TaskRecoveryTableEnabled": (
        "the CDC checkpoint is kept in opendms's state store, not in a target table"
    ),
    "TargetMetadata.ParallelLoadBufferSize": (
        "DMS counts it in records, for DynamoDB, Kinesis, Kafka and OpenSearch targets; "
        "opendms's ParallelLoadThreads writers take whole read batches from a queue one batch "
        "deep, so a table or segment holds about ParallelLoadThreads + 2 batches in memory"
    ),
    "TargetMetadata.ParallelLoadQueuesPerThread": (
        "DMS uses it for Kinesis and Kafka targets; the ParallelLoadThreads writers of a "
        "table or segment share one queue in opendms"
    ),
    "TargetMetadata.ParallelApplyThreads": _PARALLEL_APPLY,
    "TargetMetadata.ParallelApplyBufferSize": _PARALLEL_APPLY,
    "TargetMetadata.ParallelApplyQueuesPerThread": _PARALLEL_APPLY,
    "FullLoadSettings.CreatePkAfterFullLoad": (
        "PostgreSQL targets always build the primary key after the load; MySQL and SQLite "
        "targets create it with the table"
    ),
    "FullLoadSettings.TransactionConsistencyTimeout": (
        "the full load reads a consistent snapshot and the catch-up phase repairs what "
        "changed during it, so opendms never waits for open transactions"
    ),
    "TTSettings": (
        "Time Travel writes DMS's task logs to S3; opendms's task log is local and the rows "
        "it skipped are listed by `task errors`"
    ),
    "Logging": "CloudWatch logging; opendms logs to stderr and to the task's log file",
    "ControlTablesSettings": (
        "opendms creates no awsdms_* control tables on the target; status, suspended tables "
        "and history are in the state store (`task status`, `task tables`, `task errors`)"
    ),
    "StreamBufferSettings": "the buffers of DMS's replication engine; opendms has none",
    "ChangeProcessingTuning.BatchApplyPreserveTransaction": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.MinTransactionSize": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.CommitTimeout": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.BatchApplyMemoryLimit": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.MemoryLimitTotal": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.MemoryKeepTime": _IN_MEMORY_APPLY,
    "ChangeProcessingTuning.StatementCacheSize": _IN_MEMORY_APPLY,
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered": (
        "a column added, dropped or changed on the source is always followed on the target"
    ),
    "LoopbackPreventionSettings": "bidirectional replication is not supported",
    "CharacterSetSettings": "text is carried as Unicode, unchanged",
    "BeforeImageSettings": (
        "DMS adds before images to Kinesis and Kafka records; opendms has no such target"
    ),
    "ErrorBehavior.EventErrorPolicy": "opendms sends no task events",
    "ErrorBehavior.FailOnTransactionConsistencyBreached": "Oracle sources only",
    "ErrorBehavior.FullLoadIgnoreConflicts": (
        "the catch-up phase applies the cached changes idempotently, so their conflicts "
        "never stop a task"
    ),
    "ValidationSettings.ThreadCount": _VALIDATION,
    "ValidationSettings.PartitionSize": _VALIDATION,
    "ValidationSettings.HandleCollationDiff": _VALIDATION,
    "ValidationSettings.RecordFailureDelayInMinutes": _VALIDATION,
    "ValidationSettings.RecordFailureDelayLimitInMinutes": _VALIDATION,
    "ValidationSettings.RecordSuspendDelayInMinutes": _VALIDATION,
    "ValidationSettings.MaxKeyColumnSize": _VALIDATION,
    "ValidationSettings.SkipLobColumns": _VALIDATION,
    "ValidationSettings.ValidationPartialLobSize": _VALIDATION,
    "ValidationSettings.ValidationQueryCdcDelaySeconds": _VALIDATION,
    "PostProcessingRules": "not described by the DMS user guide",
    "FailTaskWhenCleanTaskResourceFailed": "not described by the DMS user guide",
}


def _value(settings: TaskSettings, path: str) -> Any:
    node: Any = settings
    for part in path.split("."):
        node = getattr(node, part)
    return node


def settings_without_effect(settings: TaskSettings) -> list[tuple[str, str]]:
    """``(path, reason)`` of each no-effect key the document sets to a value other than
    DMS's default (a whole section counts when any of its keys does)."""
    default = TaskSettings()
    return [
        (path, reason)
        for path, reason in NO_EFFECT.items()
        if _value(settings, path) != _value(default, path)
    ]
