"""Plain-data views of tasks and table statistics, for ``--json`` output and the
console tables (one place computes progress, so every view agrees)."""

from __future__ import annotations

from typing import Any

from opendms.state.store import TableState, TableStats, TaskRecord

_DONE = (TableState.COMPLETED, TableState.ERROR)


def progress(record: TaskRecord, tables: list[TableStats]) -> int:
    """Full-load progress in percent, weighted by rows: a finished or failed table counts
    whole, others as far as they got (estimated rows from the source catalog); by table
    count when the source gave no estimates."""
    if record.stop_reason == "FULL_LOAD_ONLY_FINISHED" and tables:
        return 100
    if not tables:
        return 0
    total = sum(max(t.estimated_rows, 1) for t in tables)
    done = 0.0
    for t in tables:
        size = max(t.estimated_rows, 1)
        done += size if t.state in _DONE else min(t.full_load_rows, size * 0.99)
    return int(100 * done / total)


def table_view(t: TableStats) -> dict[str, Any]:
    """One table's statistics with DMS's names."""
    return {
        "SchemaName": t.schema,
        "TableName": t.name,
        "TableState": t.state.value,
        "FullLoadRows": t.full_load_rows,
        "EstimatedRows": t.estimated_rows,
        "ErrorRows": t.error_rows,
        "Inserts": t.inserts,
        "Updates": t.updates,
        "Deletes": t.deletes,
        "Ddls": t.ddls,
        "FullLoadStartTime": t.started_at,
        "FullLoadEndTime": t.ended_at,
        "LastUpdateTime": t.last_change_at,
        "Error": t.error,
    }


def task_view(
    record: TaskRecord, tables: list[TableStats], backlog: dict[str, Any] | None
) -> dict[str, Any]:
    """One task: status, progress, phase, endpoints (masked), CDC metrics and backlog."""
    return {
        "name": record.name,
        "status": record.status.value,
        "stop_reason": record.stop_reason,
        "progress_percent": progress(record, tables),
        "phase": record.phase,
        "migration_type": record.migration_type,
        "source": record.source,
        "target": record.target,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
        "pid": record.pid,
        "applied_position": record.position or None,
        "metrics": record.metrics,
        "tables": len(tables),
        "source_backlog": backlog,
    }
